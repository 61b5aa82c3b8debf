//! Reconciliation (pure): among the source cluster's recent restore jobs, find the one an
//! earlier, unanswered request created for this restore, so it is adopted instead of sent again.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::atlas::model::RestoreJob;
use crate::command::{
    CloudPoint, CloudRestoreJob, CloudTarget, LegacyPoint, LegacyRestoreJob, ObjectId,
    TargetCluster,
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

impl Adoption {
    fn of(jobs: Vec<RestoreJob>) -> Adoption {
        if jobs.is_empty() {
            Adoption::NotFound
        } else {
            Adoption::Found(jobs)
        }
    }
}

/// The jobs that `restore` created, if Atlas lists them: the earliest matching job and every
/// job of its batch (a sharded cluster has one per shard plus one for the config server).
///
/// A job matches when nothing it says contradicts the restore: same method, same target, same
/// restore point. Fields Atlas leaves out (restore points are write-only) are no evidence
/// either way; the snapshot id, which Atlas does return, must be equal for a snapshot restore.
///
/// With `point_chosen_at_run_time` (`latestSnapshot`, `minutesAgo`) the restore point is not
/// compared: an earlier attempt may have chosen another snapshot or another minute, and
/// sending a second destructive restore to the same target is the failure to avoid.
pub fn find_adoptable(
    jobs: &[RestoreJob],
    restore: &LegacyRestoreJob,
    point_chosen_at_run_time: bool,
    not_before: DateTime<Utc>,
) -> Adoption {
    let _ = not_before;
    Adoption::of(find_adoptable_jobs(jobs, restore, point_chosen_at_run_time))
}

fn find_adoptable_jobs(
    jobs: &[RestoreJob],
    restore: &LegacyRestoreJob,
    point_chosen_at_run_time: bool,
) -> Vec<RestoreJob> {
    let mut matching: Vec<&RestoreJob> = jobs
        .iter()
        .filter(|job| matches(job, restore, point_chosen_at_run_time))
        .collect();
    matching.sort_by_key(|job| created(job));
    let Some(first) = matching.first() else {
        return Vec::new();
    };
    match &first.batch_id {
        None => vec![(*first).clone()],
        Some(batch) => jobs
            .iter()
            .filter(|job| job.batch_id.as_ref() == Some(batch))
            .cloned()
            .collect(),
    }
}

/// The Cloud Backup job that `restore` created, if Atlas lists it. Cloud jobs carry no creation
/// time: a candidate is a job still running, or one that finished at or after `since`. Atlas
/// echoes the restore point of a cloud job, so it is compared unless chosen at run time.
pub fn find_adoptable_cloud(
    jobs: &[RestoreJob],
    restore: &CloudRestoreJob,
    point_chosen_at_run_time: bool,
    not_before: DateTime<Utc>,
) -> Adoption {
    Adoption::of(find_adoptable_cloud_jobs(
        jobs,
        restore,
        point_chosen_at_run_time,
        not_before,
    ))
}

fn find_adoptable_cloud_jobs(
    jobs: &[RestoreJob],
    restore: &CloudRestoreJob,
    point_chosen_at_run_time: bool,
    since: DateTime<Utc>,
) -> Vec<RestoreJob> {
    let text = |job: &RestoreJob, name: &str| {
        job.other
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let number = |job: &RestoreJob, name: &str| job.other.get(name).and_then(Value::as_i64);
    let flag = |job: &RestoreJob, name: &str| {
        job.other
            .get(name)
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    let recent = |job: &RestoreJob| {
        let finished = text(job, "finishedAt")
            .and_then(|f| DateTime::parse_from_rfc3339(&f).ok())
            .map(|f| f.with_timezone(&Utc));
        let ended = finished.is_some()
            || flag(job, "failed")
            || flag(job, "cancelled")
            || flag(job, "expired");
        !ended || finished.is_some_and(|f| f >= since)
    };
    let same_text = |job: &RestoreJob, name: &str, expected: &str| {
        text(job, name).is_none_or(|t| t.eq_ignore_ascii_case(expected))
    };
    let same_target = |job: &RestoreJob, target: &CloudTarget| {
        same_text(job, "targetGroupId", target.group_id.as_str())
            && same_text(job, "targetClusterName", target.cluster_name.as_str())
    };
    let same_snapshot = |job: &RestoreJob, id: &ObjectId| {
        point_chosen_at_run_time || job.snapshot_id.as_deref() == Some(id.as_str())
    };
    let matching = jobs.iter().filter(|job| {
        recent(job)
            && match restore {
                CloudRestoreJob::Automated {
                    snapshot_id,
                    target,
                } => {
                    text(job, "deliveryType").as_deref() == Some("automated")
                        && same_target(job, target)
                        && same_snapshot(job, snapshot_id)
                }
                CloudRestoreJob::Download { snapshot_id } => {
                    text(job, "deliveryType").as_deref() == Some("download")
                        && same_snapshot(job, snapshot_id)
                }
                CloudRestoreJob::PointInTime { point, target } => {
                    let point_matches = point_chosen_at_run_time
                        || match point {
                            CloudPoint::Seconds(seconds) => {
                                number(job, "pointInTimeUTCSeconds").is_none_or(|s| s == *seconds)
                            }
                            CloudPoint::Oplog {
                                timestamp_seconds,
                                increment,
                            } => {
                                number(job, "oplogTs").is_none_or(|t| t == *timestamp_seconds)
                                    && number(job, "oplogInc")
                                        .is_none_or(|i| i == i64::from(increment.get()))
                            }
                        };
                    text(job, "deliveryType").as_deref() == Some("pointInTime")
                        && same_target(job, target)
                        && point_matches
                }
            }
    });
    matching.take(1).cloned().collect()
}

fn matches(job: &RestoreJob, restore: &LegacyRestoreJob, point_chosen_at_run_time: bool) -> bool {
    let delivery = job.delivery.clone().unwrap_or_default();
    let same = |found: &Option<String>, expected: &str| {
        found
            .as_deref()
            .is_none_or(|f| f.eq_ignore_ascii_case(expected))
    };
    match restore {
        LegacyRestoreJob::Automated { point, target } => {
            let target_matches = same(&delivery.target_group_id, target.group_id.as_str())
                && match &target.cluster {
                    TargetCluster::Name(name) => {
                        same(&delivery.target_cluster_name, name.as_str())
                            && delivery.target_cluster_id.is_none()
                    }
                    TargetCluster::Id(id) => same(&delivery.target_cluster_id, id.as_str()),
                };
            same(&delivery.method_name, "AUTOMATED_RESTORE")
                && target_matches
                && (point_matches(job, point) || point_chosen_at_run_time && same_kind(job, point))
        }
        LegacyRestoreJob::Download { snapshot_id, .. } => {
            same(&delivery.method_name, "HTTP")
                && (point_chosen_at_run_time
                    || job.snapshot_id.as_deref() == Some(snapshot_id.as_str()))
        }
    }
}

fn point_matches(job: &RestoreJob, point: &LegacyPoint) -> bool {
    let timestamp = job.other.get("timestamp");
    let date = timestamp
        .and_then(|t| t.get("date"))
        .and_then(Value::as_str)
        .and_then(|d| DateTime::parse_from_rfc3339(d).ok())
        .map(|d| d.with_timezone(&Utc));
    let increment = timestamp
        .and_then(|t| t.get("increment"))
        .and_then(Value::as_i64);
    let flagged_point_in_time = job.other.get("pointInTime").and_then(Value::as_bool);
    match point {
        LegacyPoint::Snapshot(id) => {
            job.snapshot_id.as_deref() == Some(id.as_str()) && flagged_point_in_time != Some(true)
        }
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

fn created(job: &RestoreJob) -> Option<DateTime<Utc>> {
    job.created
        .as_deref()
        .and_then(|c| DateTime::parse_from_rfc3339(c).ok())
        .map(|d| d.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{AutomatedTarget, ClusterName, DownloadOptions, PositiveInt32};
    use serde_json::json;

    const GROUP: &str = "5e2211c17a3e5a48f5497de3";
    const SNAPSHOT: &str = "5f1c6b1e2a9b4f3d8c7e6a5b";

    fn job(value: Value) -> RestoreJob {
        serde_json::from_value(value).unwrap()
    }

    fn automated(point: LegacyPoint) -> LegacyRestoreJob {
        LegacyRestoreJob::Automated {
            point,
            target: AutomatedTarget {
                group_id: ObjectId::parse(GROUP).unwrap(),
                cluster: TargetCluster::Name(ClusterName::parse("orders-drill").unwrap()),
            },
        }
    }

    fn delivery(target: &str) -> Value {
        json!({"methodName": "AUTOMATED_RESTORE", "targetGroupId": GROUP, "targetClusterName": target})
    }

    #[test]
    fn a_snapshot_restore_matches_on_snapshot_and_target() {
        let restore = automated(LegacyPoint::Snapshot(ObjectId::parse(SNAPSHOT).unwrap()));
        let jobs = vec![
            job(
                json!({"id": "other-target", "snapshotId": SNAPSHOT, "delivery": delivery("orders-copy"), "created": "2026-11-28T17:00:01Z"}),
            ),
            job(
                json!({"id": "other-snapshot", "snapshotId": "aaaaaaaaaaaaaaaaaaaaaaaa", "delivery": delivery("orders-drill"), "created": "2026-11-28T17:00:02Z"}),
            ),
            job(
                json!({"id": "ours", "snapshotId": SNAPSHOT, "delivery": delivery("orders-drill"), "created": "2026-11-28T17:00:03Z"}),
            ),
            job(
                json!({"id": "download", "snapshotId": SNAPSHOT, "delivery": {"methodName": "HTTP"}, "created": "2026-11-28T17:00:04Z"}),
            ),
        ];
        let adopted: Vec<String> = find_adoptable_jobs(&jobs, &restore, false)
            .into_iter()
            .map(|j| j.id)
            .collect();
        assert_eq!(adopted, vec!["ours"]);
    }

    #[test]
    fn the_earliest_match_is_adopted_with_its_whole_batch() {
        let restore = automated(LegacyPoint::Snapshot(ObjectId::parse(SNAPSHOT).unwrap()));
        let shard = |id: &str, batch: &str, created: &str| {
            job(
                json!({"id": id, "batchId": batch, "snapshotId": SNAPSHOT, "delivery": delivery("orders-drill"), "created": created}),
            )
        };
        let jobs = vec![
            shard("b2-shard", "b2", "2026-11-28T17:00:09Z"),
            shard("b1-shard0", "b1", "2026-11-28T17:00:01Z"),
            shard("b1-config", "b1", "2026-11-28T17:00:01Z"),
        ];
        let mut adopted: Vec<String> = find_adoptable_jobs(&jobs, &restore, false)
            .into_iter()
            .map(|j| j.id)
            .collect();
        adopted.sort();
        assert_eq!(adopted, vec!["b1-config", "b1-shard0"]);
    }

    #[test]
    fn point_in_time_matches_on_the_timestamp_atlas_reports() {
        let ms = 1_795_881_975_120_i64;
        let restore = automated(LegacyPoint::PointInTime { utc_millis: ms });
        let with_date = |date: &str| {
            job(
                json!({"id": date, "pointInTime": true, "timestamp": {"date": date, "increment": 1}, "delivery": delivery("orders-drill")}),
            )
        };
        assert_eq!(
            find_adoptable_jobs(&[with_date("2026-11-28T16:06:15Z")], &restore, false).len(),
            1,
            "to the second"
        );
        assert_eq!(
            find_adoptable_jobs(&[with_date("2026-11-28T16:06:15.120Z")], &restore, false).len(),
            1
        );
        assert!(
            find_adoptable_jobs(&[with_date("2026-11-28T17:06:15Z")], &restore, false).is_empty(),
            "an hour apart"
        );
        let snapshot_job = job(
            json!({"id": "s", "pointInTime": false, "snapshotId": SNAPSHOT, "delivery": delivery("orders-drill")}),
        );
        assert!(find_adoptable_jobs(&[snapshot_job], &restore, false).is_empty());
    }

    #[test]
    fn oplog_matches_on_date_and_increment() {
        let restore = automated(LegacyPoint::Oplog {
            timestamp: "2026-11-28T10:00:00Z".into(),
            increment: PositiveInt32::new(3).unwrap(),
        });
        let with = |inc: i64| {
            job(
                json!({"id": "o", "timestamp": {"date": "2026-11-28T10:00:00Z", "increment": inc}, "delivery": delivery("orders-drill")}),
            )
        };
        assert_eq!(find_adoptable_jobs(&[with(3)], &restore, false).len(), 1);
        assert!(find_adoptable_jobs(&[with(4)], &restore, false).is_empty());
    }

    #[test]
    fn a_point_chosen_at_run_time_matches_on_target_and_kind_only() {
        let restore = automated(LegacyPoint::Snapshot(ObjectId::parse(SNAPSHOT).unwrap()));
        let newer_snapshot = job(
            json!({"id": "n", "snapshotId": "bbbbbbbbbbbbbbbbbbbbbbbb", "delivery": delivery("orders-drill")}),
        );
        assert!(
            find_adoptable_jobs(std::slice::from_ref(&newer_snapshot), &restore, false).is_empty()
        );
        assert_eq!(
            find_adoptable_jobs(std::slice::from_ref(&newer_snapshot), &restore, true).len(),
            1
        );
        let elsewhere =
            job(json!({"id": "e", "snapshotId": SNAPSHOT, "delivery": delivery("orders-copy")}));
        assert!(
            find_adoptable_jobs(&[elsewhere], &restore, true).is_empty(),
            "the target must still match"
        );
        let minutes = automated(LegacyPoint::PointInTime {
            utc_millis: 1_795_881_975_120,
        });
        let an_hour_later = job(
            json!({"id": "p", "pointInTime": true, "timestamp": {"date": "2026-11-28T17:06:15Z"}, "delivery": delivery("orders-drill")}),
        );
        assert_eq!(
            find_adoptable_jobs(&[an_hour_later], &minutes, true).len(),
            1
        );
    }

    #[test]
    fn a_cloud_job_matches_on_type_target_and_point_among_running_or_recently_finished_jobs() {
        let target = CloudTarget {
            group_id: ObjectId::parse(GROUP).unwrap(),
            cluster_name: ClusterName::parse("orders-drill").unwrap(),
        };
        let since: DateTime<Utc> = "2026-11-28T17:00:00Z".parse().unwrap();
        let restore = CloudRestoreJob::PointInTime {
            point: CloudPoint::Seconds(1_795_881_975),
            target: target.clone(),
        };
        let job = |id: &str, extra: Value| {
            let mut value = json!({"id": id, "deliveryType": "pointInTime", "targetGroupId": GROUP, "targetClusterName": "orders-drill", "pointInTimeUTCSeconds": 1_795_881_975});
            for (k, v) in extra.as_object().unwrap() {
                value[k] = v.clone();
            }
            serde_json::from_value::<RestoreJob>(value).unwrap()
        };
        let ids = |jobs: Vec<RestoreJob>| jobs.into_iter().map(|j| j.id).collect::<Vec<_>>();
        assert_eq!(
            ids(find_adoptable_cloud_jobs(
                &[job("running", json!({}))],
                &restore,
                false,
                since
            )),
            vec!["running"]
        );
        assert_eq!(
            ids(find_adoptable_cloud_jobs(
                &[job("new", json!({"finishedAt": "2026-11-28T17:05:00Z"}))],
                &restore,
                false,
                since
            )),
            vec!["new"]
        );
        assert!(
            find_adoptable_cloud_jobs(
                &[job("old", json!({"finishedAt": "2026-11-28T16:00:00Z"}))],
                &restore,
                false,
                since
            )
            .is_empty()
        );
        assert!(
            find_adoptable_cloud_jobs(
                &[job(
                    "other-second",
                    json!({"pointInTimeUTCSeconds": 1_795_881_976})
                )],
                &restore,
                false,
                since
            )
            .is_empty()
        );
        assert_eq!(
            find_adoptable_cloud_jobs(
                &[job(
                    "minutes",
                    json!({"pointInTimeUTCSeconds": 1_795_881_000})
                )],
                &restore,
                true,
                since
            )
            .len(),
            1
        );
        assert!(
            find_adoptable_cloud_jobs(
                &[job(
                    "elsewhere",
                    json!({"targetClusterName": "orders-copy"})
                )],
                &restore,
                true,
                since
            )
            .is_empty()
        );
        assert!(
            find_adoptable_cloud_jobs(
                &[job("automated", json!({"deliveryType": "automated"}))],
                &restore,
                true,
                since
            )
            .is_empty()
        );
        let download = CloudRestoreJob::Download {
            snapshot_id: ObjectId::parse(SNAPSHOT).unwrap(),
        };
        let download_job = serde_json::from_value::<RestoreJob>(
            json!({"id": "d", "deliveryType": "download", "snapshotId": SNAPSHOT}),
        )
        .unwrap();
        assert_eq!(
            find_adoptable_cloud_jobs(&[download_job], &download, false, since).len(),
            1
        );
    }

    #[test]
    fn a_download_matches_on_method_and_snapshot() {
        let restore = LegacyRestoreJob::Download {
            snapshot_id: ObjectId::parse(SNAPSHOT).unwrap(),
            options: DownloadOptions::default(),
        };
        let http =
            job(json!({"id": "h", "snapshotId": SNAPSHOT, "delivery": {"methodName": "HTTP"}}));
        let automated_job =
            job(json!({"id": "a", "snapshotId": SNAPSHOT, "delivery": delivery("orders-drill")}));
        assert_eq!(
            find_adoptable_jobs(&[automated_job, http], &restore, false)
                .into_iter()
                .map(|j| j.id)
                .collect::<Vec<_>>(),
            vec!["h"]
        );
    }
}
