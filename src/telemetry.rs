//! What the function writes to its log for each outcome: one CloudWatch Embedded Metric Format
//! line counting it by kind, and one JSON line Logs Insights can query.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::outcome::OutcomeKind;
use crate::runner::{Publication, Report};

/// An Embedded Metric Format record: metric `Outcomes` (count 1) with dimension `Outcome`.
pub fn metric_line(kind: OutcomeKind, at: DateTime<Utc>) -> String {
    json!({
        "_aws": {
            "Timestamp": at.timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": METRIC_NAMESPACE,
                "Dimensions": [["Outcome"]],
                "Metrics": [{"Name": "Outcomes", "Unit": "Count"}]
            }]
        },
        "Outcome": kind.as_str(),
        "Outcomes": 1
    })
    .to_string()
}

/// How many of an outcome's problems its log line names (all are counted).
const LOGGED_PROBLEMS: usize = 20;

/// CloudWatch namespace of the outcome metric (alarms on FAILED and UNKNOWN use it).
pub const METRIC_NAMESPACE: &str = "AtlasRestoreRunner";

/// One log line per outcome: the request, the trigger, the outcome and what it touched; and one
/// CloudWatch Embedded Metric Format line counting the outcome by kind.
///
/// The outcome line is one JSON object written whole, not a `tracing` event: tracing's JSON
/// formatter writes every field that is not a number or a boolean as a string, so a list would
/// reach CloudWatch Logs Insights as `"[\"...\"]"`. Here `jobs` and `errors` are JSON lists and
/// `trigger` is in its contract form (`direct`), so a query can filter on them and read
/// `jobs.0`, `errors.0.code` (README, "Finding outcomes in the logs"). It carries `level`, so
/// Lambda's log-level filter treats it as INFO, and it is written only when INFO is enabled, as
/// the tracing event was.
pub(crate) fn log_outcome(report: &Report) {
    write_log_line(&metric_line(report.outcome.outcome, Utc::now()));
    if tracing::enabled!(tracing::Level::INFO) {
        write_log_line(&outcome_line(report).to_string());
    }
}

/// The outcome line's fields; absent ids are `null`.
fn outcome_line(report: &Report) -> Value {
    let outcome = &report.outcome;
    let jobs: Vec<&str> = outcome
        .atlas
        .iter()
        .flat_map(|a| a.jobs.iter().map(|j| j.id.as_str()))
        .collect();
    // Bounded, so a rejection listing thousands of problems stays one CloudWatch event (256 KB).
    let errors: Vec<Value> = outcome
        .errors
        .iter()
        .take(LOGGED_PROBLEMS)
        .map(|e| json!({"field": e.field, "code": e.code}))
        .collect();
    json!({
        "level": "INFO",
        "message": "outcome",
        "request_id": outcome.request_id,
        "trigger": outcome.trigger,
        "outcome": outcome.outcome.as_str(),
        "group_id": outcome.group_id,
        "cluster_name": outcome.cluster_name,
        "jobs": jobs,
        "errors": errors,
        "error_count": outcome.errors.len(),
        "published": matches!(report.publication, Publication::Published),
    })
}

/// One line on stdout, where Lambda collects the function's logs. A line that cannot be
/// written is lost rather than a panic in the middle of an outcome.
fn write_log_line(line: &str) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metric_line_is_embedded_metric_format() {
        let at = DateTime::from_timestamp_millis(1_795_885_575_120).unwrap();
        let line: Value = serde_json::from_str(&metric_line(OutcomeKind::Unknown, at)).unwrap();
        assert_eq!(line["_aws"]["Timestamp"], 1_795_885_575_120_i64);
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            METRIC_NAMESPACE
        );
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Outcome"]])
        );
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"],
            "Outcomes"
        );
        assert_eq!(
            (line["Outcome"].as_str(), line["Outcomes"].as_i64()),
            (Some("UNKNOWN"), Some(1))
        );
    }
}
