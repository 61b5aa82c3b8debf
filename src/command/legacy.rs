//! Legacy backup restore jobs (`BackupRestoreJob`, `POST /api/atlas/v1.0/.../restoreJobs`):
//! validation of the `restore` body and the exact body sent to Atlas.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::Value;

use super::fields::{FieldRules, Fields, Problems};
use super::values::{ClusterName, ObjectId, PositiveInt32};
use super::{CommandPoint, RestorePointChoice, RunTimePoint};
use crate::outcome::ErrorCode;

/// Atlas refuses `pointInTimeUTCMillis` below this (2008-01-01T00:00:00Z).
pub const MIN_POINT_IN_TIME_MILLIS: i64 = 1_199_145_600_000;
/// Atlas accepts a point in time only within the last 24 hours.
pub const POINT_IN_TIME_WINDOW: Duration = Duration::hours(24);

/// Whether `text` is an `oplogTs` as the endpoint's OpenAPI pattern defines it:
/// `YYYY-MM-DDTHH:MM:SS`, an optional fraction of 1 to 9 digits, then `Z` or `±HH:MM` (hours
/// 00-19), with a real calendar date, a year from 1000, and no leap second.
fn is_oplog_timestamp(text: &str) -> bool {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        bytes
            .get(range.clone())
            .is_some_and(|b| b.iter().all(u8::is_ascii_digit))
    };
    let number =
        |range: std::ops::Range<usize>| text.get(range).and_then(|t| t.parse::<u32>().ok());
    let shape = bytes.len() >= 20
        && digits(0..4)
        && bytes[0] != b'0'
        && bytes[4] == b'-'
        && digits(5..7)
        && bytes[7] == b'-'
        && digits(8..10)
        && bytes[10] == b'T'
        && digits(11..13)
        && bytes[13] == b':'
        && digits(14..16)
        && bytes[16] == b':'
        && digits(17..19);
    if !shape {
        return false;
    }
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let length = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if !(1..=9).contains(&length) {
            return false;
        }
        rest = &fraction[length..];
    }
    let zone_ok = rest == "Z"
        || (rest.len() == 6
            && matches!(rest.as_bytes()[0], b'+' | b'-')
            && matches!(rest.as_bytes()[1], b'0' | b'1')
            && rest.as_bytes()[2].is_ascii_digit()
            && rest.as_bytes()[3] == b':'
            && matches!(rest.as_bytes()[4], b'0'..=b'5')
            && rest.as_bytes()[5].is_ascii_digit());
    let (Some(year), Some(month), Some(day)) = (number(0..4), number(5..7), number(8..10)) else {
        return false;
    };
    let (Some(hour), Some(minute), Some(second)) = (number(11..13), number(14..16), number(17..19))
    else {
        return false;
    };
    zone_ok
        && chrono::NaiveDate::from_ymd_opt(year as i32, month, day).is_some()
        && hour < 24
        && minute < 60
        && second < 60
}

const RESTORE_RULES: FieldRules = FieldRules {
    writable: &[
        "snapshotId",
        "checkpointId",
        "oplogTs",
        "oplogInc",
        "pointInTimeUTCMillis",
        "delivery",
    ],
    read_only: &[
        "batchId",
        "clusterId",
        "clusterName",
        "created",
        "deploymentJobId",
        "encryptionEnabled",
        "groupId",
        "hashes",
        "id",
        "links",
        "masterKeyUUID",
        "statusName",
        "timestamp",
    ],
    elsewhere: &[
        (
            "deliveryType",
            "it is a Cloud Backup field; set \"backupType\": \"cloud\" for a Cloud Backup restore",
        ),
        (
            "pointInTimeUTCSeconds",
            "it is a Cloud Backup field (seconds); a legacy restore takes \"pointInTimeUTCMillis\" (milliseconds), or set \"backupType\": \"cloud\"",
        ),
        (
            "targetClusterName",
            "in a legacy restore the target goes in \"delivery\": /restore/delivery/targetClusterName",
        ),
        (
            "targetGroupId",
            "in a legacy restore the target goes in \"delivery\": /restore/delivery/targetGroupId",
        ),
        (
            "targetClusterId",
            "in a legacy restore the target goes in \"delivery\": /restore/delivery/targetClusterId",
        ),
        (
            "methodName",
            "it belongs in \"delivery\": /restore/delivery/methodName",
        ),
        (
            "restorePoint",
            "\"restorePoint\" belongs at the top level of the command, beside \"restore\"",
        ),
    ],
};

const DELIVERY_RULES: FieldRules = FieldRules {
    writable: &[
        "methodName",
        "targetGroupId",
        "targetClusterName",
        "targetClusterId",
        "expirationHours",
        "maxDownloads",
    ],
    read_only: &[
        "authHeader",
        "authValue",
        "expires",
        "statusName",
        "url",
        "urlV2",
    ],
    elsewhere: &[(
        "deliveryType",
        "it is a Cloud Backup field; set \"backupType\": \"cloud\" for a Cloud Backup restore",
    )],
};

const TARGET_FIELDS: [&str; 3] = ["targetGroupId", "targetClusterName", "targetClusterId"];
const DOWNLOAD_FIELDS: [&str; 2] = ["expirationHours", "maxDownloads"];

/// The point a legacy restore goes back to, once known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LegacyPoint {
    Snapshot(ObjectId),
    /// Sharded clusters only.
    Checkpoint(ObjectId),
    Oplog {
        /// ISO-8601, kept as the caller wrote it once it parsed.
        timestamp: String,
        increment: PositiveInt32,
    },
    PointInTime {
        utc_millis: i64,
    },
}

/// Where an automated restore writes. Atlas deletes all data on this cluster first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AutomatedTarget {
    pub group_id: ObjectId,
    pub cluster: TargetCluster,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetCluster {
    Name(ClusterName),
    Id(ObjectId),
}

/// Options of a download (`HTTP`) restore.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DownloadOptions {
    pub expiration_hours: Option<PositiveInt32>,
    pub max_downloads: Option<PositiveInt32>,
}

/// A validated legacy restore whose point may still be chosen at run time.
/// Point-in-time kinds exist only for automated restores, so a download carries a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LegacyRestoreSpec {
    Automated {
        point: RestorePointChoice<LegacyPoint>,
        target: AutomatedTarget,
    },
    Download {
        snapshot: RestorePointChoice<ObjectId>,
        options: DownloadOptions,
    },
}

/// A legacy restore with every choice made: exactly what is sent to Atlas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LegacyRestoreJob {
    Automated {
        point: LegacyPoint,
        target: AutomatedTarget,
    },
    Download {
        snapshot_id: ObjectId,
        options: DownloadOptions,
    },
}

/// Why a run-time restore point could not be chosen.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("the source cluster has no completed legacy snapshot to restore from")]
    NoCompletedSnapshot,
}

impl LegacyRestoreSpec {
    /// Whether resolving needs the newest completed snapshot of the source cluster.
    pub fn needs_latest_snapshot(&self) -> bool {
        match self {
            LegacyRestoreSpec::Automated { point, .. } => matches!(
                point,
                RestorePointChoice::AtRunTime(RunTimePoint::LatestSnapshot)
            ),
            LegacyRestoreSpec::Download { snapshot, .. } => {
                matches!(snapshot, RestorePointChoice::AtRunTime(_))
            }
        }
    }

    /// Whether the restore point is chosen when the command runs (`restorePoint`).
    pub fn point_chosen_at_run_time(&self) -> bool {
        match self {
            LegacyRestoreSpec::Automated { point, .. } => {
                matches!(point, RestorePointChoice::AtRunTime(_))
            }
            LegacyRestoreSpec::Download { snapshot, .. } => {
                matches!(snapshot, RestorePointChoice::AtRunTime(_))
            }
        }
    }

    /// Fixes the restore point: `latestSnapshot` becomes `latest_snapshot`, `minutesAgo` becomes
    /// `pointInTimeUTCMillis` counted back from `now`.
    pub fn resolve(
        &self,
        now: DateTime<Utc>,
        latest_snapshot: Option<&ObjectId>,
    ) -> Result<LegacyRestoreJob, ResolveError> {
        let latest = || {
            latest_snapshot
                .cloned()
                .ok_or(ResolveError::NoCompletedSnapshot)
        };
        Ok(match self {
            LegacyRestoreSpec::Automated { point, target } => {
                let point = match point {
                    RestorePointChoice::Given(point) => point.clone(),
                    RestorePointChoice::AtRunTime(RunTimePoint::LatestSnapshot) => {
                        LegacyPoint::Snapshot(latest()?)
                    }
                    RestorePointChoice::AtRunTime(RunTimePoint::MinutesAgo(minutes)) => {
                        LegacyPoint::PointInTime {
                            utc_millis: (now - Duration::minutes(i64::from(minutes.get())))
                                .timestamp_millis(),
                        }
                    }
                };
                LegacyRestoreJob::Automated {
                    point,
                    target: target.clone(),
                }
            }
            LegacyRestoreSpec::Download { snapshot, options } => {
                let snapshot_id = match snapshot {
                    RestorePointChoice::Given(id) => id.clone(),
                    RestorePointChoice::AtRunTime(_) => latest()?,
                };
                LegacyRestoreJob::Download {
                    snapshot_id,
                    options: *options,
                }
            }
        })
    }

    /// The target cluster an automated restore wipes, if any.
    pub fn target(&self) -> Option<&AutomatedTarget> {
        match self {
            LegacyRestoreSpec::Automated { target, .. } => Some(target),
            LegacyRestoreSpec::Download { .. } => None,
        }
    }

    /// The body with every fixed field, restore point left out when chosen at run time:
    /// the `restore` part of the canonical command.
    pub fn canonical_body(&self) -> Value {
        let (point, delivery) = match self {
            LegacyRestoreSpec::Automated { point, target } => {
                let point = match point {
                    RestorePointChoice::Given(point) => Some(point.clone()),
                    RestorePointChoice::AtRunTime(_) => None,
                };
                (point, automated_delivery(target))
            }
            LegacyRestoreSpec::Download { snapshot, options } => {
                let point = match snapshot {
                    RestorePointChoice::Given(id) => Some(LegacyPoint::Snapshot(id.clone())),
                    RestorePointChoice::AtRunTime(_) => None,
                };
                (point, download_delivery(options))
            }
        };
        body(point.as_ref(), delivery)
    }
}

impl LegacyRestoreJob {
    /// The exact `BackupRestoreJob` body for Atlas: writable fields only, ids in lower case.
    pub fn atlas_body(&self) -> Value {
        match self {
            LegacyRestoreJob::Automated { point, target } => {
                body(Some(point), automated_delivery(target))
            }
            LegacyRestoreJob::Download {
                snapshot_id,
                options,
            } => body(
                Some(&LegacyPoint::Snapshot(snapshot_id.clone())),
                download_delivery(options),
            ),
        }
    }

    pub fn point(&self) -> LegacyPoint {
        match self {
            LegacyRestoreJob::Automated { point, .. } => point.clone(),
            LegacyRestoreJob::Download { snapshot_id, .. } => {
                LegacyPoint::Snapshot(snapshot_id.clone())
            }
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BodyWire<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    snapshot_id: Option<&'a ObjectId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    checkpoint_id: Option<&'a ObjectId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    oplog_ts: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    oplog_inc: Option<PositiveInt32>,
    #[serde(
        rename = "pointInTimeUTCMillis",
        skip_serializing_if = "Option::is_none"
    )]
    point_in_time_utc_millis: Option<i64>,
    delivery: DeliveryWire<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DeliveryWire<'a> {
    method_name: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    target_group_id: Option<&'a ObjectId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target_cluster_name: Option<&'a ClusterName>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target_cluster_id: Option<&'a ObjectId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expiration_hours: Option<PositiveInt32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_downloads: Option<PositiveInt32>,
}

fn automated_delivery(target: &AutomatedTarget) -> DeliveryWire<'_> {
    let (name, id) = match &target.cluster {
        TargetCluster::Name(name) => (Some(name), None),
        TargetCluster::Id(id) => (None, Some(id)),
    };
    DeliveryWire {
        method_name: "AUTOMATED_RESTORE",
        target_group_id: Some(&target.group_id),
        target_cluster_name: name,
        target_cluster_id: id,
        expiration_hours: None,
        max_downloads: None,
    }
}

fn download_delivery(options: &DownloadOptions) -> DeliveryWire<'static> {
    DeliveryWire {
        method_name: "HTTP",
        target_group_id: None,
        target_cluster_name: None,
        target_cluster_id: None,
        expiration_hours: options.expiration_hours,
        max_downloads: options.max_downloads,
    }
}

fn body(point: Option<&LegacyPoint>, delivery: DeliveryWire<'_>) -> Value {
    let mut wire = BodyWire {
        snapshot_id: None,
        checkpoint_id: None,
        oplog_ts: None,
        oplog_inc: None,
        point_in_time_utc_millis: None,
        delivery,
    };
    match point {
        Some(LegacyPoint::Snapshot(id)) => wire.snapshot_id = Some(id),
        Some(LegacyPoint::Checkpoint(id)) => wire.checkpoint_id = Some(id),
        Some(LegacyPoint::Oplog {
            timestamp,
            increment,
        }) => {
            wire.oplog_ts = Some(timestamp);
            wire.oplog_inc = Some(*increment);
        }
        Some(LegacyPoint::PointInTime { utc_millis }) => {
            wire.point_in_time_utc_millis = Some(*utc_millis)
        }
        None => {}
    }
    serde_json::to_value(wire).unwrap_or(Value::Null)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Method {
    Automated,
    Download,
}

/// Validates a legacy `restore` object (at `/restore`) together with the command's
/// `restorePoint`, reporting every problem.
pub(crate) fn validate(
    restore: &Value,
    point: CommandPoint,
    now: DateTime<Utc>,
    problems: &mut Problems,
) -> Option<LegacyRestoreSpec> {
    let fields = Fields::of(restore, "/restore", "\"restore\"", &RESTORE_RULES, problems)?;

    let delivery = read_delivery(&fields, problems);
    let method = delivery
        .as_ref()
        .and_then(|delivery| read_method(delivery, problems));
    let point = read_point(&fields, method, point, now, problems);

    match method? {
        Method::Automated => {
            let target = read_target(delivery.as_ref()?, problems);
            let point = point?;
            target.map(|target| LegacyRestoreSpec::Automated { point, target })
        }
        Method::Download => {
            let options = read_download_options(delivery.as_ref()?, problems);
            let snapshot = match point? {
                RestorePointChoice::Given(LegacyPoint::Snapshot(id)) => {
                    RestorePointChoice::Given(id)
                }
                RestorePointChoice::AtRunTime(RunTimePoint::LatestSnapshot) => {
                    RestorePointChoice::AtRunTime(RunTimePoint::LatestSnapshot)
                }
                // read_point has already reported any other kind as not allowed with HTTP.
                _ => return None,
            };
            options.map(|options| LegacyRestoreSpec::Download { snapshot, options })
        }
    }
}

fn read_delivery<'a>(fields: &Fields<'a>, problems: &mut Problems) -> Option<Fields<'a>> {
    if !fields.require(
        "delivery",
        ": it says how the restore is delivered",
        problems,
    ) {
        return None;
    }
    let delivery = Fields::of(
        fields.get("delivery")?,
        "/restore/delivery",
        "\"delivery\"",
        &DELIVERY_RULES,
        problems,
    )?;
    Some(delivery)
}

fn read_method(delivery: &Fields<'_>, problems: &mut Problems) -> Option<Method> {
    if !delivery.require(
        "methodName",
        ": \"AUTOMATED_RESTORE\" or \"HTTP\"",
        problems,
    ) {
        return None;
    }
    let name = delivery.string("methodName", problems)?;
    let at = delivery.pointer("methodName");
    match name {
        "AUTOMATED_RESTORE" => Some(Method::Automated),
        "HTTP" => Some(Method::Download),
        other => {
            let shown = super::json::shorten(other, 40);
            let hint = match other.to_ascii_uppercase().as_str() {
                "AUTOMATED_RESTORE" | "HTTP" => format!(
                    "; method names are upper case: \"{}\"",
                    other.to_ascii_uppercase()
                ),
                "DOWNLOAD" => {
                    "; a legacy download is \"HTTP\" (\"download\" is a Cloud Backup deliveryType)"
                        .to_owned()
                }
                "QUERY" | "CLIENT_PIT_HTTP" | "THIRD_PARTY_COPY" | "CLIENT_PIT_SCP" | "SCP" => {
                    "; Atlas lists it but does not accept it when creating a restore job".to_owned()
                }
                _ => String::new(),
            };
            problems.add(
                at,
                ErrorCode::UnsupportedMethod,
                format!("methodName \"{shown}\" is not supported: use \"AUTOMATED_RESTORE\" or \"HTTP\"{hint}"),
            );
            None
        }
    }
}

/// Reads the restore point: exactly one of the four kinds in `restore`, or the command's
/// `restorePoint`. Reports conflicts, pairs and kinds not allowed with the method.
fn read_point(
    fields: &Fields<'_>,
    method: Option<Method>,
    point: CommandPoint,
    now: DateTime<Utc>,
    problems: &mut Problems,
) -> Option<RestorePointChoice<LegacyPoint>> {
    let mut kinds: Vec<&str> = Vec::new();
    if fields.has("snapshotId") {
        kinds.push("snapshotId");
    }
    if fields.has("checkpointId") {
        kinds.push("checkpointId");
    }
    if fields.has("oplogTs") || fields.has("oplogInc") {
        kinds.push("oplogTs/oplogInc");
    }
    if fields.has("pointInTimeUTCMillis") {
        kinds.push("pointInTimeUTCMillis");
    }
    if point.given {
        kinds.push("restorePoint");
    }

    let snapshot = fields.object_id("snapshotId", problems);
    let checkpoint = fields.object_id("checkpointId", problems);
    let oplog = read_oplog(fields, now, problems);
    let point_in_time = read_point_in_time(fields, now, problems);

    if method == Some(Method::Download) {
        for name in [
            "checkpointId",
            "oplogTs",
            "oplogInc",
            "pointInTimeUTCMillis",
        ] {
            if fields.has(name) {
                problems.add(
                    fields.pointer(name),
                    ErrorCode::NotAllowedWithMethod,
                    format!("\"{name}\" applies only to \"AUTOMATED_RESTORE\"; a download (\"HTTP\") restores a snapshot"),
                );
            }
        }
        if let Some(RunTimePoint::MinutesAgo(_)) = point.run_time_point {
            problems.add(
                "/restorePoint",
                ErrorCode::NotAllowedWithMethod,
                "{\"minutesAgo\": N} is a point in time and needs \"AUTOMATED_RESTORE\"; a download restores a snapshot",
            );
        }
    }

    match kinds.len() {
        0 => {
            problems.add(
                "/restore",
                ErrorCode::Required,
                "a restore point is required: one of snapshotId, checkpointId, oplogTs + oplogInc, pointInTimeUTCMillis, or the command's restorePoint",
            );
            None
        }
        1 => {
            if point.given {
                return point.run_time_point.map(RestorePointChoice::AtRunTime);
            }
            let point = snapshot
                .map(LegacyPoint::Snapshot)
                .or(checkpoint.map(LegacyPoint::Checkpoint))
                .or(oplog)
                .or(point_in_time.map(|utc_millis| LegacyPoint::PointInTime { utc_millis }))?;
            Some(RestorePointChoice::Given(point))
        }
        _ => {
            problems.restore_point_conflict(&kinds, point.given);
            None
        }
    }
}

fn read_oplog(
    fields: &Fields<'_>,
    now: DateTime<Utc>,
    problems: &mut Problems,
) -> Option<LegacyPoint> {
    fields.require_oplog_pair(problems);
    let timestamp = fields.parsed(
        "oplogTs",
        |text| is_oplog_timestamp(text).then(|| text.to_owned()),
        "an ISO-8601 UTC date-time such as \"2026-11-28T17:06:15Z\"",
        problems,
    );
    if let Some(ts) = &timestamp
        && DateTime::parse_from_rfc3339(ts).is_ok_and(|at| at.with_timezone(&Utc) > now)
    {
        problems.add(
            fields.pointer("oplogTs"),
            ErrorCode::OutOfWindow,
            format!("oplogTs {ts} is in the future"),
        );
    }
    let increment = fields.positive_int32("oplogInc", problems);
    Some(LegacyPoint::Oplog {
        timestamp: timestamp?,
        increment: increment?,
    })
}

fn read_point_in_time(
    fields: &Fields<'_>,
    now: DateTime<Utc>,
    problems: &mut Problems,
) -> Option<i64> {
    let millis = fields.integer("pointInTimeUTCMillis", problems)?;
    let at = fields.pointer("pointInTimeUTCMillis");
    if millis < MIN_POINT_IN_TIME_MILLIS {
        problems.add(
            at,
            ErrorCode::OutOfRange,
            format!(
                "pointInTimeUTCMillis is milliseconds since the epoch and at least {MIN_POINT_IN_TIME_MILLIS} (2008-01-01); got {millis}{}",
                if millis > 0 && millis < 100_000_000_000 { " (seconds instead of milliseconds?)" } else { "" }
            ),
        );
        return None;
    }
    let earliest = (now - POINT_IN_TIME_WINDOW).timestamp_millis();
    let latest = now.timestamp_millis();
    if millis > latest {
        problems.add(
            at,
            ErrorCode::OutOfWindow,
            format!("pointInTimeUTCMillis {millis} is in the future (now is {latest})"),
        );
        None
    } else if millis < earliest {
        problems.add(
            at,
            ErrorCode::OutOfWindow,
            format!("pointInTimeUTCMillis {millis} is more than 24 hours ago; Atlas restores a point in time only within the last 24 hours"),
        );
        None
    } else {
        Some(millis)
    }
}

fn read_target(delivery: &Fields<'_>, problems: &mut Problems) -> Option<AutomatedTarget> {
    for name in DOWNLOAD_FIELDS {
        if delivery.has(name) {
            problems.add(
                delivery.pointer(name),
                ErrorCode::NotAllowedWithMethod,
                format!(
                    "\"{name}\" applies only to a download (\"HTTP\"), not to \"AUTOMATED_RESTORE\""
                ),
            );
        }
    }
    delivery.require(
        "targetGroupId",
        " with \"AUTOMATED_RESTORE\": the project of the cluster to overwrite",
        problems,
    );
    let group_id = delivery.object_id("targetGroupId", problems);
    let name = delivery.cluster_name("targetClusterName", problems);
    let id = delivery.object_id("targetClusterId", problems);
    let cluster = match (
        delivery.has("targetClusterName"),
        delivery.has("targetClusterId"),
    ) {
        (true, true) => {
            problems.add(
                delivery.at.clone(),
                ErrorCode::Conflict,
                "give the target cluster once: targetClusterName or targetClusterId, not both",
            );
            None
        }
        (false, false) => {
            problems.add(
                delivery.at.clone(),
                ErrorCode::Required,
                "\"AUTOMATED_RESTORE\" needs the cluster to overwrite: targetClusterName or targetClusterId",
            );
            None
        }
        (true, false) => name.map(TargetCluster::Name),
        (false, true) => id.map(TargetCluster::Id),
    };
    Some(AutomatedTarget {
        group_id: group_id?,
        cluster: cluster?,
    })
}

fn read_download_options(
    delivery: &Fields<'_>,
    problems: &mut Problems,
) -> Option<DownloadOptions> {
    for name in TARGET_FIELDS {
        if delivery.has(name) {
            problems.add(
                delivery.pointer(name),
                ErrorCode::NotAllowedWithMethod,
                format!("\"{name}\" applies only to \"AUTOMATED_RESTORE\"; a download (\"HTTP\") has no target cluster"),
            );
        }
    }
    let mut positive = |name: &str| -> Result<Option<PositiveInt32>, ()> {
        let Some(value) = delivery.integer(name, problems) else {
            return if delivery.has(name) {
                Err(())
            } else {
                Ok(None)
            };
        };
        match PositiveInt32::new(value) {
            Some(count) => Ok(Some(count)),
            None => {
                problems.add(
                    delivery.pointer(name),
                    ErrorCode::OutOfRange,
                    format!("\"{name}\" must be a 32-bit integer of at least 1; got {value}"),
                );
                Err(())
            }
        }
    };
    let expiration_hours = positive("expirationHours");
    let max_downloads = positive("maxDownloads");
    Some(DownloadOptions {
        expiration_hours: expiration_hours.ok()?,
        max_downloads: max_downloads.ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::is_oplog_timestamp;

    /// The endpoint's own pattern (tests/fixtures/atlas/restore-api.openapi.json, corrected as the
    /// notes say), the reference the hand-written check must agree with.
    const ATLAS_PATTERN: &str = r"^(?:[1-9]\d{3}-(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1\d|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)|(?:0[13578]|1[02])-31)|(?:[1-9]\d(?:0[48]|[2468][048]|[13579][26])|(?:[2468][048]|[13579][26])00)-02-29)T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,9})?(?:Z|[+-][01]\d:[0-5]\d)$";

    #[test]
    fn the_hand_written_check_agrees_with_atlas_pattern_on_every_single_edit_of_valid_samples() {
        let pattern = regex::Regex::new(ATLAS_PATTERN).unwrap();
        let samples = [
            "2026-11-28T10:00:00Z",
            "2024-02-29T23:59:59.123456789+19:59",
            "1000-01-01T00:00:00-00:00",
            "2000-02-29T12:30:45.5Z",
            "2100-12-31T00:00:00+01:00",
        ];
        let alphabet: Vec<char> = "0123456789-:TZ.+ tz9".chars().collect();
        let mut checked = 0;
        for sample in samples {
            let chars: Vec<char> = sample.chars().collect();
            let mut variants = vec![sample.to_owned()];
            for i in 0..=chars.len() {
                for c in &alphabet {
                    let mut replaced = chars.clone();
                    if i < chars.len() {
                        replaced[i] = *c;
                        variants.push(replaced.iter().collect());
                    }
                    let mut inserted = chars.clone();
                    inserted.insert(i, *c);
                    variants.push(inserted.iter().collect());
                }
                if i < chars.len() {
                    let mut removed = chars.clone();
                    removed.remove(i);
                    variants.push(removed.iter().collect());
                }
            }
            for variant in variants {
                assert_eq!(
                    is_oplog_timestamp(&variant),
                    pattern.is_match(&variant),
                    "{variant:?}"
                );
                checked += 1;
            }
        }
        for extra in [
            "2023-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2000-04-31T00:00:00Z",
            "0999-01-01T00:00:00Z",
            "",
            "2026-11-28T10:00:00.Z",
        ] {
            assert_eq!(
                is_oplog_timestamp(extra),
                pattern.is_match(extra),
                "{extra:?}"
            );
        }
        assert!(checked > 3000);
    }
}
