//! CONTRACT section 3, "Size": an outcome, as returned and as published, stays under SNS's
//! 256 KB, however large the rejected event. The real `bootstrap` binary, driven through the
//! Lambda Runtime API, against moto (whose SNS refuses a message over 256 KiB, as SNS does).
//!
//! Before the fix a direct invoke with a 1 MB `reason` was REJECTED, but the outcome echoed the
//! whole value: the publish failed, the invocation failed, and Lambda retried the event into the
//! failure destination.
mod support;

use serde_json::{Map, Value, json};
use support::atlas_double::Route;
use support::e2e::*;
use support::lambda_runtime_api::Invocation;
use support::sample::{command, signed, with};

/// SNS's limit for one message (`Publish`), in bytes.
const SNS_MAX_BYTES: usize = 256 * 1024;
/// What the contract cuts each echoed raw value to.
const ECHO_MAX_CHARS: usize = 1000;
const ONE_MB: usize = 1024 * 1024;

fn problems(outcome: &Value) -> Vec<(String, String)> {
    outcome["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors in {}", shorten(outcome)))
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap().to_owned(),
                e["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn shorten(value: &Value) -> String {
    value.to_string().chars().take(2000).collect()
}

/// Every string in `value` (keys included) is at most `max` characters.
fn longest_string(value: &Value) -> usize {
    match value {
        Value::String(text) => text.chars().count(),
        Value::Array(items) => items.iter().map(longest_string).max().unwrap_or(0),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| k.chars().count().max(longest_string(v)))
            .max()
            .unwrap_or(0),
        _ => 0,
    }
}

/// One direct invocation: it must be answered (not fail), REJECTED, naming each expected
/// problem, under SNS's limit, and with no string longer than the cut.
async fn rejected_direct(e2e: &E2e, case: &str, event: Value, expected: &[(&str, &str)]) -> Value {
    let outcome = match e2e.invoke(event).await {
        Invocation::Response(outcome) => outcome,
        other => panic!(
            "{case}: the invocation must not fail (Lambda would retry it into the failure destination); got {:?}\n--- function output (tail) ---\n{}",
            other,
            tail(&e2e.function.output())
        ),
    };
    assert_eq!(
        outcome["outcome"],
        "REJECTED",
        "{case}: {}",
        shorten(&outcome)
    );
    let found = problems(&outcome);
    for (field, code) in expected {
        assert!(
            found.iter().any(|(f, c)| f.starts_with(field) && c == code),
            "{case}: {code} at {field} expected among {:?}",
            found.iter().take(20).collect::<Vec<_>>()
        );
    }
    let size = outcome.to_string().len();
    assert!(
        size < SNS_MAX_BYTES,
        "{case}: the returned outcome is {size} bytes"
    );
    assert!(
        longest_string(&outcome) <= ECHO_MAX_CHARS,
        "{case}: a value of {} characters was echoed",
        longest_string(&outcome)
    );
    outcome
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..]
        .iter()
        .map(|l| l.chars().take(400).collect::<String>())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_values_in_a_direct_invoke_are_rejected_cut_and_published() {
    let e2e = E2e::start(&[]).await;
    let huge = |c: char| c.to_string().repeat(ONE_MB);

    // The finding: a 1 MB reason.
    let event = with(command(Some("k-huge-reason")), "/reason", json!(huge('r')));
    let outcome =
        rejected_direct(&e2e, "1 MB reason", event, &[("/reason", "INVALID_FORMAT")]).await;
    assert_eq!(outcome["requestId"], "k-huge-reason");
    let echoed = outcome["reason"]
        .as_str()
        .expect("the reason is echoed, cut");
    assert!(echoed.starts_with("rrrr") && echoed.chars().count() <= ECHO_MAX_CHARS);

    // A 1 MB idempotency key: the request id echoes it, cut.
    let event = command(Some(&huge('k')));
    let outcome = rejected_direct(
        &e2e,
        "1 MB idempotencyKey",
        event,
        &[("/idempotencyKey", "INVALID_FORMAT")],
    )
    .await;
    let request_id = outcome["requestId"].as_str().expect("a request id");
    assert!(request_id.starts_with("kkkk"), "{request_id:.40}");

    // Every other echoed field at once, each 1 MB.
    let mut event = command(Some("k-huge-fields"));
    for (field, c) in [
        ("/groupId", 'g'),
        ("/clusterName", 'c'),
        ("/backupType", 'b'),
        ("/requestedBy", 'q'),
        ("/approvedBy", 'a'),
    ] {
        event[&field[1..]] = json!(huge(c));
    }
    let outcome = rejected_direct(
        &e2e,
        "1 MB people, ids and backup type",
        event,
        &[
            ("/groupId", "INVALID_FORMAT"),
            ("/clusterName", "INVALID_FORMAT"),
            ("/backupType", "INVALID_FORMAT"),
            ("/requestedBy", "INVALID_FORMAT"),
            ("/approvedBy", "INVALID_FORMAT"),
        ],
    )
    .await;
    for field in [
        "groupId",
        "clusterName",
        "backupType",
        "requestedBy",
        "approvedBy",
    ] {
        assert!(
            outcome[field].as_str().is_some_and(|v| !v.is_empty()),
            "{field} is still echoed, cut: {}",
            shorten(&outcome[field])
        );
    }

    // A field name is a raw value too: an unknown field's pointer quotes it.
    let mut event = command(Some("k-huge-name"));
    event[huge('u')] = json!(1);
    rejected_direct(
        &e2e,
        "an unknown field with a 1 MB name",
        event,
        &[("/uuuu", "UNKNOWN_FIELD")],
    )
    .await;

    // Many small problems add up: 40,000 unknown fields (each a problem of its own).
    let mut event = command(Some("k-many-fields"));
    let object = event.as_object_mut().unwrap();
    for n in 0..40_000 {
        object.insert(format!("x{n:05}"), json!(0));
    }
    let outcome = rejected_direct(
        &e2e,
        "40,000 unknown fields",
        event,
        &[("/x00000", "UNKNOWN_FIELD")],
    )
    .await;
    let messages: Vec<&str> = outcome["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert!(
        messages.iter().any(|m| m.contains("not listed")),
        "the outcome says that problems were left out: {:?}",
        messages.last()
    );

    // Each was published, and each published message is under SNS's limit.
    let published = e2e.published(5).await;
    assert_eq!(published.len(), 5, "every REJECTED outcome was published");
    for message in &published {
        assert_eq!(message["outcome"], "REJECTED");
        assert!(message.to_string().len() < SNS_MAX_BYTES);
    }
    assert!(
        e2e.stack
            .atlas
            .requests_on(Route::CreateRestoreJob)
            .is_empty()
    );
    assert!(
        !e2e.function.output().contains("panicked"),
        "no panic:\n{}",
        tail(&e2e.function.output())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_of_many_unknown_fields_is_answered_and_published_under_the_limit() {
    let e2e = E2e::start(&[]).await;
    // Under the 64 KiB body limit, yet thousands of problems: each one longer than its field.
    let mut body = command(Some("k-webhook-many"));
    let object: &mut Map<String, Value> = body.as_object_mut().unwrap();
    for n in 0..5_000 {
        object.insert(format!("y{n:04}"), json!(0));
    }
    let text = body.to_string();
    assert!(text.len() < 64 * 1024, "{} bytes", text.len());
    let answer = e2e.answer(signed(&body)).await;
    assert_eq!(answer["statusCode"], 400);
    let body_text = answer["body"].as_str().unwrap();
    assert!(body_text.len() < SNS_MAX_BYTES, "{} bytes", body_text.len());
    let outcome: Value = serde_json::from_str(body_text).unwrap();
    assert_eq!(outcome["outcome"], "REJECTED");
    assert_eq!(
        problems(&outcome)[0],
        ("/y0000".into(), "UNKNOWN_FIELD".into())
    );
    assert_ne!(
        outcome["notified"],
        json!(false),
        "the publish did not fail: {}",
        shorten(&outcome)
    );
    let published = e2e.published(1).await;
    assert_eq!(published.len(), 1);
    assert!(published[0].to_string().len() < SNS_MAX_BYTES);
}
