//! The small traits the runner is written against. Each has a real adapter (Atlas over HTTP,
//! AWS services through the SDK); unit tests of the runner may use in-process fakes.

use std::future::Future;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::time::Instant;

use crate::atlas::model::{RestoreJob, Snapshot};
use crate::atlas::{AtlasClient, AtlasCredentials, AtlasError, CreateAnswer};
use crate::command::SourceCluster;
use crate::outcome::Outcome;
use crate::secret::Secret;

/// A dependency (Secrets Manager, DynamoDB, SNS, SQS) failed: not an outcome. The invocation
/// fails so that Lambda or SQS retries it; the webhook answers 503.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{service} failed: {message}")]
pub struct DependencyError {
    pub service: &'static str,
    pub message: String,
}

impl DependencyError {
    pub fn new(service: &'static str, message: impl Into<String>) -> DependencyError {
        DependencyError {
            service,
            message: message.into(),
        }
    }
}

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
        group_id: &crate::command::ObjectId,
        deadline: Instant,
    ) -> impl Future<Output = Result<Vec<crate::atlas::model::Cluster>, AtlasError>> + Send;

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
    ) -> impl Future<Output = Result<Vec<crate::atlas::model::CloudSnapshot>, AtlasError>> + Send;

    /// Replaces the credentials after the secret was fetched again.
    fn set_credentials(&self, credentials: AtlasCredentials);
}

impl Atlas for AtlasClient {
    fn create_legacy_restore_job(
        &self,
        source: &SourceCluster,
        body: &Value,
        deadline: Instant,
    ) -> impl Future<Output = CreateAnswer> + Send {
        AtlasClient::create_legacy_restore_job(self, source, body, deadline)
    }

    fn list_restore_jobs(
        &self,
        source: &SourceCluster,
        created_since: Option<DateTime<Utc>>,
        deadline: Instant,
    ) -> impl Future<Output = Result<Vec<RestoreJob>, AtlasError>> + Send {
        AtlasClient::list_restore_jobs(self, source, created_since, deadline)
    }

    fn list_completed_snapshots(
        &self,
        source: &SourceCluster,
        deadline: Instant,
    ) -> impl Future<Output = Result<Vec<Snapshot>, AtlasError>> + Send {
        AtlasClient::list_completed_snapshots(self, source, deadline)
    }

    fn list_clusters(
        &self,
        group_id: &crate::command::ObjectId,
        deadline: Instant,
    ) -> impl Future<Output = Result<Vec<crate::atlas::model::Cluster>, AtlasError>> + Send {
        AtlasClient::list_clusters(self, group_id, deadline)
    }

    fn create_cloud_restore_job(
        &self,
        source: &SourceCluster,
        body: &Value,
        deadline: Instant,
    ) -> impl Future<Output = CreateAnswer> + Send {
        AtlasClient::create_cloud_restore_job(self, source, body, deadline)
    }

    fn list_cloud_restore_jobs(
        &self,
        source: &SourceCluster,
        deadline: Instant,
    ) -> impl Future<Output = Result<Vec<RestoreJob>, AtlasError>> + Send {
        AtlasClient::list_cloud_restore_jobs(self, source, deadline)
    }

    fn list_cloud_snapshots(
        &self,
        source: &SourceCluster,
        deadline: Instant,
    ) -> impl Future<Output = Result<Vec<crate::atlas::model::CloudSnapshot>, AtlasError>> + Send
    {
        AtlasClient::list_cloud_snapshots(self, source, deadline)
    }

    fn set_credentials(&self, credentials: AtlasCredentials) {
        AtlasClient::set_credentials(self, credentials)
    }
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

/// The state of one idempotency record.
#[derive(Clone, Debug, PartialEq)]
pub enum RecordState {
    /// An attempt is working on the command until `lease_until` (its invocation's deadline).
    InProgress { lease_until: DateTime<Utc> },
    /// The command ended in `outcome`; `published` once it reached the topic.
    Completed {
        outcome: Box<Outcome>,
        published: bool,
    },
}

/// One idempotency record (one key).
#[derive(Clone, Debug, PartialEq)]
pub struct IdempotencyRecord {
    pub key: String,
    pub fingerprint: String,
    pub state: RecordState,
    /// Counts attempts; a write by an attempt that has been superseded is refused.
    pub attempt: u64,
    /// When the first attempt started: reconciliation looks for jobs created since then.
    pub first_started_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// What `begin` found.
#[derive(Clone, Debug, PartialEq)]
pub enum Begin {
    /// The key was free: this attempt holds it.
    Started { attempt: u64 },
    /// An earlier attempt held the key past its lease (it died): this attempt holds it now and
    /// must reconcile with Atlas, from `first_started_at`, before sending anything.
    TakenOver {
        attempt: u64,
        first_started_at: DateTime<Utc>,
    },
    /// The key is held by a record this attempt must answer from.
    Held(IdempotencyRecord),
}

/// Where idempotency records live (DynamoDB), written with conditions so two attempts never
/// both believe they hold a key.
pub trait IdempotencyStore: Send + Sync {
    /// Takes the key for a new attempt, or says who holds it.
    fn begin(
        &self,
        key: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> impl Future<Output = Result<Begin, DependencyError>> + Send;

    /// Stores the outcome (not yet published), if `attempt` still holds the key; the storing
    /// attempt holds the right to publish it until `publish_claim_until`.
    fn store_outcome(
        &self,
        key: &str,
        attempt: u64,
        outcome: &Outcome,
        publish_claim_until: DateTime<Utc>,
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

    /// Claims a key whose stored outcome is `QUEUED` (the webhook handed the command to the
    /// work queue) for the attempt that runs it: `Some(attempt)` when this caller got it.
    fn claim_queued(
        &self,
        key: &str,
        seen_attempt: u64,
        lease_until: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<u64>, DependencyError>> + Send;

    /// Marks the stored outcome as published.
    fn mark_published(&self, key: &str)
    -> impl Future<Output = Result<(), DependencyError>> + Send;

    /// Deletes the record, if `attempt` still holds the key: the key is free again.
    fn release(
        &self,
        key: &str,
        attempt: u64,
    ) -> impl Future<Output = Result<(), DependencyError>> + Send;
}

/// The work queue of the webhook hand-off (`WORK_QUEUE_URL`).
pub trait WorkQueue: Send + Sync {
    fn send(&self, message: String) -> impl Future<Output = Result<(), DependencyError>> + Send;
}
