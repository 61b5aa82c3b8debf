//! What a Step Functions task waiting on a request is told at its end (CONTRACT section 8).
//! Pure: which call an outcome makes, and its output or error and cause, within Step
//! Functions' limits. The calls themselves are the `TaskCallbacks` port's
//! (`src/aws/step_functions.rs`); when they are made is the runner's (`src/runner/callback.rs`).

use serde_json::{Value, json};

use crate::outcome::{Outcome, OutcomeKind};

/// `SendTaskSuccess`'s `output`: at most 256 KiB (UTF-8 bytes).
pub const OUTPUT_MAX_BYTES: usize = 256 * 1024;
/// `SendTaskFailure`'s `cause`: at most 32,768 characters.
pub const CAUSE_MAX_CHARS: usize = 32_768;
/// Characters kept of each text a cause quotes (a problem's message, Atlas's detail).
const CAUSE_TEXT_MAX_CHARS: usize = 1_000;
/// Problems a cause lists before it counts the rest.
const CAUSE_MAX_PROBLEMS: usize = 10;

/// How a waiting task is ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskEnd {
    /// `SendTaskSuccess` with the final outcome's JSON.
    Success { output: String },
    /// `SendTaskFailure` with `AtlasRestore.<OUTCOME>` and a JSON summary.
    Failure { error: String, cause: String },
}

impl TaskEnd {
    /// The Step Functions action, for logs.
    pub fn action(&self) -> &'static str {
        match self {
            TaskEnd::Success { .. } => "SendTaskSuccess",
            TaskEnd::Failure { .. } => "SendTaskFailure",
        }
    }
}

/// The end an outcome reports to a waiting task, or `None` when the outcome is no end: a
/// `SUBMITTED` request is followed (its end comes later), `QUEUED` and `DUPLICATE` answer an
/// arrival, not the request.
pub fn task_end(outcome: &Outcome) -> Option<TaskEnd> {
    match outcome.outcome {
        OutcomeKind::Finished | OutcomeKind::DryRun => Some(TaskEnd::Success {
            output: success_output(outcome),
        }),
        OutcomeKind::Broken
        | OutcomeKind::Stalled
        | OutcomeKind::Rejected
        | OutcomeKind::Failed
        | OutcomeKind::Unknown => Some(TaskEnd::Failure {
            error: error_name(outcome.outcome),
            cause: failure_cause(outcome),
        }),
        OutcomeKind::Submitted | OutcomeKind::Queued | OutcomeKind::Duplicate => None,
    }
}

/// `AtlasRestore.<OUTCOME>`: the name a runbook's `Catch` and `Retry` match.
pub fn error_name(kind: OutcomeKind) -> String {
    format!("AtlasRestore.{}", kind.as_str())
}

/// The outcome's JSON, whole when it fits (it does: a published outcome stays under SNS's
/// 256 KB); else without the echoed body and problems, said so in `callbackNote`; else the
/// summary a failure's cause carries.
pub fn success_output(outcome: &Outcome) -> String {
    let whole = serde_json::to_string(outcome).unwrap_or_default();
    if !whole.is_empty() && whole.len() <= OUTPUT_MAX_BYTES {
        return whole;
    }
    let mut value = serde_json::to_value(outcome).unwrap_or(Value::Null);
    if let Some(object) = value.as_object_mut() {
        object.remove("restore");
        object.remove("errors");
        object.remove("first");
        object.insert(
            "callbackNote".into(),
            json!("cut to fit Step Functions' 256 KiB output: restore, errors and first were left out; the whole outcome is on the topic and at GET /restore/{requestId}"),
        );
    }
    let shrunk = value.to_string();
    if shrunk.len() <= OUTPUT_MAX_BYTES {
        return shrunk;
    }
    failure_cause(outcome)
}

/// A JSON summary of why the request ended badly, under [`CAUSE_MAX_CHARS`]: the request,
/// its problems (the first ten, counted), what Atlas said, and each job's last status.
pub fn failure_cause(outcome: &Outcome) -> String {
    let cut = |text: &str| -> String {
        match text.char_indices().nth(CAUSE_TEXT_MAX_CHARS) {
            None => text.to_owned(),
            Some((at, _)) => format!("{}…", &text[..at]),
        }
    };
    let problems: Vec<Value> = outcome
        .errors
        .iter()
        .take(CAUSE_MAX_PROBLEMS)
        .map(|p| json!({"field": cut(&p.field), "code": p.code, "message": cut(&p.message)}))
        .collect();
    let atlas = outcome.atlas.as_ref().map(|a| {
        json!({
            "httpStatus": a.http_status,
            "errorCode": a.error_code.as_deref().map(cut),
            "detail": a.detail.as_deref().map(cut),
            "reason": a.reason.as_deref().map(cut),
            "jobs": a.jobs.iter().take(CAUSE_MAX_PROBLEMS).map(|j| json!({
                "id": cut(&j.id),
                "statusName": j.status_name.as_deref().map(cut),
                "deliveryStatusName": j.delivery_status_name.as_deref().map(cut),
            })).collect::<Vec<_>>(),
        })
    });
    let summary = json!({
        "outcome": outcome.outcome,
        "requestId": outcome.request_id.as_deref().map(cut),
        "trigger": outcome.trigger,
        "groupId": outcome.group_id.as_deref().map(cut),
        "clusterName": outcome.cluster_name.as_deref().map(cut),
        "errors": problems,
        "errorCount": outcome.errors.len(),
        "atlas": atlas,
        "durationSeconds": outcome.duration_seconds,
        "startedAt": outcome.started_at,
        "finishedAt": outcome.finished_at,
    });
    let text = summary.to_string();
    if text.chars().count() <= CAUSE_MAX_CHARS {
        return text;
    }
    // Unreachable with the cuts above (ten problems and ten jobs of a few KB each), kept so
    // the limit holds whatever an outcome grows into.
    json!({
        "outcome": outcome.outcome,
        "requestId": outcome.request_id.as_deref().map(cut),
        "errorCount": outcome.errors.len(),
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(kind: &str) -> Outcome {
        serde_json::from_value(json!({
            "outcome": kind, "requestId": "runbook-7", "trigger": "direct",
            "groupId": "5e2211c17a3e5a48f5497de3", "clusterName": "orders", "backupType": "legacy",
            "restore": {"snapshotId": "5f1c6b1e2a9b4f3d8c7e6a5b"},
            "atlas": {"httpStatus": 200, "jobs": [{"id": "j1", "batchId": null, "statusName": "BROKEN", "targetClusterName": "orders-drill"}], "errorCode": null, "detail": null, "reason": null, "reconciled": false},
            "errors": [], "requestedBy": null, "approvedBy": null, "reason": null,
            "startedAt": "2026-11-28T17:06:15.120Z", "finishedAt": "2026-11-28T17:36:15.910Z",
            "durationSeconds": 1800
        }))
        .unwrap()
    }

    #[test]
    fn finished_and_dry_run_succeed_with_the_outcome_as_output() {
        for kind in ["FINISHED", "DRY_RUN"] {
            let outcome = outcome(kind);
            let Some(TaskEnd::Success { output }) = task_end(&outcome) else {
                panic!("{kind} must succeed");
            };
            let parsed: Outcome = serde_json::from_str(&output).unwrap();
            assert_eq!(parsed, outcome);
        }
    }

    #[test]
    fn the_bad_ends_fail_with_their_error_name_and_a_json_cause() {
        for kind in ["BROKEN", "STALLED", "REJECTED", "FAILED", "UNKNOWN"] {
            let Some(TaskEnd::Failure { error, cause }) = task_end(&outcome(kind)) else {
                panic!("{kind} must fail the task");
            };
            assert_eq!(error, format!("AtlasRestore.{kind}"));
            let cause: Value = serde_json::from_str(&cause).unwrap();
            assert_eq!(cause["outcome"], kind);
            assert_eq!(cause["requestId"], "runbook-7");
            assert_eq!(cause["atlas"]["jobs"][0]["statusName"], "BROKEN");
        }
    }

    #[test]
    fn what_is_no_end_reports_nothing() {
        for kind in ["SUBMITTED", "QUEUED", "DUPLICATE"] {
            assert_eq!(task_end(&outcome(kind)), None, "{kind}");
        }
    }

    #[test]
    fn a_cause_stays_under_its_limit_however_many_and_long_the_problems() {
        let mut rejected = outcome("REJECTED");
        let problem = crate::outcome::Problem::new(
            "/reason".repeat(500),
            crate::outcome::ErrorCode::InvalidFormat,
            "é".repeat(20_000),
        );
        rejected.errors = vec![problem; 500];
        let cause = failure_cause(&rejected);
        assert!(cause.chars().count() <= CAUSE_MAX_CHARS, "{}", cause.len());
        let cause: Value = serde_json::from_str(&cause).unwrap();
        assert_eq!(cause["errorCount"], 500);
        assert_eq!(
            cause["errors"].as_array().unwrap().len(),
            CAUSE_MAX_PROBLEMS
        );
    }

    #[test]
    fn an_output_over_256_kib_is_cut_and_says_so() {
        let mut finished = outcome("FINISHED");
        finished.restore = Some(json!({"padding": "x".repeat(OUTPUT_MAX_BYTES)}));
        let output = success_output(&finished);
        assert!(output.len() <= OUTPUT_MAX_BYTES);
        let output: Value = serde_json::from_str(&output).unwrap();
        assert_eq!(output["outcome"], "FINISHED");
        assert!(output.get("restore").is_none());
        assert!(output["callbackNote"].as_str().unwrap().contains("256 KiB"));
    }
}
