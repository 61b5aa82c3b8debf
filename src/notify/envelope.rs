//! The SNS envelope of an outcome: the subject, the message attributes, the FIFO group and
//! deduplication ids, and the JSON body (the outcome itself).

use serde_json::json;
use sha2::{Digest, Sha256};

use super::{given, trigger_name};
use crate::outcome::Outcome;

/// SNS refuses a subject of 100 characters or more.
pub const SUBJECT_MAX: usize = 99;
/// SNS FIFO ids (`MessageGroupId`, `MessageDeduplicationId`): at most 128 characters.
pub const FIFO_ID_MAX: usize = 128;

// ---------------------------------------------------------------------------------------------
// JSON body

pub(super) fn outcome_json(outcome: &Outcome) -> String {
    // Serialising derived types, chrono and serde_json values cannot fail; keep a readable
    // fallback rather than a panic.
    serde_json::to_string(outcome).unwrap_or_else(|error| {
        json!({
            "outcome": outcome.outcome.as_str(),
            "requestId": outcome.request_id,
            "error": format!("the outcome could not be serialised: {error}"),
        })
        .to_string()
    })
}

// ---------------------------------------------------------------------------------------------
// Subject

/// Printable ASCII only, whitespace runs (line breaks, tabs) as one space, no leading or trailing
/// space, at most [`SUBJECT_MAX`] characters (cut between words when possible, marked `...`).
pub fn ascii_subject(raw: &str) -> String {
    let mut ascii = String::with_capacity(raw.len());
    for c in raw.chars() {
        push_ascii(&mut ascii, c);
    }
    // Whitespace runs as one space, none at either end (SNS refuses a leading space).
    let words: Vec<&str> = ascii.split(' ').filter(|w| !w.is_empty()).collect();
    shorten_ascii(words.join(" "), SUBJECT_MAX)
}

/// One character as printable ASCII: itself, a common look-alike, a space for any whitespace
/// or control character, or `?`.
fn push_ascii(out: &mut String, c: char) {
    if c.is_ascii_graphic() {
        out.push(c);
        return;
    }
    let lookalike = match c {
        c if c.is_whitespace() || c.is_control() => " ",
        '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{2032}' => "'",
        '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{2033}' | '\u{00AB}' | '\u{00BB}' => "\"",
        '\u{2010}'..='\u{2015}' | '\u{2212}' => "-",
        '\u{2026}' => "...",
        '\u{2192}' => "->",
        '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}' => "",
        _ => "?",
    };
    out.push_str(lookalike);
}

/// Cuts an ASCII string to `max` characters, preferring a word boundary, and marks the cut.
fn shorten_ascii(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    const MARK: &str = "...";
    let room = max.saturating_sub(MARK.len());
    // ASCII only: every byte index is a character boundary.
    let head = text.get(..room).unwrap_or_default();
    let cut = match head.rfind(' ') {
        Some(space) if space >= room / 2 => &head[..space],
        _ => head,
    };
    format!("{}{MARK}", cut.trim_end())
}

// ---------------------------------------------------------------------------------------------
// Attributes

pub(super) fn attributes(outcome: &Outcome) -> Vec<(&'static str, String)> {
    let backup_type = outcome.backup_type.as_deref();
    [
        ("outcome", Some(outcome.outcome.as_str())),
        ("trigger", Some(trigger_name(outcome))),
        ("groupId", outcome.group_id.as_deref()),
        ("clusterName", outcome.cluster_name.as_deref()),
        ("backupType", backup_type),
        // A drill's final outcome (CONTRACT section 7).
        (
            "drillVerdict",
            outcome.drill.as_ref().and_then(|d| d.verdict.as_deref()),
        ),
    ]
    .into_iter()
    .filter_map(|(name, value)| {
        let value = attribute_value(value?);
        (!value.trim().is_empty()).then_some((name, value))
    })
    .collect()
}

/// SNS attribute values admit XML characters only: tab, LF, CR and U+0020 up, except U+FFFE/U+FFFF.
fn attribute_value(value: &str) -> String {
    value
        .chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            '\u{FFFE}' | '\u{FFFF}' => '\u{FFFD}',
            c if c < ' ' => '\u{FFFD}',
            c => c,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// FIFO ids

pub(super) fn group_id(outcome: &Outcome) -> String {
    let part = |value: &Option<String>| given(value).unwrap_or("-").to_owned();
    fifo_id(&format!(
        "{}/{}",
        part(&outcome.group_id),
        part(&outcome.cluster_name)
    ))
}

pub(super) fn deduplication_id(outcome: &Outcome) -> String {
    let request = match given(&outcome.request_id) {
        Some(id) => id.to_owned(),
        // No key (an event of no known shape): the outcome itself, so a retried publish of the
        // same outcome is still recognised.
        None => format!(
            "outcome-{}",
            hex::encode(Sha256::digest(outcome_json(outcome)))
        ),
    };
    fifo_id(&format!("{request}:{}", outcome.outcome.as_str()))
}

/// A valid SNS FIFO id: `raw` itself when it is 1-128 printable ASCII characters (no space);
/// else a readable prefix (other characters as `_`) and the SHA-256 of `raw`, so that two
/// different raw ids never map to the same one.
pub fn fifo_id(raw: &str) -> String {
    if !raw.is_empty() && raw.len() <= FIFO_ID_MAX && raw.chars().all(|c| c.is_ascii_graphic()) {
        return raw.to_owned();
    }
    let digest = hex::encode(Sha256::digest(raw.as_bytes()));
    let prefix: String = raw
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .take(FIFO_ID_MAX - digest.len() - 1)
        .collect();
    format!("{prefix}~{digest}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::NotifyFormat;
    use crate::notify::fixtures::{failed, rejected, submitted, with};
    use crate::notify::render;
    use crate::outcome::{OutcomeKind, Trigger};

    // --- subject ---

    #[test]
    fn the_subject_names_the_outcome_the_clusters_and_the_request() {
        let n = render(&submitted(), NotifyFormat::Json, false);
        assert_eq!(
            n.subject,
            "SUBMITTED: restore of orders into orders-drill (approval-7f3a)"
        );
        let n = render(&rejected(), NotifyFormat::Json, false);
        assert_eq!(
            n.subject,
            "REJECTED: restore of orders into orders-drill (approval-7f3a)"
        );
    }

    #[test]
    fn the_subject_without_a_cluster_or_key_still_reads() {
        let outcome = with(OutcomeKind::Rejected, |o| {
            o.request_id = None;
            o.group_id = None;
            o.cluster_name = None;
            o.restore = None;
            o.atlas = None;
        });
        assert_eq!(
            render(&outcome, NotifyFormat::Json, false).subject,
            "REJECTED: restore command"
        );
    }

    #[test]
    fn the_subject_of_a_download_says_so() {
        let outcome = with(OutcomeKind::DryRun, |o| {
            o.restore = Some(json!({"snapshotId": "5f1c", "delivery": {"methodName": "HTTP"}}));
            o.atlas = None;
        });
        assert_eq!(
            render(&outcome, NotifyFormat::Json, false).subject,
            "DRY_RUN: restore of orders as a download (approval-7f3a)"
        );
    }

    #[test]
    fn the_subject_is_printable_ascii_without_line_breaks() {
        let outcome = with(OutcomeKind::Submitted, |o| {
            o.cluster_name = Some("Bestellungen-\u{00FC}\u{00DF}".into());
            o.request_id = Some("line\nbreak\ttab \u{2014} \u{201C}q\u{201D} \u{1F680}".into());
        });
        let subject = render(&outcome, NotifyFormat::Json, false).subject;
        assert_eq!(
            subject,
            "SUBMITTED: restore of Bestellungen-?? into orders-drill (line break tab - \"q\" ?)"
        );
        assert!(subject.chars().all(|c| c.is_ascii_graphic() || c == ' '));
    }

    #[test]
    fn a_leading_space_or_control_character_never_starts_the_subject() {
        assert_eq!(
            ascii_subject("  \n\u{0007}\u{00A0}hello  world \r\n"),
            "hello world"
        );
    }

    #[test]
    fn an_overlong_subject_is_cut_between_words_under_100_characters() {
        let outcome = with(OutcomeKind::Failed, |o| {
            o.request_id = Some(format!("{} {}", "k".repeat(30), "word ".repeat(30)));
        });
        let subject = render(&outcome, NotifyFormat::Json, false).subject;
        assert!(subject.len() < 100, "{} characters", subject.len());
        assert!(subject.ends_with("word..."), "{subject}");
        assert!(subject.starts_with("FAILED: restore of orders into orders-drill ("));
    }

    #[test]
    fn an_overlong_subject_of_non_ascii_is_cut_without_breaking_characters() {
        let raw = format!("SUBMITTED: {}", "\u{00E9}".repeat(300));
        let subject = ascii_subject(&raw);
        assert_eq!(subject.len(), SUBJECT_MAX);
        assert!(subject.is_ascii());
        assert!(subject.ends_with("?..."));
        // One long word: cut inside it rather than leave almost nothing.
        let subject = ascii_subject(&"x".repeat(500));
        assert_eq!(subject, format!("{}...", "x".repeat(96)));
    }

    // --- attributes ---

    #[test]
    fn the_five_attributes_are_strings_of_the_outcome() {
        let n = render(&submitted(), NotifyFormat::Json, false);
        assert_eq!(
            n.attributes,
            vec![
                ("outcome", "SUBMITTED".to_owned()),
                ("trigger", "webhook".to_owned()),
                ("groupId", "5e2211c17a3e5a48f5497de3".to_owned()),
                ("clusterName", "orders".to_owned()),
                ("backupType", "legacy".to_owned()),
            ]
        );
    }

    #[test]
    fn a_drill_s_end_carries_its_verdict_as_an_attribute() {
        let outcome = with(OutcomeKind::Finished, |o| {
            o.drill = Some(crate::outcome::DrillFigures {
                name: "orders-monthly".into(),
                verdict: Some("MISSED_TARGET".into()),
                ..Default::default()
            });
        });
        let n = render(&outcome, NotifyFormat::Json, false);
        assert_eq!(
            n.attributes.last(),
            Some(&("drillVerdict", "MISSED_TARGET".to_owned()))
        );
        let running = with(OutcomeKind::Submitted, |o| {
            o.drill = Some(crate::outcome::DrillFigures {
                name: "orders-monthly".into(),
                ..Default::default()
            });
        });
        let n = render(&running, NotifyFormat::Json, false);
        assert!(n.attributes.iter().all(|(name, _)| *name != "drillVerdict"));
    }

    #[test]
    fn attributes_without_a_value_are_left_out() {
        let outcome = with(OutcomeKind::Rejected, |o| {
            o.trigger = Trigger::Event;
            o.group_id = None;
            o.cluster_name = Some(String::new());
            o.backup_type = Some(" ".into());
        });
        let n = render(&outcome, NotifyFormat::Json, false);
        assert_eq!(
            n.attributes,
            vec![
                ("outcome", "REJECTED".to_owned()),
                ("trigger", "event".to_owned())
            ]
        );
    }

    #[test]
    fn attribute_values_hold_only_characters_sns_accepts() {
        let outcome = with(OutcomeKind::Rejected, |o| {
            o.cluster_name = Some("a\u{0000}b\u{FFFF}c\td".into());
        });
        let n = render(&outcome, NotifyFormat::Json, false);
        let cluster = n
            .attributes
            .iter()
            .find(|(k, _)| *k == "clusterName")
            .unwrap();
        assert_eq!(cluster.1, "a\u{FFFD}b\u{FFFD}c\td");
    }

    // --- json message ---

    #[test]
    fn the_json_message_is_the_outcome_itself() {
        let outcome = failed();
        let n = render(&outcome, NotifyFormat::Json, false);
        let back: Outcome = serde_json::from_str(&n.message).unwrap();
        assert_eq!(back, outcome);
    }

    // --- FIFO ---

    #[test]
    fn fifo_ids_are_group_and_cluster_and_request_and_outcome() {
        let n = render(&submitted(), NotifyFormat::Json, true);
        assert_eq!(
            n.message_group_id.as_deref(),
            Some("5e2211c17a3e5a48f5497de3/orders")
        );
        assert_eq!(
            n.deduplication_id.as_deref(),
            Some("approval-7f3a:SUBMITTED")
        );
        let n = render(&submitted(), NotifyFormat::Chatbot, false);
        assert_eq!((n.message_group_id, n.deduplication_id), (None, None));
    }

    #[test]
    fn fifo_ids_with_other_characters_or_too_long_become_valid_and_distinct() {
        let a = fifo_id("key with spaces:SUBMITTED");
        let b = fifo_id("key_with_spaces:SUBMITTED");
        assert_eq!(b, "key_with_spaces:SUBMITTED");
        assert_ne!(a, b);
        assert!(a.starts_with("key_with_spaces:SUBMITTED~"));
        for raw in [
            "k\u{00E9}y:FAILED".to_owned(),
            "k".repeat(129),
            String::new(),
        ] {
            let id = fifo_id(&raw);
            assert!(!id.is_empty() && id.len() <= FIFO_ID_MAX, "{id}");
            assert!(id.chars().all(|c| c.is_ascii_graphic()), "{id}");
        }
        let exactly = "k".repeat(128);
        assert_eq!(fifo_id(&exactly), exactly);
        assert_eq!(fifo_id(&"k".repeat(129)).len(), FIFO_ID_MAX);
    }

    #[test]
    fn fifo_ids_without_key_or_cluster_are_still_valid() {
        let outcome = with(OutcomeKind::Rejected, |o| {
            o.request_id = None;
            o.group_id = None;
            o.cluster_name = None;
        });
        let n = render(&outcome, NotifyFormat::Json, true);
        assert_eq!(n.message_group_id.as_deref(), Some("-/-"));
        let dedup = n.deduplication_id.unwrap();
        assert!(
            dedup.starts_with("outcome-") && dedup.ends_with(":REJECTED"),
            "{dedup}"
        );
        assert!(dedup.len() <= FIFO_ID_MAX);
    }
}
