//! The outcome of a command: what every trigger answers and what is published.
//! Pure data: no I/O.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::atlas_api::model::RestoreJob;

/// Machine-readable code of one problem with a command (CONTRACT section 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    Required,
    UnknownField,
    ReadOnlyField,
    InvalidType,
    InvalidFormat,
    OutOfRange,
    OutOfWindow,
    Conflict,
    UnsupportedMethod,
    NotAllowedWithMethod,
    MalformedJson,
    BodyTooLarge,
    UnknownEvent,
    ApproverNotAllowed,
    SelfApproval,
    ProtectedTarget,
    UnresolvedTarget,
    KeyReused,
    SnapshotNotFound,
    FollowNeedsQueue,
    DrillsNotConfigured,
}

impl ErrorCode {
    /// Approval-policy problems turn a webhook's 400 into a 403.
    pub fn is_policy(self) -> bool {
        matches!(
            self,
            ErrorCode::ApproverNotAllowed | ErrorCode::SelfApproval | ErrorCode::ProtectedTarget
        )
    }
}

impl std::fmt::Display for ErrorCode {
    /// The code as the contract spells it (`NOT_ALLOWED_WITH_METHOD`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::String(code)) => f.write_str(&code),
            _ => write!(f, "{self:?}"),
        }
    }
}

/// One problem with a command: `field` is a JSON Pointer into the command (RFC 6901).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub field: String,
    pub code: ErrorCode,
    pub message: String,
}

impl Problem {
    pub fn new(field: impl Into<String>, code: ErrorCode, message: impl Into<String>) -> Self {
        Problem {
            field: field.into(),
            code,
            message: message.into(),
        }
    }
}

/// What happened to a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OutcomeKind {
    Submitted,
    DryRun,
    Rejected,
    Failed,
    Unknown,
    Duplicate,
    Queued,
    /// Followed to its end (CONTRACT section 6): every job ended well.
    Finished,
    /// Followed to its end: a job ended badly.
    Broken,
    /// Followed until `FOLLOW_MAX_HOURS` without every job ending.
    Stalled,
}

impl OutcomeKind {
    /// Whether the idempotency key stays held after this outcome (CONTRACT section 3).
    /// Keys that are not kept are released so a corrected command can use them.
    pub fn keeps_key(self) -> bool {
        matches!(
            self,
            OutcomeKind::Submitted
                | OutcomeKind::Unknown
                | OutcomeKind::Queued
                | OutcomeKind::Finished
                | OutcomeKind::Broken
                | OutcomeKind::Stalled
        )
    }

    /// The final outcomes of a followed request (CONTRACT section 6).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            OutcomeKind::Finished | OutcomeKind::Broken | OutcomeKind::Stalled
        )
    }

    /// Whether this outcome is published to the topic.
    pub fn is_published(self) -> bool {
        !matches!(self, OutcomeKind::Duplicate | OutcomeKind::Queued)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeKind::Submitted => "SUBMITTED",
            OutcomeKind::DryRun => "DRY_RUN",
            OutcomeKind::Rejected => "REJECTED",
            OutcomeKind::Failed => "FAILED",
            OutcomeKind::Unknown => "UNKNOWN",
            OutcomeKind::Duplicate => "DUPLICATE",
            OutcomeKind::Queued => "QUEUED",
            OutcomeKind::Finished => "FINISHED",
            OutcomeKind::Broken => "BROKEN",
            OutcomeKind::Stalled => "STALLED",
        }
    }
}

/// Which kind of caller sent the command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Webhook,
    Schedule,
    Direct,
    Event,
}

/// What Atlas said, as far as the outcome needs it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AtlasSummary {
    pub http_status: Option<u16>,
    pub jobs: Vec<JobSummary>,
    pub error_code: Option<String>,
    pub detail: Option<String>,
    pub reason: Option<String>,
    pub reconciled: bool,
}

/// One restore job as the outcome reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSummary {
    pub id: String,
    pub batch_id: Option<String>,
    pub status_name: Option<String>,
    pub target_cluster_name: Option<String>,
    /// A download job's `delivery.statusName` (legacy), as last read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_status_name: Option<String>,
}

impl JobSummary {
    /// A job as Atlas served it, reduced to what the outcome reports.
    pub fn from_job(job: &RestoreJob) -> JobSummary {
        let delivery = job.delivery.as_ref();
        JobSummary {
            id: job.id.clone(),
            batch_id: job.batch_id.clone(),
            status_name: job.status_name.clone(),
            // Legacy jobs hold the target in `delivery`; Cloud Backup jobs at the top.
            target_cluster_name: delivery
                .and_then(|d| d.target_cluster_name.clone())
                .or_else(|| {
                    job.other
                        .get("targetClusterName")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                }),
            delivery_status_name: delivery.and_then(|d| d.status_name.clone()),
        }
    }
}

/// Every command ends in one outcome (CONTRACT section 3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub outcome: OutcomeKind,
    pub request_id: Option<String>,
    pub trigger: Trigger,
    pub group_id: Option<String>,
    pub cluster_name: Option<String>,
    pub backup_type: Option<String>,
    /// The exact body sent to Atlas, or that would have been sent.
    pub restore: Option<Value>,
    pub atlas: Option<AtlasSummary>,
    pub errors: Vec<Problem>,
    pub requested_by: Option<String>,
    pub approved_by: Option<String>,
    pub reason: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// For `DUPLICATE`: the first outcome under this key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first: Option<Box<Outcome>>,
    /// On the webhook path: `false` when publishing the outcome failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notified: Option<bool>,
    /// For a final outcome (`FINISHED`, `BROKEN`, `STALLED`): from the submission to the
    /// moment the end was seen, in whole seconds (the drill's measured recovery time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<u64>,
    /// For a drill (CONTRACT section 7): its name and targets, and on its final outcome the
    /// figures measured and the verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill: Option<DrillFigures>,
    /// On a drill's final outcome, with `PUBLIC_BASE_URL` set: a signed link to its report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_url: Option<String>,
}

/// A drill as its outcomes carry it (CONTRACT section 7).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DrillFigures {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rto_target_minutes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo_target_minutes: Option<u32>,
    /// The moment whose data was restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_point_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rto_seconds: Option<u64>,
    /// `PASSED`, `MISSED_TARGET`, or the outcome that ended the drill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    /// With `MISSED_TARGET`: `rto`, `rpo` or both.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missed: Vec<String>,
}

impl DrillFigures {
    /// A drill before it is measured: its name and targets.
    pub fn of(spec: &crate::command::DrillSpec) -> DrillFigures {
        DrillFigures {
            name: spec.name.to_string(),
            rto_target_minutes: spec.rto_target_minutes.map(|m| m.get()),
            rpo_target_minutes: spec.rpo_target_minutes.map(|m| m.get()),
            ..DrillFigures::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submitted_unknown_queued_and_the_final_outcomes_keep_the_key() {
        use OutcomeKind::*;
        let kept: Vec<_> = ALL.into_iter().filter(|k| k.keeps_key()).collect();
        assert_eq!(
            kept,
            vec![Submitted, Unknown, Queued, Finished, Broken, Stalled]
        );
        let finals: Vec<_> = ALL.into_iter().filter(|k| k.is_final()).collect();
        assert_eq!(finals, vec![Finished, Broken, Stalled]);
    }

    const ALL: [OutcomeKind; 10] = [
        OutcomeKind::Submitted,
        OutcomeKind::DryRun,
        OutcomeKind::Rejected,
        OutcomeKind::Failed,
        OutcomeKind::Unknown,
        OutcomeKind::Duplicate,
        OutcomeKind::Queued,
        OutcomeKind::Finished,
        OutcomeKind::Broken,
        OutcomeKind::Stalled,
    ];

    #[test]
    fn duplicate_and_queued_are_not_published() {
        use OutcomeKind::*;
        let silent: Vec<_> = ALL.into_iter().filter(|k| !k.is_published()).collect();
        assert_eq!(silent, vec![Duplicate, Queued]);
    }

    #[test]
    fn codes_and_kinds_serialise_as_the_contract_spells_them() {
        assert_eq!(
            serde_json::to_value(ErrorCode::NotAllowedWithMethod).unwrap(),
            "NOT_ALLOWED_WITH_METHOD"
        );
        assert_eq!(
            serde_json::to_value(ErrorCode::KeyReused).unwrap(),
            "KEY_REUSED"
        );
        assert_eq!(
            serde_json::to_value(OutcomeKind::DryRun).unwrap(),
            "DRY_RUN"
        );
        for kind in ALL {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        assert_eq!(serde_json::to_value(Trigger::Webhook).unwrap(), "webhook");
    }

    #[test]
    fn policy_codes_are_exactly_the_three_of_the_contract() {
        assert!(ErrorCode::SelfApproval.is_policy());
        assert!(ErrorCode::ApproverNotAllowed.is_policy());
        assert!(ErrorCode::ProtectedTarget.is_policy());
        assert!(!ErrorCode::UnknownField.is_policy());
        assert!(!ErrorCode::KeyReused.is_policy());
    }
}
