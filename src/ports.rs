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
        DependencyError { service, message: message.into() }
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
    fn atlas_credentials(&self, refresh: bool) -> impl Future<Output = Result<AtlasCredentials, DependencyError>> + Send;

    fn webhook_signing_secrets(&self) -> impl Future<Output = Result<SigningSecrets, DependencyError>> + Send;
}

/// The outcome topic.
pub trait Notifier: Send + Sync {
    /// Publishes one outcome (the caller decides which outcomes are published).
    fn publish(&self, outcome: &Outcome) -> impl Future<Output = Result<(), DependencyError>> + Send;
}
