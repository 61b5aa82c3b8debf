//! Following a submitted restore to its end (CONTRACT section 6): when a job has ended, how it
//! ended, the follow-up message, and the final outcome. Pure: no I/O.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::atlas_api::model::RestoreJob;
use crate::command::{BackupType, ClusterName, ObjectId, SourceCluster};
use crate::outcome::{JobSummary, Outcome, OutcomeKind};

/// Where one restore job stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobEnd {
    Running,
    EndedWell,
    EndedBadly,
}

/// Legacy `statusName` values of a job that ended badly.
const LEGACY_BROKEN: [&str; 2] = ["BROKEN", "KILLED"];
/// Legacy `delivery.statusName` values of a download that ended badly.
const DELIVERY_BROKEN: [&str; 4] = ["FAILED", "INTERRUPTED", "EXPIRED", "MAX_DOWNLOADS_EXCEEDED"];

/// How a job stands, read the way CONTRACT section 6 says.
///
/// Legacy: Atlas answers an automated restore's job with `delivery.methodName: "HTTP"`, the
/// method of a download, so the targets tell them apart, never the method. An automated restore
/// ends by its own `statusName` alone: its `delivery.statusName` describes the file transfer to
/// the target, which may be `READY` (or `EXPIRED`) whatever the restore's state. A download ends
/// by its delivery, `READY`, or by a bad end of either; a bad end wins over a good one: a
/// download `FINISHED` whose file `EXPIRED` ended badly.
pub fn job_end(job: &RestoreJob, backup_type: BackupType) -> JobEnd {
    match backup_type {
        BackupType::Legacy => {
            let status = job.status_name.as_deref().unwrap_or("");
            let delivery = job.delivery.as_ref();
            let automated = delivery.is_some_and(|d| {
                d.target_group_id.is_some()
                    || d.target_cluster_name.is_some()
                    || d.target_cluster_id.is_some()
            });
            let delivery_status = delivery.and_then(|d| d.status_name.as_deref());
            if LEGACY_BROKEN.contains(&status) {
                JobEnd::EndedBadly
            } else if automated {
                if status == "FINISHED" {
                    JobEnd::EndedWell
                } else {
                    JobEnd::Running
                }
            } else if delivery_status.is_some_and(|s| DELIVERY_BROKEN.contains(&s)) {
                JobEnd::EndedBadly
            } else if status == "FINISHED" || delivery_status == Some("READY") {
                JobEnd::EndedWell
            } else {
                JobEnd::Running
            }
        }
        BackupType::Cloud => {
            let flag = |name: &str| job.other.get(name).and_then(Value::as_bool) == Some(true);
            let finished = job
                .other
                .get("finishedAt")
                .is_some_and(|v| v.as_str().is_some_and(|s| !s.is_empty()));
            let delivered = job.other.get("deliveryUrl").is_some_and(|urls| match urls {
                Value::Array(urls) => !urls.is_empty(),
                Value::String(url) => !url.is_empty(),
                _ => false,
            });
            if flag("failed") || flag("cancelled") || flag("expired") {
                JobEnd::EndedBadly
            } else if finished || delivered {
                JobEnd::EndedWell
            } else {
                JobEnd::Running
            }
        }
    }
}

/// A job's last status, as the final outcome lists it. Legacy jobs have a `statusName`; Cloud
/// Backup jobs only flags and times, named here after what they mean.
pub fn job_status(job: &RestoreJob, backup_type: BackupType) -> JobSummary {
    let mut summary = JobSummary::from_job(job);
    if backup_type == BackupType::Cloud {
        let flag = |name: &str| job.other.get(name).and_then(Value::as_bool) == Some(true);
        let status = if flag("failed") {
            "FAILED"
        } else if flag("cancelled") {
            "CANCELLED"
        } else if flag("expired") {
            "EXPIRED"
        } else {
            match job_end(job, backup_type) {
                JobEnd::EndedWell if job.other.contains_key("finishedAt") => "FINISHED",
                JobEnd::EndedWell => "READY",
                _ => "IN_PROGRESS",
            }
        };
        summary.status_name = Some(status.to_owned());
    }
    summary
}

/// The final outcome kind once every job has ended, else `None`. No jobs: nothing to wait for.
pub fn verdict(ends: &[JobEnd]) -> Option<OutcomeKind> {
    if ends.contains(&JobEnd::Running) {
        None
    } else if ends.contains(&JobEnd::EndedBadly) {
        Some(OutcomeKind::Broken)
    } else {
        Some(OutcomeKind::Finished)
    }
}

/// When the restore was submitted: the `SUBMITTED` outcome's `finishedAt`, the moment Atlas
/// accepted it (or reconciliation found it).
pub fn submitted_at(submitted: &Outcome) -> DateTime<Utc> {
    submitted.finished_at
}

/// The source cluster of a submitted outcome, to read its jobs; `None` if the stored outcome
/// lacks it (it never does for `SUBMITTED`).
pub fn source_of(submitted: &Outcome) -> Option<SourceCluster> {
    Some(SourceCluster {
        group_id: ObjectId::parse(submitted.group_id.as_deref()?)?,
        cluster_name: ClusterName::parse(submitted.cluster_name.as_deref()?)?,
    })
}

/// The backup type of a submitted outcome.
pub fn backup_type_of(submitted: &Outcome) -> BackupType {
    match submitted.backup_type.as_deref() {
        Some("cloud") => BackupType::Cloud,
        _ => BackupType::Legacy,
    }
}

/// The final outcome: the request's fields as submitted, each job's last status, and the time
/// from the submission to `seen_at`, when the end was seen. `note` explains a `STALLED`.
pub fn final_outcome(
    submitted: &Outcome,
    kind: OutcomeKind,
    jobs: Vec<JobSummary>,
    seen_at: DateTime<Utc>,
    note: Option<String>,
) -> Outcome {
    let mut outcome = submitted.clone();
    outcome.outcome = kind;
    let mut atlas = outcome.atlas.take().unwrap_or_default();
    if !jobs.is_empty() {
        atlas.jobs = jobs;
    }
    atlas.http_status = None;
    atlas.error_code = None;
    atlas.detail = None;
    atlas.reason = note;
    outcome.atlas = Some(atlas);
    outcome.errors = Vec::new();
    outcome.first = None;
    outcome.notified = None;
    outcome.finished_at = seen_at;
    outcome.duration_seconds = Some(
        (seen_at - submitted_at(submitted))
            .num_seconds()
            .max(0)
            .unsigned_abs(),
    );
    outcome
}

/// The follow-up message put on the work queue: the request and the number of the check it
/// asks for. Everything else comes from the request's record, so a message nobody should have
/// sent can at most cause one more read of the jobs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FollowUpMessage {
    pub request_id: String,
    pub check: u64,
}

impl FollowUpMessage {
    pub fn to_json(&self) -> String {
        json!({"followUp": {"requestId": self.request_id, "check": self.check}}).to_string()
    }

    /// Reads a queue message body: `None` when it is not a follow-up message at all, `Some(Err)`
    /// when it says it is one but is malformed.
    pub fn from_value(value: &Value) -> Option<Result<FollowUpMessage, String>> {
        let follow = value.get("followUp")?;
        let request_id = follow.get("requestId").and_then(Value::as_str);
        let check = follow.get("check").and_then(Value::as_u64);
        Some(match (request_id, check) {
            (Some(id), Some(check)) if !id.is_empty() && check >= 1 => Ok(FollowUpMessage {
                request_id: id.to_owned(),
                check,
            }),
            _ => Err(format!(
                "a follow-up message needs followUp.requestId (a string) and followUp.check (a number from 1), got {follow}"
            )),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{AtlasSummary, Trigger};

    /// A legacy job as Atlas answers it: `method` is what was sent; an automated restore's job
    /// comes back with method HTTP and its targets.
    fn legacy(status: &str, method: &str, delivery: Option<&str>) -> RestoreJob {
        let mut job = json!({"id": "j1", "statusName": status, "delivery": {"methodName": "HTTP"}});
        if method == "AUTOMATED_RESTORE" {
            job["delivery"]["targetGroupId"] = json!("5e2211c17a3e5a48f5497de3");
            job["delivery"]["targetClusterName"] = json!("orders-drill");
        }
        if let Some(delivery) = delivery {
            job["delivery"]["statusName"] = json!(delivery);
        }
        serde_json::from_value(job).unwrap()
    }

    fn cloud(fields: Value) -> RestoreJob {
        let mut job = json!({"id": "c1", "deliveryType": "automated"});
        job.as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        serde_json::from_value(job).unwrap()
    }

    #[test]
    fn legacy_jobs_end_as_the_contract_says() {
        use JobEnd::*;
        let cases = [
            (legacy("IN_PROGRESS", "AUTOMATED_RESTORE", None), Running),
            (legacy("FINISHED", "AUTOMATED_RESTORE", None), EndedWell),
            (legacy("BROKEN", "AUTOMATED_RESTORE", None), EndedBadly),
            (legacy("KILLED", "AUTOMATED_RESTORE", None), EndedBadly),
            (legacy("IN_PROGRESS", "HTTP", Some("NOT_STARTED")), Running),
            (legacy("IN_PROGRESS", "HTTP", Some("READY")), EndedWell),
            (legacy("FINISHED", "HTTP", Some("READY")), EndedWell),
            (legacy("FINISHED", "HTTP", Some("EXPIRED")), EndedBadly),
            (legacy("IN_PROGRESS", "HTTP", Some("FAILED")), EndedBadly),
            (
                legacy("IN_PROGRESS", "HTTP", Some("INTERRUPTED")),
                EndedBadly,
            ),
            (
                legacy("IN_PROGRESS", "HTTP", Some("MAX_DOWNLOADS_EXCEEDED")),
                EndedBadly,
            ),
            // READY only ends a download: an automated restore's file transfer may be READY
            // while the restore runs; its own statusName ends it.
            (
                legacy("IN_PROGRESS", "AUTOMATED_RESTORE", Some("READY")),
                Running,
            ),
            (
                legacy("FINISHED", "AUTOMATED_RESTORE", Some("READY")),
                EndedWell,
            ),
            (
                legacy("IN_PROGRESS", "AUTOMATED_RESTORE", Some("NOT_STARTED")),
                Running,
            ),
            (
                legacy("BROKEN", "AUTOMATED_RESTORE", Some("READY")),
                EndedBadly,
            ),
            // Nor does a transfer that failed or expired: the restore's statusName says.
            (
                legacy("IN_PROGRESS", "AUTOMATED_RESTORE", Some("FAILED")),
                Running,
            ),
            (
                legacy("FINISHED", "AUTOMATED_RESTORE", Some("EXPIRED")),
                EndedWell,
            ),
            // A status Atlas adds later is not an end.
            (legacy("SOMETHING_NEW", "AUTOMATED_RESTORE", None), Running),
        ];
        for (job, expected) in cases {
            assert_eq!(job_end(&job, BackupType::Legacy), expected, "{job:?}");
        }
    }

    #[test]
    fn cloud_jobs_end_as_the_contract_says() {
        use JobEnd::*;
        let done = "2026-11-28T18:00:00Z";
        let cases = [
            (json!({}), Running, "IN_PROGRESS"),
            (json!({"finishedAt": done}), EndedWell, "FINISHED"),
            (
                json!({"finishedAt": done, "failed": true}),
                EndedBadly,
                "FAILED",
            ),
            (json!({"cancelled": true}), EndedBadly, "CANCELLED"),
            (json!({"expired": true}), EndedBadly, "EXPIRED"),
            (
                json!({"failed": false, "cancelled": false}),
                Running,
                "IN_PROGRESS",
            ),
            (
                json!({"deliveryType": "download", "deliveryUrl": []}),
                Running,
                "IN_PROGRESS",
            ),
            (
                json!({"deliveryType": "download", "deliveryUrl": ["https://x/restore.tar.gz"]}),
                EndedWell,
                "READY",
            ),
        ];
        for (fields, expected, status) in cases {
            let job = cloud(fields.clone());
            assert_eq!(job_end(&job, BackupType::Cloud), expected, "{fields}");
            assert_eq!(
                job_status(&job, BackupType::Cloud).status_name.as_deref(),
                Some(status),
                "{fields}"
            );
        }
    }

    #[test]
    fn the_verdict_waits_for_every_job_and_one_bad_end_breaks_the_batch() {
        use JobEnd::*;
        assert_eq!(verdict(&[EndedWell, Running]), None);
        assert_eq!(verdict(&[EndedBadly, Running]), None);
        assert_eq!(
            verdict(&[EndedWell, EndedWell]),
            Some(OutcomeKind::Finished)
        );
        assert_eq!(
            verdict(&[EndedWell, EndedBadly, EndedWell]),
            Some(OutcomeKind::Broken)
        );
    }

    fn submitted() -> Outcome {
        Outcome {
            outcome: OutcomeKind::Submitted,
            request_id: Some("drill-1".into()),
            trigger: Trigger::Schedule,
            group_id: Some("5e2211c17a3e5a48f5497de3".into()),
            cluster_name: Some("orders".into()),
            backup_type: Some("legacy".into()),
            restore: Some(json!({"snapshotId": "x"})),
            atlas: Some(AtlasSummary {
                http_status: Some(200),
                jobs: vec![JobSummary::from_job(&legacy(
                    "IN_PROGRESS",
                    "AUTOMATED_RESTORE",
                    None,
                ))],
                ..AtlasSummary::default()
            }),
            errors: Vec::new(),
            requested_by: None,
            approved_by: None,
            reason: Some("drill".into()),
            started_at: "2026-11-28T17:00:00Z".parse().unwrap(),
            finished_at: "2026-11-28T17:00:01Z".parse().unwrap(),
            first: None,
            notified: Some(false),
            duration_seconds: None,
            drill: None,
            report_url: None,
        }
    }

    #[test]
    fn the_final_outcome_repeats_the_request_and_measures_from_the_submission() {
        let seen: DateTime<Utc> = "2026-11-28T17:42:31Z".parse().unwrap();
        let job = job_status(
            &legacy("FINISHED", "AUTOMATED_RESTORE", None),
            BackupType::Legacy,
        );
        let outcome = final_outcome(&submitted(), OutcomeKind::Finished, vec![job], seen, None);
        assert_eq!(outcome.outcome, OutcomeKind::Finished);
        assert_eq!(outcome.duration_seconds, Some(42 * 60 + 30));
        assert_eq!(outcome.finished_at, seen);
        assert_eq!(outcome.started_at, submitted().started_at);
        assert_eq!(outcome.request_id.as_deref(), Some("drill-1"));
        assert_eq!(outcome.restore, submitted().restore);
        assert_eq!(outcome.notified, None);
        let atlas = outcome.atlas.unwrap();
        assert_eq!(atlas.jobs[0].status_name.as_deref(), Some("FINISHED"));
        assert_eq!(atlas.http_status, None);
        assert_eq!(
            source_of(&submitted()).unwrap().cluster_name.to_string(),
            "orders"
        );
        assert_eq!(backup_type_of(&submitted()), BackupType::Legacy);
    }

    #[test]
    fn a_clock_that_went_back_never_gives_a_negative_duration() {
        let before: DateTime<Utc> = "2026-11-28T16:00:00Z".parse().unwrap();
        let outcome = final_outcome(
            &submitted(),
            OutcomeKind::Stalled,
            Vec::new(),
            before,
            Some("x".into()),
        );
        assert_eq!(outcome.duration_seconds, Some(0));
        // No jobs read: the submitted ones are kept.
        assert_eq!(outcome.atlas.unwrap().jobs.len(), 1);
    }

    #[test]
    fn follow_up_messages_round_trip_and_other_messages_are_not_theirs() {
        let message = FollowUpMessage {
            request_id: "approval-7f3a".into(),
            check: 3,
        };
        let value: Value = serde_json::from_str(&message.to_json()).unwrap();
        assert_eq!(FollowUpMessage::from_value(&value), Some(Ok(message)));
        assert_eq!(
            FollowUpMessage::from_value(&json!({"body": "{}", "signature": "v0=00"})),
            None
        );
        for broken in [
            json!({"followUp": {}}),
            json!({"followUp": {"requestId": "", "check": 1}}),
            json!({"followUp": {"requestId": "a", "check": 0}}),
            json!({"followUp": {"requestId": "a", "check": "1"}}),
            json!({"followUp": "a"}),
        ] {
            assert!(
                matches!(FollowUpMessage::from_value(&broken), Some(Err(_))),
                "{broken}"
            );
        }
    }
}
