//! The Atlas client over real HTTP against the Atlas double: both authentication methods and
//! every answer class of CONTRACT section 4, with the number of authenticated POSTs each costs.
mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use atlas_restore_runner::atlas::{
    AtlasClient, AtlasClientConfig, AtlasCredentials, AtlasError, CreateAnswer,
};
use atlas_restore_runner::command::{ClusterName, ObjectId, SourceCluster};
use atlas_restore_runner::ports::{CredentialSource, CredentialsFuture, DependencyError};
use atlas_restore_runner::redacted::Secret;
use chrono::Utc;
use serde_json::{Value, json};
use support::atlas_double::{AtlasDouble, Fault, RecordedAuth, Route};
use tokio::time::Instant;

const GROUP: &str = "5e2211c17a3e5a48f5497de3";
const SNAPSHOT: &str = "5f1c6b1e2a9b4f3d8c7e6a5b";
const OLD_SNAPSHOT: &str = "5f1c6b1e2a9b4f3d8c7e6a00";
const PUBLIC_KEY: &str = "abcdefgh";
const PRIVATE_KEY: &str = "1b2c3d4e-private-key-value";
const CLIENT_ID: &str = "mdb_sa_id_6752c1";
const CLIENT_SECRET: &str = "mdb_sa_sk_client-secret-value";

async fn double() -> AtlasDouble {
    let atlas = AtlasDouble::start().await;
    atlas.add_api_key(PUBLIC_KEY, PRIVATE_KEY);
    atlas.add_service_account(CLIENT_ID, CLIENT_SECRET);
    atlas.add_cluster(GROUP, "orders", "6a0000000000000000000001", 0);
    atlas.add_cluster(GROUP, "orders-drill", "6a0000000000000000000002", 0);
    atlas.add_cluster(GROUP, "sharded", "6a0000000000000000000003", 2);
    atlas.add_snapshot(
        GROUP,
        "orders",
        SNAPSHOT,
        Utc::now() - chrono::Duration::hours(1),
        true,
    );
    atlas.add_snapshot(
        GROUP,
        "orders",
        OLD_SNAPSHOT,
        Utc::now() - chrono::Duration::hours(30),
        true,
    );
    atlas.add_snapshot(
        GROUP,
        "orders",
        "5f1c6b1e2a9b4f3d8c7e6a01",
        Utc::now(),
        false,
    );
    atlas.add_snapshot(
        GROUP,
        "sharded",
        SNAPSHOT,
        Utc::now() - chrono::Duration::hours(1),
        true,
    );
    atlas
}

fn config(atlas: &AtlasDouble) -> AtlasClientConfig {
    let mut config = AtlasClientConfig::new(atlas.base_url().parse().unwrap());
    config.backoff_base = Duration::from_millis(20);
    config.backoff_max = Duration::from_millis(200);
    config.min_attempt_time = Duration::from_millis(100);
    config.request_timeout = Duration::from_secs(5);
    config
}

fn api_key(private_key: &str) -> AtlasCredentials {
    AtlasCredentials::ApiKey {
        public_key: PUBLIC_KEY.into(),
        private_key: Secret::new(private_key),
    }
}

fn service_account(secret: &str) -> AtlasCredentials {
    AtlasCredentials::ServiceAccount {
        client_id: CLIENT_ID.into(),
        client_secret: Secret::new(secret),
    }
}

fn digest_client(atlas: &AtlasDouble) -> AtlasClient {
    AtlasClient::new(config(atlas), api_key(PRIVATE_KEY)).unwrap()
}

/// Every answer class is checked with both ways of authenticating.
const AUTH_KINDS: [AuthKind; 2] = [AuthKind::Digest, AuthKind::ServiceAccount];

#[derive(Clone, Copy, Debug)]
enum AuthKind {
    Digest,
    ServiceAccount,
}

fn client_with(kind: AuthKind, atlas: &AtlasDouble, config: AtlasClientConfig) -> AtlasClient {
    let credentials = match kind {
        AuthKind::Digest => api_key(PRIVATE_KEY),
        AuthKind::ServiceAccount => service_account(CLIENT_SECRET),
    };
    let _ = atlas;
    AtlasClient::new(config, credentials).unwrap()
}

fn client_for(kind: AuthKind, atlas: &AtlasDouble) -> AtlasClient {
    client_with(kind, atlas, config(atlas))
}

fn source(cluster: &str) -> SourceCluster {
    SourceCluster {
        group_id: ObjectId::parse(GROUP).unwrap(),
        cluster_name: ClusterName::parse(cluster).unwrap(),
    }
}

fn body() -> Value {
    json!({"snapshotId": SNAPSHOT, "delivery": {"methodName": "AUTOMATED_RESTORE", "targetGroupId": GROUP, "targetClusterName": "orders-drill"}})
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

/// Authenticated restore POSTs that reached the double (the counting rule of CONTRACT section 4:
/// the unauthenticated Digest challenge round trip does not count).
fn posts(atlas: &AtlasDouble) -> usize {
    atlas
        .requests_on(Route::CreateRestoreJob)
        .iter()
        .filter(|r| {
            matches!(
                &r.auth,
                RecordedAuth::Digest {
                    valid: true,
                    stale: false,
                    ..
                } | RecordedAuth::Bearer { valid: true }
            )
        })
        .count()
}

/// A credential source whose secret can be rotated (or made unreadable), recording its reads
/// (`true`: past the cache).
#[derive(Clone)]
struct Rotating {
    secret: Arc<Mutex<Option<AtlasCredentials>>>,
    reads: Arc<Mutex<Vec<bool>>>,
}

impl Rotating {
    fn holding(credentials: Option<AtlasCredentials>) -> Rotating {
        Rotating {
            secret: Arc::new(Mutex::new(credentials)),
            reads: Arc::default(),
        }
    }

    fn rotate(&self, credentials: AtlasCredentials) {
        *self.secret.lock().unwrap() = Some(credentials);
    }

    fn reads(&self) -> Vec<bool> {
        self.reads.lock().unwrap().clone()
    }
}

impl CredentialSource for Rotating {
    fn credentials(&self, refresh: bool) -> CredentialsFuture<'_> {
        self.reads.lock().unwrap().push(refresh);
        let secret = self.secret.lock().unwrap().clone();
        Box::pin(async move {
            secret.ok_or_else(|| {
                DependencyError::new("Secrets Manager", "the secret could not be read")
            })
        })
    }
}

fn requests_sent(atlas: &AtlasDouble) -> usize {
    atlas.requests_on(Route::CreateRestoreJob).len()
}

async fn create(client: &AtlasClient, cluster: &str) -> CreateAnswer {
    client
        .create_legacy_restore_job(&source(cluster), &body(), deadline())
        .await
}

fn created_jobs(answer: &CreateAnswer) -> usize {
    match answer {
        CreateAnswer::Created { jobs, .. } => jobs.len(),
        other => panic!("expected Created, got {other:?}"),
    }
}

#[tokio::test]
async fn digest_submission_creates_one_job_and_a_warm_session_needs_one_request() {
    let atlas = double().await;
    let client = digest_client(&atlas);

    let first = create(&client, "orders").await;
    assert_eq!(created_jobs(&first), 1);
    let CreateAnswer::Created { http_status, jobs } = &first else {
        unreachable!()
    };
    assert_eq!(*http_status, 200);
    assert_eq!(jobs[0].status_name.as_deref(), Some("IN_PROGRESS"));
    assert_eq!(
        jobs[0]
            .delivery
            .as_ref()
            .unwrap()
            .target_cluster_name
            .as_deref(),
        Some("orders-drill")
    );
    assert_eq!(
        requests_sent(&atlas),
        2,
        "cold: one challenge, one authenticated POST"
    );
    assert_eq!(posts(&atlas), 1);
    assert_eq!(atlas.challenges(), 1);

    let second = create(&client, "orders").await;
    assert_eq!(created_jobs(&second), 1);
    assert_eq!(
        requests_sent(&atlas),
        3,
        "warm: the known challenge is answered pre-emptively"
    );
    assert_eq!(posts(&atlas), 2);
    assert_eq!(atlas.created_jobs(), 2);

    let sent = &atlas.requests_on(Route::CreateRestoreJob)[2];
    assert_eq!(
        serde_json::from_slice::<Value>(&sent.body).unwrap(),
        body(),
        "the body is sent as given"
    );
    let header = |name: &str| {
        sent.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("accept").as_deref(), Some("application/json"));
    assert_eq!(header("content-type").as_deref(), Some("application/json"));
    assert_eq!(
        header("user-agent"),
        Some(format!(
            "atlas-restore-runner/{}",
            env!("CARGO_PKG_VERSION")
        ))
    );
}

#[tokio::test]
async fn a_stale_nonce_is_challenged_again_and_still_creates_one_job() {
    let atlas = double().await;
    let client = digest_client(&atlas);
    created_jobs(&create(&client, "orders").await);
    atlas.expire_nonces();

    let answer = create(&client, "orders").await;
    assert_eq!(created_jobs(&answer), 1);
    assert_eq!(
        atlas.created_jobs(),
        2,
        "one job per submission, stale nonce or not"
    );
    assert_eq!(
        posts(&atlas),
        2,
        "the stale attempt was refused, not processed"
    );
    let stale = atlas
        .requests_on(Route::CreateRestoreJob)
        .iter()
        .filter(|r| matches!(r.auth, RecordedAuth::Digest { stale: true, .. }))
        .count();
    assert_eq!(stale, 1);
}

#[tokio::test]
async fn service_account_token_is_fetched_once_and_reused() {
    let atlas = double().await;
    let client = AtlasClient::new(config(&atlas), service_account(CLIENT_SECRET)).unwrap();
    assert_eq!(created_jobs(&create(&client, "orders").await), 1);
    assert_eq!(created_jobs(&create(&client, "orders").await), 1);
    assert_eq!(
        atlas.requests_on(Route::Token).len(),
        1,
        "one token for both submissions"
    );
    assert_eq!(
        requests_sent(&atlas),
        2,
        "no challenge round trip with a bearer token"
    );
    assert_eq!(posts(&atlas), 2);
    let token_request = &atlas.requests_on(Route::Token)[0];
    assert_eq!(
        String::from_utf8_lossy(&token_request.body),
        "grant_type=client_credentials"
    );
    assert_eq!(
        token_request.auth,
        RecordedAuth::Basic {
            client_id: CLIENT_ID.into(),
            valid: true
        }
    );
}

#[tokio::test]
async fn a_token_expiring_within_a_minute_is_renewed_before_use() {
    let atlas = double().await;
    atlas.set_token_ttl(Duration::from_secs(60));
    let client = AtlasClient::new(config(&atlas), service_account(CLIENT_SECRET)).unwrap();
    created_jobs(&create(&client, "orders").await);
    created_jobs(&create(&client, "orders").await);
    assert_eq!(atlas.requests_on(Route::Token).len(), 2);
}

#[tokio::test]
async fn a_revoked_token_is_refused_once_then_a_new_one_is_fetched_and_sent_once_more() {
    let atlas = double().await;
    let client = AtlasClient::new(config(&atlas), service_account(CLIENT_SECRET)).unwrap();
    created_jobs(&create(&client, "orders").await);
    atlas.revoke_tokens();
    // The 401 drops the token; the client reads the credentials again once (CONTRACT
    // section 4's 401 row) and sends once more with a new token.
    assert_eq!(created_jobs(&create(&client, "orders").await), 1);
    assert_eq!(atlas.requests_on(Route::Token).len(), 2);
    assert_eq!(requests_sent(&atlas), 3, "the refused POST and one more");
    assert_eq!(posts(&atlas), 2);
    assert_eq!(atlas.created_jobs(), 2);
}

#[tokio::test]
async fn wrong_service_account_secret_is_unauthorized_and_sends_no_post() {
    let atlas = double().await;
    let client = AtlasClient::new(config(&atlas), service_account("wrong")).unwrap();
    match create(&client, "orders").await {
        CreateAnswer::Unauthorized {
            http_status: 401,
            error,
        } => {
            assert_eq!(
                error.error_code.as_deref(),
                Some("invalid_client"),
                "the OAuth error is kept: {error:?}"
            );
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }
    assert_eq!(requests_sent(&atlas), 0);
}

#[tokio::test]
async fn wrong_private_key_is_unauthorized_then_new_credentials_work() {
    let atlas = double().await;
    let secret = Rotating::holding(Some(api_key("not-the-key")));
    let client = AtlasClient::with_source(config(&atlas), secret.clone()).unwrap();
    match create(&client, "orders").await {
        CreateAnswer::Unauthorized {
            http_status: 401,
            error,
        } => {
            assert_eq!(error.error_code.as_deref(), Some("NOT_AUTHORIZED"));
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }
    assert_eq!(posts(&atlas), 0);
    assert_eq!(atlas.created_jobs(), 0);
    assert_eq!(
        secret.reads(),
        [false, true],
        "read once, then once more past the cache after the 401"
    );

    // The secret is rotated: the next 401 reads it again once and sends once more.
    secret.rotate(api_key(PRIVATE_KEY));
    assert_eq!(created_jobs(&create(&client, "orders").await), 1);
    assert_eq!(posts(&atlas), 1);
    assert_eq!(secret.reads(), [false, true, true]);
}

#[tokio::test]
async fn credentials_that_cannot_be_read_are_a_dependency_failure_and_nothing_is_sent() {
    let atlas = double().await;
    let secret = Rotating::holding(None);
    let client = AtlasClient::with_source(config(&atlas), secret.clone()).unwrap();
    match create(&client, "orders").await {
        CreateAnswer::NoCredentials(error) => assert_eq!(error.service, "Secrets Manager"),
        other => panic!("expected NoCredentials, got {other:?}"),
    }
    assert_eq!(
        client.load_credentials().await.unwrap_err().service,
        "Secrets Manager"
    );
    match client
        .list_restore_jobs(&source("orders"), None, deadline())
        .await
    {
        Err(AtlasError::NoCredentials(error)) => assert_eq!(error.service, "Secrets Manager"),
        other => panic!("expected NoCredentials, got {other:?}"),
    }
    assert_eq!(requests_sent(&atlas), 0);
    assert!(atlas.requests().is_empty(), "nothing reached Atlas");
}

#[tokio::test]
async fn credentials_read_again_unchanged_keep_the_warm_digest_session() {
    let atlas = double().await;
    let secret = Rotating::holding(Some(api_key(PRIVATE_KEY)));
    let client = AtlasClient::with_source(config(&atlas), secret.clone()).unwrap();
    client.load_credentials().await.unwrap();
    assert_eq!(created_jobs(&create(&client, "orders").await), 1);
    let challenged = atlas.requests().len();
    client.load_credentials().await.unwrap();
    assert_eq!(created_jobs(&create(&client, "orders").await), 1);
    assert_eq!(
        atlas.requests().len(),
        challenged + 1,
        "the cached nonce answers at once: no second challenge"
    );
    assert_eq!(secret.reads(), [false, false]);
}

#[tokio::test]
async fn a_sharded_cluster_answers_one_job_per_shard_and_config_server_in_one_batch() {
    for kind in AUTH_KINDS {
        let atlas = double().await;
        let client = client_for(kind, &atlas);
        let answer = create(&client, "sharded").await;
        let CreateAnswer::Created { jobs, .. } = &answer else {
            panic!("{answer:?}")
        };
        assert_eq!(jobs.len(), 3);
        let batch = jobs[0]
            .batch_id
            .clone()
            .expect("a sharded restore has a batchId");
        assert!(jobs.iter().all(|j| j.batch_id.as_ref() == Some(&batch)));
        assert_eq!(posts(&atlas), 1);
    }
}

#[tokio::test]
async fn atlas_refusals_are_refused_with_the_error_verbatim_and_one_post() {
    let cases = [
        (400, "INVALID_ATTRIBUTE"),
        (403, "FORBIDDEN"),
        (404, "SNAPSHOT_NOT_FOUND"),
        (409, "CONFLICT"),
    ];
    for (kind, (status, code)) in AUTH_KINDS
        .into_iter()
        .flat_map(|kind| cases.map(|case| (kind, case)))
    {
        let atlas = double().await;
        atlas.push_fault(
            Route::CreateRestoreJob,
            Fault::Status {
                status,
                error_code: code.into(),
                retry_after: None,
            },
        );
        let client = client_for(kind, &atlas);
        match create(&client, "orders").await {
            CreateAnswer::Refused { http_status, error } => {
                assert_eq!(http_status, status);
                assert_eq!(error.error_code.as_deref(), Some(code));
                assert_eq!(error.error, Some(status));
            }
            other => panic!("{status}: expected Refused, got {other:?}"),
        }
        assert_eq!(posts(&atlas), 1, "{status}: never sent again");
        assert_eq!(atlas.created_jobs(), 0);
    }
}

#[tokio::test]
async fn atlas_own_validation_answers_are_refused() {
    let atlas = double().await;
    let client = digest_client(&atlas);
    let missing_cluster = client
        .create_legacy_restore_job(&source("nowhere"), &body(), deadline())
        .await;
    assert!(
        matches!(&missing_cluster, CreateAnswer::Refused { http_status: 404, error } if error.error_code.as_deref() == Some("CLUSTER_NOT_FOUND")),
        "{missing_cluster:?}"
    );
    let unknown_snapshot =
        json!({"snapshotId": "aaaaaaaaaaaaaaaaaaaaaaaa", "delivery": {"methodName": "HTTP"}});
    let answer = client
        .create_legacy_restore_job(&source("orders"), &unknown_snapshot, deadline())
        .await;
    assert!(
        matches!(&answer, CreateAnswer::Refused { http_status: 404, error } if error.error_code.as_deref() == Some("SNAPSHOT_NOT_FOUND")),
        "{answer:?}"
    );
    assert_eq!(atlas.created_jobs(), 0);
}

#[tokio::test]
async fn rate_limited_with_retry_after_waits_at_least_that_long_then_sends_again() {
    for kind in AUTH_KINDS {
        let atlas = double().await;
        atlas.push_fault(
            Route::CreateRestoreJob,
            Fault::Status {
                status: 429,
                error_code: "RATE_LIMITED".into(),
                retry_after: Some(1),
            },
        );
        let client = client_for(kind, &atlas);
        let started = std::time::Instant::now();
        assert_eq!(created_jobs(&create(&client, "orders").await), 1);
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "Retry-After: 1 was honoured"
        );
        assert_eq!(posts(&atlas), 2, "one refused with 429, one accepted");
        assert_eq!(atlas.created_jobs(), 1);
    }
}

#[tokio::test]
async fn rate_limited_without_retry_after_backs_off_and_sends_again() {
    for kind in AUTH_KINDS {
        let atlas = double().await;
        for _ in 0..2 {
            atlas.push_fault(
                Route::CreateRestoreJob,
                Fault::Status {
                    status: 429,
                    error_code: "RATE_LIMITED_TOKEN_BUCKET".into(),
                    retry_after: None,
                },
            );
        }
        let client = client_for(kind, &atlas);
        assert_eq!(created_jobs(&create(&client, "orders").await), 1);
        assert_eq!(posts(&atlas), 3);
        assert_eq!(atlas.created_jobs(), 1);
    }
}

#[tokio::test]
async fn rate_limited_until_the_deadline_is_refused_with_429() {
    for kind in AUTH_KINDS {
        let atlas = double().await;
        for _ in 0..100 {
            atlas.push_fault(
                Route::CreateRestoreJob,
                Fault::Status {
                    status: 429,
                    error_code: "RATE_LIMITED".into(),
                    retry_after: None,
                },
            );
        }
        let client = client_for(kind, &atlas);
        let answer = client
            .create_legacy_restore_job(
                &source("orders"),
                &body(),
                Instant::now() + Duration::from_millis(600),
            )
            .await;
        assert!(
            matches!(
                &answer,
                CreateAnswer::Refused {
                    http_status: 429,
                    ..
                }
            ),
            "{answer:?}"
        );
        assert!(posts(&atlas) >= 2, "it sent again while time allowed");
        assert_eq!(atlas.created_jobs(), 0);
    }
}

#[tokio::test]
async fn a_500_is_ambiguous_and_never_sent_again() {
    for kind in AUTH_KINDS {
        let atlas = double().await;
        atlas.push_fault(
            Route::CreateRestoreJob,
            Fault::Status {
                status: 500,
                error_code: "UNEXPECTED_ERROR".into(),
                retry_after: None,
            },
        );
        let client = client_for(kind, &atlas);
        let answer = create(&client, "orders").await;
        match &answer {
            CreateAnswer::Ambiguous {
                http_status: Some(500),
                error: Some(error),
                ..
            } => {
                assert_eq!(error.error_code.as_deref(), Some("UNEXPECTED_ERROR"));
            }
            other => panic!("expected Ambiguous 500, got {other:?}"),
        }
        assert_eq!(posts(&atlas), 1);
    }
}

#[tokio::test]
async fn a_500_after_the_job_was_created_is_ambiguous_with_one_job() {
    for kind in AUTH_KINDS {
        let atlas = double().await;
        atlas.push_fault(
            Route::CreateRestoreJob,
            Fault::CreateThenFail {
                status: 500,
                error_code: "UNEXPECTED_ERROR".into(),
            },
        );
        let client = client_for(kind, &atlas);
        assert!(matches!(
            create(&client, "orders").await,
            CreateAnswer::Ambiguous {
                http_status: Some(500),
                ..
            }
        ));
        assert_eq!(atlas.created_jobs(), 1);
        assert_eq!(posts(&atlas), 1);
    }
}

#[tokio::test]
async fn a_503_is_unavailable_with_its_retry_after_and_is_left_to_the_caller() {
    for kind in AUTH_KINDS {
        let atlas = double().await;
        atlas.push_fault(
            Route::CreateRestoreJob,
            Fault::Status {
                status: 503,
                error_code: "SERVICE_UNAVAILABLE".into(),
                retry_after: Some(7),
            },
        );
        let client = client_for(kind, &atlas);
        match create(&client, "orders").await {
            CreateAnswer::Unavailable { retry_after, error } => {
                assert_eq!(retry_after, Some(Duration::from_secs(7)));
                assert_eq!(error.error, Some(503));
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
        assert_eq!(
            posts(&atlas),
            1,
            "the caller reconciles before anything is sent again"
        );
    }
}

#[tokio::test]
async fn non_json_error_bodies_are_kept_as_text() {
    for kind in AUTH_KINDS {
        let atlas = double().await;
        atlas.push_fault(
            Route::CreateRestoreJob,
            Fault::NonJson {
                status: 502,
                body: "<html>Bad Gateway</html>".into(),
                process: false,
            },
        );
        atlas.push_fault(
            Route::CreateRestoreJob,
            Fault::NonJson {
                status: 400,
                body: "bad request from a proxy".into(),
                process: false,
            },
        );
        let client = client_for(kind, &atlas);
        match create(&client, "orders").await {
            CreateAnswer::Ambiguous {
                http_status: Some(502),
                error: Some(error),
                ..
            } => {
                assert_eq!(error.reason.as_deref(), Some("<html>Bad Gateway</html>"));
            }
            other => panic!("expected Ambiguous 502, got {other:?}"),
        }
        match create(&client, "orders").await {
            CreateAnswer::Refused {
                http_status: 400,
                error,
            } => assert_eq!(error.reason.as_deref(), Some("bad request from a proxy")),
            other => panic!("expected Refused 400, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_unreadable_200_is_ambiguous_not_a_success_or_a_failure() {
    for kind in AUTH_KINDS {
        let atlas = double().await;
        atlas.push_fault(
            Route::CreateRestoreJob,
            Fault::NonJson {
                status: 200,
                body: "OK".into(),
                process: true,
            },
        );
        let client = client_for(kind, &atlas);
        assert!(matches!(
            create(&client, "orders").await,
            CreateAnswer::Ambiguous {
                http_status: Some(200),
                ..
            }
        ));
        assert_eq!(
            atlas.created_jobs(),
            1,
            "the job exists: reconciliation will find it"
        );
        assert_eq!(posts(&atlas), 1);
    }
}

#[tokio::test]
async fn a_timeout_after_sending_is_ambiguous_never_sent_again_and_within_the_deadline() {
    for kind in AUTH_KINDS {
        let atlas = double().await;
        atlas.push_fault(
            Route::CreateRestoreJob,
            Fault::ProcessThenDelay(Duration::from_secs(30)),
        );
        let mut config = config(&atlas);
        config.request_timeout = Duration::from_millis(500);
        let client = client_with(kind, &atlas, config);
        let answer = tokio::time::timeout(Duration::from_secs(5), create(&client, "orders"))
            .await
            .expect("the client gives up at its timeout, not the server's pace");
        match &answer {
            CreateAnswer::Ambiguous {
                http_status: None,
                reason,
                ..
            } => assert!(reason.contains("timed out"), "{reason}"),
            other => panic!("expected Ambiguous timeout, got {other:?}"),
        }
        assert_eq!(posts(&atlas), 1);
        assert_eq!(atlas.created_jobs(), 1);
    }
}

#[tokio::test]
async fn the_request_timeout_is_cut_to_the_deadline() {
    let atlas = double().await;
    atlas.push_fault(
        Route::CreateRestoreJob,
        Fault::DelayThenProcess(Duration::from_secs(30)),
    );
    let client = digest_client(&atlas); // request_timeout 5 s
    let answer = tokio::time::timeout(
        Duration::from_secs(3),
        client.create_legacy_restore_job(
            &source("orders"),
            &body(),
            Instant::now() + Duration::from_millis(800),
        ),
    )
    .await
    .expect("the call ends by the deadline, not the 5 s request timeout");
    assert!(
        matches!(
            answer,
            CreateAnswer::Ambiguous {
                http_status: None,
                ..
            }
        ),
        "{answer:?}"
    );
}

#[tokio::test]
async fn connections_dropped_after_sending_are_ambiguous() {
    let cases = [
        (Fault::DropBeforeBody, 0),
        (Fault::DropAfterBody, 0),
        (Fault::CreateThenDrop, 1),
    ];
    for (kind, (fault, jobs)) in AUTH_KINDS
        .into_iter()
        .flat_map(|kind| cases.clone().map(|case| (kind, case)))
    {
        let atlas = double().await;
        let client = client_for(kind, &atlas);
        // Warm the session (nonce or token) so the faulted request is the authenticated one.
        created_jobs(&create(&client, "orders").await);
        atlas.push_fault(Route::CreateRestoreJob, fault.clone());
        let answer = create(&client, "orders").await;
        assert!(
            matches!(
                answer,
                CreateAnswer::Ambiguous {
                    http_status: None,
                    ..
                }
            ),
            "{fault:?}: {answer:?}"
        );
        assert_eq!(atlas.created_jobs(), 1 + jobs, "{fault:?}");
        assert_eq!(posts(&atlas), 2, "{kind:?} {fault:?}: never sent again");
    }
}

#[tokio::test]
async fn nothing_listening_is_not_sent_after_retrying_until_the_deadline() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = closed.local_addr().unwrap();
    drop(closed);
    let mut config = AtlasClientConfig::new(format!("http://{address}").parse().unwrap());
    config.backoff_base = Duration::from_millis(20);
    config.min_attempt_time = Duration::from_millis(100);
    let client = AtlasClient::new(config, api_key(PRIVATE_KEY)).unwrap();
    let answer = client
        .create_legacy_restore_job(
            &source("orders"),
            &body(),
            Instant::now() + Duration::from_millis(700),
        )
        .await;
    match answer {
        CreateAnswer::NotSent { reason } => {
            assert!(reason.to_lowercase().contains("connect"), "{reason}")
        }
        other => panic!("expected NotSent, got {other:?}"),
    }
}

#[tokio::test]
async fn envelope_and_pretty_answers_are_read_like_plain_ones() {
    for kind in AUTH_KINDS {
        let atlas = double().await;
        let mut config = config(&atlas);
        config.envelope = true;
        config.pretty = true;
        let client = client_with(kind, &atlas, config);
        assert_eq!(created_jobs(&create(&client, "orders").await), 1);
        let sent = atlas
            .requests_on(Route::CreateRestoreJob)
            .last()
            .cloned()
            .unwrap();
        assert_eq!(sent.query.as_deref(), Some("envelope=true&pretty=true"));

        atlas.push_fault(
            Route::CreateRestoreJob,
            Fault::Status {
                status: 404,
                error_code: "CLUSTER_NOT_FOUND".into(),
                retry_after: None,
            },
        );
        assert!(
            matches!(
                create(&client, "orders").await,
                CreateAnswer::Refused {
                    http_status: 404,
                    ..
                }
            ),
            "the status inside the envelope counts"
        );
        let jobs = client
            .list_restore_jobs(&source("orders"), None, deadline())
            .await
            .unwrap();
        assert_eq!(jobs.len(), 1);
    }
}

#[tokio::test]
async fn reads_list_jobs_since_a_time_get_one_job_snapshots_and_clusters() {
    let atlas = double().await;
    let client = digest_client(&atlas);
    let before = Utc::now() - chrono::Duration::seconds(5);
    let CreateAnswer::Created { jobs, .. } = create(&client, "orders").await else {
        panic!()
    };
    created_jobs(&create(&client, "orders").await);

    assert_eq!(
        client
            .list_restore_jobs(&source("orders"), None, deadline())
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        client
            .list_restore_jobs(&source("orders"), Some(before), deadline())
            .await
            .unwrap()
            .len(),
        2
    );
    let later = Utc::now() + chrono::Duration::hours(1);
    assert_eq!(
        client
            .list_restore_jobs(&source("orders"), Some(later), deadline())
            .await
            .unwrap()
            .len(),
        0
    );

    let job = client
        .get_restore_job(&source("orders"), &jobs[0].id, deadline())
        .await
        .unwrap();
    assert_eq!(job.id, jobs[0].id);
    match client
        .get_restore_job(&source("orders"), "no/such job", deadline())
        .await
    {
        Err(AtlasError::Api { status: 404, .. }) => {}
        other => panic!("expected 404, got {other:?}"),
    }
    let asked = atlas.requests_on(Route::GetRestoreJob);
    assert!(
        asked
            .iter()
            .any(|r| r.path.ends_with("/restoreJobs/no%2Fsuch%20job")),
        "path segments are percent-encoded: {asked:?}"
    );

    let snapshots = client
        .list_completed_snapshots(&source("orders"), deadline())
        .await
        .unwrap();
    let mut ids: Vec<&str> = snapshots.iter().map(|s| s.id.as_str()).collect();
    ids.sort();
    assert_eq!(
        ids,
        vec![OLD_SNAPSHOT, SNAPSHOT],
        "only completed snapshots"
    );
    assert!(
        atlas.requests_on(Route::ListSnapshots).iter().all(|r| r
            .query
            .as_deref()
            .unwrap_or("")
            .contains("completed=true"))
    );

    let clusters = client
        .list_clusters(&ObjectId::parse(GROUP).unwrap(), deadline())
        .await
        .unwrap();
    let mut names: Vec<&str> = clusters.iter().map(|c| c.name.as_str()).collect();
    names.sort();
    assert_eq!(names, vec!["orders", "orders-drill", "sharded"]);
    assert!(
        clusters
            .iter()
            .any(|c| c.id == "6a0000000000000000000002" && c.name == "orders-drill")
    );
}

#[tokio::test]
async fn reads_are_retried_after_server_errors_and_report_refusals() {
    for kind in AUTH_KINDS {
        let atlas = double().await;
        atlas.push_fault(
            Route::ListClusters,
            Fault::Status {
                status: 500,
                error_code: "UNEXPECTED_ERROR".into(),
                retry_after: None,
            },
        );
        atlas.push_fault(Route::ListClusters, Fault::DropAfterBody);
        let client = client_for(kind, &atlas);
        let group = ObjectId::parse(GROUP).unwrap();
        assert_eq!(
            client
                .list_clusters(&group, deadline())
                .await
                .unwrap()
                .len(),
            3,
            "a read is safe to send again"
        );

        let unknown = ObjectId::parse("aaaaaaaaaaaaaaaaaaaaaaaa").unwrap();
        match client.list_clusters(&unknown, deadline()).await {
            Err(error @ AtlasError::Api { status: 404, .. }) => {
                assert!(error.to_string().contains("GROUP_NOT_FOUND"), "{error}")
            }
            other => panic!("expected 404, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn error_messages_name_the_fix_and_never_the_secret() {
    let atlas = double().await;
    let client = AtlasClient::new(config(&atlas), api_key("wrong-private-key")).unwrap();
    let error = client
        .list_clusters(&ObjectId::parse(GROUP).unwrap(), deadline())
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("ATLAS_SECRET_ID") && text.contains("access list"),
        "{text}"
    );
    assert!(
        !text.contains("wrong-private-key") && !format!("{error:?}").contains("wrong-private-key")
    );
}

// CONTRACT section 4, "Deadlines": every call ends by its deadline as a whole chain (the Digest
// challenge and the authenticated request, the service account's token call and the request,
// the retries), with the answer class of where it was cut.

/// What a call cut at its deadline may take beyond it: the client's own bookkeeping.
const DEADLINE_SLACK: Duration = Duration::from_millis(400);

/// Runs `call`, and checks it ended within `budget` (+ the slack) and not long before it.
async fn timed<T>(budget: Duration, call: impl std::future::Future<Output = T>) -> T {
    let started = std::time::Instant::now();
    let answer = call.await;
    let took = started.elapsed();
    assert!(
        took <= budget + DEADLINE_SLACK,
        "the call took {took:?}, its deadline was {budget:?} away"
    );
    answer
}

#[tokio::test]
async fn a_create_ends_by_its_deadline_however_slow_each_step_of_its_chain_is() {
    for kind in AUTH_KINDS {
        let atlas = double().await;
        let client = client_for(kind, &atlas); // request_timeout 5 s
        // The service account's token takes 2 s of the 3 s: the POST has only what is left.
        atlas.push_fault(
            Route::Token,
            Fault::DelayThenProcess(Duration::from_secs(2)),
        );
        atlas.push_fault(
            Route::CreateRestoreJob,
            Fault::DelayThenProcess(Duration::from_secs(60)),
        );
        let budget = Duration::from_secs(3);
        let answer = timed(
            budget,
            client.create_legacy_restore_job(&source("orders"), &body(), Instant::now() + budget),
        )
        .await;
        match &answer {
            CreateAnswer::Ambiguous {
                http_status: None,
                reason,
                ..
            } => assert!(reason.contains("timed out"), "{kind:?}: {reason}"),
            other => panic!("{kind:?}: the POST went out, expected Ambiguous, got {other:?}"),
        }
        assert_eq!(posts(&atlas), 1, "{kind:?}: sent once");
        assert_eq!(atlas.created_jobs(), 0, "{kind:?}");
    }
}

#[tokio::test]
async fn a_create_cut_while_getting_its_token_was_not_sent() {
    let atlas = double().await;
    let client = client_for(AuthKind::ServiceAccount, &atlas);
    atlas.push_fault(
        Route::Token,
        Fault::DelayThenProcess(Duration::from_secs(60)),
    );
    let budget = Duration::from_secs(2);
    let answer = timed(
        budget,
        client.create_legacy_restore_job(&source("orders"), &body(), Instant::now() + budget),
    )
    .await;
    assert!(
        matches!(&answer, CreateAnswer::NotSent { reason } if reason.contains("token")),
        "{answer:?}"
    );
    assert_eq!(requests_sent(&atlas), 0, "no POST at all");
}

#[tokio::test]
async fn reads_end_by_their_deadline_however_slow_each_step_of_their_chain_is() {
    for kind in AUTH_KINDS {
        let atlas = double().await;
        let client = client_for(kind, &atlas);
        atlas.push_fault(
            Route::Token,
            Fault::DelayThenProcess(Duration::from_millis(1500)),
        );
        atlas.push_fault(
            Route::ListRestoreJobs,
            Fault::DelayThenProcess(Duration::from_secs(60)),
        );
        let budget = Duration::from_secs(3);
        let listed = timed(
            budget,
            client.list_restore_jobs(&source("orders"), None, Instant::now() + budget),
        )
        .await;
        assert!(
            matches!(&listed, Err(AtlasError::NoAnswer(_))),
            "{kind:?}: {listed:?}"
        );

        // A read retried after 503s is cut too, waits included.
        for _ in 0..50 {
            atlas.push_fault(
                Route::ListSnapshots,
                Fault::Status {
                    status: 503,
                    error_code: "SERVICE_UNAVAILABLE".into(),
                    retry_after: None,
                },
            );
        }
        let budget = Duration::from_secs(1);
        let snapshots = timed(
            budget,
            client.list_completed_snapshots(&source("orders"), Instant::now() + budget),
        )
        .await;
        assert!(
            matches!(&snapshots, Err(AtlasError::Api { status: 503, .. })),
            "{kind:?}: {snapshots:?}"
        );
    }
}

/// An Atlas stand-in whose Digest challenge (the unauthenticated round trip) takes
/// `challenge_delay`, and which never answers an authenticated request: the double answers its
/// challenges at once.
struct SlowChallenge {
    base_url: String,
    authenticated: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl SlowChallenge {
    async fn start(challenge_delay: Duration) -> SlowChallenge {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let authenticated = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = authenticated.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    loop {
                        // One request: its head, then its body (Content-Length).
                        let head_end = loop {
                            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                                break end + 4;
                            }
                            let mut chunk = [0u8; 4096];
                            match socket.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                            }
                        };
                        let head = String::from_utf8_lossy(&buffer[..head_end]).to_lowercase();
                        let length: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        while buffer.len() < head_end + length {
                            let mut chunk = [0u8; 4096];
                            match socket.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                            }
                        }
                        buffer.drain(..head_end + length);
                        if head.contains("\r\nauthorization: digest") {
                            seen.fetch_add(1, Ordering::SeqCst);
                            // Never answered; the connection is held open.
                            std::future::pending::<()>().await;
                        }
                        tokio::time::sleep(challenge_delay).await;
                        let challenge = "HTTP/1.1 401 Unauthorized\r\nwww-authenticate: Digest realm=\"MMS Public API\", domain=\"\", nonce=\"slow-nonce\", algorithm=MD5, qop=\"auth\", stale=false\r\ncontent-length: 0\r\n\r\n";
                        if socket.write_all(challenge.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        SlowChallenge {
            base_url,
            authenticated,
            task,
        }
    }

    fn authenticated_requests(&self) -> usize {
        self.authenticated.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn client(&self) -> AtlasClient {
        let mut config = AtlasClientConfig::new(self.base_url.parse().unwrap());
        config.backoff_base = Duration::from_millis(20);
        config.min_attempt_time = Duration::from_millis(100);
        config.request_timeout = Duration::from_secs(5);
        AtlasClient::new(config, api_key(PRIVATE_KEY)).unwrap()
    }
}

impl Drop for SlowChallenge {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn a_slow_digest_challenge_leaves_the_authenticated_request_only_what_is_left() {
    let server = SlowChallenge::start(Duration::from_secs(2)).await;
    let client = server.client();
    let budget = Duration::from_secs(3);
    let answer = timed(
        budget,
        client.create_legacy_restore_job(&source("orders"), &body(), Instant::now() + budget),
    )
    .await;
    assert!(
        matches!(
            answer,
            CreateAnswer::Ambiguous {
                http_status: None,
                ..
            }
        ),
        "the authenticated POST went out: {answer:?}"
    );
    assert_eq!(server.authenticated_requests(), 1);
}

#[tokio::test]
async fn a_create_cut_during_the_digest_challenge_was_not_sent() {
    // The challenge round trip is unauthenticated: Atlas processes nothing (the counting rule of
    // CONTRACT section 4), so a call cut there sent nothing.
    let server = SlowChallenge::start(Duration::from_secs(60)).await;
    let client = server.client();
    let budget = Duration::from_secs(2);
    let answer = timed(
        budget,
        client.create_legacy_restore_job(&source("orders"), &body(), Instant::now() + budget),
    )
    .await;
    assert!(
        matches!(&answer, CreateAnswer::NotSent { reason } if reason.contains("challenge")),
        "{answer:?}"
    );
    assert_eq!(server.authenticated_requests(), 0);
}
