//! The HTTP client as the runner's [`Atlas`] port.

use std::future::Future;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::time::Instant;

use super::AtlasClient;
use crate::atlas_api::model::{CloudSnapshot, Cluster, RestoreJob, Snapshot};
use crate::atlas_api::{AtlasError, CreateAnswer};
use crate::command::{ObjectId, SourceCluster};
use crate::drill::RestorePoint;
use crate::ports::{Atlas, DependencyError};

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
        group_id: &ObjectId,
        deadline: Instant,
    ) -> impl Future<Output = Result<Vec<Cluster>, AtlasError>> + Send {
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
    ) -> impl Future<Output = Result<Vec<CloudSnapshot>, AtlasError>> + Send {
        AtlasClient::list_cloud_snapshots(self, source, deadline)
    }

    fn get_restore_job(
        &self,
        source: &SourceCluster,
        job_id: &str,
        deadline: Instant,
    ) -> impl Future<Output = Result<RestoreJob, AtlasError>> + Send {
        AtlasClient::get_restore_job(self, source, job_id, deadline)
    }

    fn get_cloud_restore_job(
        &self,
        source: &SourceCluster,
        job_id: &str,
        deadline: Instant,
    ) -> impl Future<Output = Result<RestoreJob, AtlasError>> + Send {
        AtlasClient::get_cloud_restore_job(self, source, job_id, deadline)
    }

    fn get_restore_point(
        &self,
        source: &SourceCluster,
        point: &RestorePoint,
        deadline: Instant,
    ) -> impl Future<Output = Result<Value, AtlasError>> + Send {
        AtlasClient::get_restore_point(self, source, point, deadline)
    }

    fn load_credentials(&self) -> impl Future<Output = Result<(), DependencyError>> + Send {
        AtlasClient::load_credentials(self)
    }
}
