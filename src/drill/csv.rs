//! A drill's history as CSV for auditors (CONTRACT section 7): RFC 4180 (CRLF line ends, a
//! field with a comma, quote or line break quoted, quotes doubled), and no cell a spreadsheet
//! would run as a formula. Pure.

use super::EvidenceRecord;

/// The columns, in order.
pub const COLUMNS: [&str; 21] = [
    "drill",
    "startedAt",
    "finishedAt",
    "verdict",
    "missed",
    "outcome",
    "rtoSeconds",
    "rtoTargetMinutes",
    "rpoSeconds",
    "rpoTargetMinutes",
    "restorePointTime",
    "requestId",
    "trigger",
    "groupId",
    "clusterName",
    "backupType",
    "target",
    "atlasJobIds",
    "requestedBy",
    "approvedBy",
    "reason",
];

/// The header and one row per record, in the order given (newest first).
pub fn render(records: &[EvidenceRecord]) -> String {
    let mut out = String::new();
    push_row(&mut out, COLUMNS.iter().map(|c| (*c).to_owned()));
    for record in records {
        push_row(&mut out, row(record).into_iter());
    }
    out
}

fn row(r: &EvidenceRecord) -> Vec<String> {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let number = |v: Option<u64>| v.map(|n| n.to_string()).unwrap_or_default();
    let minutes = |v: Option<u32>| v.map(|n| n.to_string()).unwrap_or_default();
    let json = |v: &serde_json::Value| serde_json::to_string(v).unwrap_or_default();
    vec![
        r.drill.clone(),
        r.started_at.clone(),
        super::sort_key(r.finished_at),
        r.verdict.to_string(),
        r.missed.iter().map(name_of).collect::<Vec<_>>().join(" "),
        r.outcome.as_str().to_owned(),
        number(r.rto_seconds),
        minutes(r.rto_target_minutes),
        number(r.rpo_seconds),
        minutes(r.rpo_target_minutes),
        r.restore_point_time
            .map(super::sort_key)
            .unwrap_or_default(),
        text(&r.request_id),
        name_of(&r.trigger),
        text(&r.group_id),
        text(&r.cluster_name),
        text(&r.backup_type),
        r.target.as_ref().map(json).unwrap_or_default(),
        r.atlas_job_ids.join(" "),
        text(&r.requested_by),
        text(&r.approved_by),
        text(&r.reason),
    ]
}

/// How serde spells a plain enum value (`rto`, `webhook`).
fn name_of<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => String::new(),
    }
}

fn push_row(out: &mut String, cells: impl Iterator<Item = String>) {
    let cells: Vec<String> = cells.map(|c| field(&c)).collect();
    out.push_str(&cells.join(","));
    out.push_str("\r\n");
}

/// One field: defused against formula injection, then quoted when RFC 4180 needs it.
pub fn field(value: &str) -> String {
    let value = defuse(value);
    if value.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

/// A cell a spreadsheet would read as a formula (`=`, `+`, `-`, `@`, a tab or a carriage
/// return first, as OWASP lists them) gets a `'` in front, so it reads as text.
fn defuse(value: &str) -> String {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_as_rfc_4180_says() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
        assert_eq!(field(""), "");
    }

    #[test]
    fn formulas_are_defused() {
        assert_eq!(field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(field("+1"), "'+1");
        assert_eq!(field("-1+2"), "'-1+2");
        assert_eq!(field("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(field("\tx"), "'\tx");
        assert_eq!(field("a=b"), "a=b");
    }
}
