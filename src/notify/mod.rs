//! Rendering an outcome as what is published to the topic (CONTRACT section 3, "Publishing").
//! Pure: no I/O. The SNS adapter (`crate::aws::sns`) sends what [`render`] returns.
//!
//! What SNS and Amazon Q Developer (AWS Chatbot) accept shapes the rules here:
//! - `Subject`: printable ASCII, no line breaks, not starting with a space, under 100 characters;
//! - message attributes: non-empty values of XML-safe characters;
//! - FIFO `MessageGroupId` / `MessageDeduplicationId`: 1-128 printable ASCII characters;
//! - Chatbot custom notifications: no `null` where a string belongs, description up to ~8,000
//!   characters, `additionalContext` values are strings.
//!
//! Outcomes carry no secrets, and nothing here adds any.
//!
//! `envelope` renders what SNS itself reads (subject, attributes, FIFO ids) and the JSON body;
//! `chatbot` renders the Chatbot custom notification. Both read the outcome through `Facts`.

mod chatbot;
mod envelope;
#[cfg(test)]
mod fixtures;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use crate::outcome::{AtlasSummary, JobSummary, Outcome, OutcomeKind};

/// How outcomes are written to the topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotifyFormat {
    /// The outcome JSON itself.
    Json,
    /// Amazon Q Developer in chat applications (AWS Chatbot) custom notifications.
    Chatbot,
}

pub use chatbot::{DESCRIPTION_MAX, TITLE_MAX};
pub use envelope::{FIFO_ID_MAX, SUBJECT_MAX, ascii_subject, fifo_id};

/// What is published for one outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    /// SNS `Subject`: printable ASCII, under 100 characters.
    pub subject: String,
    /// SNS `Message`: the outcome JSON, or the Chatbot custom notification.
    pub message: String,
    /// SNS message attributes, all of type `String`; attributes without a value are left out.
    pub attributes: Vec<(&'static str, String)>,
    /// FIFO topics only: `groupId/clusterName`.
    pub message_group_id: Option<String>,
    /// FIFO topics only: `requestId:OUTCOME`.
    pub deduplication_id: Option<String>,
}

/// Renders `outcome` for the topic: `format` chooses the message, `fifo_topic` adds the FIFO ids.
pub fn render(outcome: &Outcome, format: NotifyFormat, fifo_topic: bool) -> Notification {
    let facts = Facts::of(outcome);
    let message = match format {
        NotifyFormat::Json => envelope::outcome_json(outcome),
        NotifyFormat::Chatbot => chatbot::message(outcome, &facts).to_string(),
    };
    let (message_group_id, deduplication_id) = if fifo_topic {
        (
            Some(envelope::group_id(outcome)),
            Some(envelope::deduplication_id(outcome)),
        )
    } else {
        (None, None)
    };
    Notification {
        subject: ascii_subject(&facts.headline(outcome)),
        message,
        attributes: envelope::attributes(outcome),
        message_group_id,
        deduplication_id,
    }
}

// ---------------------------------------------------------------------------------------------
// What the outcome is about, for both formats

/// The facts a person needs, read once from the outcome.
struct Facts<'a> {
    kind: OutcomeKind,
    source: Option<&'a str>,
    group: Option<&'a str>,
    /// The target cluster: its name, else `id <id>`.
    target: Option<String>,
    target_group: Option<String>,
    download: bool,
    method: Option<String>,
    restore_point: Option<String>,
    jobs: &'a [JobSummary],
    batches: Vec<&'a str>,
    atlas: Option<&'a AtlasSummary>,
}

impl<'a> Facts<'a> {
    fn of(outcome: &'a Outcome) -> Facts<'a> {
        let restore = outcome.restore.as_ref();
        let delivery = restore.and_then(|r| r.get("delivery"));
        // Legacy bodies hold the target in `delivery`; Cloud Backup bodies at the top.
        let field = |name: &str| -> Option<String> {
            [delivery, restore]
                .into_iter()
                .flatten()
                .find_map(|object| object.get(name).and_then(scalar_text))
        };
        let jobs: &[JobSummary] = outcome.atlas.as_ref().map_or(&[], |a| a.jobs.as_slice());
        let target = field("targetClusterName")
            .or_else(|| field("targetClusterId").map(|id| format!("id {id}")))
            .or_else(|| {
                jobs.iter()
                    .find_map(|job| job.target_cluster_name.clone())
                    .filter(|name| !name.is_empty())
            });
        let method = field("methodName").or_else(|| field("deliveryType"));
        let download = matches!(method.as_deref(), Some("HTTP" | "download"));
        let batches = unique(jobs.iter().filter_map(|job| given(&job.batch_id)));
        Facts {
            kind: outcome.outcome,
            source: given(&outcome.cluster_name),
            group: given(&outcome.group_id),
            target,
            target_group: field("targetGroupId"),
            download,
            method,
            restore_point: restore.and_then(restore_point),
            jobs,
            batches,
            atlas: outcome.atlas.as_ref(),
        }
    }

    /// `restore of orders into orders-drill`, as plain text.
    fn what(&self) -> String {
        let mut what = match self.source {
            Some(source) => format!("restore of {source}"),
            None => "restore command".to_owned(),
        };
        match (&self.target, self.download) {
            (Some(target), _) => what.push_str(&format!(" into {target}")),
            (None, true) => what.push_str(" as a download"),
            (None, false) => {}
        }
        what
    }

    /// `SUBMITTED: restore of orders into orders-drill (approval-7f3a)`.
    fn headline(&self, outcome: &Outcome) -> String {
        let mut line = format!("{}: {}", self.kind.as_str(), self.what());
        if let Some(id) = given(&outcome.request_id) {
            line.push_str(&format!(" ({id})"));
        }
        line
    }
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Which point the restore goes back to, from Atlas's own fields.
fn restore_point(restore: &Value) -> Option<String> {
    let text = |name: &str| restore.get(name).and_then(scalar_text);
    if let Some(millis) = restore.get("pointInTimeUTCMillis").and_then(Value::as_i64) {
        return Some(match DateTime::<Utc>::from_timestamp_millis(millis) {
            Some(at) => format!(
                "point in time {} (pointInTimeUTCMillis {millis})",
                at.to_rfc3339_opts(SecondsFormat::Millis, true)
            ),
            None => format!("pointInTimeUTCMillis {millis}"),
        });
    }
    if let Some(seconds) = restore.get("pointInTimeUTCSeconds").and_then(Value::as_i64) {
        return Some(match DateTime::<Utc>::from_timestamp(seconds, 0) {
            Some(at) => format!(
                "point in time {} (pointInTimeUTCSeconds {seconds})",
                at.to_rfc3339_opts(SecondsFormat::Secs, true)
            ),
            None => format!("pointInTimeUTCSeconds {seconds}"),
        });
    }
    if let Some(ts) = text("oplogTs") {
        return Some(match text("oplogInc") {
            Some(inc) => format!("oplog {ts}, increment {inc}"),
            None => format!("oplog {ts}"),
        });
    }
    if let Some(checkpoint) = text("checkpointId") {
        return Some(format!("checkpoint {checkpoint}"));
    }
    text("snapshotId").map(|snapshot| format!("snapshot {snapshot}"))
}

/// The trigger as the attributes and the chat message name it.
fn trigger_name(outcome: &Outcome) -> &'static str {
    match outcome.trigger {
        crate::outcome::Trigger::Webhook => "webhook",
        crate::outcome::Trigger::Schedule => "schedule",
        crate::outcome::Trigger::Direct => "direct",
        crate::outcome::Trigger::Event => "event",
    }
}

/// A text the outcome holds, unless it is missing or empty.
fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|text| !text.is_empty())
}

/// `items` without repeats, in the order they first come.
fn unique<T: PartialEq>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut kept = Vec::new();
    for item in items {
        if !kept.contains(&item) {
            kept.push(item);
        }
    }
    kept
}
