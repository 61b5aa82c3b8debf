//! Disaster-recovery drills (CONTRACT section 7): the moment a restore went back to, the
//! figures measured against the targets, the verdict, the evidence record, the summary of a
//! drill's history, and the report people and auditors read. Pure: no I/O; the Atlas answers
//! it reads are passed in.

pub mod csv;
pub mod link;
pub mod memory;
pub mod report;
pub mod summary;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::command::{
    CloudPoint, CloudRestoreJob, LegacyPoint, LegacyRestoreJob, ObjectId, ResolvedRestore,
};
use crate::outcome::{DrillFigures, Outcome, OutcomeKind, Trigger};

pub use summary::Summary;

/// How a drill ended, against its targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Verdict {
    /// `FINISHED` within every target given.
    Passed,
    /// `FINISHED`, but later than a target (`missed` says which).
    MissedTarget,
    Broken,
    Stalled,
    Failed,
    Rejected,
    Unknown,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Passed => "PASSED",
            Verdict::MissedTarget => "MISSED_TARGET",
            Verdict::Broken => "BROKEN",
            Verdict::Stalled => "STALLED",
            Verdict::Failed => "FAILED",
            Verdict::Rejected => "REJECTED",
            Verdict::Unknown => "UNKNOWN",
        }
    }

    /// The verdict of an outcome that ended the drill other than by finishing; `None` for
    /// `FINISHED` (the targets decide) and for outcomes that end nothing.
    pub fn of_end(kind: OutcomeKind) -> Option<Verdict> {
        match kind {
            OutcomeKind::Broken => Some(Verdict::Broken),
            OutcomeKind::Stalled => Some(Verdict::Stalled),
            OutcomeKind::Failed => Some(Verdict::Failed),
            OutcomeKind::Rejected => Some(Verdict::Rejected),
            OutcomeKind::Unknown => Some(Verdict::Unknown),
            _ => None,
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A target a finished drill missed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Missed {
    Rto,
    Rpo,
}

impl Missed {
    pub fn as_str(self) -> &'static str {
        match self {
            Missed::Rto => "rto",
            Missed::Rpo => "rpo",
        }
    }
}

/// A drill's targets, in minutes (both optional).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Targets {
    pub rto_minutes: Option<u32>,
    pub rpo_minutes: Option<u32>,
}

/// What a drill measured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Measured {
    pub rpo_seconds: Option<u64>,
    pub rto_seconds: Option<u64>,
}

impl Measured {
    /// `rpoSeconds`: from the restore point to the submission (the `SUBMITTED` outcome's
    /// `startedAt`), never below 0; `rtoSeconds`: the final outcome's `durationSeconds`.
    pub fn of(
        restore_point_time: Option<DateTime<Utc>>,
        submission_started_at: DateTime<Utc>,
        duration_seconds: Option<u64>,
    ) -> Measured {
        Measured {
            rpo_seconds: restore_point_time.map(|point| {
                u64::try_from((submission_started_at - point).num_seconds()).unwrap_or(0)
            }),
            rto_seconds: duration_seconds,
        }
    }
}

/// The verdict of an outcome that ends a drill, and the targets it missed. A `FINISHED` drill
/// whose figure is unknown (no restore point time could be read) did not show it met that
/// target, so it missed it. `None` for an outcome that ends nothing (`SUBMITTED`, `DRY_RUN`).
pub fn verdict(
    kind: OutcomeKind,
    targets: Targets,
    measured: &Measured,
) -> Option<(Verdict, Vec<Missed>)> {
    if kind != OutcomeKind::Finished {
        return Verdict::of_end(kind).map(|v| (v, Vec::new()));
    }
    let over = |target: Option<u32>, seconds: Option<u64>| {
        target.is_some_and(|minutes| seconds.is_none_or(|s| s > u64::from(minutes) * 60))
    };
    let mut missed = Vec::new();
    if over(targets.rto_minutes, measured.rto_seconds) {
        missed.push(Missed::Rto);
    }
    if over(targets.rpo_minutes, measured.rpo_seconds) {
        missed.push(Missed::Rpo);
    }
    Some(if missed.is_empty() {
        (Verdict::Passed, missed)
    } else {
        (Verdict::MissedTarget, missed)
    })
}

/// Where a restore's point in time comes from: known from the body itself, or one read of
/// the snapshot or checkpoint it names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RestorePoint {
    At(DateTime<Utc>),
    /// Read once: `GET .../snapshots/{id}` (legacy).
    LegacySnapshot(ObjectId),
    /// Read once: `GET .../backup/snapshots/{id}` (Cloud Backup).
    CloudSnapshot(ObjectId),
    /// Read once: `GET .../checkpoints/{id}` (legacy, sharded clusters).
    Checkpoint(ObjectId),
    /// A point that does not parse as a time (never, for a validated command).
    Unreadable,
}

impl RestorePoint {
    /// The restore point of a resolved restore (`minutesAgo` is already a point in time,
    /// `latestSnapshot` a snapshot id).
    pub fn of(job: &ResolvedRestore) -> RestorePoint {
        let at =
            |time: Option<DateTime<Utc>>| time.map_or(RestorePoint::Unreadable, RestorePoint::At);
        match job {
            ResolvedRestore::Legacy(LegacyRestoreJob::Download { snapshot_id, .. }) => {
                RestorePoint::LegacySnapshot(snapshot_id.clone())
            }
            ResolvedRestore::Legacy(LegacyRestoreJob::Automated { point, .. }) => match point {
                LegacyPoint::Snapshot(id) => RestorePoint::LegacySnapshot(id.clone()),
                LegacyPoint::Checkpoint(id) => RestorePoint::Checkpoint(id.clone()),
                LegacyPoint::Oplog { timestamp, .. } => at(parse_time(timestamp)),
                LegacyPoint::PointInTime { utc_millis } => {
                    at(DateTime::from_timestamp_millis(*utc_millis))
                }
            },
            ResolvedRestore::Cloud(
                CloudRestoreJob::Automated { snapshot_id, .. }
                | CloudRestoreJob::Download { snapshot_id },
            ) => RestorePoint::CloudSnapshot(snapshot_id.clone()),
            ResolvedRestore::Cloud(CloudRestoreJob::PointInTime { point, .. }) => match point {
                CloudPoint::Seconds(seconds)
                | CloudPoint::Oplog {
                    timestamp_seconds: seconds,
                    ..
                } => at(DateTime::from_timestamp(*seconds, 0)),
            },
        }
    }

    /// The time of this point, from the snapshot or checkpoint as Atlas served it: a legacy
    /// snapshot's `lastOplogAppliedTimestamp.date`, else its `created.date`; a Cloud Backup
    /// snapshot's `createdAt`; a checkpoint's `timestamp`.
    pub fn time_from(&self, read: &Value) -> Option<DateTime<Utc>> {
        let text = |pointer: &str| read.pointer(pointer).and_then(Value::as_str);
        match self {
            RestorePoint::At(time) => Some(*time),
            RestorePoint::LegacySnapshot(_) => text("/lastOplogAppliedTimestamp/date")
                .and_then(parse_time)
                .or_else(|| text("/created/date").and_then(parse_time)),
            RestorePoint::CloudSnapshot(_) => text("/createdAt").and_then(parse_time),
            RestorePoint::Checkpoint(_) => match read.get("timestamp") {
                Some(Value::String(at)) => parse_time(at),
                // `ApiBSONTimestampView`, as some answers give it.
                Some(other) => other
                    .get("date")
                    .and_then(Value::as_str)
                    .and_then(parse_time),
                None => None,
            },
            RestorePoint::Unreadable => None,
        }
    }

    /// The time without reading anything, when the body says it.
    pub fn known(&self) -> Option<DateTime<Utc>> {
        match self {
            RestorePoint::At(time) => Some(*time),
            _ => None,
        }
    }
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|at| at.with_timezone(&Utc))
}

/// An evidence record's sort key: `startedAt` in one fixed width (microseconds, `Z`), so the
/// order of the strings is the order of the times.
pub fn sort_key(started_at: DateTime<Utc>) -> String {
    started_at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A `before` given by a reader (any RFC 3339 time) as a sort key, or `None` if it is not one.
pub fn before_key(text: &str) -> Option<String> {
    parse_time(text).map(sort_key)
}

/// One drill's evidence, as kept in `DRILL_TABLE` (never expiring) and served to readers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EvidenceRecord {
    /// The drill's name (the partition key).
    pub drill: String,
    /// When the request's first attempt started ([`sort_key`]; the sort key).
    pub started_at: String,
    pub request_id: Option<String>,
    pub trigger: Trigger,
    /// The outcome that ended the drill.
    pub outcome: OutcomeKind,
    pub verdict: Verdict,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missed: Vec<Missed>,
    pub group_id: Option<String>,
    pub cluster_name: Option<String>,
    pub backup_type: Option<String>,
    /// Where the restore wrote: the body's target fields, or `{"download": true}`.
    pub target: Option<Value>,
    /// The body sent to Atlas (it holds the restore point as sent).
    pub restore: Option<Value>,
    pub restore_point_time: Option<DateTime<Utc>>,
    pub atlas_job_ids: Vec<String>,
    pub requested_by: Option<String>,
    pub approved_by: Option<String>,
    pub reason: Option<String>,
    pub rto_target_minutes: Option<u32>,
    pub rpo_target_minutes: Option<u32>,
    pub rpo_seconds: Option<u64>,
    pub rto_seconds: Option<u64>,
    /// When the end was seen (the final outcome's `finishedAt`).
    pub finished_at: DateTime<Utc>,
}

/// The drill's figures once `outcome` ended it (a final outcome, or a `FAILED` / `UNKNOWN`
/// first outcome of a drill sent to Atlas): its name, targets and restore point time as the
/// submission recorded them, with `rpoSeconds`, `rtoSeconds`, the verdict and what it missed.
/// `None` when the outcome is no drill's or ends nothing.
pub fn measure(outcome: &Outcome) -> Option<DrillFigures> {
    let mut figures = outcome.drill.clone()?;
    let targets = Targets {
        rto_minutes: figures.rto_target_minutes,
        rpo_minutes: figures.rpo_target_minutes,
    };
    let measured = Measured::of(
        figures.restore_point_time,
        outcome.started_at,
        outcome.duration_seconds,
    );
    let (verdict, missed) = verdict(outcome.outcome, targets, &measured)?;
    figures.rpo_seconds = measured.rpo_seconds;
    figures.rto_seconds = measured.rto_seconds;
    figures.verdict = Some(verdict.as_str().to_owned());
    figures.missed = missed.iter().map(|m| m.as_str().to_owned()).collect();
    Some(figures)
}

impl EvidenceRecord {
    /// The record of a drill that `outcome` ended, from the figures it carries ([`measure`]);
    /// `None` when it carries no verdict (no drill, a dry run, a drill still running).
    pub fn of(outcome: &Outcome) -> Option<EvidenceRecord> {
        let figures = outcome.drill.as_ref()?;
        let verdict: Verdict =
            serde_json::from_value(Value::from(figures.verdict.clone()?)).ok()?;
        Some(EvidenceRecord {
            drill: figures.name.clone(),
            started_at: sort_key(outcome.started_at),
            request_id: outcome.request_id.clone(),
            trigger: outcome.trigger,
            outcome: outcome.outcome,
            verdict,
            missed: figures
                .missed
                .iter()
                .filter_map(|m| serde_json::from_value(Value::from(m.as_str())).ok())
                .collect(),
            group_id: outcome.group_id.clone(),
            cluster_name: outcome.cluster_name.clone(),
            backup_type: outcome.backup_type.clone(),
            target: outcome.restore.as_ref().map(target_of),
            restore: outcome.restore.clone(),
            restore_point_time: figures.restore_point_time,
            atlas_job_ids: outcome
                .atlas
                .iter()
                .flat_map(|a| a.jobs.iter().map(|j| j.id.clone()))
                .collect(),
            requested_by: outcome.requested_by.clone(),
            approved_by: outcome.approved_by.clone(),
            reason: outcome.reason.clone(),
            rto_target_minutes: figures.rto_target_minutes,
            rpo_target_minutes: figures.rpo_target_minutes,
            rpo_seconds: figures.rpo_seconds,
            rto_seconds: figures.rto_seconds,
            finished_at: outcome.finished_at,
        })
    }

    /// The source and target in a few words: `group/cluster → group/cluster` or `→ download`.
    pub fn source_to_target(&self) -> String {
        let source = format!(
            "{}/{}",
            self.group_id.as_deref().unwrap_or("?"),
            self.cluster_name.as_deref().unwrap_or("?")
        );
        let target = match &self.target {
            Some(target) if target.get("download").is_some() => "download".to_owned(),
            Some(target) => {
                let field = |name: &str| target.get(name).and_then(Value::as_str);
                format!(
                    "{}/{}",
                    field("targetGroupId").unwrap_or("?"),
                    field("targetClusterName")
                        .or(field("targetClusterId"))
                        .unwrap_or("?")
                )
            }
            None => "?".to_owned(),
        };
        format!("{source} → {target}")
    }
}

/// The target fields of an Atlas body (legacy ones sit in `delivery`).
fn target_of(body: &Value) -> Value {
    let fields = ["targetGroupId", "targetClusterName", "targetClusterId"];
    let holder = body.get("delivery").unwrap_or(body);
    let target: serde_json::Map<String, Value> = fields
        .iter()
        .filter_map(|f| Some(((*f).to_owned(), holder.get(*f)?.clone())))
        .collect();
    if target.is_empty() {
        serde_json::json!({"download": true})
    } else {
        Value::Object(target)
    }
}

/// A duration for people: `45 s`, `1 min 6 s` (the seconds count under 10 minutes, so a
/// figure just over a target never reads as the target), `42 min`, `6 h 10 min`, `2 d 3 h`.
pub fn human_duration(seconds: u64) -> String {
    let minutes = seconds / 60;
    match seconds {
        s if s < 60 => format!("{s} s"),
        s if s < 600 && s % 60 != 0 => format!("{} min {} s", s / 60, s % 60),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 86_400 => match minutes % 60 {
            0 => format!("{} h", s / 3600),
            m => format!("{} h {m} min", s / 3600),
        },
        s => match (s % 86_400) / 3600 {
            0 => format!("{} d", s / 86_400),
            h => format!("{} d {h} h", s / 86_400),
        },
    }
}

#[cfg(test)]
pub(crate) mod tests;
