//! The outcomes the runner builds.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::atlas_api::AtlasError;
use crate::atlas_api::model::{ApiError, RestoreJob};
use crate::outcome::{
    AtlasSummary, DrillFigures, ErrorCode, JobSummary, Outcome, OutcomeKind, Problem,
};
use crate::ports::{Clock, Ports};

use super::submit::{Attempt, Submission};
use super::*;

impl<P: Ports> Runner<P> {
    pub(super) fn outcome(
        &self,
        request: &RunRequest,
        kind: OutcomeKind,
        started_at: DateTime<Utc>,
    ) -> Outcome {
        let command = &request.command;
        Outcome {
            outcome: kind,
            request_id: Some(request.request_id.clone()),
            trigger: request.trigger,
            group_id: Some(command.source.group_id.to_string()),
            cluster_name: Some(command.source.cluster_name.to_string()),
            backup_type: Some(command.restore.backup_type().as_str().to_owned()),
            restore: None,
            atlas: None,
            errors: Vec::new(),
            requested_by: command.requested_by.clone(),
            approved_by: command.approved_by.clone(),
            reason: command.reason.clone(),
            started_at,
            finished_at: self.clock.now(),
            first: None,
            notified: None,
            duration_seconds: None,
            drill: command.drill.as_ref().map(DrillFigures::of),
            report_url: None,
        }
    }

    pub(super) fn submitted(
        &self,
        submission: &Submission<'_>,
        http_status: Option<u16>,
        jobs: Vec<RestoreJob>,
        reconciled: bool,
    ) -> Outcome {
        let summary = AtlasSummary {
            http_status,
            jobs: jobs.iter().map(JobSummary::from_job).collect(),
            reconciled,
            ..AtlasSummary::default()
        };
        self.sent_outcome(submission, OutcomeKind::Submitted, summary)
    }

    pub(super) fn failed(
        &self,
        submission: &Submission<'_>,
        http_status: Option<u16>,
        error: ApiError,
    ) -> Outcome {
        let summary = AtlasSummary {
            http_status,
            error_code: error.error_code,
            detail: error.detail,
            reason: error.reason,
            ..AtlasSummary::default()
        };
        self.sent_outcome(submission, OutcomeKind::Failed, summary)
    }

    pub(super) fn unknown(
        &self,
        submission: &Submission<'_>,
        http_status: Option<u16>,
        reason: String,
        error: Option<ApiError>,
    ) -> Outcome {
        let error = error.unwrap_or_default();
        let summary = AtlasSummary {
            http_status,
            error_code: error.error_code,
            detail: error.detail.or(error.reason),
            reason: Some(reason),
            ..AtlasSummary::default()
        };
        self.sent_outcome(submission, OutcomeKind::Unknown, summary)
    }

    /// The outcome of a restore that was (or may have been) sent: the body and what Atlas said.
    pub(super) fn sent_outcome(
        &self,
        submission: &Submission<'_>,
        kind: OutcomeKind,
        atlas: AtlasSummary,
    ) -> Outcome {
        self.outcome(submission.request, kind, submission.attempt.started_at)
            .with_restore(&submission.body)
            .with_atlas(atlas)
    }

    pub(super) fn no_snapshot(&self, request: &RunRequest, attempt: &Attempt) -> Outcome {
        let problem = Problem::new(
            "/restorePoint",
            ErrorCode::SnapshotNotFound,
            format!(
                "{} has no completed legacy snapshot to restore from",
                request.command.source.cluster_name
            ),
        );
        self.outcome(request, OutcomeKind::Rejected, attempt.started_at)
            .with_errors(vec![problem])
    }

    pub(super) fn failed_read(
        &self,
        request: &RunRequest,
        started_at: DateTime<Utc>,
        doing: &str,
        error: AtlasError,
    ) -> Outcome {
        let (http_status, api_error) = match &error {
            AtlasError::Api { status, error } | AtlasError::Unauthorized { status, error } => {
                (Some(*status), error.clone())
            }
            _ => (None, ApiError::default()),
        };
        let summary = AtlasSummary {
            http_status,
            error_code: api_error.error_code,
            detail: api_error.detail,
            reason: Some(format!("{doing} failed: {error}")),
            ..AtlasSummary::default()
        };
        self.outcome(request, OutcomeKind::Failed, started_at)
            .with_atlas(summary)
    }
}

impl Outcome {
    pub(super) fn with_errors(mut self, errors: Vec<Problem>) -> Outcome {
        self.errors = errors;
        self
    }

    pub(super) fn with_restore(mut self, body: &Value) -> Outcome {
        self.restore = Some(body.clone());
        self
    }

    pub(super) fn with_atlas(mut self, atlas: AtlasSummary) -> Outcome {
        self.atlas = Some(atlas);
        self
    }
}
