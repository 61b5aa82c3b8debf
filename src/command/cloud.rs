//! Cloud Backup restore jobs (`DiskBackupSnapshotRestoreJob`,
//! `POST /api/atlas/v2/.../backup/restoreJobs`): validation of the `restore` body and the exact
//! body sent to Atlas. Times here are epoch SECONDS (legacy restores use milliseconds).

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::Value;

use super::fields::{FieldRules, Fields, Problems};
use super::values::{ClusterName, ObjectId, PositiveInt32};
use super::{CommandPoint, RestorePointChoice, RunTimePoint};
use crate::outcome::ErrorCode;

/// Atlas refuses Cloud Backup times before 2008-01-01 (`minimum: 1199145600`).
pub const MIN_EPOCH_SECONDS: i64 = 1_199_145_600;

const RESTORE_RULES: FieldRules = FieldRules {
    writable: &[
        "deliveryType",
        "snapshotId",
        "targetClusterName",
        "targetGroupId",
        "oplogTs",
        "oplogInc",
        "pointInTimeUTCSeconds",
    ],
    read_only: &[
        "cancelled",
        "components",
        "deliveryUrl",
        "desiredTimestamp",
        "expired",
        "expiresAt",
        "failed",
        "finishedAt",
        "id",
        "links",
        "privateDownloadDeliveryUrls",
        "timestamp",
    ],
    elsewhere: &[
        (
            "delivery",
            "it is a legacy backup field; a Cloud Backup restore takes \"deliveryType\" and top-level targets, or set \"backupType\": \"legacy\"",
        ),
        (
            "methodName",
            "it is a legacy backup field; a Cloud Backup restore takes \"deliveryType\", or set \"backupType\": \"legacy\"",
        ),
        (
            "checkpointId",
            "it is a legacy backup field; set \"backupType\": \"legacy\"",
        ),
        (
            "pointInTimeUTCMillis",
            "it is a legacy backup field (milliseconds); a Cloud Backup restore takes \"pointInTimeUTCSeconds\" (seconds)",
        ),
        (
            "targetClusterId",
            "a Cloud Backup restore names its target by \"targetClusterName\"",
        ),
        (
            "restorePoint",
            "\"restorePoint\" belongs at the top level of the command, beside \"restore\"",
        ),
    ],
};

/// The cluster a Cloud Backup restore overwrites (Atlas deletes its data first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloudTarget {
    pub group_id: ObjectId,
    pub cluster_name: ClusterName,
}

/// A point in time of a Cloud Backup restore.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloudPoint {
    Seconds(i64),
    Oplog {
        timestamp_seconds: i64,
        increment: PositiveInt32,
    },
}

/// A validated Cloud Backup restore whose point may still be chosen at run time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloudRestoreSpec {
    Automated {
        snapshot: RestorePointChoice<ObjectId>,
        target: CloudTarget,
    },
    Download {
        snapshot: RestorePointChoice<ObjectId>,
    },
    PointInTime {
        point: RestorePointChoice<CloudPoint>,
        target: CloudTarget,
    },
}

/// A Cloud Backup restore with every choice made: exactly what is sent to Atlas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloudRestoreJob {
    Automated {
        snapshot_id: ObjectId,
        target: CloudTarget,
    },
    Download {
        snapshot_id: ObjectId,
    },
    PointInTime {
        point: CloudPoint,
        target: CloudTarget,
    },
}

impl CloudRestoreSpec {
    pub fn needs_latest_snapshot(&self) -> bool {
        match self {
            CloudRestoreSpec::Automated { snapshot, .. }
            | CloudRestoreSpec::Download { snapshot } => {
                matches!(snapshot, RestorePointChoice::AtRunTime(_))
            }
            CloudRestoreSpec::PointInTime { .. } => false,
        }
    }

    pub fn point_chosen_at_run_time(&self) -> bool {
        match self {
            CloudRestoreSpec::Automated { snapshot, .. }
            | CloudRestoreSpec::Download { snapshot } => {
                matches!(snapshot, RestorePointChoice::AtRunTime(_))
            }
            CloudRestoreSpec::PointInTime { point, .. } => {
                matches!(point, RestorePointChoice::AtRunTime(_))
            }
        }
    }

    pub fn target(&self) -> Option<&CloudTarget> {
        match self {
            CloudRestoreSpec::Automated { target, .. }
            | CloudRestoreSpec::PointInTime { target, .. } => Some(target),
            CloudRestoreSpec::Download { .. } => None,
        }
    }

    /// Fixes the restore point (`latestSnapshot` from `latest_snapshot`, `minutesAgo` from `now`).
    pub fn resolve(
        &self,
        now: DateTime<Utc>,
        latest_snapshot: Option<&ObjectId>,
    ) -> Option<CloudRestoreJob> {
        let snapshot_of = |choice: &RestorePointChoice<ObjectId>| match choice {
            RestorePointChoice::Given(id) => Some(id.clone()),
            RestorePointChoice::AtRunTime(_) => latest_snapshot.cloned(),
        };
        Some(match self {
            CloudRestoreSpec::Automated { snapshot, target } => CloudRestoreJob::Automated {
                snapshot_id: snapshot_of(snapshot)?,
                target: target.clone(),
            },
            CloudRestoreSpec::Download { snapshot } => CloudRestoreJob::Download {
                snapshot_id: snapshot_of(snapshot)?,
            },
            CloudRestoreSpec::PointInTime { point, target } => {
                let point = match point {
                    RestorePointChoice::Given(point) => *point,
                    RestorePointChoice::AtRunTime(RunTimePoint::MinutesAgo(minutes)) => {
                        CloudPoint::Seconds(
                            (now - Duration::minutes(i64::from(minutes.get()))).timestamp(),
                        )
                    }
                    RestorePointChoice::AtRunTime(RunTimePoint::LatestSnapshot) => return None,
                };
                CloudRestoreJob::PointInTime {
                    point,
                    target: target.clone(),
                }
            }
        })
    }

    /// The body with every fixed field, a run-time point left out: the canonical `restore`.
    pub fn canonical_body(&self) -> Value {
        let given = |choice: &RestorePointChoice<ObjectId>| match choice {
            RestorePointChoice::Given(id) => Some(id.clone()),
            RestorePointChoice::AtRunTime(_) => None,
        };
        match self {
            CloudRestoreSpec::Automated { snapshot, target } => {
                body("automated", given(snapshot).as_ref(), Some(target), None)
            }
            CloudRestoreSpec::Download { snapshot } => {
                body("download", given(snapshot).as_ref(), None, None)
            }
            CloudRestoreSpec::PointInTime { point, target } => {
                let point = match point {
                    RestorePointChoice::Given(point) => Some(*point),
                    RestorePointChoice::AtRunTime(_) => None,
                };
                body("pointInTime", None, Some(target), point)
            }
        }
    }
}

impl CloudRestoreJob {
    /// The exact `DiskBackupSnapshotRestoreJob` body for Atlas: writable fields only.
    pub fn atlas_body(&self) -> Value {
        match self {
            CloudRestoreJob::Automated {
                snapshot_id,
                target,
            } => body("automated", Some(snapshot_id), Some(target), None),
            CloudRestoreJob::Download { snapshot_id } => {
                body("download", Some(snapshot_id), None, None)
            }
            CloudRestoreJob::PointInTime { point, target } => {
                body("pointInTime", None, Some(target), Some(*point))
            }
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BodyWire<'a> {
    delivery_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    snapshot_id: Option<&'a ObjectId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target_cluster_name: Option<&'a ClusterName>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target_group_id: Option<&'a ObjectId>,
    #[serde(
        rename = "pointInTimeUTCSeconds",
        skip_serializing_if = "Option::is_none"
    )]
    point_in_time_utc_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    oplog_ts: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    oplog_inc: Option<PositiveInt32>,
}

fn body(
    delivery_type: &'static str,
    snapshot_id: Option<&ObjectId>,
    target: Option<&CloudTarget>,
    point: Option<CloudPoint>,
) -> Value {
    let (seconds, oplog_ts, oplog_inc) = match point {
        Some(CloudPoint::Seconds(s)) => (Some(s), None, None),
        Some(CloudPoint::Oplog {
            timestamp_seconds,
            increment,
        }) => (None, Some(timestamp_seconds), Some(increment)),
        None => (None, None, None),
    };
    let wire = BodyWire {
        delivery_type,
        snapshot_id,
        target_cluster_name: target.map(|t| &t.cluster_name),
        target_group_id: target.map(|t| &t.group_id),
        point_in_time_utc_seconds: seconds,
        oplog_ts,
        oplog_inc,
    };
    serde_json::to_value(wire).unwrap_or(Value::Null)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum DeliveryType {
    Automated,
    Download,
    PointInTime,
}

/// Validates a Cloud Backup `restore` object (at `/restore`) with the command's `restorePoint`.
pub(crate) fn validate(
    restore: &Value,
    point: CommandPoint,
    now: DateTime<Utc>,
    problems: &mut Problems,
) -> Option<CloudRestoreSpec> {
    let fields = Fields::of(restore, "/restore", "\"restore\"", &RESTORE_RULES, problems)?;
    let delivery = read_delivery_type(&fields, problems);
    let restore = CloudFields::read(fields, now, problems);
    match delivery? {
        DeliveryType::Automated => restore.automated(point, problems),
        DeliveryType::Download => restore.download(point, problems),
        DeliveryType::PointInTime => restore.point_in_time(point, problems),
    }
}

/// A Cloud Backup `restore`'s fields, each read (its problems reported) once, in this order,
/// whatever its `deliveryType`.
struct CloudFields<'a> {
    fields: Fields<'a>,
    snapshot: Option<ObjectId>,
    group_id: Option<ObjectId>,
    cluster_name: Option<ClusterName>,
    seconds: Option<i64>,
    oplog_ts: Option<i64>,
    oplog_inc: Option<PositiveInt32>,
}

impl<'a> CloudFields<'a> {
    fn read(fields: Fields<'a>, now: DateTime<Utc>, problems: &mut Problems) -> CloudFields<'a> {
        CloudFields {
            snapshot: fields.object_id("snapshotId", problems),
            group_id: fields.object_id("targetGroupId", problems),
            cluster_name: fields.cluster_name("targetClusterName", problems),
            seconds: read_epoch_seconds(&fields, "pointInTimeUTCSeconds", now, problems),
            oplog_ts: read_epoch_seconds(&fields, "oplogTs", now, problems),
            oplog_inc: fields.positive_int32("oplogInc", problems),
            fields,
        }
    }

    fn automated(&self, point: CommandPoint, problems: &mut Problems) -> Option<CloudRestoreSpec> {
        self.not_with(
            &["pointInTimeUTCSeconds", "oplogTs", "oplogInc"],
            "automated",
            "a point in time needs deliveryType \"pointInTime\"",
            problems,
        );
        let target = self.target(problems);
        let snapshot = self.snapshot_choice("automated", point, problems)?;
        target.map(|target| CloudRestoreSpec::Automated { snapshot, target })
    }

    fn download(&self, point: CommandPoint, problems: &mut Problems) -> Option<CloudRestoreSpec> {
        self.not_with(
            &["targetGroupId", "targetClusterName"],
            "download",
            "a download has no target cluster",
            problems,
        );
        self.not_with(
            &["pointInTimeUTCSeconds", "oplogTs", "oplogInc"],
            "download",
            "a download restores a snapshot",
            problems,
        );
        self.snapshot_choice("download", point, problems)
            .map(|snapshot| CloudRestoreSpec::Download { snapshot })
    }

    fn point_in_time(
        &self,
        point: CommandPoint,
        problems: &mut Problems,
    ) -> Option<CloudRestoreSpec> {
        self.not_with(
            &["snapshotId"],
            "pointInTime",
            "a point-in-time restore takes pointInTimeUTCSeconds or oplogTs + oplogInc",
            problems,
        );
        let target = self.target(problems);
        let point = read_point(
            &self.fields,
            self.seconds,
            self.oplog_ts,
            self.oplog_inc,
            point.run_time_point,
            point.given,
            problems,
        )?;
        target.map(|target| CloudRestoreSpec::PointInTime { point, target })
    }

    /// Reports each of `names` given, as not applying to deliveryType `method`.
    fn not_with(&self, names: &[&str], method: &str, why: &str, problems: &mut Problems) {
        for name in names {
            if self.fields.has(name) {
                problems.add(
                    self.fields.pointer(name),
                    ErrorCode::NotAllowedWithMethod,
                    format!("\"{name}\" does not apply to deliveryType \"{method}\": {why}"),
                );
            }
        }
    }

    /// The cluster to overwrite: both of its fields are required.
    fn target(&self, problems: &mut Problems) -> Option<CloudTarget> {
        let group = self.fields.require(
            "targetGroupId",
            ": the project of the cluster to overwrite",
            problems,
        );
        let name = self
            .fields
            .require("targetClusterName", ": the cluster to overwrite", problems);
        if !(group && name) {
            return None;
        }
        Some(CloudTarget {
            group_id: self.group_id.clone()?,
            cluster_name: self.cluster_name.clone()?,
        })
    }

    /// The snapshot: `snapshotId` or the command's `"restorePoint": "latestSnapshot"`, exactly
    /// one of them.
    fn snapshot_choice(
        &self,
        method: &str,
        point: CommandPoint,
        problems: &mut Problems,
    ) -> Option<RestorePointChoice<ObjectId>> {
        match (self.fields.has("snapshotId"), point.given) {
            (true, true) => {
                problems.add(
                    "",
                    ErrorCode::Conflict,
                    "exactly one restore point is allowed, got snapshotId, restorePoint",
                );
                None
            }
            (false, false) => {
                self.fields.require("snapshotId", &format!(" with deliveryType \"{method}\" (or the command's \"restorePoint\": \"latestSnapshot\")"), problems);
                None
            }
            (true, false) => self.snapshot.clone().map(RestorePointChoice::Given),
            (false, true) => match point.run_time_point? {
                RunTimePoint::LatestSnapshot => {
                    Some(RestorePointChoice::AtRunTime(RunTimePoint::LatestSnapshot))
                }
                RunTimePoint::MinutesAgo(_) => {
                    problems.add("/restorePoint", ErrorCode::NotAllowedWithMethod, format!("{{\"minutesAgo\": N}} is a point in time: it needs deliveryType \"pointInTime\", not \"{method}\""));
                    None
                }
            },
        }
    }
}

fn read_delivery_type(fields: &Fields<'_>, problems: &mut Problems) -> Option<DeliveryType> {
    if !fields.require(
        "deliveryType",
        ": \"automated\", \"download\" or \"pointInTime\"",
        problems,
    ) {
        return None;
    }
    match fields.string("deliveryType", problems)? {
        "automated" => Some(DeliveryType::Automated),
        "download" => Some(DeliveryType::Download),
        "pointInTime" => Some(DeliveryType::PointInTime),
        other => {
            let hint = match other {
                "AUTOMATED_RESTORE" | "HTTP" => {
                    "; that is a legacy methodName (set \"backupType\": \"legacy\" for a legacy restore)"
                }
                _ if other.eq_ignore_ascii_case("pointintime")
                    || other.eq_ignore_ascii_case("automated")
                    || other.eq_ignore_ascii_case("download") =>
                {
                    "; the names are case-sensitive"
                }
                _ => "",
            };
            problems.add(
                fields.pointer("deliveryType"),
                ErrorCode::UnsupportedMethod,
                format!("deliveryType \"{}\" is not supported: use \"automated\", \"download\" or \"pointInTime\"{hint}", super::json::shorten(other, 40)),
            );
            None
        }
    }
}

/// An epoch-seconds field: an int32 of at least 2008-01-01, not in the future.
fn read_epoch_seconds(
    fields: &Fields<'_>,
    name: &str,
    now: DateTime<Utc>,
    problems: &mut Problems,
) -> Option<i64> {
    let seconds = fields.integer(name, problems)?;
    let at = fields.pointer(name);
    if seconds < MIN_EPOCH_SECONDS || seconds > i64::from(i32::MAX) {
        let hint = if seconds > 100_000_000_000 {
            " (milliseconds instead of seconds?)"
        } else {
            ""
        };
        problems.add(at, ErrorCode::OutOfRange, format!("\"{name}\" is seconds since the epoch, from {MIN_EPOCH_SECONDS} (2008-01-01); got {seconds}{hint}"));
        return None;
    }
    if seconds > now.timestamp() {
        problems.add(
            at,
            ErrorCode::OutOfWindow,
            format!(
                "\"{name}\" {seconds} is in the future (now is {})",
                now.timestamp()
            ),
        );
        return None;
    }
    Some(seconds)
}

fn read_point(
    fields: &Fields<'_>,
    seconds: Option<i64>,
    oplog_ts: Option<i64>,
    oplog_inc: Option<PositiveInt32>,
    run_time_point: Option<RunTimePoint>,
    run_time_point_given: bool,
    problems: &mut Problems,
) -> Option<RestorePointChoice<CloudPoint>> {
    let (has_seconds, has_ts, has_inc) = (
        fields.has("pointInTimeUTCSeconds"),
        fields.has("oplogTs"),
        fields.has("oplogInc"),
    );
    fields.require_oplog_pair(problems);
    let mut kinds = Vec::new();
    if has_seconds {
        kinds.push("pointInTimeUTCSeconds");
    }
    if has_ts || has_inc {
        kinds.push("oplogTs/oplogInc");
    }
    if run_time_point_given {
        kinds.push("restorePoint");
    }
    match kinds.len() {
        0 => {
            problems.add("/restore", ErrorCode::Required, "deliveryType \"pointInTime\" needs pointInTimeUTCSeconds, or oplogTs + oplogInc, or the command's {\"minutesAgo\": N}");
            None
        }
        1 if run_time_point_given => match run_time_point? {
            RunTimePoint::MinutesAgo(minutes) => Some(RestorePointChoice::AtRunTime(
                RunTimePoint::MinutesAgo(minutes),
            )),
            RunTimePoint::LatestSnapshot => {
                problems.add("/restorePoint", ErrorCode::NotAllowedWithMethod, "\"latestSnapshot\" is a snapshot: it needs deliveryType \"automated\" or \"download\", not \"pointInTime\"");
                None
            }
        },
        1 if has_seconds => seconds.map(|s| RestorePointChoice::Given(CloudPoint::Seconds(s))),
        1 => Some(RestorePointChoice::Given(CloudPoint::Oplog {
            timestamp_seconds: oplog_ts?,
            increment: oplog_inc?,
        })),
        _ => {
            problems.restore_point_conflict(&kinds, run_time_point_given);
            None
        }
    }
}
