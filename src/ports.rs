//! The small traits the runner is written against. Each has a real adapter (Atlas over HTTP,
//! AWS services through the SDK); unit tests of the runner may use in-process fakes.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::time::Instant;

use crate::atlas_api::model::{CloudSnapshot, Cluster, RestoreJob, Snapshot};
use crate::atlas_api::{AtlasCredentials, AtlasError, CreateAnswer};
use crate::command::{ObjectId, SourceCluster, TaskToken};
pub use crate::dependency::DependencyError;
use crate::drill::{EvidenceRecord, RestorePoint};
use crate::outcome::Outcome;
use crate::redacted::Secret;

/// The Atlas Admin API, as the runner uses it.
pub trait Atlas: Send + Sync {
    fn create_legacy_restore_job(
        &self,
        source: &SourceCluster,
        body: &Value,
        deadline: Instant,
    ) -> impl Future<Output = CreateAnswer> + Send;

    fn list_restore_jobs(
        &self,
        source: &SourceCluster,
        created_since: Option<DateTime<Utc>>,
        deadline: Instant,
    ) -> impl Future<Output = Result<Vec<RestoreJob>, AtlasError>> + Send;

    fn list_completed_snapshots(
        &self,
        source: &SourceCluster,
        deadline: Instant,
    ) -> impl Future<Output = Result<Vec<Snapshot>, AtlasError>> + Send;

    fn list_clusters(
        &self,
        group_id: &ObjectId,
        deadline: Instant,
    ) -> impl Future<Output = Result<Vec<Cluster>, AtlasError>> + Send;

    fn create_cloud_restore_job(
        &self,
        source: &SourceCluster,
        body: &Value,
        deadline: Instant,
    ) -> impl Future<Output = CreateAnswer> + Send;

    fn list_cloud_restore_jobs(
        &self,
        source: &SourceCluster,
        deadline: Instant,
    ) -> impl Future<Output = Result<Vec<RestoreJob>, AtlasError>> + Send;

    fn list_cloud_snapshots(
        &self,
        source: &SourceCluster,
        deadline: Instant,
    ) -> impl Future<Output = Result<Vec<CloudSnapshot>, AtlasError>> + Send;

    /// `GET .../restoreJobs/{id}`: one legacy restore job as it stands now.
    fn get_restore_job(
        &self,
        source: &SourceCluster,
        job_id: &str,
        deadline: Instant,
    ) -> impl Future<Output = Result<RestoreJob, AtlasError>> + Send;

    /// `GET .../backup/restoreJobs/{id}`: one Cloud Backup restore job as it stands now.
    fn get_cloud_restore_job(
        &self,
        source: &SourceCluster,
        job_id: &str,
        deadline: Instant,
    ) -> impl Future<Output = Result<RestoreJob, AtlasError>> + Send;

    /// `GET` of the one snapshot or checkpoint a drill's restore point names (a legacy
    /// `.../snapshots/{id}`, a Cloud Backup `.../backup/snapshots/{id}`, a legacy
    /// `.../checkpoints/{id}`), as Atlas served it; [`RestorePoint::time_from`] reads its time.
    /// A point that names none answers `Value::Null` without a call.
    fn get_restore_point(
        &self,
        source: &SourceCluster,
        point: &RestorePoint,
        deadline: Instant,
    ) -> impl Future<Output = Result<Value, AtlasError>> + Send;

    /// Reads the credentials from the client's source (its cache, within the TTL) and uses
    /// them from now on; a warm session is kept when they did not change. The runner calls
    /// this before it works with Atlas, so that a failure of the source is known before
    /// anything is marked as maybe sent. After a 401 the client reads them again itself.
    fn load_credentials(&self) -> impl Future<Output = Result<(), DependencyError>> + Send;
}

/// What [`CredentialSource::credentials`] returns: boxed, so a client can hold any source.
pub type CredentialsFuture<'a> =
    Pin<Box<dyn Future<Output = Result<AtlasCredentials, DependencyError>> + Send + 'a>>;

/// Where the Atlas client reads its credentials: the [`Secrets`] port (from its cache, or
/// fetched again with `refresh`), or credentials fixed when the client was built.
pub trait CredentialSource: Send + Sync {
    /// The credentials; `refresh` skips any cache (Atlas refused the ones in use).
    fn credentials(&self, refresh: bool) -> CredentialsFuture<'_>;
}

impl<S: Secrets> CredentialSource for S {
    fn credentials(&self, refresh: bool) -> CredentialsFuture<'_> {
        Box::pin(self.atlas_credentials(refresh))
    }
}

/// Fixed credentials: every read, a refresh too, answers the same.
impl CredentialSource for AtlasCredentials {
    fn credentials(&self, _refresh: bool) -> CredentialsFuture<'_> {
        let credentials = self.clone();
        Box::pin(async move { Ok(credentials) })
    }
}

/// The adapters a runner works with, named once, so signatures read `Runner<P>` and `App<P>`.
/// The deployed function has the real ones; tests bring fakes or the in-memory store.
pub trait Ports {
    type Atlas: Atlas;
    type Secrets: Secrets;
    type Notifier: Notifier;
    type Store: IdempotencyStore;
    type Clock: Clock;
    type Queue: WorkQueue;
    /// `DRILL_TABLE` (CONTRACT section 7).
    type Drills: DrillEvidence;
    /// Step Functions (CONTRACT section 8).
    type Callbacks: TaskCallbacks;
}

/// Any six adapters as one [`Ports`]: `Runner::new` infers it from the adapters it is given.
/// The drill evidence store `D` and the Step Functions callbacks `K` are set apart
/// (`Runner::with_drills`, `Runner::with_callbacks`): without a drill table no drill runs, and
/// [`NoCallbacks`] reports to no task.
// Eight adapter types are what this plumbing is for: every signature outside it reads `P: Ports`.
#[allow(clippy::type_complexity)]
pub struct Adapters<A, S, N, I, C, Q, D = NoDrillTable, K = NoCallbacks>(
    PhantomData<AdapterTypes<A, S, N, I, C, Q, D, K>>,
);

/// The adapter types, as a function type so [`Adapters`] is `Send`, `Sync` and covariant
/// whatever they are.
type AdapterTypes<A, S, N, I, C, Q, D, K> = fn() -> (A, S, N, I, C, Q, D, K);

impl<A, S, N, I, C, Q, D, K> Ports for Adapters<A, S, N, I, C, Q, D, K>
where
    A: Atlas,
    S: Secrets,
    N: Notifier,
    I: IdempotencyStore,
    C: Clock,
    Q: WorkQueue,
    D: DrillEvidence,
    K: TaskCallbacks,
{
    type Atlas = A;
    type Secrets = S;
    type Notifier = N;
    type Store = I;
    type Clock = C;
    type Queue = Q;
    type Drills = D;
    type Callbacks = K;
}

/// The webhook signing secret: one, or two during a rotation (both verify).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningSecrets {
    pub current: Secret,
    pub previous: Option<Secret>,
}

/// Secrets Manager, cached per warm instance.
pub trait Secrets: Send + Sync {
    /// The Atlas credentials; `refresh` skips the cache (after Atlas answered 401).
    fn atlas_credentials(
        &self,
        refresh: bool,
    ) -> impl Future<Output = Result<AtlasCredentials, DependencyError>> + Send;

    fn webhook_signing_secrets(
        &self,
    ) -> impl Future<Output = Result<SigningSecrets, DependencyError>> + Send;
}

/// The outcome topic.
pub trait Notifier: Send + Sync {
    /// Publishes one outcome (the caller decides which outcomes are published).
    fn publish(
        &self,
        outcome: &Outcome,
    ) -> impl Future<Output = Result<(), DependencyError>> + Send;
}

/// The clock, so tests can pin time where they need to.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

pub use crate::ledger::{
    CallbackSettled, FollowUpState, Fresh, IdempotencyRecord, RecordState, SendingMark,
    StoredFinal, TaskCallback,
};

/// Where idempotency records live (DynamoDB), written with conditions so two attempts never
/// both believe they hold a key. The decisions are [`crate::ledger`]'s; a store only carries
/// each one out with one conditional write.
pub trait IdempotencyStore: Send + Sync {
    /// The record of a key as stored (consistent read), expired or not.
    fn read(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<IdempotencyRecord>, DependencyError>> + Send;

    /// Writes `fresh` (held by its attempt until its lease) if the key is free: no record or
    /// an expired one, or, with `replacing`, still the record whose attempt was `replacing`.
    /// `false` when that condition failed.
    fn put_fresh(
        &self,
        fresh: &Fresh<'_>,
        replacing: Option<u64>,
    ) -> impl Future<Output = Result<bool, DependencyError>> + Send;

    /// Takes the record over from attempt `seen` (a dead attempt, or a queued command a
    /// delivery claims): attempt `seen + 1` holds it until `lease_until`, its stored outcome
    /// is cleared, and its first start, sending mark and history stay. `false` when the
    /// record is no longer attempt `seen`'s, or no longer in the state the takeover was
    /// decided on: in progress past its lease at `now`, or `QUEUED` (a slow attempt that
    /// stored its outcome meanwhile keeps it).
    fn take_over(
        &self,
        key: &str,
        seen: u64,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, DependencyError>> + Send;

    /// Writes ahead of a POST that attempt `attempt` may send the restore from now on (the
    /// earliest mark stays). An error when the attempt no longer holds the key: then it must
    /// not send.
    fn mark_sending(
        &self,
        key: &str,
        attempt: u64,
        mark: &SendingMark,
    ) -> impl Future<Output = Result<(), DependencyError>> + Send;

    /// Ends the lease of attempt `attempt` now, if it still holds the key: it gave up after
    /// it may have sent, so the next attempt may take over at once (and reconcile first).
    fn end_lease(
        &self,
        key: &str,
        attempt: u64,
    ) -> impl Future<Output = Result<(), DependencyError>> + Send;

    /// Stores the outcome (not yet published), if `attempt` still holds the key; the storing
    /// attempt holds the right to publish it until `publish_claim_until`. The record now
    /// expires at `expires_at` (the key's lifetime counts from its latest outcome), and a
    /// `QUEUED` outcome keeps the digest of the body it handed over.
    fn store_outcome(
        &self,
        key: &str,
        attempt: u64,
        outcome: &Outcome,
        publish_claim_until: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        hand_off_digest: Option<&str>,
    ) -> impl Future<Output = Result<(), DependencyError>> + Send;

    /// Takes the right to publish a stored, unpublished outcome until `until`: `false` when
    /// another attempt holds it (it is publishing now) or it was published.
    fn claim_publication(
        &self,
        key: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, DependencyError>> + Send;

    /// Gives the right to publish back after a failed publish, so a retry can publish at once.
    fn release_publication_claim(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<(), DependencyError>> + Send;

    /// Marks the stored outcome as published.
    fn mark_published(&self, key: &str)
    -> impl Future<Output = Result<(), DependencyError>> + Send;

    /// Deletes the record, if `attempt` still holds the key: the key is free again.
    fn release(
        &self,
        key: &str,
        attempt: u64,
    ) -> impl Future<Output = Result<(), DependencyError>> + Send;

    /// Records that following the key's `SUBMITTED` outcome began (check 1 is due, unless a
    /// later one already is) and keeps the record until `expires_at` at least.
    fn start_follow_up(
        &self,
        key: &str,
        expires_at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), DependencyError>> + Send;

    /// Takes check number `check` of a followed request until `lease_until`: the record when
    /// this delivery may run it (the check is due, no other delivery runs it, and no final
    /// outcome was published), `None` when it may not (a stale or duplicate message).
    fn claim_check(
        &self,
        key: &str,
        check: u64,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<IdempotencyRecord>, DependencyError>> + Send;

    /// Check `check` found the jobs still running and queued the next: `check + 1` is due.
    fn next_check(
        &self,
        key: &str,
        check: u64,
    ) -> impl Future<Output = Result<(), DependencyError>> + Send;

    /// Gives check `check` back after a failure, so the message's redelivery can run it.
    fn release_check(
        &self,
        key: &str,
        check: u64,
    ) -> impl Future<Output = Result<(), DependencyError>> + Send;

    /// Stores the final outcome (not yet published), if check `check` is still the due one and
    /// no final outcome is stored; keeps the record until `expires_at` at least.
    fn store_final(
        &self,
        key: &str,
        check: u64,
        outcome: &Outcome,
        expires_at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), DependencyError>> + Send;

    /// Marks the final outcome published; no check runs after this.
    fn mark_final_published(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<(), DependencyError>> + Send;

    /// Records `token` as the task the request's end is reported to (CONTRACT section 8): a
    /// new token (a retried state) replaces the one recorded, which is then not yet settled;
    /// the same token again changes nothing. Nothing happens when there is no record.
    fn set_task_token(
        &self,
        key: &str,
        token: &TaskToken,
    ) -> impl Future<Output = Result<(), DependencyError>> + Send;

    /// Records how the callback to `token` ended (reported, or refused for good), if `token`
    /// is still the recorded one and nothing is recorded for it yet: `false` otherwise (a new
    /// token replaced it, or another attempt settled it).
    fn settle_task_callback(
        &self,
        key: &str,
        token: &TaskToken,
        settled: &CallbackSettled,
    ) -> impl Future<Output = Result<bool, DependencyError>> + Send;
}

/// The work queue: the webhook hand-off and the follow-up checks (`WORK_QUEUE_URL`).
pub trait WorkQueue: Send + Sync {
    /// Sends a message that becomes visible after `delay` (at most 15 minutes, as SQS allows).
    fn send(
        &self,
        message: String,
        delay: std::time::Duration,
    ) -> impl Future<Output = Result<(), DependencyError>> + Send;
}

/// Where drill evidence lives (`DRILL_TABLE`, CONTRACT section 7): one record per drill, keyed
/// by (drill, startedAt), never expiring.
pub trait DrillEvidence: Send + Sync {
    /// Writes `record` unless a record with its key is there: the first write stays, so a
    /// retried put never changes the evidence. `Ok(false)` when a record of another request
    /// holds the key (nothing written).
    fn put(
        &self,
        record: &EvidenceRecord,
    ) -> impl Future<Output = Result<bool, DependencyError>> + Send;

    /// The drill's records, newest first: at most `limit` (at most [`MAX_DRILL_PAGE`]), only
    /// those whose sort key is before `before` when given (a page back).
    fn list(
        &self,
        drill: &str,
        before: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<EvidenceRecord>, DependencyError>> + Send;
}

/// The most records one read of a drill's history answers.
pub const MAX_DRILL_PAGE: usize = 100;

/// No drill table (`DRILL_TABLE` unset): never built, so never called.
pub enum NoDrillTable {}

impl DrillEvidence for NoDrillTable {
    async fn put(&self, _record: &EvidenceRecord) -> Result<bool, DependencyError> {
        match *self {}
    }

    async fn list(
        &self,
        _drill: &str,
        _before: Option<&str>,
        _limit: usize,
    ) -> Result<Vec<EvidenceRecord>, DependencyError> {
        match *self {}
    }
}

/// Step Functions' task callbacks (CONTRACT section 8): the end of a request, and a heartbeat
/// on each follow-up check, reported to the task token a runbook passed.
pub trait TaskCallbacks: Send + Sync {
    /// `SendTaskSuccess`: `output` is JSON, at most 256 KiB.
    fn success(
        &self,
        token: &TaskToken,
        output: &str,
    ) -> impl Future<Output = Result<(), CallbackError>> + Send;

    /// `SendTaskFailure`: `error` names the end (`AtlasRestore.<OUTCOME>`), `cause` says why.
    fn failure(
        &self,
        token: &TaskToken,
        error: &str,
        cause: &str,
    ) -> impl Future<Output = Result<(), CallbackError>> + Send;

    /// `SendTaskHeartbeat`: the task is still being worked on.
    fn heartbeat(
        &self,
        token: &TaskToken,
    ) -> impl Future<Output = Result<(), CallbackError>> + Send;
}

/// Why a callback did not reach its task.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// Step Functions refused the token for good (`TaskDoesNotExist`, `TaskTimedOut`,
    /// `InvalidToken`, or `InvalidOutput` for what was sent): the task cannot be told anything
    /// more. Recorded, never retried.
    #[error("Step Functions refused the callback for good ({code}): {message}; it is not retried")]
    Refused { code: String, message: String },
    /// Throttling, a 5xx, the network, the deadline: retried as any dependency failure.
    #[error(transparent)]
    Dependency(#[from] DependencyError),
}

/// No Step Functions client: the runner of tests that bring no callbacks. A command with a
/// task token fails as a dependency failure would, so nothing is reported by mistake.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoCallbacks;

impl NoCallbacks {
    fn missing() -> CallbackError {
        CallbackError::Dependency(DependencyError::new(
            "Step Functions",
            "no Step Functions client is configured to report to the task token",
        ))
    }
}

impl TaskCallbacks for NoCallbacks {
    async fn success(&self, _token: &TaskToken, _output: &str) -> Result<(), CallbackError> {
        Err(NoCallbacks::missing())
    }

    async fn failure(
        &self,
        _token: &TaskToken,
        _error: &str,
        _cause: &str,
    ) -> Result<(), CallbackError> {
        Err(NoCallbacks::missing())
    }

    async fn heartbeat(&self, _token: &TaskToken) -> Result<(), CallbackError> {
        Err(NoCallbacks::missing())
    }
}
