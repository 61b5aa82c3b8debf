//! The Atlas double's own tests: authentication like Atlas, the restore-job rules, faults,
//! envelopes, paging, and answers that validate against MongoDB's OpenAPI definition.
mod support;

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use diqwest::{Credentials, DigestAuthSession, WithDigestAuth};
use reqwest::header::HeaderMap;
use reqwest::{Client, Method};
use serde_json::{Value, json};
use support::atlas_double::{AtlasDouble, CloudJobState, Fault, RecordedAuth, Route, md5_hex};
use support::schema::violations;

const PUBLIC_KEY: &str = "qwertyui";
const PRIVATE_KEY: &str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
const CLIENT_ID: &str = "mdb_sa_id_0123456789abcdef01234567";
const CLIENT_SECRET: &str = "mdb_sa_sk_secret";
const GROUP: &str = "5f1c6b1e2a9b4f3d8c7e6a01";
const TARGET_GROUP: &str = "5f1c6b1e2a9b4f3d8c7e6a02";
const EMPTY_GROUP: &str = "5f1c6b1e2a9b4f3d8c7e6a03";
const RS: &str = "Cluster0";
const RS_ID: &str = "5f1c6b1e2a9b4f3d8c7e6a11";
const SHARDED: &str = "Sharded0";
const SHARDED_ID: &str = "5f1c6b1e2a9b4f3d8c7e6a12";
const TARGET: &str = "Target0";
const TARGET_ID: &str = "5f1c6b1e2a9b4f3d8c7e6a13";
const SNAP_RS: &str = "5f1c6b1e2a9b4f3d8c7e6b01";
const SNAP_SHARDED: &str = "5f1c6b1e2a9b4f3d8c7e6b02";
const SNAP_TARGET: &str = "5f1c6b1e2a9b4f3d8c7e6b03";
const SHARDS: usize = 3;

fn at(hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, hour, 0, 0).unwrap()
}

async fn populated() -> AtlasDouble {
    let double = AtlasDouble::start().await;
    double.add_api_key(PUBLIC_KEY, PRIVATE_KEY);
    double.add_service_account(CLIENT_ID, CLIENT_SECRET);
    double.add_cluster(GROUP, RS, RS_ID, 0);
    double.add_cluster(GROUP, SHARDED, SHARDED_ID, SHARDS);
    double.add_cluster(TARGET_GROUP, TARGET, TARGET_ID, 0);
    double.add_group(EMPTY_GROUP);
    double.add_snapshot(GROUP, RS, SNAP_RS, at(1), true);
    double.add_snapshot(GROUP, SHARDED, SNAP_SHARDED, at(1), true);
    double.add_snapshot(TARGET_GROUP, TARGET, SNAP_TARGET, at(1), true);
    double
}

fn jobs_path(group: &str, cluster: &str) -> String {
    format!("/api/atlas/v1.0/groups/{group}/clusters/{cluster}/restoreJobs")
}

fn http_body(snapshot: &str) -> Value {
    json!({"snapshotId": snapshot, "delivery": {"methodName": "HTTP", "expirationHours": 2, "maxDownloads": 1}})
}

fn automated_body(snapshot: &str) -> Value {
    json!({
        "snapshotId": snapshot,
        "delivery": {"methodName": "AUTOMATED_RESTORE", "targetGroupId": TARGET_GROUP, "targetClusterName": TARGET},
    })
}

fn assert_valid(component: &str, body: &Value) {
    assert_eq!(
        violations(component, body),
        Vec::<String>::new(),
        "{component}: {body}"
    );
}

fn assert_api_error(answer: &Answer, status: u16, code: &str) {
    assert_eq!(answer.status, status, "{}", answer.text);
    let body = answer.json();
    assert_eq!(body["error"], status, "{body}");
    assert_eq!(body["errorCode"], code, "{body}");
    assert!(
        body["detail"].is_string() && body["reason"].is_string(),
        "{body}"
    );
    assert_valid("ApiError", &body);
}

/// An `Authorization: Digest` value computed by hand.
fn digest_header(
    password: &str,
    method: &str,
    uri: &str,
    nonce: &str,
    nc: u32,
    cnonce: &str,
) -> String {
    let ha1 = md5_hex(&format!("{PUBLIC_KEY}:MMS Public API:{password}"));
    let ha2 = md5_hex(&format!("{method}:{uri}"));
    let nc = format!("{nc:08x}");
    let response = md5_hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"));
    format!(
        "Digest username=\"{PUBLIC_KEY}\", realm=\"MMS Public API\", nonce=\"{nonce}\", uri=\"{uri}\", \
         algorithm=MD5, qop=auth, nc={nc}, cnonce=\"{cnonce}\", response=\"{response}\""
    )
}

fn challenge_param(headers: &HeaderMap, name: &str) -> Option<String> {
    let header = headers.get("www-authenticate")?.to_str().ok()?;
    let start = header.find(&format!("{name}="))? + name.len() + 1;
    let rest = header[start..].trim_start_matches('"');
    let end = rest.find(['"', ',']).unwrap_or(rest.len());
    Some(rest[..end].to_owned())
}

struct Answer {
    status: u16,
    headers: HeaderMap,
    text: String,
}

impl Answer {
    async fn from(response: reqwest::Response) -> Answer {
        Answer {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            text: response.text().await.unwrap(),
        }
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

/// A populated double and a client holding a bearer token (one token request already made).
struct Fixture {
    double: AtlasDouble,
    client: Client,
    token: String,
}

impl Fixture {
    async fn new() -> Fixture {
        let double = populated().await;
        let client = Client::new();
        let answer = request_token(&client, &double, CLIENT_ID, CLIENT_SECRET).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        let token = answer.json()["access_token"].as_str().unwrap().to_owned();
        Fixture {
            double,
            client,
            token,
        }
    }

    fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.double.base_url())
    }

    async fn try_send(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&Value>,
    ) -> reqwest::Result<Answer> {
        let mut request = self
            .client
            .request(method, self.url(path_and_query))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        Ok(Answer::from(request.send().await?).await)
    }

    async fn post(&self, path_and_query: &str, body: &Value) -> Answer {
        self.try_send(Method::POST, path_and_query, Some(body))
            .await
            .unwrap()
    }

    async fn get(&self, path_and_query: &str) -> Answer {
        self.try_send(Method::GET, path_and_query, None)
            .await
            .unwrap()
    }

    async fn create(&self, cluster: &str, body: &Value) -> Answer {
        self.post(&jobs_path(GROUP, cluster), body).await
    }
}

async fn request_token(client: &Client, double: &AtlasDouble, id: &str, secret: &str) -> Answer {
    let response = client
        .post(format!("{}/api/oauth/token", double.base_url()))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    Answer::from(response).await
}

// ---------------------------------------------------------------------------------------------
// Digest

#[tokio::test]
async fn digest_session_is_challenged_once_then_pre_emptive() {
    let double = populated().await;
    let client = Client::new();
    let session = DigestAuthSession::new(PUBLIC_KEY, PRIVATE_KEY);
    let url = format!("{}{}", double.base_url(), jobs_path(GROUP, RS));

    let first = client
        .post(&url)
        .json(&http_body(SNAP_RS))
        .send_digest_auth(&session)
        .await
        .unwrap();
    let first = Answer::from(first).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_valid("PaginatedRestoreJobView", &first.json());
    let requests = double.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].auth, RecordedAuth::None);
    assert_eq!(requests[0].status, Some(401));
    assert_eq!(
        requests[0].body,
        serde_json::to_vec(&http_body(SNAP_RS)).unwrap()
    );
    let valid = RecordedAuth::Digest {
        user: PUBLIC_KEY.into(),
        valid: true,
        stale: false,
    };
    assert_eq!(requests[1].auth, valid);
    assert_eq!(requests[1].status, Some(200));
    assert_eq!(double.challenges(), 1);

    let second = client.get(&url).send_digest_auth(&session).await.unwrap();
    assert_eq!(second.status(), 200);
    let requests = double.requests();
    assert_eq!(
        requests.len(),
        3,
        "the second call is one pre-emptive request"
    );
    assert_eq!(requests[2].auth, valid);
    assert_eq!(requests[2].route, Some(Route::ListRestoreJobs));
    assert_eq!(double.challenges(), 1);
    assert_eq!(double.created_jobs(), 1);
    assert_eq!(double.authenticated_posts(Route::CreateRestoreJob), 1);
}

#[tokio::test]
async fn the_challenge_looks_like_atlas() {
    let double = populated().await;
    let response = Client::new()
        .get(format!("{}{}", double.base_url(), jobs_path(GROUP, RS)))
        .send()
        .await
        .unwrap();
    let answer = Answer::from(response).await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let header = answer.header("www-authenticate").unwrap();
    let nonce = challenge_param(&answer.headers, "nonce").unwrap();
    assert_eq!(
        header,
        format!(
            "Digest realm=\"MMS Public API\", domain=\"\", nonce=\"{nonce}\", algorithm=MD5, qop=\"auth\", stale=false"
        )
    );
    assert_eq!(
        answer.json(),
        json!({"detail": "You are not authorized for this resource.", "error": 401,
               "errorCode": "NOT_AUTHORIZED", "parameters": [], "reason": "Unauthorized"})
    );
    assert_valid("ApiError", &answer.json());
    assert_eq!(double.authenticated_posts(Route::ListRestoreJobs), 0);
}

#[tokio::test]
async fn a_wrong_private_key_gets_401_not_stale_and_nothing_is_created() {
    let double = populated().await;
    let response = Client::new()
        .post(format!("{}{}", double.base_url(), jobs_path(GROUP, RS)))
        .json(&http_body(SNAP_RS))
        .send_digest_auth(Credentials::new(PUBLIC_KEY, "not-the-key"))
        .await
        .unwrap();
    let answer = Answer::from(response).await;
    assert_api_error(&answer, 401, "NOT_AUTHORIZED");
    assert_eq!(
        challenge_param(&answer.headers, "stale").as_deref(),
        Some("false")
    );
    let requests = double.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[1].auth,
        RecordedAuth::Digest {
            user: PUBLIC_KEY.into(),
            valid: false,
            stale: false
        }
    );
    assert_eq!(double.created_jobs(), 0);
    assert_eq!(double.authenticated_posts(Route::CreateRestoreJob), 0);
    assert_eq!(double.challenges(), 2);
}

#[tokio::test]
async fn an_unknown_public_key_is_rejected() {
    let double = populated().await;
    let response = Client::new()
        .get(format!("{}{}", double.base_url(), jobs_path(GROUP, RS)))
        .send_digest_auth(Credentials::new("nobody", PRIVATE_KEY))
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(double.authenticated_posts(Route::ListRestoreJobs), 0);
}

#[tokio::test]
async fn expired_nonces_get_stale_true_and_the_session_recovers() {
    let double = populated().await;
    let client = Client::new();
    let session = DigestAuthSession::new(PUBLIC_KEY, PRIVATE_KEY);
    let url = format!("{}{}", double.base_url(), jobs_path(GROUP, RS));
    assert_eq!(
        client
            .get(&url)
            .send_digest_auth(&session)
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(double.requests().len(), 2);

    double.expire_nonces();
    let answer = client.get(&url).send_digest_auth(&session).await.unwrap();
    assert_eq!(answer.status(), 200, "the session recovers");
    let requests = double.requests();
    // pre-emptive with the stale nonce, then a fresh handshake (diqwest drops its cache on 401)
    assert_eq!(requests.len(), 5);
    assert_eq!(
        requests[2].auth,
        RecordedAuth::Digest {
            user: PUBLIC_KEY.into(),
            valid: false,
            stale: true
        }
    );
    assert_eq!(requests[2].status, Some(401));
    assert_eq!(requests[4].status, Some(200));
    assert_eq!(double.authenticated_posts(Route::ListRestoreJobs), 2);
}

#[tokio::test]
async fn a_correct_answer_with_an_old_nonce_gets_a_stale_challenge() {
    let double = populated().await;
    double.set_nonce_ttl(Duration::from_millis(50));
    let client = Client::new();
    let path = jobs_path(GROUP, RS);
    let url = format!("{}{path}", double.base_url());
    let first = client.get(&url).send().await.unwrap();
    let nonce = challenge_param(first.headers(), "nonce").unwrap();
    tokio::time::sleep(Duration::from_millis(120)).await;
    let header = digest_header(PRIVATE_KEY, "GET", &path, &nonce, 1, "c1");
    let answer = Answer::from(
        client
            .get(&url)
            .header("authorization", header)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_api_error(&answer, 401, "NOT_AUTHORIZED");
    assert_eq!(
        challenge_param(&answer.headers, "stale").as_deref(),
        Some("true")
    );
    let fresh = challenge_param(&answer.headers, "nonce").unwrap();
    assert_ne!(fresh, nonce);

    double.set_nonce_ttl(Duration::from_secs(300));
    let header = digest_header(PRIVATE_KEY, "GET", &path, &fresh, 1, "c1");
    let answer = client
        .get(&url)
        .header("authorization", header)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
}

#[tokio::test]
async fn replayed_nonce_counts_are_rejected_and_increasing_ones_accepted() {
    let double = populated().await;
    let client = Client::new();
    let path = format!("{}?pageNum=1", jobs_path(GROUP, RS));
    let url = format!("{}{path}", double.base_url());
    let nonce = challenge_param(client.get(&url).send().await.unwrap().headers(), "nonce").unwrap();
    let send = |header: String| {
        let request = client.get(&url).header("authorization", header);
        async move { request.send().await.unwrap().status().as_u16() }
    };

    let first = digest_header(PRIVATE_KEY, "GET", &path, &nonce, 1, "aaaa");
    assert_eq!(send(first.clone()).await, 200);
    assert_eq!(
        send(first).await,
        401,
        "the very same header again is a replay"
    );
    assert_eq!(
        double.requests().last().unwrap().auth,
        RecordedAuth::Digest {
            user: PUBLIC_KEY.into(),
            valid: false,
            stale: false
        }
    );
    assert_eq!(
        send(digest_header(PRIVATE_KEY, "GET", &path, &nonce, 2, "aaaa")).await,
        200
    );
    assert_eq!(
        send(digest_header(PRIVATE_KEY, "GET", &path, &nonce, 3, "bbbb")).await,
        200
    );
    // diqwest's session repeats nc=1 with a new cnonce: accepted unless strict.
    assert_eq!(
        send(digest_header(PRIVATE_KEY, "GET", &path, &nonce, 1, "cccc")).await,
        200
    );

    double.set_strict_nonce_count(true);
    assert_eq!(
        send(digest_header(PRIVATE_KEY, "GET", &path, &nonce, 3, "dddd")).await,
        401
    );
    assert_eq!(
        send(digest_header(PRIVATE_KEY, "GET", &path, &nonce, 4, "dddd")).await,
        200
    );
    assert_eq!(double.authenticated_posts(Route::ListRestoreJobs), 5);
}

#[tokio::test]
async fn the_digest_uri_must_be_the_request_target_and_quoted_commas_parse() {
    let double = populated().await;
    let client = Client::new();
    let path = jobs_path(GROUP, RS);
    let url = format!("{}{path}", double.base_url());
    let nonce = challenge_param(client.get(&url).send().await.unwrap().headers(), "nonce").unwrap();

    let other_uri = digest_header(
        PRIVATE_KEY,
        "GET",
        &jobs_path(GROUP, SHARDED),
        &nonce,
        1,
        "x",
    );
    let status = client
        .get(&url)
        .header("authorization", other_uri)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401);
    let wrong_method = digest_header(PRIVATE_KEY, "POST", &path, &nonce, 2, "x");
    let status = client
        .get(&url)
        .header("authorization", wrong_method)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401);

    let quoted = digest_header(PRIVATE_KEY, "GET", &path, &nonce, 3, "a, b=c");
    let status = client
        .get(&url)
        .header("authorization", quoted)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200, "a comma inside quotes is part of the value");
    // A quoted-pair: the hash covers the unescaped value `x"y`.
    let escaped = digest_header(PRIVATE_KEY, "GET", &path, &nonce, 4, "x\"y")
        .replace("\"x\"y\"", "\"x\\\"y\"");
    let status = client
        .get(&url)
        .header("authorization", escaped)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200, "backslash escapes inside quotes are undone");

    let unknown_nonce = digest_header(PRIVATE_KEY, "GET", &path, "0123456789abcdef", 1, "x");
    let status = client
        .get(&url)
        .header("authorization", unknown_nonce)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401);
}

#[tokio::test]
async fn malformed_and_basic_authorization_are_challenged() {
    let double = populated().await;
    let client = Client::new();
    let url = format!("{}{}", double.base_url(), jobs_path(GROUP, RS));
    let status = client
        .get(&url)
        .header("authorization", "Digest username=\"x\", realm")
        .send()
        .await
        .unwrap();
    assert_eq!(status.status(), 401);
    assert!(
        status
            .headers()
            .get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("Digest ")
    );
    let status = client
        .get(&url)
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .send()
        .await
        .unwrap();
    assert_eq!(status.status(), 401);
    let requests = double.requests();
    assert_eq!(requests[0].auth, RecordedAuth::Malformed);
    assert_eq!(
        requests[1].auth,
        RecordedAuth::Basic {
            client_id: CLIENT_ID.into(),
            valid: false
        }
    );
    assert_eq!(double.challenges(), 2);
}

// ---------------------------------------------------------------------------------------------
// OAuth

#[tokio::test]
async fn a_service_account_gets_a_bearer_token_that_works_until_revoked() {
    let double = populated().await;
    let client = Client::new();
    let answer = request_token(&client, &double, CLIENT_ID, CLIENT_SECRET).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let body = answer.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    let token = body["access_token"].as_str().unwrap();
    assert!(token.len() >= 32);
    let token_request = &double.requests()[0];
    assert_eq!(token_request.route, Some(Route::Token));
    assert_eq!(
        token_request.auth,
        RecordedAuth::Basic {
            client_id: CLIENT_ID.into(),
            valid: true
        }
    );
    assert_eq!(token_request.body, b"grant_type=client_credentials");
    assert_eq!(double.authenticated_posts(Route::Token), 1);

    let url = format!(
        "{}/api/atlas/v1.0/groups/{GROUP}/clusters",
        double.base_url()
    );
    let answer = Answer::from(client.get(&url).bearer_auth(token).send().await.unwrap()).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["totalCount"], 2);
    assert_eq!(
        double.requests()[1].auth,
        RecordedAuth::Bearer { valid: true }
    );
    assert_eq!(double.challenges(), 0);

    double.revoke_tokens();
    let answer = Answer::from(client.get(&url).bearer_auth(token).send().await.unwrap()).await;
    assert_api_error(&answer, 401, "NOT_AUTHORIZED");
    assert_eq!(
        double.requests()[2].auth,
        RecordedAuth::Bearer { valid: false }
    );
    assert_eq!(double.authenticated_posts(Route::ListClusters), 1);
}

#[tokio::test]
async fn tokens_expire_after_their_ttl() {
    let double = populated().await;
    double.set_token_ttl(Duration::from_millis(600));
    let client = Client::new();
    let body = request_token(&client, &double, CLIENT_ID, CLIENT_SECRET)
        .await
        .json();
    assert_eq!(body["expires_in"], 1, "rounded up to whole seconds");
    let token = body["access_token"].as_str().unwrap();
    let url = format!(
        "{}/api/atlas/v1.0/groups/{GROUP}/clusters",
        double.base_url()
    );
    assert_eq!(
        client
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        client
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        client
            .get(&url)
            .bearer_auth("made-up")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
}

#[tokio::test]
async fn token_errors_use_the_oauth_shape() {
    let double = populated().await;
    let client = Client::new();
    let answer = request_token(&client, &double, CLIENT_ID, "wrong").await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.json()["error"], "invalid_client");
    assert!(answer.json()["error_description"].is_string());
    assert!(answer.json().get("errorCode").is_none());
    assert_eq!(
        double.requests()[0].auth,
        RecordedAuth::Basic {
            client_id: CLIENT_ID.into(),
            valid: false
        }
    );
    let answer = request_token(&client, &double, "unknown", CLIENT_SECRET).await;
    assert_eq!(answer.json()["error"], "invalid_client");

    let response = client
        .post(format!("{}/api/oauth/token", double.base_url()))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap();
    let answer = Answer::from(response).await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["error"], "unsupported_grant_type");

    let response = client
        .post(format!("{}/api/oauth/token", double.base_url()))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(double.requests()[3].auth, RecordedAuth::None);
    assert_eq!(
        double.authenticated_posts(Route::Token),
        1,
        "only the wrong grant was processed"
    );
}

// ---------------------------------------------------------------------------------------------
// Creating restore jobs

#[tokio::test]
async fn a_replica_set_restore_creates_one_job_as_atlas_answers_it() {
    let fixture = Fixture::new().await;
    let sent = http_body(SNAP_RS);
    let before = Utc::now() - chrono::Duration::seconds(1);
    let answer = fixture.create(RS, &sent).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let page = answer.json();
    assert_valid("PaginatedRestoreJobView", &page);
    assert_eq!(page["totalCount"], 1);
    assert_eq!(page["links"][0]["rel"], "self");
    let job = &page["results"][0];
    let id = job["id"].as_str().unwrap();
    assert!(
        id.len() == 24
            && id
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_eq!(job["clusterId"], RS_ID);
    assert_eq!(job["clusterName"], RS);
    assert_eq!(job["groupId"], GROUP);
    assert_eq!(job["snapshotId"], SNAP_RS);
    assert_eq!(job["statusName"], "IN_PROGRESS");
    assert_eq!(job["encryptionEnabled"], false);
    assert_eq!(job["pointInTime"], false);
    assert!(job.get("batchId").is_none());
    let created = DateTime::parse_from_rfc3339(job["created"].as_str().unwrap()).unwrap();
    assert!(created >= before && created <= Utc::now());
    assert_eq!(job["timestamp"]["increment"], 1);
    assert_eq!(job["timestamp"]["date"], "2026-03-01T01:00:00Z");
    let delivery = &job["delivery"];
    assert_eq!(delivery["methodName"], "HTTP");
    assert_eq!(delivery["statusName"], "NOT_STARTED");
    assert_eq!(delivery["expirationHours"], 2);
    assert_eq!(delivery["maxDownloads"], 1);
    assert!(
        delivery["url"]
            .as_str()
            .unwrap()
            .starts_with(&fixture.double.base_url())
    );
    assert!(delivery["urlV2"].is_string());

    assert_eq!(fixture.double.jobs(), vec![job.clone()]);
    assert_eq!(fixture.double.job_request_body(id), Some(sent));
    assert_eq!(fixture.double.created_jobs(), 1);
    assert_eq!(
        fixture.double.authenticated_posts(Route::CreateRestoreJob),
        1
    );
}

/// The creation time an Atlas id carries: an ObjectId's first 4 bytes, big-endian, in seconds.
fn object_id_time(id: &Value) -> DateTime<Utc> {
    let id = id.as_str().unwrap_or_else(|| panic!("an id, not {id}"));
    assert!(is_job_id(&json!(id)), "an ObjectId: {id}");
    let seconds = u32::from_str_radix(&id[..8], 16).unwrap();
    Utc.timestamp_opt(i64::from(seconds), 0).unwrap()
}

/// Now, to the second (an ObjectId's resolution).
fn now_in_seconds() -> DateTime<Utc> {
    Utc.timestamp_opt(Utc::now().timestamp(), 0).unwrap()
}

#[tokio::test]
async fn an_automated_restore_is_answered_with_method_http_and_its_targets_as_atlas_does() {
    let fixture = Fixture::new().await;
    let before = now_in_seconds();
    let answer = fixture.create(RS, &automated_body(SNAP_RS)).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_valid("PaginatedRestoreJobView", &answer.json());
    let job = &answer.json()["results"][0];
    let delivery = &job["delivery"];
    assert_eq!(
        delivery["methodName"], "HTTP",
        "Atlas answers HTTP for an automated restore, not the AUTOMATED_RESTORE sent: {job}"
    );
    assert_eq!(delivery["targetGroupId"], TARGET_GROUP);
    assert_eq!(delivery["targetClusterName"], TARGET);
    assert_eq!(delivery["statusName"], "NOT_STARTED");
    for absent in ["url", "urlV2", "expirationHours", "maxDownloads"] {
        assert!(delivery.get(absent).is_none(), "{absent} in {delivery}");
    }
    assert_eq!(job["statusName"], "IN_PROGRESS");
    // The id carries the creation time that `created` states.
    let created: DateTime<Utc> = job["created"].as_str().unwrap().parse().unwrap();
    assert!(created >= before && created <= Utc::now(), "{created}");
    assert_eq!(object_id_time(&job["id"]), created);
    assert_eq!(fixture.double.jobs(), vec![job.clone()]);

    // A target named by id is kept as sent, and the method is HTTP all the same.
    let by_id = json!({"snapshotId": SNAP_RS, "delivery": {"methodName": "AUTOMATED_RESTORE", "targetGroupId": TARGET_GROUP, "targetClusterId": TARGET_ID}});
    let job = &fixture.create(RS, &by_id).await.json()["results"][0];
    assert_eq!(job["delivery"]["methodName"], "HTTP");
    assert_eq!(job["delivery"]["targetClusterId"], TARGET_ID);
    assert!(job["delivery"].get("targetClusterName").is_none());

    // A download answers HTTP too: only the targets tell the two apart.
    let download = &fixture.create(RS, &http_body(SNAP_RS)).await.json()["results"][0];
    assert_eq!(download["delivery"]["methodName"], "HTTP");
    for absent in ["targetGroupId", "targetClusterName", "targetClusterId"] {
        assert!(download["delivery"].get(absent).is_none(), "{absent}");
    }
    let created: DateTime<Utc> = download["created"].as_str().unwrap().parse().unwrap();
    assert_eq!(object_id_time(&download["id"]), created);
}

#[tokio::test]
async fn the_file_transfer_may_be_ready_before_the_restore_has_finished() {
    let fixture = Fixture::new().await;
    let created = fixture.create(RS, &automated_body(SNAP_RS)).await.json();
    let id = created["results"][0]["id"].as_str().unwrap().to_owned();
    fixture
        .double
        .set_job_status(&id, "IN_PROGRESS", Some("READY"));
    let job = fixture
        .get(&format!("{}/{id}", jobs_path(GROUP, RS)))
        .await
        .json();
    assert_eq!(job["statusName"], "IN_PROGRESS");
    assert_eq!(job["delivery"]["statusName"], "READY");
    assert_eq!(job["delivery"]["methodName"], "HTTP");
    assert_valid("BackupRestoreJob", &job);
}

#[tokio::test]
async fn batch_ids_carry_their_creation_time() {
    let fixture = Fixture::new().await;
    let before = now_in_seconds();
    let answer = fixture.create(SHARDED, &automated_body(SNAP_SHARDED)).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let page = answer.json();
    let jobs = page["results"].as_array().unwrap();
    let batch_time = object_id_time(&jobs[0]["batchId"]);
    assert!(batch_time >= before && batch_time <= Utc::now());
    for job in jobs {
        assert_eq!(job["delivery"]["methodName"], "HTTP");
        let created: DateTime<Utc> = job["created"].as_str().unwrap().parse().unwrap();
        assert_eq!(object_id_time(&job["id"]), created);
        assert_eq!(batch_time, created);
    }
}

#[tokio::test]
async fn jobs_of_earlier_requests_are_seeded_as_created_then() {
    let fixture = Fixture::new().await;
    let double = &fixture.double;
    let then = Utc.timestamp_opt(Utc::now().timestamp() - 600, 0).unwrap();
    let seeded = double.add_restore_job(GROUP, SHARDED, &automated_body(SNAP_SHARDED), then);
    assert_eq!(seeded.len(), SHARDS + 1);
    for job in &seeded {
        assert_eq!(
            job["created"],
            then.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        assert_eq!(object_id_time(&job["id"]), then);
        assert_eq!(object_id_time(&job["batchId"]), then);
        assert_eq!(job["delivery"]["methodName"], "HTTP");
    }
    let listed = fixture.get(&jobs_path(GROUP, SHARDED)).await.json();
    assert_valid("PaginatedRestoreJobView", &listed);
    assert_eq!(listed["results"].as_array().unwrap().len(), SHARDS + 1);
    assert_eq!(
        double.authenticated_posts(Route::CreateRestoreJob),
        0,
        "seeded, not posted"
    );

    // A job can be changed as served, say a `created` that does not parse.
    let id = seeded[0]["id"].as_str().unwrap();
    double.edit_job(id, |job| job["created"] = json!("yesterday"));
    let job = fixture
        .get(&format!("{}/{id}", jobs_path(GROUP, SHARDED)))
        .await
        .json();
    assert_eq!(job["created"], "yesterday");

    let fixture = cloud_fixture().await;
    let job =
        fixture
            .double
            .add_cloud_restore_job(GROUP, RS, &cloud_automated(CLOUD_SNAP_RS), then);
    assert_valid("DiskBackupSnapshotRestoreJob", &job);
    assert_eq!(object_id_time(&job["id"]), then);
    assert_eq!(fixture.double.cloud_jobs(), vec![job]);
}

#[test]
#[should_panic(expected = "Atlas would refuse")]
fn seeding_a_job_atlas_would_refuse_panics() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let double = runtime.block_on(populated());
    double.add_restore_job(
        GROUP,
        RS,
        &json!({"delivery": {"methodName": "HTTP"}}),
        Utc::now(),
    );
}

#[tokio::test]
async fn a_sharded_restore_creates_one_job_per_shard_plus_config_in_one_batch() {
    let fixture = Fixture::new().await;
    let answer = fixture.create(SHARDED, &automated_body(SNAP_SHARDED)).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let page = answer.json();
    assert_valid("PaginatedRestoreJobView", &page);
    let jobs = page["results"].as_array().unwrap();
    assert_eq!(jobs.len(), SHARDS + 1);
    assert_eq!(page["totalCount"], SHARDS + 1);
    let batch = jobs[0]["batchId"].as_str().unwrap();
    assert!(jobs.iter().all(|j| j["batchId"] == batch));
    let mut ids: Vec<&str> = jobs.iter().map(|j| j["id"].as_str().unwrap()).collect();
    ids.dedup();
    assert_eq!(ids.len(), SHARDS + 1);
    assert_eq!(jobs[0]["delivery"]["targetGroupId"], TARGET_GROUP);
    assert_eq!(jobs[0]["delivery"]["targetClusterName"], TARGET);
    assert!(jobs[0]["delivery"].get("url").is_none());
    assert_eq!(fixture.double.created_jobs(), SHARDS + 1);
    assert_eq!(
        fixture.double.authenticated_posts(Route::CreateRestoreJob),
        1
    );

    let listed = fixture
        .get(&format!("{}?batchId={batch}", jobs_path(GROUP, SHARDED)))
        .await
        .json();
    assert_eq!(listed["totalCount"], SHARDS + 1);
    let none = fixture
        .get(&format!(
            "{}?batchId=0123456789abcdef01234567",
            jobs_path(GROUP, SHARDED)
        ))
        .await
        .json();
    assert_eq!(none["totalCount"], 0);
}

#[tokio::test]
async fn point_in_time_kinds_are_automated_only_and_flagged() {
    let fixture = Fixture::new().await;
    let target = json!({"methodName": "AUTOMATED_RESTORE", "targetGroupId": TARGET_GROUP, "targetClusterId": TARGET_ID});
    let hour_ago = Utc::now().timestamp_millis() - 3_600_000;
    let answer = fixture
        .create(
            RS,
            &json!({"pointInTimeUTCMillis": hour_ago, "delivery": target}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let job = &answer.json()["results"][0];
    assert_eq!(job["pointInTime"], true);
    assert_eq!(
        job.get("pointInTimeUTCMillis"),
        None,
        "writeOnly fields are not echoed"
    );
    let restored_to =
        chrono::DateTime::parse_from_rfc3339(job["timestamp"]["date"].as_str().unwrap()).unwrap();
    assert_eq!(
        restored_to.timestamp_millis(),
        hour_ago,
        "the timestamp carries the point in time"
    );
    assert_eq!(job["delivery"]["targetClusterId"], TARGET_ID);
    assert_valid("PaginatedRestoreJobView", &answer.json());

    let oplog = json!({"oplogTs": "2026-03-01T00:30:00Z", "oplogInc": 3, "delivery": target});
    let answer = fixture.create(RS, &oplog).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json()["results"][0]["timestamp"]["increment"], 3);
    let checkpoint = json!({"checkpointId": "5f1c6b1e2a9b4f3d8c7e6c01", "delivery": target});
    assert_eq!(fixture.create(SHARDED, &checkpoint).await.status, 200);

    let two_days_ago = Utc::now().timestamp_millis() - 48 * 3_600_000;
    let cases = [
        json!({"pointInTimeUTCMillis": two_days_ago, "delivery": target}),
        json!({"pointInTimeUTCMillis": hour_ago, "delivery": {"methodName": "HTTP"}}),
        json!({"checkpointId": "5f1c6b1e2a9b4f3d8c7e6c01", "delivery": {"methodName": "HTTP"}}),
        json!({"oplogTs": "2026-03-01T00:30:00Z", "delivery": target}),
        json!({"oplogTs": "2026-03-01T00:30:00Z", "oplogInc": 0, "delivery": target}),
    ];
    for body in cases {
        assert_api_error(&fixture.create(RS, &body).await, 400, "INVALID_ATTRIBUTE");
    }
    assert_eq!(fixture.double.created_jobs(), 1 + 1 + SHARDS + 1);
}

#[tokio::test]
async fn atlas_rules_are_enforced_and_nothing_is_created_on_error() {
    let fixture = Fixture::new().await;
    let http = json!({"methodName": "HTTP"});
    let automated = |extra: Value| {
        let mut delivery = json!({"methodName": "AUTOMATED_RESTORE"});
        delivery
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({"snapshotId": SNAP_RS, "delivery": delivery})
    };
    let cases: Vec<(&str, &str, Value, u16, &str)> = vec![
        (
            "ffffffffffffffffffffffff",
            RS,
            http_body(SNAP_RS),
            404,
            "GROUP_NOT_FOUND",
        ),
        (
            GROUP,
            "NoSuchCluster",
            http_body(SNAP_RS),
            404,
            "CLUSTER_NOT_FOUND",
        ),
        (
            GROUP,
            RS,
            json!({"snapshotId": SNAP_RS}),
            400,
            "INVALID_ATTRIBUTE",
        ),
        (
            GROUP,
            RS,
            json!({"snapshotId": SNAP_RS, "delivery": {}}),
            400,
            "INVALID_ATTRIBUTE",
        ),
        (
            GROUP,
            RS,
            json!({"snapshotId": SNAP_RS, "delivery": {"methodName": "DOWNLOAD"}}),
            400,
            "INVALID_ATTRIBUTE",
        ),
        (
            GROUP,
            RS,
            json!({"snapshotId": SNAP_RS, "delivery": {"methodName": "QUERY"}}),
            400,
            "INVALID_ATTRIBUTE",
        ),
        (
            GROUP,
            RS,
            json!({"delivery": http}),
            400,
            "INVALID_ATTRIBUTE",
        ),
        (
            GROUP,
            RS,
            json!({"checkPointId": "5f1c6b1e2a9b4f3d8c7e6c01", "delivery": http}),
            400,
            "INVALID_ATTRIBUTE",
        ),
        (
            GROUP,
            RS,
            json!({"snapshotId": SNAP_RS, "pointInTimeUTCMillis": Utc::now().timestamp_millis(), "delivery": http}),
            400,
            "INVALID_ATTRIBUTE",
        ),
        (
            GROUP,
            RS,
            json!({"snapshotId": SNAP_SHARDED, "delivery": http}),
            404,
            "SNAPSHOT_NOT_FOUND",
        ),
        (
            GROUP,
            RS,
            json!({"snapshotId": "0123456789abcdef01234567", "delivery": http}),
            404,
            "SNAPSHOT_NOT_FOUND",
        ),
        (
            GROUP,
            RS,
            automated(json!({"targetClusterName": TARGET})),
            400,
            "INVALID_ATTRIBUTE",
        ),
        (
            GROUP,
            RS,
            automated(json!({"targetGroupId": TARGET_GROUP})),
            400,
            "INVALID_ATTRIBUTE",
        ),
        (
            GROUP,
            RS,
            automated(json!({"targetGroupId": TARGET_GROUP, "targetClusterName": "Nope"})),
            404,
            "CLUSTER_NOT_FOUND",
        ),
        (
            GROUP,
            RS,
            automated(
                json!({"targetGroupId": TARGET_GROUP, "targetClusterId": "0123456789abcdef01234567"}),
            ),
            404,
            "CLUSTER_NOT_FOUND",
        ),
        (
            GROUP,
            RS,
            automated(json!({"targetGroupId": TARGET_GROUP, "targetClusterName": RS})),
            404,
            "CLUSTER_NOT_FOUND",
        ),
        (
            GROUP,
            RS,
            automated(
                json!({"targetGroupId": "ffffffffffffffffffffffff", "targetClusterName": TARGET}),
            ),
            404,
            "GROUP_NOT_FOUND",
        ),
        (
            GROUP,
            RS,
            json!({"snapshotId": SNAP_RS, "delivery": {"methodName": "HTTP", "maxDownloads": 0}}),
            400,
            "INVALID_ATTRIBUTE",
        ),
    ];
    for (group, cluster, body, status, code) in cases {
        let answer = fixture.post(&jobs_path(group, cluster), &body).await;
        assert_api_error(&answer, status, code);
    }
    let not_json = fixture
        .client
        .post(fixture.url(&jobs_path(GROUP, RS)))
        .bearer_auth(&fixture.token)
        .header("content-type", "application/json")
        .body("{\"snapshotId\": ")
        .send()
        .await
        .unwrap();
    assert_api_error(&Answer::from(not_json).await, 400, "INVALID_JSON");
    assert_eq!(fixture.double.created_jobs(), 0);
    assert_eq!(
        fixture.double.authenticated_posts(Route::CreateRestoreJob),
        19
    );

    // Unknown fields are ignored, like Atlas ignores a misspelled checkPointId.
    let mut body = automated(json!({"targetGroupId": TARGET_GROUP, "targetClusterName": TARGET}));
    body["checkPointId"] = json!("5f1c6b1e2a9b4f3d8c7e6c01");
    body["deliveryType"] = json!("automated");
    let answer = fixture.post(&jobs_path(GROUP, RS), &body).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(answer.json()["results"][0].get("checkPointId").is_none());
    assert_eq!(fixture.double.created_jobs(), 1);
}

#[tokio::test]
async fn path_segments_are_percent_decoded() {
    let fixture = Fixture::new().await;
    fixture
        .double
        .add_cluster(GROUP, "Cluster-0", "5f1c6b1e2a9b4f3d8c7e6a14", 0);
    fixture
        .double
        .add_snapshot(GROUP, "Cluster-0", "5f1c6b1e2a9b4f3d8c7e6b04", at(2), true);
    let answer = fixture
        .create("Cluster%2D0", &http_body("5f1c6b1e2a9b4f3d8c7e6b04"))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json()["results"][0]["clusterName"], "Cluster-0");
    let recorded = fixture.double.requests_on(Route::CreateRestoreJob);
    assert!(
        recorded[0].path.contains("Cluster%2D0"),
        "{}",
        recorded[0].path
    );
}

// ---------------------------------------------------------------------------------------------
// Reading jobs, snapshots and clusters

#[tokio::test]
async fn get_one_job_reflects_status_changes() {
    let fixture = Fixture::new().await;
    let created = fixture.create(RS, &http_body(SNAP_RS)).await.json();
    let id = created["results"][0]["id"].as_str().unwrap().to_owned();
    let path = format!("{}/{id}", jobs_path(GROUP, RS));
    let job = fixture.get(&path).await;
    assert_eq!(job.status, 200);
    assert_eq!(job.json(), created["results"][0]);
    assert_valid("BackupRestoreJob", &job.json());

    fixture
        .double
        .set_job_status(&id, "FINISHED", Some("READY"));
    let job = fixture.get(&path).await.json();
    assert_eq!(job["statusName"], "FINISHED");
    assert_eq!(job["delivery"]["statusName"], "READY");
    assert_eq!(fixture.double.jobs()[0]["statusName"], "FINISHED");

    let missing = fixture
        .get(&format!(
            "{}/0123456789abcdef01234567",
            jobs_path(GROUP, RS)
        ))
        .await;
    assert_api_error(&missing, 404, "RESTORE_JOB_NOT_FOUND");
    let other_cluster = fixture
        .get(&format!("{}/{id}", jobs_path(GROUP, SHARDED)))
        .await;
    assert_api_error(&other_cluster, 404, "RESTORE_JOB_NOT_FOUND");
    assert_eq!(fixture.double.authenticated_posts(Route::GetRestoreJob), 4);
}

#[tokio::test]
async fn job_lists_are_paged_newest_first() {
    let fixture = Fixture::new().await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let page = fixture.create(RS, &http_body(SNAP_RS)).await.json();
        ids.push(page["results"][0]["id"].as_str().unwrap().to_owned());
    }
    fixture.create(SHARDED, &http_body(SNAP_SHARDED)).await;
    ids.reverse();
    let path = jobs_path(GROUP, RS);

    let all = fixture.get(&path).await.json();
    assert_valid("PaginatedRestoreJobView", &all);
    assert_eq!(all["totalCount"], 5);
    let listed: Vec<&str> = all["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ids);

    let first = fixture.get(&format!("{path}?itemsPerPage=2")).await.json();
    assert_eq!(first["results"].as_array().unwrap().len(), 2);
    assert_eq!(first["results"][0]["id"], ids[0]);
    assert_eq!(first["totalCount"], 5);
    assert!(
        first["links"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["rel"] == "next")
    );
    let last = fixture
        .get(&format!("{path}?itemsPerPage=2&pageNum=3"))
        .await
        .json();
    assert_eq!(last["results"].as_array().unwrap().len(), 1);
    assert_eq!(last["results"][0]["id"], ids[4]);
    assert!(
        !last["links"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["rel"] == "next")
    );
    let beyond = fixture
        .get(&format!("{path}?itemsPerPage=2&pageNum=4"))
        .await
        .json();
    assert_eq!(beyond["results"], json!([]));
    let uncounted = fixture
        .get(&format!("{path}?includeCount=false"))
        .await
        .json();
    assert!(uncounted.get("totalCount").is_none());
    assert_valid("PaginatedRestoreJobView", &uncounted);

    assert_eq!(
        fixture
            .get(&format!("{path}?itemsPerPage=500"))
            .await
            .status,
        200
    );
    for bad in [
        "itemsPerPage=501",
        "itemsPerPage=0",
        "pageNum=0",
        "includeCount=maybe",
        "batchId=xyz",
    ] {
        assert_api_error(
            &fixture.get(&format!("{path}?{bad}")).await,
            400,
            "INVALID_QUERY_PARAMETER",
        );
    }
    assert_api_error(
        &fixture.get(&jobs_path(GROUP, "Nope")).await,
        404,
        "CLUSTER_NOT_FOUND",
    );
}

#[tokio::test]
async fn snapshots_are_listed_newest_first_completed_by_default() {
    let fixture = Fixture::new().await;
    let double = &fixture.double;
    double.add_snapshot(GROUP, RS, "5f1c6b1e2a9b4f3d8c7e6b11", at(5), true);
    double.add_snapshot(GROUP, RS, "5f1c6b1e2a9b4f3d8c7e6b12", at(3), true);
    double.add_snapshot(GROUP, RS, "5f1c6b1e2a9b4f3d8c7e6b13", at(6), false);
    let path = format!("/api/atlas/v1.0/groups/{GROUP}/clusters/{RS}/snapshots");
    let ids = |page: &Value| -> Vec<String> {
        page["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect()
    };

    let completed = fixture.get(&format!("{path}?completed=true")).await.json();
    assert_valid("PaginatedSnapshotView", &completed);
    assert_eq!(
        ids(&completed),
        [
            "5f1c6b1e2a9b4f3d8c7e6b11",
            "5f1c6b1e2a9b4f3d8c7e6b12",
            SNAP_RS
        ]
    );
    assert_eq!(completed["totalCount"], 3);
    let first = &completed["results"][0];
    assert_eq!(first["clusterId"], RS_ID);
    assert_eq!(first["clusterName"], RS);
    assert_eq!(first["groupId"], GROUP);
    assert_eq!(first["complete"], true);
    assert_eq!(first["created"]["date"], "2026-03-01T05:00:00Z");
    assert!(first["expires"].is_string());

    assert_eq!(ids(&fixture.get(&path).await.json()), ids(&completed));
    let all = fixture.get(&format!("{path}?completed=all")).await.json();
    assert_eq!(ids(&all)[0], "5f1c6b1e2a9b4f3d8c7e6b13");
    assert_eq!(all["totalCount"], 4);
    let incomplete = fixture.get(&format!("{path}?completed=false")).await.json();
    assert_eq!(ids(&incomplete), ["5f1c6b1e2a9b4f3d8c7e6b13"]);
    let paged = fixture
        .get(&format!("{path}?itemsPerPage=1&pageNum=2"))
        .await
        .json();
    assert_eq!(ids(&paged), ["5f1c6b1e2a9b4f3d8c7e6b12"]);
    assert_valid("PaginatedSnapshotView", &paged);
    assert_eq!(fixture.double.authenticated_posts(Route::ListSnapshots), 5);
}

#[tokio::test]
async fn clusters_are_listed_per_project() {
    let fixture = Fixture::new().await;
    let page = fixture
        .get(&format!("/api/atlas/v1.0/groups/{GROUP}/clusters"))
        .await;
    assert_eq!(page.status, 200);
    let page = page.json();
    assert_eq!(page["totalCount"], 2);
    assert_eq!(page["results"][0]["id"], RS_ID);
    assert_eq!(page["results"][0]["name"], RS);
    assert_eq!(page["results"][0]["groupId"], GROUP);
    assert_eq!(page["results"][0]["clusterType"], "REPLICASET");
    assert_eq!(page["results"][1]["clusterType"], "SHARDED");
    let empty = fixture
        .get(&format!("/api/atlas/v1.0/groups/{EMPTY_GROUP}/clusters"))
        .await
        .json();
    assert_eq!(empty["results"], json!([]));
    let unknown = fixture
        .get("/api/atlas/v1.0/groups/ffffffffffffffffffffffff/clusters")
        .await;
    assert_api_error(&unknown, 404, "GROUP_NOT_FOUND");
}

#[tokio::test]
async fn unknown_paths_and_methods() {
    let fixture = Fixture::new().await;
    assert_api_error(
        &fixture.get("/api/atlas/v1.0/groups").await,
        404,
        "RESOURCE_NOT_FOUND",
    );
    assert_api_error(&fixture.get("/nowhere").await, 404, "RESOURCE_NOT_FOUND");
    let delete = fixture
        .try_send(Method::DELETE, &jobs_path(GROUP, RS), None)
        .await
        .unwrap();
    assert_api_error(&delete, 405, "METHOD_NOT_ALLOWED");
    let put = fixture
        .try_send(
            Method::PUT,
            &format!("/api/atlas/v1.0/groups/{GROUP}/clusters"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(put.status, 405);
    assert_eq!(fixture.double.requests().last().unwrap().route, None);
    // Atlas paths are authenticated before routing.
    let anonymous = fixture
        .client
        .get(fixture.url("/api/atlas/v1.0/groups"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

// ---------------------------------------------------------------------------------------------
// Envelope and pretty printing

#[tokio::test]
async fn envelope_and_pretty_keep_digest_working() {
    let double = populated().await;
    let client = Client::new();
    let session = DigestAuthSession::new(PUBLIC_KEY, PRIVATE_KEY);
    let path = format!("{}?envelope=true&pretty=true", jobs_path(GROUP, RS));
    let url = format!("{}{path}", double.base_url());
    let response = client
        .post(&url)
        .json(&http_body(SNAP_RS))
        .send_digest_auth(&session)
        .await
        .unwrap();
    let answer = Answer::from(response).await;
    assert_eq!(answer.status, 200);
    assert!(
        answer.text.contains("\n  "),
        "pretty printed: {}",
        answer.text
    );
    let body = answer.json();
    assert_eq!(body["status"], 200, "a page carries the status itself");
    assert_eq!(body["results"].as_array().unwrap().len(), 1);
    assert_valid("PaginatedRestoreJobView", &body);
    let requests = double.requests();
    assert_eq!(
        requests[0].status,
        Some(401),
        "the challenge is never enveloped"
    );
    assert_eq!(
        requests[1].query.as_deref(),
        Some("envelope=true&pretty=true")
    );
    let authorization = &requests[1]
        .headers
        .iter()
        .find(|(n, _)| n == "authorization")
        .unwrap()
        .1;
    assert!(
        authorization.contains(&format!("uri=\"{path}\"")),
        "{authorization}"
    );

    let missing = format!(
        "{}{}?envelope=true",
        double.base_url(),
        jobs_path(GROUP, "Nope")
    );
    let answer = Answer::from(
        client
            .get(&missing)
            .send_digest_auth(&session)
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, 200);
    let body = answer.json();
    assert_eq!(body["status"], 404);
    assert_eq!(body["content"]["errorCode"], "CLUSTER_NOT_FOUND");
    assert_valid("ApiError", &body["content"]);
    assert!(!answer.text.contains('\n'), "not pretty unless asked");

    let id = double.jobs()[0]["id"].as_str().unwrap().to_owned();
    let one = format!(
        "{}{}/{id}?envelope=true",
        double.base_url(),
        jobs_path(GROUP, RS)
    );
    let body = Answer::from(client.get(&one).send_digest_auth(&session).await.unwrap())
        .await
        .json();
    assert_eq!(body["status"], 200);
    assert_eq!(body["content"]["id"], id.as_str());
}

// ---------------------------------------------------------------------------------------------
// Faults

#[tokio::test]
async fn a_status_fault_answers_an_api_error_with_retry_after_and_processes_nothing() {
    let fixture = Fixture::new().await;
    fixture.double.push_fault(
        Route::CreateRestoreJob,
        Fault::Status {
            status: 429,
            error_code: "RATE_LIMITED".into(),
            retry_after: Some(7),
        },
    );
    fixture.double.push_fault(
        Route::CreateRestoreJob,
        Fault::Status {
            status: 503,
            error_code: "UNEXPECTED_ERROR".into(),
            retry_after: None,
        },
    );
    let first = fixture.create(RS, &http_body(SNAP_RS)).await;
    assert_api_error(&first, 429, "RATE_LIMITED");
    assert_eq!(first.json()["reason"], "Too Many Requests");
    assert_eq!(first.header("retry-after"), Some("7"));
    let second = fixture.create(RS, &http_body(SNAP_RS)).await;
    assert_api_error(&second, 503, "UNEXPECTED_ERROR");
    assert_eq!(second.header("retry-after"), None);
    assert_eq!(fixture.double.created_jobs(), 0);
    assert_eq!(
        fixture.double.authenticated_posts(Route::CreateRestoreJob),
        0
    );
    assert_eq!(fixture.create(RS, &http_body(SNAP_RS)).await.status, 200);
    assert_eq!(fixture.double.created_jobs(), 1);
    let ok = fixture.get(&jobs_path(GROUP, RS)).await;
    assert_eq!(ok.header("retry-after"), None);
}

#[tokio::test]
async fn faults_are_fifo_per_route_and_skip_challenged_requests() {
    let double = populated().await;
    double.push_fault(
        Route::ListClusters,
        Fault::Status {
            status: 500,
            error_code: "UNEXPECTED_ERROR".into(),
            retry_after: None,
        },
    );
    double.push_fault(
        Route::CreateRestoreJob,
        Fault::Status {
            status: 503,
            error_code: "SERVICE_UNAVAILABLE".into(),
            retry_after: Some(1),
        },
    );
    let client = Client::new();
    let session = DigestAuthSession::new(PUBLIC_KEY, PRIVATE_KEY);
    let create = format!("{}{}", double.base_url(), jobs_path(GROUP, RS));
    let answer = client
        .post(&create)
        .json(&http_body(SNAP_RS))
        .send_digest_auth(&session)
        .await
        .unwrap();
    assert_eq!(
        answer.status(),
        503,
        "the challenge did not consume the fault"
    );
    assert_eq!(double.requests()[0].status, Some(401));
    assert_eq!(double.pending_faults(), 1);
    let clusters = format!(
        "{}/api/atlas/v1.0/groups/{GROUP}/clusters",
        double.base_url()
    );
    assert_eq!(
        client
            .get(&clusters)
            .send_digest_auth(&session)
            .await
            .unwrap()
            .status(),
        500
    );
    assert_eq!(
        client
            .get(&clusters)
            .send_digest_auth(&session)
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(double.pending_faults(), 0);
    assert_eq!(double.authenticated_posts(Route::ListClusters), 1);
}

#[tokio::test]
async fn non_json_answers_with_and_without_processing() {
    let fixture = Fixture::new().await;
    fixture.double.push_fault(
        Route::CreateRestoreJob,
        Fault::NonJson {
            status: 502,
            body: "<html>Bad Gateway</html>".into(),
            process: false,
        },
    );
    fixture.double.push_fault(
        Route::CreateRestoreJob,
        Fault::NonJson {
            status: 200,
            body: "OK".into(),
            process: true,
        },
    );
    let first = fixture.create(RS, &http_body(SNAP_RS)).await;
    assert_eq!(first.status, 502);
    assert_eq!(first.text, "<html>Bad Gateway</html>");
    assert!(
        first
            .header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(fixture.double.created_jobs(), 0);
    let second = fixture.create(RS, &http_body(SNAP_RS)).await;
    assert_eq!((second.status, second.text.as_str()), (200, "OK"));
    assert_eq!(fixture.double.created_jobs(), 1);
    assert_eq!(
        fixture.double.authenticated_posts(Route::CreateRestoreJob),
        1
    );
}

/// Polls `condition` every 10 ms for up to 5 s.
async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn delay_then_process_creates_only_after_the_delay() {
    let fixture = Fixture::new().await;
    let delay = Duration::from_millis(800);
    fixture
        .double
        .push_fault(Route::CreateRestoreJob, Fault::DelayThenProcess(delay));
    let request = fixture
        .client
        .post(fixture.url(&jobs_path(GROUP, RS)))
        .bearer_auth(&fixture.token)
        .json(&http_body(SNAP_RS));
    let started = Instant::now();
    let pending = tokio::spawn(async move { request.send().await.unwrap().status().as_u16() });
    wait_until("the body is received", || {
        fixture
            .double
            .requests_on(Route::CreateRestoreJob)
            .iter()
            .any(|r| !r.body.is_empty())
    })
    .await;
    assert!(
        started.elapsed() < delay,
        "the machine is too slow for this test"
    );
    assert_eq!(fixture.double.created_jobs(), 0, "still delaying");
    assert_eq!(pending.await.unwrap(), 200);
    assert!(started.elapsed() >= delay);
    assert_eq!(fixture.double.created_jobs(), 1);
}

#[tokio::test]
async fn process_then_delay_creates_before_answering() {
    let fixture = Fixture::new().await;
    let delay = Duration::from_millis(800);
    fixture
        .double
        .push_fault(Route::CreateRestoreJob, Fault::ProcessThenDelay(delay));
    let request = fixture
        .client
        .post(fixture.url(&jobs_path(GROUP, RS)))
        .bearer_auth(&fixture.token)
        .json(&http_body(SNAP_RS));
    let started = Instant::now();
    let pending = tokio::spawn(async move { request.send().await.unwrap().status().as_u16() });
    wait_until("the job is created", || fixture.double.created_jobs() == 1).await;
    assert!(
        started.elapsed() < delay,
        "the machine is too slow for this test"
    );
    assert!(!pending.is_finished(), "the answer is held back");
    assert_eq!(fixture.double.requests().last().unwrap().status, None);
    assert_eq!(pending.await.unwrap(), 200);
    assert!(started.elapsed() >= delay);
    assert_eq!(fixture.double.requests().last().unwrap().status, Some(200));
}

#[tokio::test]
async fn drop_before_body_closes_without_reading_or_creating() {
    let fixture = Fixture::new().await;
    fixture
        .double
        .push_fault(Route::CreateRestoreJob, Fault::DropBeforeBody);
    let error = fixture
        .try_send(
            Method::POST,
            &jobs_path(GROUP, RS),
            Some(&http_body(SNAP_RS)),
        )
        .await;
    assert!(
        error.is_err(),
        "the connection was closed without an answer"
    );
    assert_eq!(fixture.double.created_jobs(), 0);
    assert_eq!(
        fixture.double.authenticated_posts(Route::CreateRestoreJob),
        0
    );
    let recorded = fixture.double.requests_on(Route::CreateRestoreJob);
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].status, None);
    assert!(recorded[0].body.is_empty(), "the body was never read");
    assert_eq!(recorded[0].auth, RecordedAuth::Bearer { valid: true });
    assert_eq!(
        fixture.create(RS, &http_body(SNAP_RS)).await.status,
        200,
        "the next request is served"
    );
}

#[tokio::test]
async fn drop_after_body_reads_then_closes_without_creating() {
    let fixture = Fixture::new().await;
    fixture
        .double
        .push_fault(Route::CreateRestoreJob, Fault::DropAfterBody);
    let sent = http_body(SNAP_RS);
    let error = fixture
        .try_send(Method::POST, &jobs_path(GROUP, RS), Some(&sent))
        .await;
    assert!(error.is_err());
    assert_eq!(fixture.double.created_jobs(), 0);
    let recorded = fixture.double.requests_on(Route::CreateRestoreJob);
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].status, None);
    assert_eq!(recorded[0].body, serde_json::to_vec(&sent).unwrap());
    assert_eq!(
        fixture.double.authenticated_posts(Route::CreateRestoreJob),
        0
    );
}

#[tokio::test]
async fn create_then_fail_and_create_then_drop_leave_the_jobs_behind() {
    let fixture = Fixture::new().await;
    fixture.double.push_fault(
        Route::CreateRestoreJob,
        Fault::CreateThenFail {
            status: 500,
            error_code: "UNEXPECTED_ERROR".into(),
        },
    );
    fixture
        .double
        .push_fault(Route::CreateRestoreJob, Fault::CreateThenDrop);
    let failed = fixture.create(RS, &http_body(SNAP_RS)).await;
    assert_api_error(&failed, 500, "UNEXPECTED_ERROR");
    assert_eq!(fixture.double.created_jobs(), 1);
    let dropped = fixture
        .try_send(
            Method::POST,
            &jobs_path(GROUP, SHARDED),
            Some(&http_body(SNAP_SHARDED)),
        )
        .await;
    assert!(dropped.is_err());
    assert_eq!(fixture.double.created_jobs(), 1 + SHARDS + 1);
    assert_eq!(
        fixture.double.authenticated_posts(Route::CreateRestoreJob),
        2
    );
    assert_eq!(fixture.double.requests().last().unwrap().status, None);
    let listed = fixture.get(&jobs_path(GROUP, SHARDED)).await.json();
    assert_eq!(
        listed["totalCount"],
        SHARDS + 1,
        "reconciliation can find the jobs"
    );
}

#[tokio::test]
async fn faults_apply_to_token_requests() {
    let double = populated().await;
    double.push_fault(
        Route::Token,
        Fault::Status {
            status: 503,
            error_code: "SERVICE_UNAVAILABLE".into(),
            retry_after: Some(2),
        },
    );
    double.push_fault(Route::Token, Fault::CreateThenDrop);
    let client = Client::new();
    let wrong = request_token(&client, &double, CLIENT_ID, "wrong").await;
    assert_eq!(
        wrong.status, 401,
        "unauthenticated token requests do not consume faults"
    );
    let first = request_token(&client, &double, CLIENT_ID, CLIENT_SECRET).await;
    assert_eq!(first.status, 503);
    assert_eq!(first.header("retry-after"), Some("2"));
    let dropped = client
        .post(format!("{}/api/oauth/token", double.base_url()))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await;
    assert!(dropped.is_err());
    assert_eq!(
        request_token(&client, &double, CLIENT_ID, CLIENT_SECRET)
            .await
            .status,
        200
    );
    assert_eq!(double.authenticated_posts(Route::Token), 2);
}

// ---------------------------------------------------------------------------------------------
// Lifecycle

#[tokio::test]
async fn dropping_the_double_stops_the_server_and_its_connections() {
    let double = populated().await;
    let base = double.base_url();
    let client = Client::new();
    let status = client
        .get(format!("{base}/nowhere"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 404, "a pooled keep-alive connection now exists");
    drop(double);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(client.get(format!("{base}/nowhere")).send().await.is_err());
    assert!(
        tokio::net::TcpStream::connect(base.trim_start_matches("http://"))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn requests_are_recorded_with_headers_query_and_route() {
    let fixture = Fixture::new().await;
    fixture.create(RS, &http_body(SNAP_RS)).await;
    fixture
        .get(&format!("{}?itemsPerPage=3", jobs_path(GROUP, RS)))
        .await;
    let requests = fixture.double.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[1].method, "POST");
    assert_eq!(requests[1].path, jobs_path(GROUP, RS));
    assert_eq!(requests[1].query, None);
    assert_eq!(requests[1].route, Some(Route::CreateRestoreJob));
    assert!(
        requests[1]
            .headers
            .iter()
            .any(|(n, v)| n == "content-type" && v == "application/json")
    );
    assert_eq!(requests[2].query.as_deref(), Some("itemsPerPage=3"));
    assert_eq!(requests[2].route, Some(Route::ListRestoreJobs));
    assert_eq!(requests[2].status, Some(200));
}

// ---------------------------------------------------------------------------------------------
// Cloud Backup (v2)

const VERSIONED: &str = "application/vnd.atlas.2023-01-01+json";
const CLOUD_SNAP_RS: &str = "5f1c6b1e2a9b4f3d8c7e6d01";
const CLOUD_SNAP_SHARDED: &str = "5f1c6b1e2a9b4f3d8c7e6d02";
const CLOUD_SNAP_TARGET: &str = "5f1c6b1e2a9b4f3d8c7e6d03";
const OTHER_TARGET: &str = "Target1";

fn cloud_jobs_path(group: &str, cluster: &str) -> String {
    format!("/api/atlas/v2/groups/{group}/clusters/{cluster}/backup/restoreJobs")
}

fn cloud_snapshots_path(group: &str, cluster: &str) -> String {
    format!("/api/atlas/v2/groups/{group}/clusters/{cluster}/backup/snapshots")
}

fn cloud_automated(snapshot: &str) -> Value {
    json!({
        "deliveryType": "automated",
        "snapshotId": snapshot,
        "targetGroupId": TARGET_GROUP,
        "targetClusterName": TARGET,
    })
}

fn cloud_download(snapshot: &str) -> Value {
    json!({"deliveryType": "download", "snapshotId": snapshot})
}

fn cloud_point_in_time(point: Value) -> Value {
    let mut body = json!({
        "deliveryType": "pointInTime",
        "targetGroupId": TARGET_GROUP,
        "targetClusterName": TARGET,
    });
    body.as_object_mut()
        .unwrap()
        .extend(point.as_object().unwrap().clone());
    body
}

/// A populated double with one completed cloud snapshot per source cluster (taken at 01:00).
async fn cloud_fixture() -> Fixture {
    let fixture = Fixture::new().await;
    let double = &fixture.double;
    double.add_cloud_snapshot(GROUP, RS, CLOUD_SNAP_RS, at(1), "completed");
    double.add_cloud_snapshot(GROUP, SHARDED, CLOUD_SNAP_SHARDED, at(1), "completed");
    double.add_cloud_snapshot(TARGET_GROUP, TARGET, CLOUD_SNAP_TARGET, at(1), "completed");
    double.add_cluster(TARGET_GROUP, OTHER_TARGET, "5f1c6b1e2a9b4f3d8c7e6a15", 0);
    fixture
}

fn is_job_id(value: &Value) -> bool {
    value.as_str().is_some_and(|id| {
        id.len() == 24
            && id
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    })
}

fn finished() -> CloudJobState {
    CloudJobState {
        finished_at: Some(Utc::now()),
        ..CloudJobState::default()
    }
}

impl Fixture {
    /// Sends with exactly these extra headers (no versioned media type unless given).
    async fn send_with(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> reqwest::Result<Answer> {
        let mut request = self
            .client
            .request(method, self.url(path_and_query))
            .bearer_auth(&self.token);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        Ok(Answer::from(request.send().await?).await)
    }

    async fn try_cloud_post(&self, path_and_query: &str, body: &Value) -> reqwest::Result<Answer> {
        let headers = [("accept", VERSIONED), ("content-type", VERSIONED)];
        self.send_with(
            Method::POST,
            path_and_query,
            &headers,
            Some(body.to_string()),
        )
        .await
    }

    async fn cloud_post(&self, path_and_query: &str, body: &Value) -> Answer {
        self.try_cloud_post(path_and_query, body).await.unwrap()
    }

    async fn cloud_get(&self, path_and_query: &str) -> Answer {
        self.send_with(Method::GET, path_and_query, &[("accept", VERSIONED)], None)
            .await
            .unwrap()
    }

    async fn cloud_create(&self, cluster: &str, body: &Value) -> Answer {
        self.cloud_post(&cloud_jobs_path(GROUP, cluster), body)
            .await
    }

    /// Creates a job that must succeed and returns it.
    async fn cloud_job(&self, cluster: &str, body: &Value) -> Value {
        let answer = self.cloud_create(cluster, body).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        answer.json()
    }
}

#[tokio::test]
async fn a_cloud_restore_answers_one_job_as_atlas_documents_it() {
    let fixture = cloud_fixture().await;
    let double = &fixture.double;
    let client = Client::new();
    let session = DigestAuthSession::new(PUBLIC_KEY, PRIVATE_KEY);
    let sent = cloud_automated(CLOUD_SNAP_RS);
    let before = Utc::now() - chrono::Duration::seconds(1);
    let response = client
        .post(fixture.url(&cloud_jobs_path(GROUP, RS)))
        .header("accept", VERSIONED)
        .header("content-type", VERSIONED)
        .body(sent.to_string())
        .send_digest_auth(&session)
        .await
        .unwrap();
    let answer = Answer::from(response).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.header("content-type"), Some(VERSIONED));
    let job = answer.json();
    assert_valid("DiskBackupSnapshotRestoreJob", &job);
    assert!(job.get("results").is_none(), "one job, not a page: {job}");
    assert!(is_job_id(&job["id"]), "{job}");
    let id = job["id"].as_str().unwrap();
    assert_eq!(job["deliveryType"], "automated");
    assert_eq!(job["snapshotId"], CLOUD_SNAP_RS);
    assert_eq!(job["targetGroupId"], TARGET_GROUP);
    assert_eq!(job["targetClusterName"], TARGET);
    assert_eq!(
        job["timestamp"], "2026-03-01T01:00:00Z",
        "the snapshot's time"
    );
    let expires = DateTime::parse_from_rfc3339(job["expiresAt"].as_str().unwrap()).unwrap();
    assert!(expires > Utc::now());
    assert_eq!(
        (&job["cancelled"], &job["failed"], &job["expired"]),
        (&json!(false), &json!(false), &json!(false))
    );
    for absent in [
        "finishedAt",
        "createdAt",
        "deliveryUrl",
        "components",
        "pointInTimeUTCSeconds",
        "oplogTs",
        "oplogInc",
    ] {
        assert!(job.get(absent).is_none(), "{absent} in {job}");
    }
    let rels: Vec<&str> = job["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["rel"].as_str().unwrap())
        .collect();
    assert_eq!(
        rels,
        [
            "self",
            "http://mms.mongodb.com/snapshot",
            "http://mms.mongodb.com/cluster",
            "http://mms.mongodb.com/group"
        ]
    );
    assert_eq!(
        job["links"][0]["href"],
        format!("{}{}/{id}", double.base_url(), cloud_jobs_path(GROUP, RS))
    );

    let created_at = double.cloud_job_created_at(id).unwrap();
    assert!(created_at >= before && created_at <= Utc::now());
    assert_eq!(
        double.cloud_job_created_at("0123456789abcdef01234567"),
        None
    );
    assert_eq!(double.cloud_jobs(), vec![job.clone()]);
    assert_eq!(double.cloud_job_request_body(id), Some(sent));
    assert_eq!(double.created_cloud_jobs(), 1);
    assert_eq!(double.created_jobs(), 0, "legacy jobs are separate");
    assert_eq!(double.authenticated_posts(Route::CreateCloudRestoreJob), 1);
    let recorded = double.requests_on(Route::CreateCloudRestoreJob);
    assert_eq!(recorded.len(), 2, "the challenge, then the signed request");
    assert_eq!(recorded[0].status, Some(401));
    assert!(matches!(
        recorded[1].auth,
        RecordedAuth::Digest { valid: true, .. }
    ));
    assert_eq!(recorded[1].body, recorded[0].body, "the body was replayed");
}

#[tokio::test]
async fn a_cloud_job_id_carries_its_creation_time_which_the_job_does_not_state() {
    let fixture = cloud_fixture().await;
    let before = now_in_seconds();
    let job = fixture.cloud_job(RS, &cloud_automated(CLOUD_SNAP_RS)).await;
    let created = object_id_time(&job["id"]);
    assert!(created >= before && created <= Utc::now(), "{created}");
    let kept = fixture
        .double
        .cloud_job_created_at(job["id"].as_str().unwrap())
        .unwrap();
    assert_eq!(created.timestamp(), kept.timestamp());
    for absent in ["createdAt", "created"] {
        assert!(job.get(absent).is_none(), "{absent} in {job}");
    }
}

#[tokio::test]
async fn a_sharded_cloud_restore_is_still_one_job() {
    let fixture = cloud_fixture().await;
    let automated = fixture
        .cloud_job(SHARDED, &cloud_automated(CLOUD_SNAP_SHARDED))
        .await;
    assert_valid("DiskBackupSnapshotRestoreJob", &automated);
    assert!(automated.get("components").is_none());
    assert_eq!(fixture.double.created_cloud_jobs(), 1);

    let download = fixture
        .cloud_job(SHARDED, &cloud_download(CLOUD_SNAP_SHARDED))
        .await;
    assert_valid("DiskBackupSnapshotRestoreJob", &download);
    assert_eq!(download["deliveryUrl"], json!([]), "not ready yet");
    assert!(download.get("targetGroupId").is_none());
    let components = download["components"].as_array().unwrap();
    assert_eq!(
        components.len(),
        SHARDS + 1,
        "each shard and the config server"
    );
    assert!(components.iter().all(|c| c["replicaSetName"].is_string()));
    assert!(components.iter().all(|c| c.get("downloadUrl").is_none()));
    assert_eq!(fixture.double.created_cloud_jobs(), 2);
    assert_eq!(
        fixture
            .double
            .authenticated_posts(Route::CreateCloudRestoreJob),
        2
    );
    let replica_set = fixture.cloud_job(RS, &cloud_download(CLOUD_SNAP_RS)).await;
    assert!(replica_set.get("components").is_none());
}

#[tokio::test]
async fn every_cloud_route_wants_the_versioned_accept_header() {
    let fixture = cloud_fixture().await;
    let job = fixture.cloud_job(RS, &cloud_download(CLOUD_SNAP_RS)).await;
    let one = format!(
        "{}/{}",
        cloud_jobs_path(GROUP, RS),
        job["id"].as_str().unwrap()
    );
    let list = cloud_jobs_path(GROUP, RS);
    let snapshots = cloud_snapshots_path(GROUP, RS);
    let body = Some(cloud_download(CLOUD_SNAP_RS).to_string());
    let refused = [
        None,
        Some("application/json"),
        Some("*/*"),
        Some("application/vnd.atlas.2024-08-05+json"),
        Some("application/vnd.atlas.2023-01-01"),
    ];
    let mut refusals = 0;
    for accept in refused {
        let mut headers = vec![("content-type", VERSIONED)];
        if let Some(accept) = accept {
            headers.push(("accept", accept));
        }
        let cases = [
            (Method::POST, &list, body.clone()),
            (Method::GET, &list, None),
            (Method::GET, &one, None),
            (Method::GET, &snapshots, None),
        ];
        for (method, path, body) in cases {
            let answer = fixture
                .send_with(method.clone(), path, &headers, body)
                .await
                .unwrap();
            assert_api_error(&answer, 406, "INVALID_VERSION_DATE");
            assert_eq!(
                answer.header("content-type"),
                Some("application/json"),
                "{method} {path} with {accept:?}"
            );
            refusals += 1;
        }
    }
    assert_eq!(refusals, 20);
    assert_eq!(fixture.double.created_cloud_jobs(), 1, "nothing created");

    let accepted = [
        VERSIONED,
        "application/vnd.atlas.2023-01-01+json; charset=utf-8",
        "application/json, application/vnd.atlas.2023-01-01+json",
        "APPLICATION/VND.ATLAS.2023-01-01+JSON",
    ];
    for accept in accepted {
        for path in [&list, &one, &snapshots] {
            let answer = fixture
                .send_with(Method::GET, path, &[("accept", accept)], None)
                .await
                .unwrap();
            assert_eq!(answer.status, 200, "{path} with {accept}: {}", answer.text);
            assert_eq!(answer.header("content-type"), Some(VERSIONED));
        }
    }
    // The legacy routes do not ask for it.
    let legacy = fixture.get(&jobs_path(GROUP, RS)).await;
    assert_eq!(legacy.status, 200);
    assert_eq!(legacy.header("content-type"), Some("application/json"));
}

#[tokio::test]
async fn a_cloud_create_takes_json_or_the_versioned_media_type() {
    let fixture = cloud_fixture().await;
    let path = cloud_jobs_path(GROUP, RS);
    let body = cloud_download(CLOUD_SNAP_RS).to_string();
    let plain_json = fixture
        .send_with(
            Method::POST,
            &path,
            &[("accept", VERSIONED), ("content-type", "application/json")],
            Some(body.clone()),
        )
        .await
        .unwrap();
    assert_eq!(plain_json.status, 200, "{}", plain_json.text);
    assert_eq!(plain_json.header("content-type"), Some(VERSIONED));

    for content_type in [None, Some("text/plain"), Some("application/xml")] {
        let mut headers = vec![("accept", VERSIONED)];
        if let Some(content_type) = content_type {
            headers.push(("content-type", content_type));
        }
        let answer = fixture
            .send_with(Method::POST, &path, &headers, Some(body.clone()))
            .await
            .unwrap();
        assert_api_error(&answer, 415, "UNSUPPORTED_MEDIA_TYPE");
    }
    let versioned = [("accept", VERSIONED), ("content-type", VERSIONED)];
    let malformed = fixture
        .send_with(
            Method::POST,
            &path,
            &versioned,
            Some("{\"deliveryType\": ".into()),
        )
        .await
        .unwrap();
    assert_api_error(&malformed, 400, "MALFORMED_JSON");
    let not_an_object = fixture
        .send_with(Method::POST, &path, &versioned, Some("[]".into()))
        .await
        .unwrap();
    assert_api_error(&not_an_object, 400, "INVALID_JSON");
    assert_eq!(fixture.double.created_cloud_jobs(), 1);
}

/// (group, cluster, body, status, errorCode, the field named in `badRequestDetail`).
type RuleCase = (
    &'static str,
    &'static str,
    Value,
    u16,
    &'static str,
    Option<&'static str>,
);

#[tokio::test]
async fn cloud_restore_rules_are_enforced_and_nothing_is_created_on_error() {
    let fixture = cloud_fixture().await;
    let double = &fixture.double;
    double.add_cloud_snapshot(GROUP, RS, "5f1c6b1e2a9b4f3d8c7e6d11", at(2), "queued");
    double.add_cloud_snapshot(GROUP, RS, "5f1c6b1e2a9b4f3d8c7e6d12", at(3), "inProgress");
    double.add_cloud_snapshot(GROUP, RS, "5f1c6b1e2a9b4f3d8c7e6d13", at(4), "failed");
    let now = Utc::now().timestamp();
    let hour_ago = now - 3600;
    let with = |mut body: Value, extra: Value| {
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let without = |mut body: Value, key: &str| {
        body.as_object_mut().unwrap().remove(key);
        body
    };
    let automated = cloud_automated(CLOUD_SNAP_RS);
    let download = cloud_download(CLOUD_SNAP_RS);
    let cases: Vec<RuleCase> = vec![
        (
            GROUP,
            RS,
            json!({}),
            400,
            "MISSING_ATTRIBUTE",
            Some("deliveryType"),
        ),
        (
            GROUP,
            RS,
            with(download.clone(), json!({"deliveryType": "DOWNLOAD"})),
            400,
            "INVALID_ENUM_VALUE",
            Some("deliveryType"),
        ),
        (
            GROUP,
            RS,
            with(download.clone(), json!({"deliveryType": 1})),
            400,
            "INVALID_ATTRIBUTE",
            Some("deliveryType"),
        ),
        (
            GROUP,
            RS,
            without(automated.clone(), "snapshotId"),
            400,
            "MISSING_ATTRIBUTE",
            Some("snapshotId"),
        ),
        (
            GROUP,
            RS,
            without(automated.clone(), "targetGroupId"),
            400,
            "MISSING_ATTRIBUTE",
            Some("targetGroupId"),
        ),
        (
            GROUP,
            RS,
            without(automated.clone(), "targetClusterName"),
            400,
            "MISSING_ATTRIBUTE",
            Some("targetClusterName"),
        ),
        (
            GROUP,
            RS,
            with(
                automated.clone(),
                json!({"pointInTimeUTCSeconds": hour_ago}),
            ),
            400,
            "INVALID_ATTRIBUTE",
            Some("pointInTimeUTCSeconds"),
        ),
        (
            GROUP,
            RS,
            with(
                download.clone(),
                json!({"oplogTs": hour_ago, "oplogInc": 1}),
            ),
            400,
            "INVALID_ATTRIBUTE",
            Some("oplogTs"),
        ),
        (
            GROUP,
            RS,
            without(download.clone(), "snapshotId"),
            400,
            "MISSING_ATTRIBUTE",
            Some("snapshotId"),
        ),
        (
            GROUP,
            RS,
            with(download.clone(), json!({"targetGroupId": TARGET_GROUP})),
            400,
            "INVALID_ATTRIBUTE",
            Some("targetGroupId"),
        ),
        (
            GROUP,
            RS,
            with(download.clone(), json!({"targetClusterName": TARGET})),
            400,
            "INVALID_ATTRIBUTE",
            Some("targetClusterName"),
        ),
        (
            GROUP,
            RS,
            with(download.clone(), json!({"snapshotId": "not-a-snapshot-id"})),
            400,
            "INVALID_ATTRIBUTE",
            Some("snapshotId"),
        ),
        (
            GROUP,
            RS,
            with(automated.clone(), json!({"targetClusterName": "bad name"})),
            400,
            "INVALID_ATTRIBUTE",
            Some("targetClusterName"),
        ),
        (
            GROUP,
            RS,
            with(automated.clone(), json!({"targetGroupId": 42})),
            400,
            "INVALID_ATTRIBUTE",
            Some("targetGroupId"),
        ),
        (
            GROUP,
            RS,
            cloud_point_in_time(
                json!({"pointInTimeUTCSeconds": hour_ago, "snapshotId": CLOUD_SNAP_RS}),
            ),
            400,
            "INVALID_ATTRIBUTE",
            Some("snapshotId"),
        ),
        (
            GROUP,
            RS,
            cloud_point_in_time(json!({})),
            400,
            "MISSING_ONE_OF_ATTRIBUTES",
            Some("pointInTimeUTCSeconds"),
        ),
        (
            GROUP,
            RS,
            cloud_point_in_time(
                json!({"pointInTimeUTCSeconds": hour_ago, "oplogTs": hour_ago, "oplogInc": 1}),
            ),
            400,
            "INVALID_ATTRIBUTE",
            Some("pointInTimeUTCSeconds"),
        ),
        (
            GROUP,
            RS,
            cloud_point_in_time(json!({"oplogTs": hour_ago})),
            400,
            "MISSING_ATTRIBUTE",
            Some("oplogInc"),
        ),
        (
            GROUP,
            RS,
            cloud_point_in_time(json!({"oplogInc": 1})),
            400,
            "MISSING_ATTRIBUTE",
            Some("oplogTs"),
        ),
        (
            GROUP,
            RS,
            cloud_point_in_time(json!({"oplogTs": hour_ago, "oplogInc": 0})),
            400,
            "INVALID_ATTRIBUTE",
            Some("oplogInc"),
        ),
        // The legacy traps: an ISO-8601 oplogTs, milliseconds instead of seconds.
        (
            GROUP,
            RS,
            cloud_point_in_time(json!({"oplogTs": "2026-03-01T00:30:00Z", "oplogInc": 1})),
            400,
            "INVALID_ATTRIBUTE",
            Some("oplogTs"),
        ),
        (
            GROUP,
            RS,
            cloud_point_in_time(json!({"pointInTimeUTCSeconds": hour_ago * 1000})),
            400,
            "INVALID_ATTRIBUTE",
            Some("pointInTimeUTCSeconds"),
        ),
        (
            GROUP,
            RS,
            cloud_point_in_time(json!({"pointInTimeUTCSeconds": 1_000_000_000})),
            400,
            "INVALID_ATTRIBUTE",
            Some("pointInTimeUTCSeconds"),
        ),
        (
            GROUP,
            RS,
            cloud_point_in_time(json!({"pointInTimeUTCSeconds": now + 3600})),
            400,
            "INVALID_PIT_RESTORE_TIME",
            Some("pointInTimeUTCSeconds"),
        ),
        (
            GROUP,
            RS,
            without(
                cloud_point_in_time(json!({"pointInTimeUTCSeconds": hour_ago})),
                "targetGroupId",
            ),
            400,
            "MISSING_ATTRIBUTE",
            Some("targetGroupId"),
        ),
        (
            "ffffffffffffffffffffffff",
            RS,
            download.clone(),
            404,
            "GROUP_NOT_FOUND",
            None,
        ),
        (
            GROUP,
            "NoSuchCluster",
            download.clone(),
            404,
            "CLUSTER_NOT_FOUND",
            None,
        ),
        (
            GROUP,
            RS,
            cloud_download("0123456789abcdef01234567"),
            404,
            "SNAPSHOT_NOT_FOUND",
            None,
        ),
        // Legacy snapshots and other clusters' cloud snapshots are not this cluster's cloud snapshots.
        (
            GROUP,
            RS,
            cloud_download(SNAP_RS),
            404,
            "SNAPSHOT_NOT_FOUND",
            None,
        ),
        (
            GROUP,
            RS,
            cloud_download(CLOUD_SNAP_SHARDED),
            404,
            "SNAPSHOT_NOT_FOUND",
            None,
        ),
        (
            GROUP,
            RS,
            with(automated.clone(), json!({"targetClusterName": "Nope"})),
            404,
            "CLUSTER_NOT_FOUND",
            None,
        ),
        (
            GROUP,
            RS,
            with(automated.clone(), json!({"targetClusterName": RS})),
            404,
            "CLUSTER_NOT_FOUND",
            None,
        ),
        (
            GROUP,
            RS,
            with(
                automated.clone(),
                json!({"targetGroupId": "ffffffffffffffffffffffff"}),
            ),
            404,
            "GROUP_NOT_FOUND",
            None,
        ),
        (
            GROUP,
            RS,
            cloud_point_in_time(json!({"pointInTimeUTCSeconds": at(0).timestamp()})),
            404,
            "UNABLE_T0_FIND_SNAPSHOT_PRIOR_TO_PIT_RESTORE_OPTIME",
            None,
        ),
        (
            GROUP,
            RS,
            cloud_download("5f1c6b1e2a9b4f3d8c7e6d11"),
            409,
            "CANNOT_START_RESTORE_JOB_FOR_INCOMPLETE_CLUSTER_SNAPSHOT",
            None,
        ),
        (
            GROUP,
            RS,
            cloud_download("5f1c6b1e2a9b4f3d8c7e6d12"),
            409,
            "CANNOT_START_RESTORE_JOB_FOR_INCOMPLETE_CLUSTER_SNAPSHOT",
            None,
        ),
        (
            GROUP,
            RS,
            cloud_download("5f1c6b1e2a9b4f3d8c7e6d13"),
            409,
            "CANNOT_START_RESTORE_JOB_FOR_INCOMPLETE_CLUSTER_SNAPSHOT",
            None,
        ),
    ];
    let count = cases.len();
    for (group, cluster, body, status, code, field) in cases {
        let answer = fixture
            .cloud_post(&cloud_jobs_path(group, cluster), &body)
            .await;
        assert_api_error(&answer, status, code);
        let error = answer.json();
        match field {
            Some(field) => assert_eq!(
                error["badRequestDetail"]["fields"][0]["field"], field,
                "{body}: {error}"
            ),
            None => assert!(error.get("badRequestDetail").is_none(), "{error}"),
        }
    }
    assert_eq!(double.created_cloud_jobs(), 0);
    assert_eq!(
        double.authenticated_posts(Route::CreateCloudRestoreJob),
        count
    );

    // Unknown fields are ignored; the legacy body shape is not a cloud body.
    let legacy_shape = json!({"snapshotId": CLOUD_SNAP_RS, "delivery": {"methodName": "HTTP"}});
    assert_api_error(
        &fixture.cloud_create(RS, &legacy_shape).await,
        400,
        "MISSING_ATTRIBUTE",
    );
    let job = fixture
        .cloud_job(
            RS,
            &with(
                download,
                json!({"checkPointId": "5f1c6b1e2a9b4f3d8c7e6c01"}),
            ),
        )
        .await;
    assert!(job.get("checkPointId").is_none());
    assert_eq!(double.created_cloud_jobs(), 1);
}

#[tokio::test]
async fn point_in_time_cloud_restores_echo_the_point_in_seconds() {
    let fixture = cloud_fixture().await;
    let double = &fixture.double;
    let now = Utc::now();
    let base = now - chrono::Duration::hours(3);
    double.add_cloud_snapshot(GROUP, RS, "5f1c6b1e2a9b4f3d8c7e6d21", base, "completed");
    double.add_cloud_snapshot(
        GROUP,
        RS,
        "5f1c6b1e2a9b4f3d8c7e6d22",
        now - chrono::Duration::minutes(90),
        "failed",
    );
    double.add_cloud_snapshot(
        GROUP,
        RS,
        "5f1c6b1e2a9b4f3d8c7e6d23",
        now - chrono::Duration::minutes(30),
        "completed",
    );
    let point = (now - chrono::Duration::hours(1)).timestamp();
    let job = fixture
        .cloud_job(
            RS,
            &cloud_point_in_time(json!({"pointInTimeUTCSeconds": point})),
        )
        .await;
    assert_valid("DiskBackupSnapshotRestoreJob", &job);
    assert_eq!(job["deliveryType"], "pointInTime");
    assert_eq!(job["pointInTimeUTCSeconds"], point);
    assert!(job.get("snapshotId").is_none(), "no snapshot is named");
    assert_eq!(
        job["timestamp"],
        base.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "the newest completed snapshot before the point"
    );
    assert_eq!(job["targetClusterName"], TARGET);
    assert!(job.get("oplogTs").is_none());

    let id = job["id"].as_str().unwrap();
    double.set_cloud_job_state(id, finished());
    let oplog = fixture
        .cloud_job(
            RS,
            &cloud_point_in_time(json!({"oplogTs": point, "oplogInc": 7})),
        )
        .await;
    assert_valid("DiskBackupSnapshotRestoreJob", &oplog);
    assert_eq!(
        (&oplog["oplogTs"], &oplog["oplogInc"]),
        (&json!(point), &json!(7))
    );
    assert!(oplog.get("pointInTimeUTCSeconds").is_none());
    assert_eq!(double.created_cloud_jobs(), 2);
}

#[tokio::test]
async fn a_target_with_a_restore_in_progress_answers_409() {
    let fixture = cloud_fixture().await;
    let double = &fixture.double;
    let first = fixture.cloud_job(RS, &cloud_automated(CLOUD_SNAP_RS)).await;
    let busy = fixture
        .cloud_create(RS, &cloud_automated(CLOUD_SNAP_RS))
        .await;
    assert_api_error(&busy, 409, "ATLAS_CLUSTER_RESTORE_IN_PROGRESS");
    let from_elsewhere = fixture
        .cloud_create(SHARDED, &cloud_automated(CLOUD_SNAP_SHARDED))
        .await;
    assert_api_error(&from_elsewhere, 409, "ATLAS_CLUSTER_RESTORE_IN_PROGRESS");
    let recent = (Utc::now() - chrono::Duration::minutes(5)).timestamp();
    let point_in_time = fixture
        .cloud_create(
            RS,
            &cloud_point_in_time(json!({"pointInTimeUTCSeconds": recent})),
        )
        .await;
    assert_api_error(&point_in_time, 409, "ATLAS_CLUSTER_RESTORE_IN_PROGRESS");
    // Another target, or no target at all, is free.
    let mut other = cloud_automated(CLOUD_SNAP_RS);
    other["targetClusterName"] = json!(OTHER_TARGET);
    fixture.cloud_job(RS, &other).await;
    fixture.cloud_job(RS, &cloud_download(CLOUD_SNAP_RS)).await;
    fixture.cloud_job(RS, &cloud_download(CLOUD_SNAP_RS)).await;
    // A legacy job into the same target is not a cloud restore.
    assert_eq!(
        fixture.create(RS, &automated_body(SNAP_RS)).await.status,
        200
    );
    assert_eq!(double.created_cloud_jobs(), 4);

    // Each way of ending frees the target.
    let endings = [
        finished(),
        CloudJobState {
            failed: true,
            ..CloudJobState::default()
        },
        CloudJobState {
            cancelled: true,
            ..CloudJobState::default()
        },
        CloudJobState {
            expired: true,
            ..CloudJobState::default()
        },
    ];
    let mut running = first["id"].as_str().unwrap().to_owned();
    for ending in endings {
        double.set_cloud_job_state(&running, ending);
        let next = fixture.cloud_job(RS, &cloud_automated(CLOUD_SNAP_RS)).await;
        let again = fixture
            .cloud_create(RS, &cloud_automated(CLOUD_SNAP_RS))
            .await;
        assert_api_error(&again, 409, "ATLAS_CLUSTER_RESTORE_IN_PROGRESS");
        running = next["id"].as_str().unwrap().to_owned();
    }
    assert_eq!(double.created_cloud_jobs(), 8);
}

#[tokio::test]
async fn get_one_cloud_job_reflects_set_cloud_job_state() {
    let fixture = cloud_fixture().await;
    let double = &fixture.double;
    let created = fixture.cloud_job(RS, &cloud_download(CLOUD_SNAP_RS)).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let path = format!("{}/{id}", cloud_jobs_path(GROUP, RS));
    let job = fixture.cloud_get(&path).await;
    assert_eq!(job.status, 200, "{}", job.text);
    assert_eq!(job.header("content-type"), Some(VERSIONED));
    assert_eq!(job.json(), created);
    assert_eq!(job.json()["deliveryUrl"], json!([]));

    let done = Utc.with_ymd_and_hms(2026, 3, 1, 2, 30, 0).unwrap();
    let url = format!("{}/restore-{id}.tar.gz", double.base_url());
    double.set_cloud_job_state(
        &id,
        CloudJobState {
            finished_at: Some(done),
            delivery_url: Some(vec![url.clone()]),
            ..CloudJobState::default()
        },
    );
    let job = fixture.cloud_get(&path).await.json();
    assert_valid("DiskBackupSnapshotRestoreJob", &job);
    assert_eq!(job["finishedAt"], "2026-03-01T02:30:00Z");
    assert_eq!(job["deliveryUrl"], json!([url]));
    assert_eq!(job["failed"], false);
    assert_eq!(double.cloud_jobs()[0], job);
    let listed = fixture.cloud_get(&cloud_jobs_path(GROUP, RS)).await.json();
    assert_eq!(listed["results"][0], job);

    double.set_cloud_job_state(
        &id,
        CloudJobState {
            expired: true,
            ..CloudJobState::default()
        },
    );
    let job = fixture.cloud_get(&path).await.json();
    assert!(job.get("finishedAt").is_none());
    assert_eq!(job["expired"], true);
    assert_eq!(job["deliveryUrl"], json!([]));

    // A sharded download: one URL per component, in order.
    let sharded = fixture
        .cloud_job(SHARDED, &cloud_download(CLOUD_SNAP_SHARDED))
        .await;
    let urls: Vec<String> = (0..=SHARDS)
        .map(|i| format!("https://restore/{i}.tar.gz"))
        .collect();
    let sharded_id = sharded["id"].as_str().unwrap();
    double.set_cloud_job_state(
        sharded_id,
        CloudJobState {
            finished_at: Some(done),
            delivery_url: Some(urls.clone()),
            ..CloudJobState::default()
        },
    );
    let sharded = fixture
        .cloud_get(&format!("{}/{sharded_id}", cloud_jobs_path(GROUP, SHARDED)))
        .await
        .json();
    assert_valid("DiskBackupSnapshotRestoreJob", &sharded);
    let downloads: Vec<&Value> = sharded["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["downloadUrl"])
        .collect();
    assert_eq!(
        downloads,
        urls.iter()
            .map(|u| json!(u))
            .collect::<Vec<_>>()
            .iter()
            .collect::<Vec<_>>()
    );

    let missing = fixture
        .cloud_get(&format!(
            "{}/0123456789abcdef01234567",
            cloud_jobs_path(GROUP, RS)
        ))
        .await;
    assert_api_error(&missing, 404, "RESTORE_JOB_NOT_FOUND");
    let other_cluster = fixture
        .cloud_get(&format!("{}/{id}", cloud_jobs_path(GROUP, SHARDED)))
        .await;
    assert_api_error(&other_cluster, 404, "RESTORE_JOB_NOT_FOUND");
    let legacy = fixture.create(RS, &http_body(SNAP_RS)).await.json();
    let legacy_id = legacy["results"][0]["id"].as_str().unwrap();
    let legacy_on_v2 = fixture
        .cloud_get(&format!("{}/{legacy_id}", cloud_jobs_path(GROUP, RS)))
        .await;
    assert_api_error(&legacy_on_v2, 404, "RESTORE_JOB_NOT_FOUND");
    let cloud_on_legacy = fixture.get(&format!("{}/{id}", jobs_path(GROUP, RS))).await;
    assert_api_error(&cloud_on_legacy, 404, "RESTORE_JOB_NOT_FOUND");
    assert_api_error(
        &fixture
            .cloud_get(&format!("{}/{id}", cloud_jobs_path(EMPTY_GROUP, RS)))
            .await,
        404,
        "CLUSTER_NOT_FOUND",
    );
    assert_eq!(double.authenticated_posts(Route::GetCloudRestoreJob), 8);
}

#[tokio::test]
#[should_panic(expected = "set_cloud_job_state: no cloud job")]
async fn set_cloud_job_state_panics_on_an_unknown_job() {
    let double = populated().await;
    double.set_cloud_job_state("0123456789abcdef01234567", finished());
}

#[tokio::test]
async fn cloud_job_lists_are_paged_newest_first() {
    let fixture = cloud_fixture().await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let job = fixture.cloud_job(RS, &cloud_download(CLOUD_SNAP_RS)).await;
        ids.push(job["id"].as_str().unwrap().to_owned());
    }
    fixture
        .cloud_job(SHARDED, &cloud_download(CLOUD_SNAP_SHARDED))
        .await;
    fixture.create(RS, &http_body(SNAP_RS)).await;
    ids.reverse();
    let path = cloud_jobs_path(GROUP, RS);
    let listed = |page: &Value| -> Vec<String> {
        page["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_str().unwrap().to_owned())
            .collect()
    };

    let all = fixture.cloud_get(&path).await;
    assert_eq!(all.header("content-type"), Some(VERSIONED));
    let all = all.json();
    assert_valid("PaginatedCloudBackupRestoreJobView", &all);
    assert_eq!(
        all["totalCount"], 5,
        "legacy and other clusters' jobs are not listed"
    );
    assert_eq!(listed(&all), ids);
    assert!(
        all["links"][0]["href"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}{path}?", fixture.double.base_url()))
    );

    let first = fixture
        .cloud_get(&format!("{path}?itemsPerPage=2"))
        .await
        .json();
    assert_eq!(listed(&first), ids[..2]);
    assert!(
        first["links"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["rel"] == "next")
    );
    let last = fixture
        .cloud_get(&format!("{path}?itemsPerPage=2&pageNum=3"))
        .await
        .json();
    assert_eq!(listed(&last), ids[4..]);
    assert!(
        !last["links"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["rel"] == "next")
    );
    assert_valid("PaginatedCloudBackupRestoreJobView", &last);
    let beyond = fixture
        .cloud_get(&format!("{path}?itemsPerPage=2&pageNum=4"))
        .await
        .json();
    assert_eq!(beyond["results"], json!([]));
    let uncounted = fixture
        .cloud_get(&format!("{path}?includeCount=false"))
        .await
        .json();
    assert!(uncounted.get("totalCount").is_none());
    assert_valid("PaginatedCloudBackupRestoreJobView", &uncounted);
    assert_eq!(
        fixture
            .cloud_get(&format!("{path}?itemsPerPage=500"))
            .await
            .status,
        200
    );
    for bad in [
        "itemsPerPage=501",
        "itemsPerPage=0",
        "pageNum=0",
        "includeCount=maybe",
    ] {
        assert_api_error(
            &fixture.cloud_get(&format!("{path}?{bad}")).await,
            400,
            "INVALID_QUERY_PARAMETER",
        );
    }
    let empty = fixture
        .cloud_get(&cloud_jobs_path(TARGET_GROUP, TARGET))
        .await
        .json();
    assert_eq!(
        (&empty["results"], &empty["totalCount"]),
        (&json!([]), &json!(0))
    );
    assert_api_error(
        &fixture.cloud_get(&cloud_jobs_path(GROUP, "Nope")).await,
        404,
        "CLUSTER_NOT_FOUND",
    );
    assert_api_error(
        &fixture
            .cloud_get(&cloud_jobs_path("ffffffffffffffffffffffff", RS))
            .await,
        404,
        "GROUP_NOT_FOUND",
    );
    let legacy = fixture.get(&jobs_path(GROUP, RS)).await.json();
    assert_eq!(legacy["totalCount"], 1, "cloud jobs are not legacy jobs");
}

#[tokio::test]
async fn cloud_snapshots_are_listed_newest_first_with_every_status() {
    let fixture = cloud_fixture().await;
    let double = &fixture.double;
    double.add_cloud_snapshot(GROUP, RS, "5f1c6b1e2a9b4f3d8c7e6d31", at(5), "completed");
    double.add_cloud_snapshot(GROUP, RS, "5f1c6b1e2a9b4f3d8c7e6d32", at(3), "failed");
    double.add_cloud_snapshot(GROUP, RS, "5f1c6b1e2a9b4f3d8c7e6d33", at(6), "inProgress");
    double.add_cloud_snapshot(GROUP, RS, "5f1c6b1e2a9b4f3d8c7e6d34", at(7), "queued");
    let path = cloud_snapshots_path(GROUP, RS);
    let ids = |page: &Value| -> Vec<String> {
        page["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect()
    };

    let all = fixture.cloud_get(&path).await;
    assert_eq!(all.status, 200, "{}", all.text);
    assert_eq!(all.header("content-type"), Some(VERSIONED));
    let all = all.json();
    assert_valid("PaginatedCloudBackupReplicaSetView", &all);
    assert_eq!(
        ids(&all),
        [
            "5f1c6b1e2a9b4f3d8c7e6d34",
            "5f1c6b1e2a9b4f3d8c7e6d33",
            "5f1c6b1e2a9b4f3d8c7e6d31",
            "5f1c6b1e2a9b4f3d8c7e6d32",
            CLOUD_SNAP_RS,
        ],
        "newest first, every status, legacy snapshots apart"
    );
    assert_eq!(all["totalCount"], 5);
    let statuses: Vec<&str> = all["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["queued", "inProgress", "completed", "failed", "completed"]
    );
    let newest_completed = &all["results"][2];
    assert_valid("DiskBackupReplicaSet", newest_completed);
    assert_eq!(newest_completed["createdAt"], "2026-03-01T05:00:00Z");
    assert_eq!(newest_completed["type"], "replicaSet");
    assert_eq!(newest_completed["replicaSetName"], RS);
    assert_eq!(newest_completed["snapshotType"], "scheduled");
    assert!(newest_completed["mongodVersion"].is_string());
    assert!(newest_completed["expiresAt"].is_string());
    assert_eq!(
        newest_completed["links"][0]["href"],
        format!("{}{path}/5f1c6b1e2a9b4f3d8c7e6d31", double.base_url())
    );

    // The OpenAPI definition has no status filter: an unknown query parameter is ignored.
    let openapi: Value =
        serde_json::from_str(include_str!("fixtures/atlas/restore-api.openapi.json")).unwrap();
    let parameters = &openapi["paths"]["/api/atlas/v2/groups/{groupId}/clusters/{clusterName}/backup/snapshots"]
        ["get"]["parameters"];
    let names: Vec<&str> = parameters
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(!names.contains(&"status"), "{names:?}");
    assert!(names.contains(&"pointInTimeUtcSeconds"), "{names:?}");
    let filtered = fixture
        .cloud_get(&format!("{path}?status=completed"))
        .await
        .json();
    assert_eq!(ids(&filtered), ids(&all));

    // pointInTimeUtcSeconds, or oplogTs with oplogInc: the newest completed snapshot before it.
    let point = at(6).timestamp() + 60;
    let closest = fixture
        .cloud_get(&format!("{path}?pointInTimeUtcSeconds={point}"))
        .await
        .json();
    assert_valid("PaginatedCloudBackupReplicaSetView", &closest);
    assert_eq!(ids(&closest), ["5f1c6b1e2a9b4f3d8c7e6d31"]);
    let by_oplog = fixture
        .cloud_get(&format!("{path}?oplogTs={}&oplogInc=1", at(4).timestamp()))
        .await
        .json();
    assert_eq!(ids(&by_oplog), [CLOUD_SNAP_RS]);
    let before_all = fixture
        .cloud_get(&format!(
            "{path}?pointInTimeUtcSeconds={}",
            at(0).timestamp()
        ))
        .await
        .json();
    assert_eq!(before_all["results"], json!([]));
    let bad = [
        (
            format!("pointInTimeUtcSeconds={point}&oplogTs={point}&oplogInc=1"),
            "MUTUALLY_EXCLUSIVE_QUERY_PARAMETERS",
        ),
        (format!("oplogTs={point}"), "MISSING_QUERY_PARAMETER"),
        ("oplogInc=1".to_owned(), "MISSING_QUERY_PARAMETER"),
        (
            "pointInTimeUtcSeconds=yesterday".to_owned(),
            "INVALID_QUERY_PARAMETER",
        ),
        ("itemsPerPage=501".to_owned(), "INVALID_QUERY_PARAMETER"),
    ];
    for (query, code) in bad {
        assert_api_error(
            &fixture.cloud_get(&format!("{path}?{query}")).await,
            400,
            code,
        );
    }

    let paged = fixture
        .cloud_get(&format!("{path}?itemsPerPage=2&pageNum=2"))
        .await
        .json();
    assert_eq!(
        ids(&paged),
        ["5f1c6b1e2a9b4f3d8c7e6d31", "5f1c6b1e2a9b4f3d8c7e6d32"]
    );
    assert_eq!(paged["totalCount"], 5);
    let sharded = fixture
        .cloud_get(&cloud_snapshots_path(GROUP, SHARDED))
        .await
        .json();
    assert_valid("PaginatedCloudBackupReplicaSetView", &sharded);
    assert_eq!(ids(&sharded), [CLOUD_SNAP_SHARDED]);
    assert_eq!(sharded["results"][0]["type"], "shardedCluster");
    assert_api_error(
        &fixture
            .cloud_get(&cloud_snapshots_path(GROUP, "Nope"))
            .await,
        404,
        "CLUSTER_NOT_FOUND",
    );
    let legacy = fixture
        .get(&format!(
            "/api/atlas/v1.0/groups/{GROUP}/clusters/{RS}/snapshots"
        ))
        .await
        .json();
    assert_eq!(
        legacy["totalCount"], 1,
        "cloud snapshots are not legacy snapshots"
    );
    assert_eq!(double.authenticated_posts(Route::ListCloudSnapshots), 13);
}

#[tokio::test]
#[should_panic(expected = "add_cloud_snapshot: status done")]
async fn add_cloud_snapshot_panics_on_an_unknown_status() {
    let double = populated().await;
    double.add_cloud_snapshot(GROUP, RS, CLOUD_SNAP_RS, at(1), "done");
}

#[tokio::test]
async fn faults_apply_to_the_cloud_routes() {
    let fixture = cloud_fixture().await;
    let double = &fixture.double;
    let create = Route::CreateCloudRestoreJob;
    double.push_fault(
        create,
        Fault::Status {
            status: 429,
            error_code: "RATE_LIMITED".into(),
            retry_after: Some(3),
        },
    );
    double.push_fault(create, Fault::DropBeforeBody);
    double.push_fault(create, Fault::DropAfterBody);
    double.push_fault(
        create,
        Fault::NonJson {
            status: 502,
            body: "<html>Bad Gateway</html>".into(),
            process: false,
        },
    );
    double.push_fault(
        create,
        Fault::NonJson {
            status: 200,
            body: "OK".into(),
            process: true,
        },
    );
    double.push_fault(
        create,
        Fault::CreateThenFail {
            status: 500,
            error_code: "UNEXPECTED_ERROR".into(),
        },
    );
    double.push_fault(create, Fault::CreateThenDrop);
    // A legacy fault does not touch the cloud routes.
    double.push_fault(
        Route::CreateRestoreJob,
        Fault::Status {
            status: 503,
            error_code: "UNEXPECTED_ERROR".into(),
            retry_after: None,
        },
    );
    let path = cloud_jobs_path(GROUP, RS);
    let body = cloud_download(CLOUD_SNAP_RS);

    let limited = fixture.cloud_post(&path, &body).await;
    assert_api_error(&limited, 429, "RATE_LIMITED");
    assert_eq!(limited.header("retry-after"), Some("3"));
    assert!(fixture.try_cloud_post(&path, &body).await.is_err());
    assert!(fixture.try_cloud_post(&path, &body).await.is_err());
    let recorded = double.requests_on(create);
    assert!(recorded[1].body.is_empty(), "dropped before the body");
    assert_eq!(recorded[2].body, body.to_string().into_bytes());
    assert_eq!((recorded[1].status, recorded[2].status), (None, None));
    let gateway = fixture.cloud_post(&path, &body).await;
    assert_eq!(
        (gateway.status, gateway.text.as_str()),
        (502, "<html>Bad Gateway</html>")
    );
    assert_eq!(double.created_cloud_jobs(), 0, "nothing processed so far");
    assert_eq!(double.authenticated_posts(create), 0);

    let ok = fixture.cloud_post(&path, &body).await;
    assert_eq!((ok.status, ok.text.as_str()), (200, "OK"));
    assert_eq!(
        double.created_cloud_jobs(),
        1,
        "processed, then a non-JSON answer"
    );
    let failed = fixture.cloud_post(&path, &body).await;
    assert_api_error(&failed, 500, "UNEXPECTED_ERROR");
    assert_eq!(double.created_cloud_jobs(), 2);
    assert!(fixture.try_cloud_post(&path, &body).await.is_err());
    assert_eq!(double.created_cloud_jobs(), 3);
    assert_eq!(double.authenticated_posts(create), 3);
    let listed = fixture.cloud_get(&path).await.json();
    assert_eq!(listed["totalCount"], 3, "reconciliation can find the jobs");
    assert_eq!(
        double.pending_faults(),
        1,
        "the legacy fault is still queued"
    );
    assert_eq!(fixture.cloud_post(&path, &body).await.status, 200);

    for route in [
        Route::ListCloudRestoreJobs,
        Route::GetCloudRestoreJob,
        Route::ListCloudSnapshots,
    ] {
        double.push_fault(
            route,
            Fault::Status {
                status: 503,
                error_code: "SERVICE_UNAVAILABLE".into(),
                retry_after: Some(1),
            },
        );
    }
    let id = double.cloud_jobs()[0]["id"].as_str().unwrap().to_owned();
    for path in [
        cloud_jobs_path(GROUP, RS),
        format!("{}/{id}", cloud_jobs_path(GROUP, RS)),
        cloud_snapshots_path(GROUP, RS),
    ] {
        let answer = fixture.cloud_get(&path).await;
        assert_api_error(&answer, 503, "SERVICE_UNAVAILABLE");
        assert_eq!(answer.header("retry-after"), Some("1"));
        assert_eq!(fixture.cloud_get(&path).await.status, 200, "{path}");
    }
    assert_eq!(double.pending_faults(), 1);
}

#[tokio::test]
async fn delays_apply_to_cloud_creates() {
    let fixture = cloud_fixture().await;
    let delay = Duration::from_millis(600);
    fixture
        .double
        .push_fault(Route::CreateCloudRestoreJob, Fault::ProcessThenDelay(delay));
    let request = fixture
        .client
        .post(fixture.url(&cloud_jobs_path(GROUP, RS)))
        .bearer_auth(&fixture.token)
        .header("accept", VERSIONED)
        .header("content-type", VERSIONED)
        .body(cloud_download(CLOUD_SNAP_RS).to_string());
    let started = Instant::now();
    let pending = tokio::spawn(async move { request.send().await.unwrap().status().as_u16() });
    wait_until("the cloud job is created", || {
        fixture.double.created_cloud_jobs() == 1
    })
    .await;
    assert!(
        started.elapsed() < delay,
        "the machine is too slow for this test"
    );
    assert!(!pending.is_finished(), "the answer is held back");
    assert_eq!(pending.await.unwrap(), 200);
    assert!(started.elapsed() >= delay);
}

#[tokio::test]
async fn cloud_paths_methods_envelope_and_recording() {
    let fixture = cloud_fixture().await;
    let double = &fixture.double;
    let job = fixture.cloud_job(RS, &cloud_download(CLOUD_SNAP_RS)).await;
    let id = job["id"].as_str().unwrap();
    let versioned = [("accept", VERSIONED)];
    let cancel = fixture
        .send_with(
            Method::DELETE,
            &format!("{}/{id}", cloud_jobs_path(GROUP, RS)),
            &versioned,
            None,
        )
        .await
        .unwrap();
    assert_api_error(&cancel, 405, "METHOD_NOT_ALLOWED");
    assert_eq!(cancel.header("allow"), Some("GET"));
    let take = fixture
        .send_with(
            Method::POST,
            &cloud_snapshots_path(GROUP, RS),
            &versioned,
            Some("{}".into()),
        )
        .await
        .unwrap();
    assert_api_error(&take, 405, "METHOD_NOT_ALLOWED");
    let put = fixture
        .send_with(Method::PUT, &cloud_jobs_path(GROUP, RS), &versioned, None)
        .await
        .unwrap();
    assert_eq!(put.header("allow"), Some("GET, POST"));
    let unknown = fixture
        .cloud_get(&format!(
            "/api/atlas/v2/groups/{GROUP}/clusters/{RS}/backup/exports"
        ))
        .await;
    assert_api_error(&unknown, 404, "RESOURCE_NOT_FOUND");
    assert_eq!(double.requests().last().unwrap().route, None);

    let enveloped = fixture
        .cloud_post(
            &format!("{}?envelope=true&pretty=true", cloud_jobs_path(GROUP, RS)),
            &cloud_download(CLOUD_SNAP_RS),
        )
        .await;
    assert_eq!(enveloped.status, 200);
    assert!(enveloped.text.contains("\n  "), "{}", enveloped.text);
    let body = enveloped.json();
    assert_eq!(body["status"], 200);
    assert_valid("DiskBackupSnapshotRestoreJob", &body["content"]);
    let missing = fixture
        .cloud_get(&format!("{}?envelope=true", cloud_jobs_path(GROUP, "Nope")))
        .await
        .json();
    assert_eq!(
        (&missing["status"], &missing["content"]["errorCode"]),
        (&json!(404), &json!("CLUSTER_NOT_FOUND"))
    );

    let recorded = double.requests_on(Route::CreateCloudRestoreJob);
    assert_eq!(recorded.len(), 2);
    assert_eq!(recorded[0].method, "POST");
    assert_eq!(recorded[0].path, cloud_jobs_path(GROUP, RS));
    assert!(
        recorded[0]
            .headers
            .iter()
            .any(|(n, v)| n == "accept" && v == VERSIONED)
    );
    assert_eq!(
        recorded[1].query.as_deref(),
        Some("envelope=true&pretty=true")
    );
    assert_eq!(double.requests_on(Route::ListCloudRestoreJobs).len(), 1);
    assert_eq!(double.requests_on(Route::ListCloudSnapshots).len(), 0);
    assert_eq!(double.requests_on(Route::GetCloudRestoreJob).len(), 0);
}
