//! The restore command (CONTRACT section 1): strict parsing into a typed value, its canonical
//! form and fingerprint. Pure: no I/O; the clock is passed in.

mod canonical;
pub mod cloud;
pub mod drill;
mod fields;
pub mod json;
pub mod legacy;
mod task_token;
pub mod values;

use chrono::{DateTime, Utc};
use serde_json::Value;

pub use canonical::{canonical_json, fingerprint};
pub use cloud::{CloudPoint, CloudRestoreJob, CloudRestoreSpec, CloudTarget};
pub use drill::{DrillName, DrillSpec};
use fields::{FieldRules, Fields, Problems};
pub use legacy::{
    AutomatedTarget, DownloadOptions, LegacyPoint, LegacyRestoreJob, LegacyRestoreSpec,
    TargetCluster,
};
pub use task_token::TaskToken;
pub use values::{ClusterName, IdempotencyKey, MinutesAgo, ObjectId, PositiveInt32};

use crate::outcome::{ErrorCode, Problem};

/// The fields of a command (CONTRACT section 1).
pub const COMMAND_FIELDS: &[&str] = &[
    "groupId",
    "clusterName",
    "backupType",
    "restore",
    "restorePoint",
    "idempotencyKey",
    "requestedBy",
    "approvedBy",
    "reason",
    "dryRun",
    "drill",
    "taskToken",
];

const COMMAND_RULES: FieldRules = FieldRules {
    writable: COMMAND_FIELDS,
    read_only: &[],
    elsewhere: &[
        (
            "snapshotId",
            "the restore point goes inside \"restore\": /restore/snapshotId",
        ),
        ("delivery", "it goes inside \"restore\": /restore/delivery"),
        (
            "pointInTimeUTCMillis",
            "the restore point goes inside \"restore\": /restore/pointInTimeUTCMillis",
        ),
    ],
};

const MAX_PERSON_CHARS: usize = 128;
const MAX_REASON_CHARS: usize = 1024;

/// A restore point given in the command, or one chosen when the command runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RestorePointChoice<P> {
    Given(P),
    AtRunTime(RunTimePoint),
}

/// The command's `restorePoint`: chosen when the command runs (for schedules).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunTimePoint {
    /// The newest completed snapshot of the source cluster.
    LatestSnapshot,
    /// A point in time this many minutes before the run.
    MinutesAgo(MinutesAgo),
}

/// Which Atlas backup system the restore uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackupType {
    Legacy,
    Cloud,
}

impl BackupType {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupType::Legacy => "legacy",
            BackupType::Cloud => "cloud",
        }
    }
}

/// The restore itself, by backup type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RestoreSpec {
    Legacy(LegacyRestoreSpec),
    Cloud(CloudRestoreSpec),
}

impl RestoreSpec {
    pub fn backup_type(&self) -> BackupType {
        match self {
            RestoreSpec::Legacy(_) => BackupType::Legacy,
            RestoreSpec::Cloud(_) => BackupType::Cloud,
        }
    }

    /// Whether resolving needs the newest completed snapshot of the source cluster.
    pub fn needs_latest_snapshot(&self) -> bool {
        match self {
            RestoreSpec::Legacy(spec) => spec.needs_latest_snapshot(),
            RestoreSpec::Cloud(spec) => spec.needs_latest_snapshot(),
        }
    }

    /// Whether the restore point is chosen when the command runs (`restorePoint`).
    pub fn point_chosen_at_run_time(&self) -> bool {
        match self {
            RestoreSpec::Legacy(spec) => spec.point_chosen_at_run_time(),
            RestoreSpec::Cloud(spec) => spec.point_chosen_at_run_time(),
        }
    }

    /// Fixes the restore point; `None` when `latestSnapshot` is needed and there is none.
    pub fn resolve(
        &self,
        now: DateTime<Utc>,
        latest_snapshot: Option<&ObjectId>,
    ) -> Option<ResolvedRestore> {
        match self {
            RestoreSpec::Legacy(spec) => spec
                .resolve(now, latest_snapshot)
                .ok()
                .map(ResolvedRestore::Legacy),
            RestoreSpec::Cloud(spec) => spec
                .resolve(now, latest_snapshot)
                .map(ResolvedRestore::Cloud),
        }
    }
}

/// A restore with every choice made: exactly what is sent to Atlas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResolvedRestore {
    Legacy(LegacyRestoreJob),
    Cloud(CloudRestoreJob),
}

impl ResolvedRestore {
    /// The exact body for Atlas.
    pub fn atlas_body(&self) -> Value {
        match self {
            ResolvedRestore::Legacy(job) => job.atlas_body(),
            ResolvedRestore::Cloud(job) => job.atlas_body(),
        }
    }
}

/// The source cluster whose backup is restored (the path of the Atlas call).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceCluster {
    pub group_id: ObjectId,
    pub cluster_name: ClusterName,
}

/// The command's `restorePoint`, beside `restore`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CommandPoint {
    pub run_time_point: Option<RunTimePoint>,
    /// Given, whether or not it was valid (so conflicts with restore-point fields in
    /// `restore` are still reported).
    pub given: bool,
}

/// A valid restore command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreCommand {
    pub source: SourceCluster,
    pub restore: RestoreSpec,
    pub idempotency_key: Option<IdempotencyKey>,
    pub requested_by: Option<String>,
    pub approved_by: Option<String>,
    pub reason: Option<String>,
    pub dry_run: bool,
    /// A disaster-recovery drill whose evidence is kept (CONTRACT section 7).
    pub drill: Option<DrillSpec>,
    /// The Step Functions task the request's end is reported to (CONTRACT section 8).
    pub task_token: Option<TaskToken>,
}

impl RestoreCommand {
    /// Whether the request is followed to its end: every request when `FOLLOW_JOBS` is on,
    /// and always a drill and a request with a task token (CONTRACT sections 6 to 8).
    pub fn must_follow(&self, follow_all: bool) -> bool {
        follow_all || self.drill.is_some() || self.task_token.is_some()
    }

    /// Parses the bytes of a command: malformed JSON (including a duplicate key) is one
    /// `MALFORMED_JSON` problem; otherwise see [`RestoreCommand::from_value`].
    pub fn parse(bytes: &[u8], now: DateTime<Utc>) -> Result<RestoreCommand, Vec<Problem>> {
        let value = json::parse_strict(bytes).map_err(|error| {
            vec![Problem::new(
                "",
                ErrorCode::MalformedJson,
                format!("the command is not valid JSON: {error}"),
            )]
        })?;
        RestoreCommand::from_value(&value, now)
    }

    /// Validates a command as strictly as Atlas would, and more, reporting every problem at once.
    /// `now` decides the point-in-time window.
    pub fn from_value(value: &Value, now: DateTime<Utc>) -> Result<RestoreCommand, Vec<Problem>> {
        let mut problems = Problems::default();
        let command = read_command(value, now, &mut problems);
        match command {
            Some(command) if problems.is_empty() => Ok(command),
            _ => Err(problems.0),
        }
    }

    /// The canonical command (RFC 8785) this command's fingerprint is computed from.
    pub fn canonical(&self) -> Value {
        let (backup_type, restore, run_time_point) = match &self.restore {
            RestoreSpec::Legacy(spec) => {
                let point = match spec {
                    LegacyRestoreSpec::Automated {
                        point: RestorePointChoice::AtRunTime(point),
                        ..
                    }
                    | LegacyRestoreSpec::Download {
                        snapshot: RestorePointChoice::AtRunTime(point),
                        ..
                    } => Some(*point),
                    _ => None,
                };
                (BackupType::Legacy, spec.canonical_body(), point)
            }
            RestoreSpec::Cloud(spec) => {
                let point = match spec {
                    CloudRestoreSpec::Automated {
                        snapshot: RestorePointChoice::AtRunTime(point),
                        ..
                    }
                    | CloudRestoreSpec::Download {
                        snapshot: RestorePointChoice::AtRunTime(point),
                    }
                    | CloudRestoreSpec::PointInTime {
                        point: RestorePointChoice::AtRunTime(point),
                        ..
                    } => Some(*point),
                    _ => None,
                };
                (BackupType::Cloud, spec.canonical_body(), point)
            }
        };
        serde_json::json!({
            "groupId": self.source.group_id,
            "clusterName": self.source.cluster_name,
            "backupType": backup_type.as_str(),
            "restore": restore,
            "restorePoint": match run_time_point {
                None => Value::Null,
                Some(RunTimePoint::LatestSnapshot) => Value::from("latestSnapshot"),
                Some(RunTimePoint::MinutesAgo(minutes)) => serde_json::json!({"minutesAgo": minutes.get()}),
            },
        })
    }

    /// SHA-256 of the canonical command, in lower-case hex.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.canonical())
    }
}

fn read_command(
    value: &Value,
    now: DateTime<Utc>,
    problems: &mut Problems,
) -> Option<RestoreCommand> {
    let fields = Fields::of(value, "", "the command", &COMMAND_RULES, problems)?;

    fields.require("groupId", ": the project of the source cluster", problems);
    let group_id = fields.object_id("groupId", problems);
    fields.require("clusterName", ": the source cluster", problems);
    let cluster_name = fields.cluster_name("clusterName", problems);
    let backup_type = read_backup_type(&fields, problems);
    let point = read_run_time_point(&fields, problems);
    let idempotency_key = fields.parsed(
        "idempotencyKey",
        IdempotencyKey::parse,
        "1 to 128 characters without control characters",
        problems,
    );
    let requested_by = read_text(&fields, "requestedBy", MAX_PERSON_CHARS, problems);
    let approved_by = read_text(&fields, "approvedBy", MAX_PERSON_CHARS, problems);
    let reason = read_text(&fields, "reason", MAX_REASON_CHARS, problems);
    let dry_run = fields.boolean("dryRun", problems).unwrap_or(false);
    let drill = drill::read(&fields, problems);
    let task_token = task_token::read(&fields, problems);

    fields.require("restore", ": the Atlas restore job body", problems);
    let restore = match (backup_type?, fields.get("restore")) {
        (BackupType::Legacy, Some(restore)) => {
            legacy::validate(restore, point, now, problems).map(RestoreSpec::Legacy)
        }
        (BackupType::Cloud, Some(restore)) => {
            cloud::validate(restore, point, now, problems).map(RestoreSpec::Cloud)
        }
        (_, None) => None,
    };

    Some(RestoreCommand {
        source: SourceCluster {
            group_id: group_id?,
            cluster_name: cluster_name?,
        },
        restore: restore?,
        idempotency_key,
        requested_by: requested_by.ok()?,
        approved_by: approved_by.ok()?,
        reason: reason.ok()?,
        dry_run,
        drill: drill.ok()?,
        task_token: task_token.ok()?,
    })
}

fn read_backup_type(fields: &Fields<'_>, problems: &mut Problems) -> Option<BackupType> {
    let Some(value) = fields.get("backupType") else {
        return Some(BackupType::Legacy);
    };
    let name = fields.string("backupType", problems)?;
    match name {
        "legacy" => Some(BackupType::Legacy),
        "cloud" => Some(BackupType::Cloud),
        _ => {
            problems.add(
                fields.pointer("backupType"),
                ErrorCode::InvalidFormat,
                format!(
                    "\"backupType\" must be \"legacy\" or \"cloud\"; got {}",
                    json::shorten(&value.to_string(), 40)
                ),
            );
            None
        }
    }
}

/// Reads `restorePoint`.
fn read_run_time_point(fields: &Fields<'_>, problems: &mut Problems) -> CommandPoint {
    let Some(value) = fields.get("restorePoint") else {
        return CommandPoint {
            run_time_point: None,
            given: false,
        };
    };
    let at = fields.pointer("restorePoint");
    let point = match value {
        Value::String(name) if name == "latestSnapshot" => Some(RunTimePoint::LatestSnapshot),
        Value::String(name) => {
            problems.add(
                at,
                ErrorCode::InvalidFormat,
                format!("\"restorePoint\" must be \"latestSnapshot\" or {{\"minutesAgo\": N}}; got \"{}\"", json::shorten(name, 40)),
            );
            None
        }
        Value::Object(_) => Fields::of(value, &at, "\"restorePoint\"", &FieldRules { writable: &["minutesAgo"], read_only: &[], elsewhere: &[] }, problems).and_then(|point| {
            point.require("minutesAgo", ": how many minutes before the run to restore to", problems);
            let minutes = point.integer("minutesAgo", problems)?;
            let valid = u64::try_from(minutes).ok().and_then(MinutesAgo::new);
            if valid.is_none() {
                problems.add(
                    point.pointer("minutesAgo"),
                    ErrorCode::OutOfRange,
                    format!("\"minutesAgo\" must be between 1 and {} (inside the last 24 hours); got {minutes}", MinutesAgo::MAX),
                );
            }
            valid.map(RunTimePoint::MinutesAgo)
        }),
        other => {
            problems.add(
                at,
                ErrorCode::InvalidType,
                format!("\"restorePoint\" must be \"latestSnapshot\" or {{\"minutesAgo\": N}}, not {}", json::type_name(other)),
            );
            None
        }
    };
    CommandPoint {
        run_time_point: point,
        given: true,
    }
}

/// An optional free-text field of at most `max` characters; `Err` when it was given but invalid.
fn read_text(
    fields: &Fields<'_>,
    name: &str,
    max: usize,
    problems: &mut Problems,
) -> Result<Option<String>, ()> {
    if !fields.has(name) {
        return Ok(None);
    }
    let text = fields.string(name, problems).ok_or(())?;
    let chars = text.chars().count();
    if chars == 0 || chars > max || text.chars().any(char::is_control) {
        problems.add(
            fields.pointer(name),
            ErrorCode::InvalidFormat,
            format!("\"{name}\" must be 1 to {max} characters without control characters"),
        );
        return Err(());
    }
    Ok(Some(text.to_owned()))
}
