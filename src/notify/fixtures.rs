//! Outcomes the tests of both formats render.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;

use crate::outcome::{AtlasSummary, ErrorCode, JobSummary, Outcome, OutcomeKind, Problem, Trigger};

pub(super) fn at(seconds: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 17, 6, seconds).unwrap()
}

pub(super) fn submitted() -> Outcome {
    Outcome {
        outcome: OutcomeKind::Submitted,
        request_id: Some("approval-7f3a".into()),
        trigger: Trigger::Webhook,
        group_id: Some("5e2211c17a3e5a48f5497de3".into()),
        cluster_name: Some("orders".into()),
        backup_type: Some("legacy".into()),
        restore: Some(json!({
            "snapshotId": "5f1c6b1e2a9b4f3d8c7e6a5b",
            "delivery": {
                "methodName": "AUTOMATED_RESTORE",
                "targetGroupId": "5e2211c17a3e5a48f5497de3",
                "targetClusterName": "orders-drill"
            }
        })),
        atlas: Some(AtlasSummary {
            http_status: Some(200),
            jobs: vec![JobSummary {
                id: "6a1b2c3d4e5f6a7b8c9d0e1f".into(),
                batch_id: None,
                status_name: Some("IN_PROGRESS".into()),
                target_cluster_name: Some("orders-drill".into()),
                delivery_status_name: None,
            }],
            ..AtlasSummary::default()
        }),
        errors: vec![],
        requested_by: Some("U024BE7LH".into()),
        approved_by: Some("U0G9QF9C6".into()),
        reason: Some("INC-4211 drop of orders.items".into()),
        started_at: at(15),
        finished_at: at(16),
        first: None,
        notified: None,
        duration_seconds: None,
        drill: None,
        report_url: None,
    }
}

pub(super) fn with(kind: OutcomeKind, change: impl FnOnce(&mut Outcome)) -> Outcome {
    let mut outcome = submitted();
    outcome.outcome = kind;
    change(&mut outcome);
    outcome
}

pub(super) fn rejected() -> Outcome {
    with(OutcomeKind::Rejected, |o| {
        o.atlas = None;
        o.errors = vec![
            Problem::new(
                "/restore/snapshotID",
                ErrorCode::UnknownField,
                "unknown field \"snapshotID\"; did you mean \"snapshotId\"?",
            ),
            Problem::new(
                "/approvedBy",
                ErrorCode::SelfApproval,
                "approver is the requester",
            ),
        ];
    })
}

pub(super) fn failed() -> Outcome {
    with(OutcomeKind::Failed, |o| {
        o.atlas = Some(AtlasSummary {
            http_status: Some(400),
            error_code: Some("INVALID_SNAPSHOT_ID".into()),
            detail: Some("Snapshot 5f1c6b1e2a9b4f3d8c7e6a5b not found.".into()),
            reason: Some("Bad Request".into()),
            ..AtlasSummary::default()
        });
    })
}

pub(super) fn unknown() -> Outcome {
    with(OutcomeKind::Unknown, |o| {
        o.atlas = Some(AtlasSummary {
            http_status: Some(502),
            ..AtlasSummary::default()
        });
    })
}
