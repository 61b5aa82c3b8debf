use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use diqwest::{DigestAuthCredentials, DigestAuthSession};
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, RETRY_AFTER, WWW_AUTHENTICATE,
};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::Mutex;
use tokio::time::Instant;
use url::{Position, Url};

use crate::atlas_api::model::{ApiError, CloudSnapshot, Cluster, Page, RestoreJob, Snapshot};
use crate::atlas_api::{AtlasCredentials, AtlasError, CreateAnswer};
use crate::command::{ObjectId, SourceCluster};
use crate::dependency::DependencyError;
use crate::drill::RestorePoint;
use crate::ports::CredentialSource;
use crate::redacted::Secret;

/// Media type of the legacy (v1.0) API.
const V1: &str = "application/json";
/// Media type of the versioned v2 API (Cloud Backup), the resource version this client speaks.
const V2: &str = "application/vnd.atlas.2023-01-01+json";

const USER_AGENT: &str = concat!("atlas-restore-runner/", env!("CARGO_PKG_VERSION"));
/// Atlas's largest page.
const PAGE_SIZE: usize = 500;
/// Reading more pages than this is refused rather than slowly read in a Lambda.
const MAX_PAGES: usize = 20;
/// Answers larger than this are not read.
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;
/// A service-account token is renewed this long before it expires.
const TOKEN_RENEWAL_MARGIN: Duration = Duration::from_secs(60);

/// How the client talks to Atlas.
#[derive(Clone, Debug)]
pub struct AtlasClientConfig {
    /// `https://cloud.mongodb.com` in production; may carry a path prefix.
    pub base_url: Url,
    /// Ask Atlas to wrap answers in `{"status", "content"}` (`envelope=true`).
    pub envelope: bool,
    /// Ask Atlas for pretty-printed answers (`pretty=true`).
    pub pretty: bool,
    /// The longest one request may take; always cut to the time left before the deadline.
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// First wait of the exponential backoff (doubled each retry, at most `backoff_max`).
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// No attempt is started with less time than this left before the deadline.
    pub min_attempt_time: Duration,
}

impl AtlasClientConfig {
    pub fn new(base_url: Url) -> AtlasClientConfig {
        AtlasClientConfig {
            base_url,
            envelope: false,
            pretty: false,
            request_timeout: Duration::from_secs(20),
            connect_timeout: Duration::from_secs(5),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(20),
            min_attempt_time: Duration::from_secs(1),
        }
    }
}

/// TLS for Atlas: reqwest's own choices (rustls with aws-lc-rs, TLS 1.2 and 1.3, ALPN `h2` then
/// `http/1.1`), trusting the Mozilla root certificates compiled in (`webpki-roots`). reqwest's
/// default, the platform verifier, reads and parses the system's CA store when the client is
/// built, which was a quarter of the function's init (docs/PERFORMANCE.md); Atlas's certificates
/// chain to public roots that are in both. `None` (reqwest's default then) cannot happen with
/// aws-lc-rs, which supports both protocol versions.
fn tls_with_compiled_in_roots() -> Option<rustls::ClientConfig> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Some(tls)
}

/// The Atlas Admin API client. Build it once per Lambda instance and share it: it keeps the
/// connection pool, the Digest nonce (so a warm instance answers Atlas's challenge without
/// another round trip) and the service account's token.
///
/// It reads its credentials from the source it was built with: before its first request,
/// when asked to ([`AtlasClient::load_credentials`]), and once more after Atlas refused them
/// (401), before sending once more (CONTRACT section 4: the secret may have been rotated).
pub struct AtlasClient {
    http: reqwest::Client,
    config: AtlasClientConfig,
    source: Arc<dyn CredentialSource>,
    /// The credentials `auth` was built from, so that reading the same ones again keeps the
    /// warm Digest session and token.
    in_use: std::sync::Mutex<Option<AtlasCredentials>>,
    auth: RwLock<Arc<Auth>>,
}

enum Auth {
    Missing,
    Digest(DigestAuthSession),
    ServiceAccount {
        client_id: String,
        client_secret: Secret,
        token: Mutex<Option<Token>>,
    },
}

struct Token {
    value: Secret,
    renew_at: Instant,
}

/// One attempt's failure to get an answer.
enum SendError {
    /// Nothing reached Atlas's API: safe to send again.
    NotSent(String),
    /// Failed after the request may have been sent.
    AfterSending(String),
    /// The credentials were refused while getting a token (the API request was not sent).
    TokenRefused { status: u16, error: ApiError },
}

/// How far one attempt's chain got, for an attempt cut at its deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Stage {
    Preparing = 0,
    /// Getting the service account's token: the API request was not sent.
    Token = 1,
    /// The unauthenticated Digest challenge round trip: Atlas processes nothing of it.
    Challenge = 2,
    /// The authenticated request may have gone out.
    Sending = 3,
}

impl From<u8> for Stage {
    fn from(value: u8) -> Stage {
        match value {
            0 => Stage::Preparing,
            1 => Stage::Token,
            2 => Stage::Challenge,
            // Unknown is read as the one that may have sent: never sent twice.
            _ => Stage::Sending,
        }
    }
}

impl Stage {
    fn cut_at_deadline(self) -> SendError {
        match self {
            Stage::Preparing => SendError::NotSent(
                "no time was left before the deadline to send the request".into(),
            ),
            Stage::Token => SendError::NotSent(
                "no service-account token before the deadline (timed out); the request was not sent"
                    .into(),
            ),
            Stage::Challenge => SendError::NotSent(
                "the Digest challenge was not answered before the deadline (timed out); the authenticated request was not sent"
                    .into(),
            ),
            Stage::Sending => SendError::AfterSending(
                "no answer from Atlas before the deadline (timed out)".into(),
            ),
        }
    }
}

/// What one request is, for building it again at each step of its chain.
struct Request<'a> {
    method: Method,
    url: &'a Url,
    body: Option<&'a [u8]>,
    media: &'a str,
}

/// One answer: status and body, unwrapped from Atlas's envelope when one was asked for.
struct Answer {
    status: u16,
    retry_after: Option<Duration>,
    body: Result<Vec<u8>, String>,
}

impl Answer {
    fn error(&self) -> ApiError {
        match &self.body {
            Ok(body) => ApiError::from_body(self.status, body),
            Err(reason) => ApiError {
                error: Some(self.status),
                reason: Some(reason.clone()),
                ..ApiError::default()
            },
        }
    }

    fn json<T: DeserializeOwned>(&self) -> Result<T, String> {
        let body = self.body.as_ref().map_err(Clone::clone)?;
        serde_json::from_slice(body).map_err(|e| format!("not the expected JSON: {e}"))
    }
}

/// What one attempt at a create leads to.
enum CreateStep {
    /// The answer class, final.
    Give(CreateAnswer),
    /// Send again after the backoff (at least `retry_after`) if the deadline allows; else
    /// `otherwise`.
    RetryOr {
        retry_after: Option<Duration>,
        otherwise: CreateAnswer,
    },
    /// The credentials were refused: read them again once and send again; else `otherwise`.
    FetchAgainOr(CreateAnswer),
}

impl CreateStep {
    /// An attempt that got no answer: re-sent only if nothing reached Atlas's API.
    fn not_answered(error: SendError) -> CreateStep {
        match error {
            SendError::NotSent(reason) => CreateStep::RetryOr {
                retry_after: None,
                otherwise: CreateAnswer::NotSent { reason },
            },
            SendError::AfterSending(reason) => CreateStep::Give(CreateAnswer::Ambiguous {
                http_status: None,
                reason,
                error: None,
            }),
            SendError::TokenRefused { status, error } => {
                CreateStep::FetchAgainOr(CreateAnswer::Unauthorized {
                    http_status: status,
                    error,
                })
            }
        }
    }

    /// An attempt Atlas answered, by its status (CONTRACT section 4's table).
    fn answered(
        answer: &Answer,
        read_jobs: impl Fn(&Answer) -> Result<Vec<RestoreJob>, String>,
    ) -> CreateStep {
        match answer.status {
            200..=299 => CreateStep::Give(created(answer, read_jobs)),
            401 => CreateStep::FetchAgainOr(CreateAnswer::Unauthorized {
                http_status: 401,
                error: answer.error(),
            }),
            429 => CreateStep::RetryOr {
                retry_after: answer.retry_after,
                otherwise: CreateAnswer::Refused {
                    http_status: 429,
                    error: answer.error(),
                },
            },
            503 => CreateStep::Give(CreateAnswer::Unavailable {
                error: answer.error(),
                retry_after: answer.retry_after,
            }),
            400..=499 => CreateStep::Give(CreateAnswer::Refused {
                http_status: answer.status,
                error: answer.error(),
            }),
            status => CreateStep::Give(CreateAnswer::Ambiguous {
                http_status: Some(status),
                reason: format!("Atlas answered HTTP {status}"),
                error: Some(answer.error()),
            }),
        }
    }
}

/// A 2xx to a create: the job(s) it holds, or ambiguous when it holds none or cannot be read.
fn created(
    answer: &Answer,
    read_jobs: impl Fn(&Answer) -> Result<Vec<RestoreJob>, String>,
) -> CreateAnswer {
    match read_jobs(answer) {
        Ok(jobs) if !jobs.is_empty() => CreateAnswer::Created {
            http_status: answer.status,
            jobs,
        },
        Ok(_) => CreateAnswer::Ambiguous {
            http_status: Some(answer.status),
            reason: format!(
                "Atlas answered HTTP {} with a page holding no job",
                answer.status
            ),
            error: None,
        },
        Err(reason) => CreateAnswer::Ambiguous {
            http_status: Some(answer.status),
            reason: format!(
                "Atlas answered HTTP {} with a body that could not be read: {reason}",
                answer.status
            ),
            error: None,
        },
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl AtlasClient {
    /// A client with fixed credentials (fetching them again gives the same).
    pub fn new(
        config: AtlasClientConfig,
        credentials: AtlasCredentials,
    ) -> Result<AtlasClient, reqwest::Error> {
        let client = AtlasClient::with_source(config, credentials.clone())?;
        client.install(credentials);
        Ok(client)
    }

    /// A client that reads its credentials from `source` (the deployed function: Secrets
    /// Manager, cached per warm instance). Nothing is read until the first request or
    /// [`AtlasClient::load_credentials`].
    pub fn with_source(
        config: AtlasClientConfig,
        source: impl CredentialSource + 'static,
    ) -> Result<AtlasClient, reqwest::Error> {
        let mut http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(config.connect_timeout)
            // A redirected POST could be re-sent as something else: Atlas does not redirect
            // its API, so a redirect is an answer to report, not to follow.
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(50));
        if let Some(tls) = tls_with_compiled_in_roots() {
            http = http.tls_backend_preconfigured(tls);
        }
        let http = http.build()?;
        Ok(AtlasClient {
            http,
            config,
            source: Arc::new(source),
            in_use: std::sync::Mutex::new(None),
            auth: RwLock::new(Arc::new(Auth::Missing)),
        })
    }

    /// Reads the credentials from the source (its cache, within its TTL) and uses them from
    /// now on; a failure is the source's, and nothing is sent.
    pub async fn load_credentials(&self) -> Result<(), DependencyError> {
        self.load(false).await
    }

    /// Reads the credentials (`refresh`: past the source's cache) and installs them, unless
    /// they are the ones in use: then the warm Digest session and token are kept.
    async fn load(&self, refresh: bool) -> Result<(), DependencyError> {
        let credentials = self.source.credentials(refresh).await?;
        self.install(credentials);
        Ok(())
    }

    fn install(&self, credentials: AtlasCredentials) {
        let mut in_use = self.in_use.lock().unwrap_or_else(PoisonError::into_inner);
        if in_use.as_ref() == Some(&credentials) {
            return;
        }
        let auth = Arc::new(Auth::from(credentials.clone()));
        *self.auth.write().unwrap_or_else(PoisonError::into_inner) = auth;
        *in_use = Some(credentials);
    }

    /// Reads the credentials when none have been read yet.
    async fn ensure_credentials(&self) -> Result<(), DependencyError> {
        let loaded = self
            .in_use
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some();
        if loaded {
            Ok(())
        } else {
            self.load(false).await
        }
    }

    /// After Atlas refused the credentials: reads them again past the cache, once per
    /// request (`fetched_again`). `Ok(true)`: send once more; `Ok(false)`: already done.
    async fn fetch_again_once(&self, fetched_again: &mut bool) -> Result<bool, DependencyError> {
        if *fetched_again {
            return Ok(false);
        }
        *fetched_again = true;
        self.load(true).await?;
        Ok(true)
    }

    /// `POST /api/atlas/v1.0/groups/{groupId}/clusters/{clusterName}/restoreJobs`.
    /// Re-sends only after a 429 and after failures before sending, while `deadline` allows.
    pub async fn create_legacy_restore_job(
        &self,
        source: &SourceCluster,
        body: &Value,
        deadline: Instant,
    ) -> CreateAnswer {
        let url = self.api_url(&restore_jobs_path(source), &[]);
        // The legacy answer is a PAGE of jobs (one per shard plus the config server).
        self.create(&url, body, V1, deadline, |answer| {
            let page: Page<RestoreJob> = answer.json()?;
            Ok(page.results)
        })
        .await
    }

    /// `POST /api/atlas/v2/groups/{groupId}/clusters/{clusterName}/backup/restoreJobs`, with
    /// the same answer classes; Atlas answers ONE job.
    pub async fn create_cloud_restore_job(
        &self,
        source: &SourceCluster,
        body: &Value,
        deadline: Instant,
    ) -> CreateAnswer {
        let url = self.api_url(&cloud_restore_jobs_path(source), &[]);
        self.create(&url, body, V2, deadline, |answer| {
            Ok(vec![answer.json::<RestoreJob>()?])
        })
        .await
    }

    /// Sends the create and gives its answer class (CONTRACT section 4), re-sending only
    /// where [`CreateStep`] says it is safe.
    async fn create(
        &self,
        url: &Url,
        body: &Value,
        media: &str,
        deadline: Instant,
        read_jobs: impl Fn(&Answer) -> Result<Vec<RestoreJob>, String>,
    ) -> CreateAnswer {
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        if let Err(error) = self.ensure_credentials().await {
            return CreateAnswer::NoCredentials(error);
        }
        let mut fetched_again = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let sent = self
                .send(Method::POST, url, Some(&bytes), media, deadline)
                .await;
            let step = match sent {
                Ok(answer) => CreateStep::answered(&answer, &read_jobs),
                Err(error) => CreateStep::not_answered(error),
            };
            match step {
                CreateStep::Give(answer) => return answer,
                CreateStep::RetryOr {
                    retry_after,
                    otherwise,
                } => {
                    if !self.wait_to_retry(attempt, retry_after, deadline).await {
                        return otherwise;
                    }
                }
                // The secret may have been rotated: fetch it again once and send once more.
                CreateStep::FetchAgainOr(otherwise) => {
                    match self.fetch_again_once(&mut fetched_again).await {
                        Ok(true) => attempt = 0,
                        Ok(false) => return otherwise,
                        Err(error) => return CreateAnswer::NoCredentials(error),
                    }
                }
            }
        }
    }

    /// The source cluster's legacy restore jobs, every page; with `created_since`, only jobs
    /// created at or after it (and any whose creation time cannot be read, so nothing that might
    /// match is left out).
    pub async fn list_restore_jobs(
        &self,
        source: &SourceCluster,
        created_since: Option<DateTime<Utc>>,
        deadline: Instant,
    ) -> Result<Vec<RestoreJob>, AtlasError> {
        let jobs: Vec<RestoreJob> = self
            .get_all_pages(&restore_jobs_path(source), &[], V1, deadline)
            .await?;
        Ok(match created_since {
            None => jobs,
            Some(since) => jobs
                .into_iter()
                .filter(|job| {
                    job.created
                        .as_deref()
                        .and_then(|c| DateTime::parse_from_rfc3339(c).ok())
                        .is_none_or(|created| created.with_timezone(&Utc) >= since)
                })
                .collect(),
        })
    }

    /// `GET .../restoreJobs/{jobId}`.
    pub async fn get_restore_job(
        &self,
        source: &SourceCluster,
        job_id: &str,
        deadline: Instant,
    ) -> Result<RestoreJob, AtlasError> {
        self.get_cluster_item(Api::V1, source, &["restoreJobs", job_id], deadline)
            .await
    }

    /// The source cluster's completed legacy snapshots (`completed=true`), every page.
    pub async fn list_completed_snapshots(
        &self,
        source: &SourceCluster,
        deadline: Instant,
    ) -> Result<Vec<Snapshot>, AtlasError> {
        let path = cluster_path(Api::V1, source, &["snapshots"]);
        let snapshots: Vec<Snapshot> = self
            .get_all_pages(&path, &[("completed", "true")], V1, deadline)
            .await?;
        Ok(snapshots
            .into_iter()
            .filter(|s| s.complete != Some(false))
            .collect())
    }

    /// The project's clusters (`id` and `name`), every page.
    pub async fn list_clusters(
        &self,
        group_id: &ObjectId,
        deadline: Instant,
    ) -> Result<Vec<Cluster>, AtlasError> {
        let path = vec![
            "api".into(),
            "atlas".into(),
            "v1.0".into(),
            "groups".into(),
            group_id.to_string(),
            "clusters".into(),
        ];
        self.get_all_pages(&path, &[], V1, deadline).await
    }

    /// The source cluster's Cloud Backup restore jobs, every page. Cloud jobs carry no creation
    /// time, so there is no `created_since`: reconciliation filters on what they do carry.
    pub async fn list_cloud_restore_jobs(
        &self,
        source: &SourceCluster,
        deadline: Instant,
    ) -> Result<Vec<RestoreJob>, AtlasError> {
        self.get_all_pages(&cloud_restore_jobs_path(source), &[], V2, deadline)
            .await
    }

    /// `GET .../backup/restoreJobs/{restoreJobId}`.
    pub async fn get_cloud_restore_job(
        &self,
        source: &SourceCluster,
        job_id: &str,
        deadline: Instant,
    ) -> Result<RestoreJob, AtlasError> {
        let leaves = ["backup", "restoreJobs", job_id];
        self.get_cluster_item(Api::V2, source, &leaves, deadline)
            .await
    }

    /// The source cluster's Cloud Backup snapshots (`GET .../backup/snapshots`), every page.
    pub async fn list_cloud_snapshots(
        &self,
        source: &SourceCluster,
        deadline: Instant,
    ) -> Result<Vec<CloudSnapshot>, AtlasError> {
        let path = cluster_path(Api::V2, source, &["backup", "snapshots"]);
        self.get_all_pages(&path, &[], V2, deadline).await
    }

    /// The one snapshot or checkpoint a drill's restore point names (CONTRACT section 7), as
    /// Atlas served it; `Value::Null` without a call for a point that names none.
    pub async fn get_restore_point(
        &self,
        source: &SourceCluster,
        point: &RestorePoint,
        deadline: Instant,
    ) -> Result<Value, AtlasError> {
        let (api, leaves) = match point {
            RestorePoint::LegacySnapshot(id) => (Api::V1, ["snapshots", id.as_str()].to_vec()),
            RestorePoint::Checkpoint(id) => (Api::V1, ["checkpoints", id.as_str()].to_vec()),
            RestorePoint::CloudSnapshot(id) => {
                (Api::V2, ["backup", "snapshots", id.as_str()].to_vec())
            }
            RestorePoint::At(_) | RestorePoint::Unreadable => return Ok(Value::Null),
        };
        self.get_cluster_item(api, source, &leaves, deadline).await
    }

    /// An authenticated GET of any path under the base URL, for endpoints this client has no
    /// method for (and for proving the authentication against other servers).
    pub async fn get_value(&self, path: &[&str], deadline: Instant) -> Result<Value, AtlasError> {
        let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        self.get_json(&self.api_url(&path, &[]), V1, deadline).await
    }

    /// One resource under the source cluster: `GET .../clusters/{clusterName}/{leaves...}`.
    async fn get_cluster_item<T: DeserializeOwned>(
        &self,
        api: Api,
        source: &SourceCluster,
        leaves: &[&str],
        deadline: Instant,
    ) -> Result<T, AtlasError> {
        let path = cluster_path(api, source, leaves);
        self.get_json(&self.api_url(&path, &[]), api.accept(), deadline)
            .await
    }

    async fn get_all_pages<T: DeserializeOwned>(
        &self,
        path: &[String],
        query: &[(&str, &str)],
        media: &str,
        deadline: Instant,
    ) -> Result<Vec<T>, AtlasError> {
        let mut all = Vec::new();
        for page_number in 1..=MAX_PAGES {
            let page_text = page_number.to_string();
            let items = PAGE_SIZE.to_string();
            let mut paged: Vec<(&str, &str)> = query.to_vec();
            paged.extend([
                ("itemsPerPage", items.as_str()),
                ("pageNum", page_text.as_str()),
            ]);
            let page: Page<T> = self
                .get_json(&self.api_url(path, &paged), media, deadline)
                .await?;
            let count = page.results.len();
            all.extend(page.results);
            let complete = count < PAGE_SIZE
                || page
                    .total_count
                    .is_some_and(|total| all.len() as u64 >= total);
            if complete {
                return Ok(all);
            }
        }
        Err(AtlasError::TooManyResults(PAGE_SIZE * MAX_PAGES))
    }

    /// A GET, retried while the deadline allows after anything but a definite answer: reads
    /// change nothing, so sending them again is always safe.
    async fn get_json<T: DeserializeOwned>(
        &self,
        url: &Url,
        media: &str,
        deadline: Instant,
    ) -> Result<T, AtlasError> {
        self.ensure_credentials()
            .await
            .map_err(AtlasError::NoCredentials)?;
        let mut fetched_again = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (retry_after, failure) =
                match self.send(Method::GET, url, None, media, deadline).await {
                    Err(SendError::NotSent(reason) | SendError::AfterSending(reason)) => {
                        (None, AtlasError::NoAnswer(reason))
                    }
                    Err(SendError::TokenRefused { status, error }) => {
                        if self
                            .fetch_again_once(&mut fetched_again)
                            .await
                            .map_err(AtlasError::NoCredentials)?
                        {
                            attempt = 0;
                            continue;
                        }
                        return Err(AtlasError::Unauthorized { status, error });
                    }
                    Ok(answer) => match answer.status {
                        200..=299 => {
                            return answer.json().map_err(|reason| AtlasError::Unreadable {
                                status: answer.status,
                                reason,
                            });
                        }
                        401 => {
                            // The secret may have been rotated: fetch it again once, read again.
                            if self
                                .fetch_again_once(&mut fetched_again)
                                .await
                                .map_err(AtlasError::NoCredentials)?
                            {
                                attempt = 0;
                                continue;
                            }
                            return Err(AtlasError::Unauthorized {
                                status: 401,
                                error: answer.error(),
                            });
                        }
                        429 | 500..=599 => (
                            answer.retry_after,
                            AtlasError::Api {
                                status: answer.status,
                                error: answer.error(),
                            },
                        ),
                        status => {
                            return Err(AtlasError::Api {
                                status,
                                error: answer.error(),
                            });
                        }
                    },
                };
            if !self.wait_to_retry(attempt, retry_after, deadline).await {
                return Err(failure);
            }
        }
    }

    /// Sends one request with the current credentials and reads the whole answer, the whole
    /// chain (the service account's token call, the Digest challenge and the authenticated
    /// request, the answer's body) ending by `deadline` (CONTRACT section 4, "Deadlines"). Cut
    /// there, it failed after sending only if the authenticated request may have gone out.
    async fn send(
        &self,
        method: Method,
        url: &Url,
        body: Option<&[u8]>,
        media: &str,
        deadline: Instant,
    ) -> Result<Answer, SendError> {
        if self.time_for_attempt(deadline).is_none() {
            return Err(SendError::NotSent(
                "the invocation's deadline leaves no time to call Atlas".into(),
            ));
        }
        let stage = AtomicU8::new(Stage::Preparing as u8);
        let chain = self.send_chain(method, url, body, media, deadline, &stage);
        match tokio::time::timeout_at(deadline, chain).await {
            Ok(answer) => answer,
            Err(_) => Err(Stage::from(stage.load(Ordering::SeqCst)).cut_at_deadline()),
        }
    }

    async fn send_chain(
        &self,
        method: Method,
        url: &Url,
        body: Option<&[u8]>,
        media: &str,
        deadline: Instant,
        stage: &AtomicU8,
    ) -> Result<Answer, SendError> {
        let auth = Arc::clone(&self.auth.read().unwrap_or_else(PoisonError::into_inner));
        let response = match auth.as_ref() {
            Auth::Missing => {
                return Err(SendError::NotSent(
                    "no Atlas credentials have been read yet".into(),
                ));
            }
            Auth::Digest(session) => {
                let request = Request {
                    method,
                    url,
                    body,
                    media,
                };
                self.send_digest(session, &request, deadline, stage).await?
            }
            Auth::ServiceAccount { .. } => {
                stage.store(Stage::Token as u8, Ordering::SeqCst);
                let token = self.bearer_token(&auth, deadline).await?;
                let request = self
                    .request(method, url, body, media, deadline)
                    .ok_or_else(|| {
                        SendError::NotSent(
                            "the deadline left no time for the request after the token call".into(),
                        )
                    })?
                    .bearer_auth(token.expose());
                stage.store(Stage::Sending as u8, Ordering::SeqCst);
                let response = request.send().await.map_err(classify_send_error)?;
                if response.status() == StatusCode::UNAUTHORIZED {
                    auth.forget_token().await;
                }
                response
            }
        };
        Ok(self.read_answer(response, self.config.envelope).await)
    }

    /// Digest authentication, step by step so that a cut knows whether the authenticated
    /// request went out: with the session's nonce from an earlier answer, the authenticated
    /// request at once; without one (or when Atlas finds it stale), the unauthenticated
    /// challenge round trip first, which Atlas processes nothing of.
    async fn send_digest(
        &self,
        session: &DigestAuthSession,
        request: &Request<'_>,
        deadline: Instant,
        stage: &AtomicU8,
    ) -> Result<reqwest::Response, SendError> {
        let host = request.url.host_str().unwrap_or_default();
        let path = &request.url[Position::AfterPort..];
        let no_time = || {
            SendError::NotSent(
                "the deadline left no time for the authenticated request after the Digest challenge"
                    .into(),
            )
        };
        if session
            .cached_context(host)
            .map_err(digest_failure)?
            .is_some()
        {
            let authorization = session
                .calculate_authorization(
                    host,
                    path,
                    request.method.as_str().into(),
                    request.body,
                    &HeaderMap::new(),
                )
                .map_err(digest_failure)?;
            let built = self
                .request_for(request, deadline)
                .ok_or_else(no_time)?
                .header(AUTHORIZATION, authorization.to_header_string());
            stage.store(Stage::Sending as u8, Ordering::SeqCst);
            let response = built.send().await.map_err(classify_send_error)?;
            if response.status() != StatusCode::UNAUTHORIZED {
                return Ok(response);
            }
            // A stale nonce (or refused credentials): Atlas processed nothing. Challenge again.
            session.clear_context(host).map_err(digest_failure)?;
        }
        stage.store(Stage::Challenge as u8, Ordering::SeqCst);
        let challenge = self
            .request_for(request, deadline)
            .ok_or_else(no_time)?
            .send()
            .await
            // Unauthenticated, whatever happened to it nothing was processed.
            .map_err(not_sent("the Digest challenge round trip"))?;
        let prompt = challenge.headers().get(WWW_AUTHENTICATE).cloned();
        let (StatusCode::UNAUTHORIZED, Some(prompt)) = (challenge.status(), prompt) else {
            return Ok(challenge);
        };
        let prompt = prompt
            .to_str()
            .map_err(|_| SendError::NotSent("the Digest challenge is not readable text".into()))?;
        session
            .store_context(host, prompt)
            .map_err(digest_failure)?;
        let authorization = session
            .calculate_authorization(
                host,
                path,
                request.method.as_str().into(),
                request.body,
                challenge.headers(),
            )
            .map_err(digest_failure)?;
        let built = self
            .request_for(request, deadline)
            .ok_or_else(no_time)?
            .header(AUTHORIZATION, authorization.to_header_string());
        stage.store(Stage::Sending as u8, Ordering::SeqCst);
        built.send().await.map_err(classify_send_error)
    }

    fn request_for(&self, request: &Request<'_>, deadline: Instant) -> Option<RequestBuilder> {
        self.request(
            request.method.clone(),
            request.url,
            request.body,
            request.media,
            deadline,
        )
    }

    /// One request, its timeout what is left before `deadline` (at most `request_timeout`);
    /// `None` when less than `min_attempt_time` is left.
    fn request(
        &self,
        method: Method,
        url: &Url,
        body: Option<&[u8]>,
        media: &str,
        deadline: Instant,
    ) -> Option<RequestBuilder> {
        let timeout = self.time_for_attempt(deadline)?;
        let mut request = self
            .http
            .request(method, url.clone())
            .header(ACCEPT, media)
            .timeout(timeout);
        if let Some(body) = body {
            request = request.header(CONTENT_TYPE, media).body(body.to_vec());
        }
        Some(request)
    }

    /// Reads the whole answer; `enveloped` when the request asked for Atlas's envelope.
    async fn read_answer(&self, mut response: reqwest::Response, enveloped: bool) -> Answer {
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let mut body = Vec::new();
        let read = loop {
            match response.chunk().await {
                Ok(Some(chunk)) if body.len() + chunk.len() > MAX_ANSWER_BYTES => {
                    break Err(format!(
                        "the answer is larger than {MAX_ANSWER_BYTES} bytes"
                    ));
                }
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => break Ok(body),
                Err(error) => break Err(format!("the answer broke off: {}", describe(&error))),
            }
        };
        if !enveloped || status != 200 {
            return Answer {
                status,
                retry_after,
                body: read,
            };
        }
        match read.as_deref().map(unwrap_envelope) {
            Ok(Ok((status, body))) => Answer {
                status,
                retry_after,
                body: Ok(body),
            },
            Ok(Err(reason)) => Answer {
                status,
                retry_after,
                body: Err(reason),
            },
            Err(reason) => Answer {
                status,
                retry_after,
                body: Err(reason.clone()),
            },
        }
    }

    /// The service account's token, fetched when there is none or it expires within a minute.
    async fn bearer_token(&self, auth: &Auth, deadline: Instant) -> Result<Secret, SendError> {
        let Auth::ServiceAccount {
            client_id,
            client_secret,
            token,
        } = auth
        else {
            return Err(SendError::NotSent("no service account configured".into()));
        };
        let mut cached = token.lock().await;
        if let Some(current) = cached.as_ref()
            && Instant::now() < current.renew_at
        {
            return Ok(current.value.clone());
        }
        let timeout = self.time_for_attempt(deadline).ok_or_else(|| {
            SendError::NotSent("the invocation's deadline leaves no time to get a token".into())
        })?;
        let url = self.base_url_with(&["api".into(), "oauth".into(), "token".into()]);
        let response = self
            .http
            .post(url)
            .basic_auth(client_id, Some(client_secret.expose()))
            .header(ACCEPT, "application/json")
            .form(&[("grant_type", "client_credentials")])
            .timeout(timeout)
            .send()
            .await
            // The token request creates nothing, so whatever happened to it, the API request
            // itself was not sent.
            .map_err(not_sent("getting a service-account token"))?;
        let answer = self.read_answer(response, false).await;
        match answer.status {
            200..=299 => {
                let parsed: TokenAnswer = answer.json().map_err(|reason| {
                    SendError::NotSent(format!("the token answer could not be read: {reason}"))
                })?;
                let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(3600));
                let value = Secret::new(parsed.access_token);
                *cached = Some(Token {
                    value: value.clone(),
                    renew_at: Instant::now() + lifetime.saturating_sub(TOKEN_RENEWAL_MARGIN),
                });
                Ok(value)
            }
            400 | 401 | 403 => Err(SendError::TokenRefused {
                status: answer.status,
                error: oauth_error(&answer),
            }),
            status => Err(SendError::NotSent(format!(
                "the token endpoint answered HTTP {status}: {}",
                oauth_error(&answer).summary()
            ))),
        }
    }

    /// Waits before attempt `attempt + 1`: at least `retry_after`, else exponential backoff.
    /// Returns false, without waiting, when the deadline would not leave time for the attempt.
    async fn wait_to_retry(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        deadline: Instant,
    ) -> bool {
        let backoff = self
            .config
            .backoff_base
            .saturating_mul(1 << attempt.saturating_sub(1).min(16))
            .min(self.config.backoff_max);
        let wait = retry_after.map_or(backoff, |asked| asked.max(backoff));
        if Instant::now() + wait + self.config.min_attempt_time > deadline {
            return false;
        }
        tokio::time::sleep(wait).await;
        true
    }

    fn time_for_attempt(&self, deadline: Instant) -> Option<Duration> {
        let left = deadline.checked_duration_since(Instant::now())?;
        (left >= self.config.min_attempt_time).then(|| left.min(self.config.request_timeout))
    }

    fn api_url(&self, path: &[String], query: &[(&str, &str)]) -> Url {
        let mut url = self.base_url_with(path);
        {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in query {
                pairs.append_pair(name, value);
            }
            if self.config.envelope {
                pairs.append_pair("envelope", "true");
            }
            if self.config.pretty {
                pairs.append_pair("pretty", "true");
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        url
    }

    /// The base URL with `segments` appended, each percent-encoded as one path segment.
    fn base_url_with(&self, segments: &[String]) -> Url {
        let mut url = self.config.base_url.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            path.extend(segments);
        }
        url
    }
}

impl From<AtlasCredentials> for Auth {
    fn from(credentials: AtlasCredentials) -> Auth {
        match credentials {
            AtlasCredentials::ApiKey {
                public_key,
                private_key,
            } => Auth::Digest(DigestAuthSession::new(public_key, private_key.expose())),
            AtlasCredentials::ServiceAccount {
                client_id,
                client_secret,
            } => Auth::ServiceAccount {
                client_id,
                client_secret,
                token: Mutex::new(None),
            },
        }
    }
}

impl Auth {
    async fn forget_token(&self) {
        if let Auth::ServiceAccount { token, .. } = self {
            *token.lock().await = None;
        }
    }
}

/// The two versions of the Admin API this client speaks: the legacy backup endpoints are
/// only in v1.0, Cloud Backup's are in the versioned API.
#[derive(Clone, Copy)]
enum Api {
    V1,
    V2,
}

impl Api {
    fn path_version(self) -> &'static str {
        match self {
            Api::V1 => "v1.0",
            Api::V2 => "v2",
        }
    }

    fn accept(self) -> &'static str {
        match self {
            Api::V1 => V1,
            Api::V2 => V2,
        }
    }
}

fn restore_jobs_path(source: &SourceCluster) -> Vec<String> {
    cluster_path(Api::V1, source, &["restoreJobs"])
}

fn cloud_restore_jobs_path(source: &SourceCluster) -> Vec<String> {
    cluster_path(Api::V2, source, &["backup", "restoreJobs"])
}

/// `/api/atlas/{version}/groups/{groupId}/clusters/{clusterName}/{leaves...}`.
fn cluster_path(api: Api, source: &SourceCluster, leaves: &[&str]) -> Vec<String> {
    let mut path: Vec<String> = [
        "api",
        "atlas",
        api.path_version(),
        "groups",
        source.group_id.as_str(),
        "clusters",
        source.cluster_name.as_str(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    path.extend(leaves.iter().map(|s| s.to_string()));
    path
}

/// Atlas's `envelope=true` answers carry the real status in the body: a single resource as
/// `{"status", "content"}`, a list as the page itself with `status` added.
fn unwrap_envelope(body: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let Ok(Value::Object(mut envelope)) = serde_json::from_slice::<Value>(body) else {
        return Err("not an Atlas envelope: not a JSON object".into());
    };
    let status = envelope
        .remove("status")
        .and_then(|s| s.as_u64())
        .and_then(|s| u16::try_from(s).ok())
        .ok_or("not an Atlas envelope: no numeric \"status\"")?;
    let content = envelope
        .remove("content")
        .unwrap_or(Value::Object(envelope));
    Ok((
        status,
        serde_json::to_vec(&content).map_err(|e| e.to_string())?,
    ))
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds))
}

/// OAuth errors use `{error, error_description}`, not `ApiError`; keep them readable as one.
fn oauth_error(answer: &Answer) -> ApiError {
    #[derive(Deserialize)]
    struct OAuthError {
        error: String,
        #[serde(default)]
        error_description: Option<String>,
    }
    match answer.json::<OAuthError>() {
        Ok(oauth) => ApiError {
            error: Some(answer.status),
            error_code: Some(oauth.error),
            detail: oauth.error_description,
            ..ApiError::default()
        },
        Err(_) => answer.error(),
    }
}

fn classify_send_error(error: reqwest::Error) -> SendError {
    if error.is_connect() {
        SendError::NotSent(describe(&error))
    } else {
        SendError::AfterSending(describe(&error))
    }
}

/// A failure of the Digest computation (reading the challenge, answering it): the
/// authenticated request was not sent.
fn digest_failure(error: diqwest::error::Error) -> SendError {
    SendError::NotSent(format!(
        "the Digest challenge could not be answered: {error}"
    ))
}

/// A reqwest error with its causes, which say what actually failed (refused, reset, timed out).
/// A request that creates nothing failed (a token, a challenge): the API request itself was
/// not sent.
fn not_sent(doing: &'static str) -> impl FnOnce(reqwest::Error) -> SendError {
    move |error| SendError::NotSent(format!("{doing} failed: {}", describe(&error)))
}

fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if error.is_timeout() {
        text.push_str(" (timed out)");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_atlas_tls_configuration_trusts_the_compiled_in_roots_and_offers_h2() {
        let tls = tls_with_compiled_in_roots().expect("aws-lc-rs supports TLS 1.2 and 1.3");
        assert_eq!(tls.alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
        assert!(
            AtlasClient::new(
                AtlasClientConfig::new(Url::parse("https://cloud.mongodb.com").unwrap()),
                AtlasCredentials::ApiKey {
                    public_key: "k".to_owned(),
                    private_key: Secret::new("s"),
                },
            )
            .is_ok()
        );
    }
}
