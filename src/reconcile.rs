//! Reconciliation (pure): among the source cluster's restore jobs, find the one(s) an earlier,
//! unanswered request created, so they are adopted instead of sent again (CONTRACT section 4).
//!
//! A job is adopted only when it can be shown that this request created it:
//! - it matches the command: the target project and cluster (by name or by id, as sent) and the
//!   restore point; a download matches only jobs without a target, with its delivery options.
//!   Never by `delivery.methodName`: Atlas answers an automated restore's job with `HTTP`, the
//!   method of a download, so only the targets tell the two apart;
//! - it was created at or after `not_before` (the first attempt's start less the clock skew
//!   allowed): a legacy job says when in `created`; a Cloud Backup job does not, but its id is an
//!   ObjectId whose first four bytes are its creation time in seconds;
//! - it is the only one: one job, or the jobs of one batch (a sharded cluster has one per shard
//!   plus one for the config server).
//!
//! A matching job whose creation time cannot be read may be this request's or not: it is never
//! adopted, and it makes the answer ambiguous, so nothing is sent again either.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::atlas_api::model::{JobDelivery, RestoreJob};
use crate::command::{
    CloudPoint, CloudRestoreJob, CloudTarget, DownloadOptions, LegacyPoint, LegacyRestoreJob,
    ObjectId, PositiveInt32, TargetCluster,
};

/// What reconciliation can show about the jobs an unanswered request may have created.
#[derive(Clone, Debug, PartialEq)]
pub enum Adoption {
    /// The job(s) this request created: one job, or every job of one batch (a sharded cluster
    /// has one per shard plus one for the config server).
    Found(Vec<RestoreJob>),
    /// No listed job is this request's.
    NotFound,
    /// Jobs that could be this request's, none of which can be shown to be: their ids. Nothing
    /// may be adopted, and nothing sent again.
    Ambiguous(Vec<String>),
}

/// The legacy job(s) that `restore` created, if Atlas lists them and they can be shown to be
/// this request's (see the module's documentation).
///
/// Restore points Atlas does not return (`checkpointId`, `oplogTs`, `pointInTimeUTCMillis` are
/// write-only) are no evidence either way; the snapshot id and the `timestamp` Atlas reports are
/// compared. With `point_chosen_at_run_time` (`latestSnapshot`, `minutesAgo`) the point is not
/// compared, only its kind: an earlier attempt may have chosen another snapshot or minute. The
/// targets and the creation time are compared all the same.
pub fn find_adoptable(
    jobs: &[RestoreJob],
    restore: &LegacyRestoreJob,
    point_chosen_at_run_time: bool,
    not_before: DateTime<Utc>,
) -> Adoption {
    let candidates = jobs
        .iter()
        .filter(|job| matches(job, restore, point_chosen_at_run_time))
        .filter_map(|job| candidate(job, created(job), not_before));
    adopt(jobs, candidates.collect())
}

/// The Cloud Backup job that `restore` created, if Atlas lists it and it can be shown to be this
/// request's. Atlas echoes a cloud job's restore point, so it is compared unless chosen at run
/// time; the job's creation time is the one its id carries.
pub fn find_adoptable_cloud(
    jobs: &[RestoreJob],
    restore: &CloudRestoreJob,
    point_chosen_at_run_time: bool,
    not_before: DateTime<Utc>,
) -> Adoption {
    let candidates = jobs
        .iter()
        .filter(|job| matches_cloud(job, restore, point_chosen_at_run_time))
        .filter_map(|job| candidate(job, object_id_time(&job.id), not_before));
    adopt(jobs, candidates.collect())
}

/// A matching job that may be this request's, and whether its creation time shows it: `None`
/// when it was created before `not_before` (another request's).
fn candidate(
    job: &RestoreJob,
    created: Option<DateTime<Utc>>,
    not_before: DateTime<Utc>,
) -> Option<(&RestoreJob, bool)> {
    match created {
        Some(created) if created < not_before => None,
        Some(_) => Some((job, true)),
        None => Some((job, false)),
    }
}

/// The answer from the candidates (in listing order, each with whether its creation time was
/// shown): one job or one batch, all shown, is found with every listed job of its batch.
fn adopt(jobs: &[RestoreJob], candidates: Vec<(&RestoreJob, bool)>) -> Adoption {
    let Some((first, _)) = candidates.first() else {
        return Adoption::NotFound;
    };
    let same_unit = |job: &RestoreJob| match (&first.batch_id, &job.batch_id) {
        (Some(batch), Some(other)) => batch == other,
        (None, None) => job.id == first.id,
        _ => false,
    };
    let one_unit = candidates.iter().all(|(job, _)| same_unit(job));
    let all_shown = candidates.iter().all(|(_, shown)| *shown);
    if !(one_unit && all_shown) {
        let ids = candidates.iter().map(|(job, _)| job.id.clone()).collect();
        return Adoption::Ambiguous(ids);
    }
    Adoption::Found(match &first.batch_id {
        None => vec![(*first).clone()],
        Some(batch) => jobs
            .iter()
            .filter(|job| job.batch_id.as_ref() == Some(batch))
            .cloned()
            .collect(),
    })
}

/// Equal, ignoring ASCII case (ids are hex, cluster names unique whatever their case), and
/// present: a field Atlas left out shows nothing.
fn shown_equal(found: Option<&str>, expected: &str) -> bool {
    found.is_some_and(|f| f.eq_ignore_ascii_case(expected))
}

fn matches(job: &RestoreJob, restore: &LegacyRestoreJob, point_chosen_at_run_time: bool) -> bool {
    let no_delivery = JobDelivery::default();
    let delivery = job.delivery.as_ref().unwrap_or(&no_delivery);
    let has_target = delivery.target_group_id.is_some()
        || delivery.target_cluster_name.is_some()
        || delivery.target_cluster_id.is_some();
    match restore {
        LegacyRestoreJob::Automated { point, target } => {
            let same_cluster = match &target.cluster {
                TargetCluster::Name(name) => {
                    shown_equal(delivery.target_cluster_name.as_deref(), name.as_str())
                }
                TargetCluster::Id(id) => {
                    shown_equal(delivery.target_cluster_id.as_deref(), id.as_str())
                }
            };
            shown_equal(
                delivery.target_group_id.as_deref(),
                target.group_id.as_str(),
            ) && same_cluster
                && (point_matches(job, point) || point_chosen_at_run_time && same_kind(job, point))
        }
        LegacyRestoreJob::Download {
            snapshot_id,
            options,
        } => {
            !has_target
                && (point_chosen_at_run_time || same_snapshot(job, snapshot_id))
                && same_download(delivery, options)
        }
    }
}

fn same_snapshot(job: &RestoreJob, id: &ObjectId) -> bool {
    shown_equal(job.snapshot_id.as_deref(), id.as_str())
}

/// The download options sent, where both the command and the job state them (Atlas fills in
/// its defaults for those not sent).
fn same_download(delivery: &JobDelivery, options: &DownloadOptions) -> bool {
    let same = |name: &str, sent: Option<PositiveInt32>| {
        let shown = delivery.other.get(name).and_then(Value::as_i64);
        match (sent, shown) {
            (Some(sent), Some(shown)) => i64::from(sent.get()) == shown,
            _ => true,
        }
    };
    same("expirationHours", options.expiration_hours) && same("maxDownloads", options.max_downloads)
}

fn point_matches(job: &RestoreJob, point: &LegacyPoint) -> bool {
    let timestamp = job.other.get("timestamp");
    let date = timestamp
        .and_then(|t| t.get("date"))
        .and_then(Value::as_str)
        .and_then(parse_time);
    let increment = timestamp
        .and_then(|t| t.get("increment"))
        .and_then(Value::as_i64);
    let flagged_point_in_time = job.other.get("pointInTime").and_then(Value::as_bool);
    match point {
        LegacyPoint::Snapshot(id) => same_snapshot(job, id) && flagged_point_in_time != Some(true),
        LegacyPoint::Checkpoint(id) => {
            flagged_point_in_time != Some(false)
                && job
                    .other
                    .get("checkpointId")
                    .and_then(Value::as_str)
                    .is_none_or(|c| c.eq_ignore_ascii_case(id.as_str()))
        }
        LegacyPoint::PointInTime { utc_millis } => {
            flagged_point_in_time != Some(false)
                && job.other.get("pointInTimeUTCMillis").and_then(Value::as_i64).is_none_or(|ms| ms == *utc_millis)
                // Atlas may write the date to the second.
                && date.is_none_or(|d| (d.timestamp_millis() - utc_millis).abs() < 1000)
        }
        LegacyPoint::Oplog {
            timestamp: ts,
            increment: inc,
        } => {
            let expected = DateTime::parse_from_rfc3339(ts).map(|d| d.timestamp()).ok();
            flagged_point_in_time != Some(false)
                && date.is_none_or(|d| expected.is_none_or(|e| d.timestamp() == e))
                && increment.is_none_or(|i| i == i64::from(inc.get()))
        }
    }
}

/// Whether the job restores the same kind of point (a snapshot, or a point in time).
fn same_kind(job: &RestoreJob, point: &LegacyPoint) -> bool {
    let flagged_point_in_time = job.other.get("pointInTime").and_then(Value::as_bool);
    match point {
        LegacyPoint::Snapshot(_) => flagged_point_in_time != Some(true),
        _ => flagged_point_in_time != Some(false),
    }
}

fn matches_cloud(
    job: &RestoreJob,
    restore: &CloudRestoreJob,
    point_chosen_at_run_time: bool,
) -> bool {
    let text = |name: &str| job.other.get(name).and_then(Value::as_str);
    let number = |name: &str| job.other.get(name).and_then(Value::as_i64);
    let has_target = text("targetGroupId").is_some() || text("targetClusterName").is_some();
    let same_target = |target: &CloudTarget| {
        shown_equal(text("targetGroupId"), target.group_id.as_str())
            && shown_equal(text("targetClusterName"), target.cluster_name.as_str())
    };
    let same_snapshot = |id: &ObjectId| point_chosen_at_run_time || same_snapshot(job, id);
    let delivery_type = text("deliveryType");
    match restore {
        CloudRestoreJob::Automated {
            snapshot_id,
            target,
        } => {
            delivery_type == Some("automated") && same_target(target) && same_snapshot(snapshot_id)
        }
        CloudRestoreJob::Download { snapshot_id } => {
            delivery_type == Some("download") && !has_target && same_snapshot(snapshot_id)
        }
        CloudRestoreJob::PointInTime { point, target } => {
            let point_matches = point_chosen_at_run_time
                || match point {
                    CloudPoint::Seconds(seconds) => {
                        number("pointInTimeUTCSeconds").is_none_or(|s| s == *seconds)
                    }
                    CloudPoint::Oplog {
                        timestamp_seconds,
                        increment,
                    } => {
                        number("oplogTs").is_none_or(|t| t == *timestamp_seconds)
                            && number("oplogInc").is_none_or(|i| i == i64::from(increment.get()))
                    }
                };
            delivery_type == Some("pointInTime") && same_target(target) && point_matches
        }
    }
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// When a legacy job was created, if `created` says so readably.
fn created(job: &RestoreJob) -> Option<DateTime<Utc>> {
    job.created.as_deref().and_then(parse_time)
}

/// The creation time an Atlas id carries: an ObjectId's first 4 bytes, big-endian, are seconds
/// since the epoch. `None` for an id that is not 24 hex digits.
fn object_id_time(id: &str) -> Option<DateTime<Utc>> {
    let id = ObjectId::parse(id)?;
    let seconds = u32::from_str_radix(id.as_str().get(..8)?, 16).ok()?;
    DateTime::from_timestamp(i64::from(seconds), 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{AutomatedTarget, ClusterName, DownloadOptions, PositiveInt32};
    use serde_json::json;

    const GROUP: &str = "5e2211c17a3e5a48f5497de3";
    const OTHER_GROUP: &str = "5e2211c17a3e5a48f5497de4";
    const SNAPSHOT: &str = "5f1c6b1e2a9b4f3d8c7e6a5b";
    const TARGET_ID: &str = "6a0000000000000000000002";
    /// The first attempt began at 17:00; jobs from 16:58 on may be its own.
    const NOT_BEFORE: &str = "2026-11-28T16:58:00Z";
    /// A minute into the first attempt.
    const RECENT: &str = "2026-11-28T17:01:00Z";
    /// Before the first attempt, clock skew allowed for: another request's.
    const OLD: &str = "2026-11-28T16:50:00Z";

    fn not_before() -> DateTime<Utc> {
        NOT_BEFORE.parse().unwrap()
    }

    fn job(value: Value) -> RestoreJob {
        serde_json::from_value(value).unwrap()
    }

    fn automated(point: LegacyPoint) -> LegacyRestoreJob {
        automated_into(
            point,
            TargetCluster::Name(ClusterName::parse("orders-drill").unwrap()),
        )
    }

    fn automated_into(point: LegacyPoint, cluster: TargetCluster) -> LegacyRestoreJob {
        LegacyRestoreJob::Automated {
            point,
            target: AutomatedTarget {
                group_id: ObjectId::parse(GROUP).unwrap(),
                cluster,
            },
        }
    }

    fn snapshot_restore() -> LegacyRestoreJob {
        automated(LegacyPoint::Snapshot(ObjectId::parse(SNAPSHOT).unwrap()))
    }

    fn download(options: DownloadOptions) -> LegacyRestoreJob {
        LegacyRestoreJob::Download {
            snapshot_id: ObjectId::parse(SNAPSHOT).unwrap(),
            options,
        }
    }

    /// The delivery of an automated restore's job as Atlas answers it: method HTTP, targets kept.
    fn delivery(target: &str) -> Value {
        json!({"methodName": "HTTP", "statusName": "NOT_STARTED", "targetGroupId": GROUP, "targetClusterName": target})
    }

    /// A download's delivery: method HTTP, no target.
    fn download_delivery() -> Value {
        json!({"methodName": "HTTP", "statusName": "NOT_STARTED", "expirationHours": 48, "maxDownloads": 1})
    }

    /// A legacy job of a snapshot restore into `orders-drill`, created at `created`.
    fn restore_job(id: &str, created: &str) -> RestoreJob {
        job(
            json!({"id": id, "snapshotId": SNAPSHOT, "pointInTime": false, "delivery": delivery("orders-drill"), "created": created}),
        )
    }

    fn legacy(jobs: &[RestoreJob], restore: &LegacyRestoreJob) -> Adoption {
        find_adoptable(jobs, restore, false, not_before())
    }

    /// The ids of the jobs found; panics on any other answer.
    fn found(adoption: Adoption) -> Vec<String> {
        match adoption {
            Adoption::Found(jobs) => jobs.into_iter().map(|j| j.id).collect(),
            other => panic!("expected a job found, got {other:?}"),
        }
    }

    fn ambiguous(ids: &[&str]) -> Adoption {
        Adoption::Ambiguous(ids.iter().map(|id| (*id).to_owned()).collect())
    }

    #[test]
    fn a_snapshot_restore_matches_on_snapshot_and_target() {
        let jobs = vec![
            job(
                json!({"id": "other-target", "snapshotId": SNAPSHOT, "delivery": delivery("orders-copy"), "created": "2026-11-28T17:00:01Z"}),
            ),
            job(
                json!({"id": "other-snapshot", "snapshotId": "aaaaaaaaaaaaaaaaaaaaaaaa", "delivery": delivery("orders-drill"), "created": "2026-11-28T17:00:02Z"}),
            ),
            job(
                json!({"id": "other-project", "snapshotId": SNAPSHOT, "delivery": {"methodName": "HTTP", "targetGroupId": OTHER_GROUP, "targetClusterName": "orders-drill"}, "created": "2026-11-28T17:00:02Z"}),
            ),
            restore_job("ours", "2026-11-28T17:00:03Z"),
            job(
                json!({"id": "download", "snapshotId": SNAPSHOT, "delivery": download_delivery(), "created": "2026-11-28T17:00:04Z"}),
            ),
        ];
        assert_eq!(found(legacy(&jobs, &snapshot_restore())), ["ours"]);
    }

    #[test]
    fn an_automated_restore_is_told_from_a_download_by_its_targets_never_its_method() {
        // Atlas answers HTTP for both; the download of the same snapshot is not ours.
        let download_job = job(
            json!({"id": "download", "snapshotId": SNAPSHOT, "delivery": download_delivery(), "created": RECENT}),
        );
        assert_eq!(
            legacy(std::slice::from_ref(&download_job), &snapshot_restore()),
            Adoption::NotFound
        );
        let ours = restore_job("ours", RECENT);
        assert_eq!(
            found(legacy(&[download_job, ours.clone()], &snapshot_restore())),
            ["ours"]
        );
        // Were Atlas ever to echo the method sent, the job would still be ours.
        let mut echoed = ours;
        echoed.delivery.as_mut().unwrap().method_name = Some("AUTOMATED_RESTORE".into());
        assert_eq!(found(legacy(&[echoed], &snapshot_restore())), ["ours"]);
    }

    #[test]
    fn a_download_matches_only_jobs_without_targets_and_with_its_delivery() {
        let automated_job = restore_job("someone-elses-automated-restore", RECENT);
        assert_eq!(
            legacy(
                std::slice::from_ref(&automated_job),
                &download(DownloadOptions::default())
            ),
            Adoption::NotFound,
            "an automated restore of the same snapshot is not a download"
        );
        let http = job(
            json!({"id": "h", "snapshotId": SNAPSHOT, "delivery": download_delivery(), "created": RECENT}),
        );
        assert_eq!(
            found(legacy(
                &[automated_job, http.clone()],
                &download(DownloadOptions::default())
            )),
            ["h"]
        );
        let options = |hours: i64, downloads: i64| DownloadOptions {
            expiration_hours: PositiveInt32::new(hours),
            max_downloads: PositiveInt32::new(downloads),
        };
        assert_eq!(
            found(legacy(
                std::slice::from_ref(&http),
                &download(options(48, 1))
            )),
            ["h"]
        );
        assert_eq!(
            legacy(std::slice::from_ref(&http), &download(options(2, 1))),
            Adoption::NotFound,
            "another expiration"
        );
        assert_eq!(
            legacy(std::slice::from_ref(&http), &download(options(48, 3))),
            Adoption::NotFound,
            "another number of downloads"
        );
        let other_snapshot = job(
            json!({"id": "o", "snapshotId": "aaaaaaaaaaaaaaaaaaaaaaaa", "delivery": download_delivery(), "created": RECENT}),
        );
        assert_eq!(
            legacy(&[other_snapshot], &download(DownloadOptions::default())),
            Adoption::NotFound
        );
    }

    #[test]
    fn the_target_cluster_is_compared_by_name_or_by_id() {
        let by_id = automated_into(
            LegacyPoint::Snapshot(ObjectId::parse(SNAPSHOT).unwrap()),
            TargetCluster::Id(ObjectId::parse(TARGET_ID).unwrap()),
        );
        let with_id = |id: &str, target_id: &str| {
            job(
                json!({"id": id, "snapshotId": SNAPSHOT, "delivery": {"methodName": "HTTP", "targetGroupId": GROUP, "targetClusterId": target_id}, "created": RECENT}),
            )
        };
        assert_eq!(
            found(legacy(
                &[with_id("ours", &TARGET_ID.to_uppercase())],
                &by_id
            )),
            ["ours"]
        );
        assert_eq!(
            legacy(&[with_id("elsewhere", "6a0000000000000000000009")], &by_id),
            Adoption::NotFound
        );
        assert_eq!(
            legacy(&[restore_job("named", RECENT)], &by_id),
            Adoption::NotFound,
            "a target named by name is no evidence of the id"
        );
        assert_eq!(
            legacy(&[with_id("by-id", TARGET_ID)], &snapshot_restore()),
            Adoption::NotFound,
            "nor a target given by id of the name"
        );
        let no_group = job(
            json!({"id": "no-group", "snapshotId": SNAPSHOT, "delivery": {"methodName": "HTTP", "targetClusterName": "orders-drill"}, "created": RECENT}),
        );
        assert_eq!(
            legacy(&[no_group], &snapshot_restore()),
            Adoption::NotFound,
            "the target project must be shown"
        );
    }

    #[test]
    fn a_job_created_before_the_first_attempt_is_another_requests() {
        assert_eq!(
            legacy(&[restore_job("older", OLD)], &snapshot_restore()),
            Adoption::NotFound
        );
        assert_eq!(
            found(legacy(
                &[restore_job("older", OLD), restore_job("ours", RECENT)],
                &snapshot_restore()
            )),
            ["ours"]
        );
        assert_eq!(
            found(legacy(
                &[restore_job("at-the-bound", NOT_BEFORE)],
                &snapshot_restore()
            )),
            ["at-the-bound"],
            "at not_before is in"
        );
        assert_eq!(
            found(legacy(
                &[restore_job("offset", "2026-11-28T18:01:00+01:00")],
                &snapshot_restore()
            )),
            ["offset"]
        );
    }

    #[test]
    fn a_job_whose_creation_time_cannot_be_read_is_never_adopted() {
        for created in [json!("yesterday"), json!(""), Value::Null] {
            let mut unreadable = json!({"id": "unreadable", "snapshotId": SNAPSHOT, "delivery": delivery("orders-drill")});
            if !created.is_null() {
                unreadable["created"] = created.clone();
            }
            let jobs = [job(unreadable)];
            assert_eq!(
                legacy(&jobs, &snapshot_restore()),
                ambiguous(&["unreadable"]),
                "created {created}: it may be ours or not, so neither adopted nor sent again"
            );
            let with_ours = [jobs[0].clone(), restore_job("ours", RECENT)];
            assert_eq!(
                legacy(&with_ours, &snapshot_restore()),
                ambiguous(&["unreadable", "ours"]),
                "created {created}"
            );
        }
        // One that cannot be ours (another target) is no doubt at all.
        let elsewhere = job(
            json!({"id": "elsewhere", "snapshotId": SNAPSHOT, "delivery": delivery("orders-copy"), "created": "yesterday"}),
        );
        assert_eq!(
            found(legacy(
                &[elsewhere, restore_job("ours", RECENT)],
                &snapshot_restore()
            )),
            ["ours"]
        );
    }

    #[test]
    fn more_than_one_matching_job_or_batch_is_ambiguous() {
        let jobs = [
            restore_job("first", "2026-11-28T17:00:01Z"),
            restore_job("second", "2026-11-28T17:00:09Z"),
        ];
        assert_eq!(
            legacy(&jobs, &snapshot_restore()),
            ambiguous(&["first", "second"])
        );
        let shard = |id: &str, batch: &str, created: &str| {
            let mut job = restore_job(id, created);
            job.batch_id = Some(batch.to_owned());
            job
        };
        let one_batch = [
            shard("b1-shard0", "b1", "2026-11-28T17:00:01Z"),
            job(json!({"id": "unrelated", "delivery": download_delivery(), "created": RECENT})),
            shard("b1-config", "b1", "2026-11-28T17:00:01Z"),
        ];
        assert_eq!(
            found(legacy(&one_batch, &snapshot_restore())),
            ["b1-shard0", "b1-config"],
            "one batch is adopted whole"
        );
        let two_batches = [
            shard("b2-shard0", "b2", "2026-11-28T17:00:09Z"),
            shard("b1-shard0", "b1", "2026-11-28T17:00:01Z"),
            shard("b1-config", "b1", "2026-11-28T17:00:01Z"),
            shard("b2-config", "b2", "2026-11-28T17:00:09Z"),
        ];
        assert_eq!(
            legacy(&two_batches, &snapshot_restore()),
            ambiguous(&["b2-shard0", "b1-shard0", "b1-config", "b2-config"])
        );
        // An older batch of another request does not make it ambiguous.
        let older_and_ours = [
            shard("old-shard0", "b0", OLD),
            shard("old-config", "b0", OLD),
            shard("b1-shard0", "b1", RECENT),
            shard("b1-config", "b1", RECENT),
        ];
        assert_eq!(
            found(legacy(&older_and_ours, &snapshot_restore())),
            ["b1-shard0", "b1-config"]
        );
    }

    #[test]
    fn point_in_time_matches_on_the_timestamp_atlas_reports() {
        let ms = 1_795_881_975_120_i64;
        let restore = automated(LegacyPoint::PointInTime { utc_millis: ms });
        let with_date = |date: &str| {
            job(
                json!({"id": date, "pointInTime": true, "timestamp": {"date": date, "increment": 1}, "delivery": delivery("orders-drill"), "created": RECENT}),
            )
        };
        assert_eq!(
            found(legacy(&[with_date("2026-11-28T16:06:15Z")], &restore)).len(),
            1,
            "to the second"
        );
        assert_eq!(
            found(legacy(&[with_date("2026-11-28T16:06:15.120Z")], &restore)).len(),
            1
        );
        assert_eq!(
            legacy(&[with_date("2026-11-28T17:06:15Z")], &restore),
            Adoption::NotFound,
            "an hour apart"
        );
        let snapshot_job = job(
            json!({"id": "s", "pointInTime": false, "snapshotId": SNAPSHOT, "delivery": delivery("orders-drill"), "created": RECENT}),
        );
        assert_eq!(legacy(&[snapshot_job], &restore), Adoption::NotFound);
    }

    #[test]
    fn oplog_matches_on_date_and_increment() {
        let restore = automated(LegacyPoint::Oplog {
            timestamp: "2026-11-28T10:00:00Z".into(),
            increment: PositiveInt32::new(3).unwrap(),
        });
        let with = |inc: i64| {
            job(
                json!({"id": "o", "timestamp": {"date": "2026-11-28T10:00:00Z", "increment": inc}, "delivery": delivery("orders-drill"), "created": RECENT}),
            )
        };
        assert_eq!(found(legacy(&[with(3)], &restore)), ["o"]);
        assert_eq!(legacy(&[with(4)], &restore), Adoption::NotFound);
    }

    #[test]
    fn a_point_chosen_at_run_time_is_not_compared_but_targets_and_creation_time_are() {
        let run_time = |jobs: &[RestoreJob], restore: &LegacyRestoreJob| {
            find_adoptable(jobs, restore, true, not_before())
        };
        let newer_snapshot = job(
            json!({"id": "n", "snapshotId": "bbbbbbbbbbbbbbbbbbbbbbbb", "delivery": delivery("orders-drill"), "created": RECENT}),
        );
        assert_eq!(
            legacy(std::slice::from_ref(&newer_snapshot), &snapshot_restore()),
            Adoption::NotFound
        );
        assert_eq!(
            found(run_time(
                std::slice::from_ref(&newer_snapshot),
                &snapshot_restore()
            )),
            ["n"]
        );
        let elsewhere = job(
            json!({"id": "e", "snapshotId": SNAPSHOT, "delivery": delivery("orders-copy"), "created": RECENT}),
        );
        assert_eq!(
            run_time(&[elsewhere], &snapshot_restore()),
            Adoption::NotFound,
            "the target must still match"
        );
        let older = job(
            json!({"id": "old", "snapshotId": "bbbbbbbbbbbbbbbbbbbbbbbb", "delivery": delivery("orders-drill"), "created": OLD}),
        );
        assert_eq!(
            run_time(&[older], &snapshot_restore()),
            Adoption::NotFound,
            "an older job on the same target is another request's"
        );
        let download_job = job(
            json!({"id": "d", "snapshotId": "bbbbbbbbbbbbbbbbbbbbbbbb", "delivery": download_delivery(), "created": RECENT}),
        );
        assert_eq!(
            run_time(std::slice::from_ref(&download_job), &snapshot_restore()),
            Adoption::NotFound
        );
        assert_eq!(
            found(run_time(
                &[download_job],
                &download(DownloadOptions::default())
            )),
            ["d"]
        );
        let minutes = automated(LegacyPoint::PointInTime {
            utc_millis: 1_795_881_975_120,
        });
        let an_hour_later = job(
            json!({"id": "p", "pointInTime": true, "timestamp": {"date": "2026-11-28T17:06:15Z"}, "delivery": delivery("orders-drill"), "created": RECENT}),
        );
        assert_eq!(found(run_time(&[an_hour_later], &minutes)), ["p"]);
        let two = [
            restore_job("a", RECENT),
            job(
                json!({"id": "b", "snapshotId": "bbbbbbbbbbbbbbbbbbbbbbbb", "delivery": delivery("orders-drill"), "created": RECENT}),
            ),
        ];
        assert_eq!(run_time(&two, &snapshot_restore()), ambiguous(&["a", "b"]));
    }

    // -----------------------------------------------------------------------------------------
    // Cloud Backup

    /// An ObjectId made at `time`, told apart by `n`.
    fn oid(time: &str, n: u8) -> String {
        let seconds = time.parse::<DateTime<Utc>>().unwrap().timestamp();
        format!("{seconds:08x}{n:016x}")
    }

    fn cloud_target() -> CloudTarget {
        CloudTarget {
            group_id: ObjectId::parse(GROUP).unwrap(),
            cluster_name: ClusterName::parse("orders-drill").unwrap(),
        }
    }

    fn cloud_job(id: &str, extra: Value) -> RestoreJob {
        let mut value = json!({"id": id, "deliveryType": "automated", "snapshotId": SNAPSHOT, "targetGroupId": GROUP, "targetClusterName": "orders-drill", "failed": false, "cancelled": false, "expired": false});
        for (k, v) in extra.as_object().unwrap() {
            value[k] = v.clone();
        }
        job(value)
    }

    fn cloud_automated() -> CloudRestoreJob {
        CloudRestoreJob::Automated {
            snapshot_id: ObjectId::parse(SNAPSHOT).unwrap(),
            target: cloud_target(),
        }
    }

    fn cloud(jobs: &[RestoreJob], restore: &CloudRestoreJob) -> Adoption {
        find_adoptable_cloud(jobs, restore, false, not_before())
    }

    #[test]
    fn a_cloud_job_is_dated_by_its_object_id() {
        let ours = oid(RECENT, 1);
        assert_eq!(
            found(cloud(&[cloud_job(&ours, json!({}))], &cloud_automated())),
            std::slice::from_ref(&ours)
        );
        let finished = json!({"finishedAt": "2026-11-28T17:30:00Z"});
        assert_eq!(
            found(cloud(&[cloud_job(&ours, finished)], &cloud_automated())),
            std::slice::from_ref(&ours),
            "ended or not, it is ours"
        );
        let older = oid(OLD, 2);
        assert_eq!(
            cloud(&[cloud_job(&older, json!({}))], &cloud_automated()),
            Adoption::NotFound,
            "a job still running from before the first attempt is another request's"
        );
        assert_eq!(
            found(cloud(
                &[cloud_job(&older, json!({})), cloud_job(&ours, json!({}))],
                &cloud_automated()
            )),
            std::slice::from_ref(&ours)
        );
        assert_eq!(
            found(cloud(
                &[cloud_job(&oid(NOT_BEFORE, 3), json!({}))],
                &cloud_automated()
            ))
            .len(),
            1,
            "at not_before is in"
        );
        // Upper-case hex is still an ObjectId.
        assert_eq!(
            found(cloud(
                &[cloud_job(&ours.to_uppercase(), json!({}))],
                &cloud_automated()
            ))
            .len(),
            1
        );
    }

    #[test]
    fn a_cloud_job_whose_id_is_no_object_id_is_never_adopted() {
        for id in ["c1", "not-an-object-id-at-all!", "zz1c6b1e2a9b4f3d8c7e6a5b"] {
            assert_eq!(
                cloud(&[cloud_job(id, json!({}))], &cloud_automated()),
                ambiguous(&[id]),
                "{id}"
            );
        }
    }

    #[test]
    fn more_than_one_matching_cloud_job_is_ambiguous() {
        let (a, b) = (oid(RECENT, 1), oid("2026-11-28T17:02:00Z", 2));
        assert_eq!(
            cloud(
                &[cloud_job(&a, json!({})), cloud_job(&b, json!({}))],
                &cloud_automated()
            ),
            Adoption::Ambiguous(vec![a, b])
        );
    }

    #[test]
    fn a_cloud_job_matches_on_type_target_and_point() {
        let id = oid(RECENT, 1);
        let restore = CloudRestoreJob::PointInTime {
            point: CloudPoint::Seconds(1_795_881_975),
            target: cloud_target(),
        };
        let pit = |extra: Value| {
            let mut fields = json!({"deliveryType": "pointInTime", "pointInTimeUTCSeconds": 1_795_881_975, "snapshotId": null});
            for (k, v) in extra.as_object().unwrap() {
                fields[k] = v.clone();
            }
            cloud_job(&id, fields)
        };
        assert_eq!(
            found(cloud(&[pit(json!({}))], &restore)),
            std::slice::from_ref(&id)
        );
        assert_eq!(
            cloud(
                &[pit(json!({"pointInTimeUTCSeconds": 1_795_881_976}))],
                &restore
            ),
            Adoption::NotFound
        );
        assert_eq!(
            found(find_adoptable_cloud(
                &[pit(json!({"pointInTimeUTCSeconds": 1_795_881_000}))],
                &restore,
                true,
                not_before()
            ))
            .len(),
            1,
            "a point chosen at run time is not compared"
        );
        for (name, value) in [
            ("targetClusterName", json!("orders-copy")),
            ("targetClusterName", Value::Null),
            ("targetGroupId", json!(OTHER_GROUP)),
            ("targetGroupId", Value::Null),
            ("deliveryType", json!("automated")),
        ] {
            let mut job = pit(json!({}));
            match value {
                Value::Null => {
                    job.other.remove(name);
                }
                value => {
                    job.other.insert(name.to_owned(), value.clone());
                }
            }
            assert_eq!(
                find_adoptable_cloud(&[job], &restore, true, not_before()),
                Adoption::NotFound,
                "{name}"
            );
        }
        assert_eq!(
            cloud(
                &[cloud_job(
                    &id,
                    json!({"snapshotId": "aaaaaaaaaaaaaaaaaaaaaaaa"})
                )],
                &cloud_automated()
            ),
            Adoption::NotFound
        );
    }

    #[test]
    fn a_cloud_download_matches_only_jobs_without_targets() {
        let restore = CloudRestoreJob::Download {
            snapshot_id: ObjectId::parse(SNAPSHOT).unwrap(),
        };
        let id = oid(RECENT, 1);
        let download_job = job(
            json!({"id": id, "deliveryType": "download", "snapshotId": SNAPSHOT, "deliveryUrl": []}),
        );
        assert_eq!(
            found(cloud(&[download_job], &restore)),
            std::slice::from_ref(&id)
        );
        // Whatever it calls itself, a job with a target restores into a cluster.
        let targeted = job(
            json!({"id": id, "deliveryType": "download", "snapshotId": SNAPSHOT, "targetGroupId": GROUP, "targetClusterName": "orders-drill"}),
        );
        assert_eq!(cloud(&[targeted], &restore), Adoption::NotFound);
        assert_eq!(
            cloud(&[cloud_job(&id, json!({}))], &restore),
            Adoption::NotFound,
            "an automated restore of the same snapshot"
        );
    }
}
