//! A test double of the MongoDB Atlas Admin API, served over real HTTP on `127.0.0.1`.
//!
//! It covers what this project touches (see `tests/fixtures/atlas/NOTES.md`): legacy restore jobs
//! (create, list, get), legacy snapshots (list, get) and checkpoints (get), the project's clusters, Cloud Backup (v2) restore jobs
//! (create, list, get) and cloud snapshots (list, get), HTTP Digest with API keys and OAuth 2.0 client
//! credentials with service accounts. Faults can be queued per route to make the
//! double answer errors, non-JSON bodies, slow answers, or drop the connection before or after
//! processing. Every request is recorded.
//!
//! hyper 1 is used directly (not a framework) so that a fault can close the connection without an
//! answer: a service that returns `Err` makes hyper drop the connection.
//!
//! Behaviour worth knowing when writing tests against it:
//! - It answers as Atlas's reference describes Atlas, never by echoing the request: the job of a
//!   legacy `AUTOMATED_RESTORE` comes back with `delivery.methodName: "HTTP"` and its targets
//!   (the targets are what tells it from a download); its end is its own `statusName`, while
//!   `delivery.statusName` ([`AtlasDouble::set_job_status`]) may read `READY` before then.
//! - Every id it makes (job, batch, cloud job) is an ObjectId whose first 4 bytes, big-endian,
//!   are its creation time in seconds ([`object_id`]); legacy jobs also state it in `created`,
//!   cloud jobs do not. Snapshot ids are the tests' own: [`object_id`] makes realistic ones.
//!   Jobs of other, earlier requests are seeded with [`AtlasDouble::add_restore_job`] and
//!   [`AtlasDouble::add_cloud_restore_job`].
//! - Digest nonces are checked against the nonce lifetime in force when they are used; OAuth tokens
//!   get their lifetime when issued (`expires_in` is that lifetime in seconds, rounded up).
//! - A Digest request is a replay when its `(nc, cnonce)` pair was already accepted for that nonce.
//!   diqwest 3.2's `DigestAuthSession` sends `nc=00000001` again (with a new cnonce) on its first
//!   pre-emptive request, which this default accepts; `set_strict_nonce_count(true)` rejects any
//!   repeated `nc` for a nonce, as RFC 7616 allows.
//! - `envelope=true` follows Atlas's documented shape: a page (a body with `results`) gets a
//!   `status` field added; any other body becomes `{"status": <status>, "content": <body>}`. The
//!   401 answers of authentication are never enveloped, so Digest keeps working.
//! - `GET .../snapshots` defaults to `completed=true` like Atlas (`all` and `false` also accepted).
//! - Cloud Backup (v2) routes (`/api/atlas/v2/.../backup/...`) want `Accept:
//!   application/vnd.atlas.2023-01-01+json` (else 406 `INVALID_VERSION_DATE`) and answer with that
//!   media type; their errors stay `application/json`, as in the OpenAPI definition. Cloud
//!   snapshots ([`AtlasDouble::add_cloud_snapshot`]) and cloud jobs are separate from legacy ones.
//!   The rules and error codes are in `atlas_double/cloud.rs`.

mod api;
mod auth;
mod cloud;

use std::collections::{HashMap, HashSet, VecDeque};
use std::error::Error;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use md5::{Digest, Md5};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// A running Atlas double. Dropping it stops the server and closes every connection.
pub struct AtlasDouble {
    state: Arc<Mutex<State>>,
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// The routes the double serves, as used by faults and counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    CreateRestoreJob,
    ListRestoreJobs,
    GetRestoreJob,
    ListSnapshots,
    ListClusters,
    Token,
    /// `POST /api/atlas/v2/groups/{groupId}/clusters/{clusterName}/backup/restoreJobs`.
    CreateCloudRestoreJob,
    /// `GET /api/atlas/v2/groups/{groupId}/clusters/{clusterName}/backup/restoreJobs`.
    ListCloudRestoreJobs,
    /// `GET /api/atlas/v2/groups/{groupId}/clusters/{clusterName}/backup/restoreJobs/{id}`.
    GetCloudRestoreJob,
    /// `GET /api/atlas/v2/groups/{groupId}/clusters/{clusterName}/backup/snapshots`.
    ListCloudSnapshots,
    /// `GET /api/atlas/v1.0/groups/{groupId}/clusters/{clusterName}/snapshots/{snapshotId}`.
    GetSnapshot,
    /// `GET /api/atlas/v1.0/groups/{groupId}/clusters/{clusterName}/checkpoints/{checkpointId}`.
    GetCheckpoint,
    /// `GET /api/atlas/v2/groups/{groupId}/clusters/{clusterName}/backup/snapshots/{snapshotId}`.
    GetCloudSnapshot,
}

/// The state of a cloud restore job, as set by [`AtlasDouble::set_cloud_job_state`]. It replaces
/// the job's whole state: `finished_at: None` removes `finishedAt`, and `delivery_url: None` puts
/// a `download` job back to "not ready" (`deliveryUrl: []`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CloudJobState {
    pub finished_at: Option<DateTime<Utc>>,
    pub failed: bool,
    pub cancelled: bool,
    pub expired: bool,
    /// `deliveryUrl`; for a sharded cluster also `components[i].downloadUrl`, in order.
    pub delivery_url: Option<Vec<String>>,
}

/// A misbehaviour queued with [`AtlasDouble::push_fault`], consumed by one authenticated request.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer this `ApiError` (and `Retry-After` when set); nothing is processed.
    Status {
        status: u16,
        error_code: String,
        retry_after: Option<u64>,
    },
    /// Answer this plain-text body; with `process` the request is processed first (jobs created).
    NonJson {
        status: u16,
        body: String,
        process: bool,
    },
    /// Sleep, then process and answer normally.
    DelayThenProcess(Duration),
    /// Process, sleep, then answer normally.
    ProcessThenDelay(Duration),
    /// Close the connection without reading the body; nothing is processed.
    DropBeforeBody,
    /// Read the body, then close the connection without answering; nothing is processed.
    DropAfterBody,
    /// Process (create the jobs), then answer this `ApiError` instead.
    CreateThenFail { status: u16, error_code: String },
    /// Process (create the jobs), then close the connection without answering.
    CreateThenDrop,
}

/// One request as the double received it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    /// The path as received (still percent-encoded).
    pub path: String,
    pub query: Option<String>,
    pub route: Option<Route>,
    pub auth: RecordedAuth,
    /// Empty when the body was never read (`Fault::DropBeforeBody`).
    pub body: Vec<u8>,
    /// The HTTP status sent; `None` when the connection was dropped.
    pub status: Option<u16>,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
}

/// What the `Authorization` header of a request amounted to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordedAuth {
    None,
    Digest {
        user: String,
        valid: bool,
        stale: bool,
    },
    Bearer {
        valid: bool,
    },
    Basic {
        client_id: String,
        valid: bool,
    },
    Malformed,
}

impl AtlasDouble {
    /// Binds `127.0.0.1:0` and starts serving.
    pub async fn start() -> AtlasDouble {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let state = Arc::new(Mutex::new(State::new(format!("http://{addr}"))));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, state.clone(), shutdown_rx));
        AtlasDouble {
            state,
            addr,
            shutdown,
            task,
        }
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// An API key for Digest: the public key is the user, the private key the password.
    pub fn add_api_key(&self, public_key: &str, private_key: &str) {
        self.lock()
            .api_keys
            .insert(public_key.to_owned(), private_key.to_owned());
    }

    /// Deletes an API key (a rotation): requests signed with it get 401 from now on.
    pub fn remove_api_key(&self, public_key: &str) {
        self.lock().api_keys.remove(public_key);
    }

    /// A service account for OAuth client credentials.
    pub fn add_service_account(&self, client_id: &str, client_secret: &str) {
        self.lock()
            .service_accounts
            .insert(client_id.to_owned(), client_secret.to_owned());
    }

    /// A project without clusters (projects are otherwise created by [`Self::add_cluster`]).
    pub fn add_group(&self, group_id: &str) {
        self.lock().ensure_group(group_id);
    }

    /// A cluster in a project (created on demand); `shards` 0 is a replica set.
    pub fn add_cluster(&self, group_id: &str, name: &str, cluster_id: &str, shards: usize) {
        let mut state = self.lock();
        assert!(
            state.cluster(group_id, name).is_none(),
            "cluster {name} already exists in group {group_id}"
        );
        state.ensure_group(group_id);
        state.clusters.push(Cluster {
            group_id: group_id.to_owned(),
            name: name.to_owned(),
            id: cluster_id.to_owned(),
            shards,
        });
    }

    /// A legacy snapshot of an existing cluster.
    pub fn add_snapshot(
        &self,
        group_id: &str,
        cluster_name: &str,
        snapshot_id: &str,
        created: DateTime<Utc>,
        complete: bool,
    ) {
        let mut state = self.lock();
        assert!(
            state.cluster(group_id, cluster_name).is_some(),
            "add_snapshot: no cluster {cluster_name} in group {group_id}"
        );
        state.snapshots.push(Snapshot {
            group_id: group_id.to_owned(),
            cluster_name: cluster_name.to_owned(),
            id: snapshot_id.to_owned(),
            created,
            complete,
        });
    }

    /// A checkpoint of an existing (sharded) cluster, whose data is as of `timestamp`.
    pub fn add_checkpoint(
        &self,
        group_id: &str,
        cluster_name: &str,
        checkpoint_id: &str,
        timestamp: DateTime<Utc>,
    ) {
        let mut state = self.lock();
        assert!(
            state.cluster(group_id, cluster_name).is_some(),
            "add_checkpoint: no cluster {cluster_name} in group {group_id}"
        );
        state.checkpoints.push(Checkpoint {
            group_id: group_id.to_owned(),
            cluster_name: cluster_name.to_owned(),
            id: checkpoint_id.to_owned(),
            timestamp,
        });
    }

    /// A cloud backup snapshot of an existing cluster (separate from legacy snapshots). `status`
    /// is one of `queued`, `inProgress`, `completed`, `failed` (panics otherwise).
    pub fn add_cloud_snapshot(
        &self,
        group_id: &str,
        cluster_name: &str,
        snapshot_id: &str,
        created_at: DateTime<Utc>,
        status: &str,
    ) {
        assert!(
            cloud::SNAPSHOT_STATUSES.contains(&status),
            "add_cloud_snapshot: status {status} is not one of {:?}",
            cloud::SNAPSHOT_STATUSES
        );
        let mut state = self.lock();
        assert!(
            state.cluster(group_id, cluster_name).is_some(),
            "add_cloud_snapshot: no cluster {cluster_name} in group {group_id}"
        );
        state.cloud_snapshots.push(CloudSnapshot {
            group_id: group_id.to_owned(),
            cluster_name: cluster_name.to_owned(),
            id: snapshot_id.to_owned(),
            created_at,
            status: status.to_owned(),
        });
    }

    /// Sets a cloud restore job's `finishedAt`, `failed`, `cancelled`, `expired` and (download
    /// jobs) `deliveryUrl`. Panics on an unknown job.
    pub fn set_cloud_job_state(&self, job_id: &str, job_state: CloudJobState) {
        let mut state = self.lock();
        let job = state
            .cloud_jobs
            .iter_mut()
            .find(|job| job.value["id"] == job_id)
            .unwrap_or_else(|| panic!("set_cloud_job_state: no cloud job {job_id}"));
        cloud::apply_state(&mut job.value, &job_state);
    }

    /// Every cloud restore job created, as served now, in creation order.
    pub fn cloud_jobs(&self) -> Vec<Value> {
        let state = self.lock();
        state
            .cloud_jobs
            .iter()
            .map(|job| job.value.clone())
            .collect()
    }

    /// Number of cloud restore jobs created (one per accepted create, sharded clusters included).
    pub fn created_cloud_jobs(&self) -> usize {
        self.lock().cloud_jobs.len()
    }

    /// When the double created a cloud restore job. `DiskBackupSnapshotRestoreJob` has no
    /// creation time and Atlas does not send one (the v1.0 `createdAt` is gone), so the double
    /// keeps it here only.
    pub fn cloud_job_created_at(&self, job_id: &str) -> Option<DateTime<Utc>> {
        let state = self.lock();
        let job = state
            .cloud_jobs
            .iter()
            .find(|job| job.value["id"] == job_id)?;
        Some(job.created_at)
    }

    /// The body of the request that created a cloud restore job, as JSON.
    pub fn cloud_job_request_body(&self, job_id: &str) -> Option<Value> {
        let state = self.lock();
        let job = state
            .cloud_jobs
            .iter()
            .find(|job| job.value["id"] == job_id)?;
        serde_json::from_slice(&job.request_body).ok()
    }

    /// Lifetime of access tokens issued from now on (default 3600 s).
    pub fn set_token_ttl(&self, ttl: Duration) {
        self.lock().token_ttl = ttl;
    }

    /// Lifetime of Digest nonces, checked when a nonce is used (default 300 s).
    pub fn set_nonce_ttl(&self, ttl: Duration) {
        self.lock().nonce_ttl = ttl;
    }

    /// When true, any repeated `nc` for a nonce is a replay, whatever the cnonce (default false:
    /// only a repeated `(nc, cnonce)` pair is).
    pub fn set_strict_nonce_count(&self, strict: bool) {
        self.lock().strict_nc = strict;
    }

    /// Every nonce issued so far becomes stale.
    pub fn expire_nonces(&self) {
        for nonce in self.lock().nonces.values_mut() {
            nonce.expired = true;
        }
    }

    /// Every bearer token issued so far becomes invalid.
    pub fn revoke_tokens(&self) {
        for token in self.lock().tokens.values_mut() {
            token.revoked = true;
        }
    }

    /// Queues a fault for `route` (FIFO per route).
    pub fn push_fault(&self, route: Route, fault: Fault) {
        self.lock().faults.push_back((route, fault));
    }

    /// Faults queued and not consumed yet, all routes together.
    pub fn pending_faults(&self) -> usize {
        self.lock().faults.len()
    }

    /// Drops every queued fault not consumed yet.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Creates the legacy restore job(s) of `body` (a `BackupRestoreJob` as sent to Atlas) by the
    /// same rules as a POST, as if they had been created at `created`, without a request: the
    /// jobs of someone else's earlier restore. Returns them as served; panics on a body Atlas
    /// would refuse.
    pub fn add_restore_job(
        &self,
        group_id: &str,
        cluster_name: &str,
        body: &Value,
        created: DateTime<Utc>,
    ) -> Vec<Value> {
        let params = api::Params {
            group_id: group_id.to_owned(),
            cluster_name: cluster_name.to_owned(),
            job_id: String::new(),
        };
        let bytes = body.to_string().into_bytes();
        match api::create_restore_job(&mut self.lock(), &params, &bytes, created) {
            Ok(Reply {
                body: ReplyBody::Json(page),
                ..
            }) => page["results"].as_array().cloned().unwrap_or_default(),
            Ok(_) => unreachable!("a created job is answered as JSON"),
            Err(reply) => panic!(
                "add_restore_job: Atlas would refuse {body}: {}",
                reply.body_text()
            ),
        }
    }

    /// Creates the cloud restore job of `body` (a `DiskBackupSnapshotRestoreJob`) by the same
    /// rules as a POST, as if it had been created at `created` (its id says so), without a
    /// request. Returns it as served; panics on a body Atlas would refuse.
    pub fn add_cloud_restore_job(
        &self,
        group_id: &str,
        cluster_name: &str,
        body: &Value,
        created: DateTime<Utc>,
    ) -> Value {
        let params = api::Params {
            group_id: group_id.to_owned(),
            cluster_name: cluster_name.to_owned(),
            job_id: String::new(),
        };
        let bytes = body.to_string().into_bytes();
        match cloud::create_restore_job_at(&mut self.lock(), &params, &bytes, created) {
            Ok(Reply {
                body: ReplyBody::Json(job),
                ..
            }) => job,
            Ok(_) => unreachable!("a created job is answered as JSON"),
            Err(reply) => panic!(
                "add_cloud_restore_job: Atlas would refuse {body}: {}",
                reply.body_text()
            ),
        }
    }

    /// Changes a legacy job as served (say, a `created` Atlas wrote in a form that does not
    /// parse). Panics on an unknown job.
    pub fn edit_job(&self, job_id: &str, edit: impl FnOnce(&mut Value)) {
        let mut state = self.lock();
        let job = state
            .jobs
            .iter_mut()
            .find(|job| job.value["id"] == job_id)
            .unwrap_or_else(|| panic!("edit_job: no job {job_id}"));
        edit(&mut job.value);
    }

    /// Sets a job's `statusName`, and `delivery.statusName` when given. Panics on an unknown job.
    /// The two are independent, as in Atlas: an automated restore's file transfer may be `READY`
    /// while the job is still `IN_PROGRESS`.
    pub fn set_job_status(&self, job_id: &str, status_name: &str, delivery_status: Option<&str>) {
        let mut state = self.lock();
        let job = state
            .jobs
            .iter_mut()
            .find(|job| job.value["id"] == job_id)
            .unwrap_or_else(|| panic!("set_job_status: no job {job_id}"));
        job.value["statusName"] = json!(status_name);
        if let Some(delivery_status) = delivery_status {
            job.value["delivery"]["statusName"] = json!(delivery_status);
        }
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// Every request received on `route`, in order.
    pub fn requests_on(&self, route: Route) -> Vec<RecordedRequest> {
        let state = self.lock();
        let on_route = state.requests.iter().filter(|r| r.route == Some(route));
        on_route.cloned().collect()
    }

    /// Every restore job created, as served now, in creation order.
    pub fn jobs(&self) -> Vec<Value> {
        self.lock()
            .jobs
            .iter()
            .map(|job| job.value.clone())
            .collect()
    }

    /// The body of the request that created a job, as JSON.
    pub fn job_request_body(&self, job_id: &str) -> Option<Value> {
        let state = self.lock();
        let job = state.jobs.iter().find(|job| job.value["id"] == job_id)?;
        serde_json::from_slice(&job.request_body).ok()
    }

    /// Number of restore jobs created (a sharded restore counts one per shard plus one).
    pub fn created_jobs(&self) -> usize {
        self.lock().jobs.len()
    }

    /// Requests on `route` that passed authentication and were processed (whatever the outcome);
    /// faults that answer or drop without processing are not counted.
    pub fn authenticated_posts(&self, route: Route) -> usize {
        let state = self.lock();
        state.processed.iter().filter(|r| **r == route).count()
    }

    /// 401 answers that carried a Digest challenge.
    pub fn challenges(&self) -> usize {
        self.lock().challenges
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

impl Drop for AtlasDouble {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        self.task.abort();
    }
}

// ---------------------------------------------------------------------------------------------
// State shared by the connections.

struct State {
    base_url: String,
    api_keys: HashMap<String, String>,
    service_accounts: HashMap<String, String>,
    groups: Vec<String>,
    clusters: Vec<Cluster>,
    snapshots: Vec<Snapshot>,
    checkpoints: Vec<Checkpoint>,
    jobs: Vec<Job>,
    cloud_snapshots: Vec<CloudSnapshot>,
    cloud_jobs: Vec<CloudJob>,
    nonces: HashMap<String, Nonce>,
    tokens: HashMap<String, Token>,
    token_ttl: Duration,
    nonce_ttl: Duration,
    strict_nc: bool,
    faults: VecDeque<(Route, Fault)>,
    requests: Vec<RecordedRequest>,
    processed: Vec<Route>,
    challenges: usize,
}

#[derive(Clone)]
struct Cluster {
    group_id: String,
    name: String,
    id: String,
    shards: usize,
}

struct Snapshot {
    group_id: String,
    cluster_name: String,
    id: String,
    created: DateTime<Utc>,
    complete: bool,
}

struct Checkpoint {
    group_id: String,
    cluster_name: String,
    id: String,
    timestamp: DateTime<Utc>,
}

struct Job {
    group_id: String,
    cluster_name: String,
    value: Value,
    request_body: Vec<u8>,
}

struct CloudSnapshot {
    group_id: String,
    cluster_name: String,
    id: String,
    created_at: DateTime<Utc>,
    status: String,
}

struct CloudJob {
    group_id: String,
    cluster_name: String,
    value: Value,
    request_body: Vec<u8>,
    created_at: DateTime<Utc>,
    /// `(targetGroupId, targetClusterName)` for `automated` and `pointInTime` jobs.
    target: Option<(String, String)>,
}

struct Nonce {
    issued: Instant,
    expired: bool,
    seen_nc: HashSet<u32>,
    seen_pairs: HashSet<(u32, String)>,
}

struct Token {
    client_id: String,
    expires: Instant,
    revoked: bool,
}

impl State {
    fn new(base_url: String) -> State {
        State {
            base_url,
            api_keys: HashMap::new(),
            service_accounts: HashMap::new(),
            groups: Vec::new(),
            clusters: Vec::new(),
            snapshots: Vec::new(),
            checkpoints: Vec::new(),
            jobs: Vec::new(),
            cloud_snapshots: Vec::new(),
            cloud_jobs: Vec::new(),
            nonces: HashMap::new(),
            tokens: HashMap::new(),
            token_ttl: Duration::from_secs(3600),
            nonce_ttl: Duration::from_secs(300),
            strict_nc: false,
            faults: VecDeque::new(),
            requests: Vec::new(),
            processed: Vec::new(),
            challenges: 0,
        }
    }

    fn ensure_group(&mut self, group_id: &str) {
        if !self.groups.iter().any(|g| g == group_id) {
            self.groups.push(group_id.to_owned());
        }
    }

    fn cluster(&self, group_id: &str, name: &str) -> Option<&Cluster> {
        self.clusters
            .iter()
            .find(|c| c.group_id == group_id && c.name == name)
    }

    fn pop_fault(&mut self, route: Route) -> Option<Fault> {
        let index = self.faults.iter().position(|(r, _)| *r == route)?;
        self.faults.remove(index).map(|(_, fault)| fault)
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

// ---------------------------------------------------------------------------------------------
// Answers.

/// An answer before rendering (envelope, pretty printing).
struct Reply {
    status: u16,
    body: ReplyBody,
    /// `Content-Type` of a JSON body.
    media_type: &'static str,
    headers: Vec<(&'static str, String)>,
    /// False for answers that `envelope=true` must not wrap (authentication, OAuth).
    envelope: bool,
}

enum ReplyBody {
    Json(Value),
    Text(String),
}

impl Reply {
    fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            body: ReplyBody::Json(body),
            media_type: "application/json",
            headers: Vec::new(),
            envelope: true,
        }
    }

    fn text(status: u16, body: String) -> Reply {
        Reply {
            status,
            body: ReplyBody::Text(body),
            media_type: "application/json",
            headers: Vec::new(),
            envelope: false,
        }
    }

    /// The body as text, for a test's panic message.
    fn body_text(&self) -> String {
        match &self.body {
            ReplyBody::Json(body) => body.to_string(),
            ReplyBody::Text(text) => text.clone(),
        }
    }

    /// An Atlas `ApiError`.
    fn api_error(status: u16, error_code: &str, detail: impl Into<String>) -> Reply {
        Reply::json(
            status,
            json!({
                "detail": detail.into(),
                "error": status,
                "errorCode": error_code,
                "parameters": [],
                "reason": reason_phrase(status),
            }),
        )
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    fn no_envelope(mut self) -> Reply {
        self.envelope = false;
        self
    }

    /// A JSON body served as `application/vnd.atlas.2023-01-01+json` (v2 success answers).
    fn versioned(mut self) -> Reply {
        self.media_type = cloud::VERSIONED_MEDIA_TYPE;
        self
    }
}

fn reason_phrase(status: u16) -> &'static str {
    StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Unknown")
}

fn render(reply: Reply, envelope: bool, pretty: bool) -> (u16, Response<Full<Bytes>>) {
    let (status, content_type, text) = match reply.body {
        ReplyBody::Json(mut body) => {
            let mut status = reply.status;
            if envelope && reply.envelope {
                body = match body {
                    Value::Object(mut page) if page.contains_key("results") => {
                        page.insert("status".into(), json!(status));
                        Value::Object(page)
                    }
                    content => json!({"status": status, "content": content}),
                };
                status = 200;
            }
            let text = if pretty {
                serde_json::to_string_pretty(&body)
            } else {
                serde_json::to_string(&body)
            };
            (status, reply.media_type, text.expect("JSON renders"))
        }
        ReplyBody::Text(text) => (reply.status, "text/plain; charset=utf-8", text),
    };
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut builder = Response::builder()
        .status(code)
        .header("content-type", content_type);
    for (name, value) in reply.headers {
        builder = builder.header(name, value);
    }
    let response = builder
        .body(Full::new(Bytes::from(text)))
        .expect("valid response");
    (code.as_u16(), response)
}

// ---------------------------------------------------------------------------------------------
// Server.

/// The error a service returns to make hyper close the connection without answering.
#[derive(Debug)]
struct Dropped;

impl fmt::Display for Dropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection dropped by the Atlas double")
    }
}

impl Error for Dropped {}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<Mutex<State>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let state = state.clone();
                let mut shutdown = shutdown.clone();
                connections.spawn(async move {
                    let service = service_fn(move |request| handle(state.clone(), request));
                    let connection = http1::Builder::new()
                        .keep_alive(true)
                        .timer(TokioTimer::new())
                        .serve_connection(TokioIo::new(stream), service);
                    tokio::select! {
                        _ = connection => {}
                        _ = shutdown.changed() => {}
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.abort_all();
}

async fn handle(
    state: Arc<Mutex<State>>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let (parts, body) = request.into_parts();
    let method = parts.method.as_str().to_owned();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().map(str::to_owned);
    let headers = parts
        .headers
        .iter()
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_owned(), value)
        })
        .collect();
    let target = api::resolve(&method, &path);
    let index = {
        let mut state = lock(&state);
        state.requests.push(RecordedRequest {
            method: method.clone(),
            path: path.clone(),
            query: query.clone(),
            route: target.route(),
            auth: RecordedAuth::None,
            body: Vec::new(),
            status: None,
            headers,
        });
        state.requests.len() - 1
    };
    let query = api::Query::parse(query.as_deref());
    let exchange = Exchange {
        state: state.clone(),
        index,
        method,
        request_target: parts
            .uri
            .path_and_query()
            .map_or_else(|| path.clone(), |pq| pq.as_str().to_owned()),
        headers: parts.headers,
        query,
    };
    let envelope = path.starts_with("/api/atlas/") && exchange.query.flag("envelope");
    let pretty = exchange.query.flag("pretty");
    let reply = exchange.serve(target, body).await?;
    let (status, response) = render(reply, envelope, pretty);
    lock(&state).requests[index].status = Some(status);
    Ok(response)
}

/// One request being served.
struct Exchange {
    state: Arc<Mutex<State>>,
    index: usize,
    method: String,
    request_target: String,
    headers: hyper::HeaderMap,
    query: api::Query,
}

impl Exchange {
    async fn serve(self, target: api::Target, body: Incoming) -> Result<Reply, Dropped> {
        match target {
            api::Target::Outside => {
                self.read_body(body).await?;
                Ok(api::not_found(&self.request_target))
            }
            api::Target::Token => self.serve_token(body).await,
            target => self.serve_api(target, body).await,
        }
    }

    async fn serve_token(self, body: Incoming) -> Result<Reply, Dropped> {
        if self.method != "POST" {
            self.read_body(body).await?;
            return Ok(api::method_not_allowed("POST").no_envelope());
        }
        let (recorded, client) = auth::check_client(&lock(&self.state), &self.headers);
        self.set_auth(recorded);
        let Some(client_id) = client else {
            self.read_body(body).await?;
            return Ok(auth::invalid_client());
        };
        let content_type = self
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        self.run(Route::Token, body, move |state, bytes| {
            auth::issue_token(state, &client_id, &content_type, bytes)
        })
        .await
    }

    async fn serve_api(self, target: api::Target, body: Incoming) -> Result<Reply, Dropped> {
        let (recorded, rejection) = auth::check_api(
            &mut lock(&self.state),
            &self.method,
            &self.request_target,
            &self.headers,
        );
        self.set_auth(recorded);
        if let Some(rejection) = rejection {
            self.read_body(body).await?;
            return Ok(rejection);
        }
        match target {
            api::Target::Api(route, params) => {
                let query = self.query.clone();
                let headers = self.headers.clone();
                self.run(route, body, move |state, bytes| {
                    api::process(state, route, &params, &query, &headers, bytes)
                })
                .await
            }
            api::Target::MethodNotAllowed(allow) => {
                self.read_body(body).await?;
                Ok(api::method_not_allowed(allow))
            }
            _ => {
                self.read_body(body).await?;
                Ok(api::not_found(&self.request_target))
            }
        }
    }

    /// Applies the next fault queued for `route` (if any) around `process`.
    async fn run<F>(self, route: Route, body: Incoming, process: F) -> Result<Reply, Dropped>
    where
        F: FnOnce(&mut State, &[u8]) -> Reply,
    {
        let fault = lock(&self.state).pop_fault(route);
        if matches!(fault, Some(Fault::DropBeforeBody)) {
            return Err(Dropped);
        }
        let bytes = self.read_body(body).await?;
        let state = self.state.clone();
        let process = move || {
            let mut state = lock(&state);
            state.processed.push(route);
            process(&mut state, &bytes)
        };
        match fault {
            None => Ok(process()),
            Some(Fault::Status {
                status,
                error_code,
                retry_after,
            }) => {
                let reply =
                    Reply::api_error(status, &error_code, "Fault injected by the Atlas double.");
                Ok(match retry_after {
                    Some(seconds) => reply.header("retry-after", seconds.to_string()),
                    None => reply,
                })
            }
            Some(Fault::NonJson {
                status,
                body,
                process: run,
            }) => {
                if run {
                    process();
                }
                Ok(Reply::text(status, body))
            }
            Some(Fault::DelayThenProcess(delay)) => {
                tokio::time::sleep(delay).await;
                Ok(process())
            }
            Some(Fault::ProcessThenDelay(delay)) => {
                let reply = process();
                tokio::time::sleep(delay).await;
                Ok(reply)
            }
            Some(Fault::DropBeforeBody | Fault::DropAfterBody) => Err(Dropped),
            Some(Fault::CreateThenFail { status, error_code }) => {
                process();
                Ok(Reply::api_error(
                    status,
                    &error_code,
                    "Fault injected by the Atlas double.",
                ))
            }
            Some(Fault::CreateThenDrop) => {
                process();
                Err(Dropped)
            }
        }
    }

    async fn read_body(&self, body: Incoming) -> Result<Vec<u8>, Dropped> {
        let bytes = body
            .collect()
            .await
            .map_err(|_| Dropped)?
            .to_bytes()
            .to_vec();
        lock(&self.state).requests[self.index].body = bytes.clone();
        Ok(bytes)
    }

    fn set_auth(&self, auth: RecordedAuth) {
        lock(&self.state).requests[self.index].auth = auth;
    }
}

/// A MongoDB ObjectId made at `created`: its first 4 bytes, big-endian, are the time in seconds
/// since the epoch, the rest random. Atlas's ids (jobs, batches, snapshots) all are.
pub fn object_id(created: DateTime<Utc>) -> String {
    let seconds = u32::try_from(created.timestamp()).expect("a time between 1970 and 2106");
    format!("{seconds:08x}{}", random_hex(8))
}

fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::fill(&mut buffer[..]);
    hex::encode(buffer)
}

/// The MD5 of `text` in lower-case hex, as Digest's `HA1`, `HA2` and `response` are written
/// (the double checks them in `atlas_double/auth.rs`; tests/atlas_double.rs computes them).
pub fn md5_hex(text: &str) -> String {
    hex::encode(Md5::digest(text.as_bytes()))
}
