//! The bad-input catalogue (`tests/bad_input/cases.json`), sent to the real `bootstrap` through
//! the Lambda Runtime API: every case is REJECTED with exactly the problems listed (field and
//! code), published, answered with the contract's status on the webhook, and nothing reaches
//! Atlas's create endpoints; the function never panics.
mod support;

use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};
use support::atlas_double::Route;
use support::events::webhook;
use support::lambda_runtime_api::{FunctionProcess, Invocation, RuntimeApi};
use support::sample::{signed, with};
use support::stack::*;

fn base(name: &str, key: &str) -> Value {
    let legacy_delivery = json!({"methodName": "AUTOMATED_RESTORE", "targetGroupId": GROUP, "targetClusterName": "orders-drill"});
    let restore = match name {
        "legacy" => json!({"snapshotId": SNAPSHOT, "delivery": legacy_delivery}),
        "download" => json!({"snapshotId": SNAPSHOT, "delivery": {"methodName": "HTTP"}}),
        "cloud" => {
            json!({"deliveryType": "automated", "snapshotId": SNAPSHOT, "targetGroupId": GROUP, "targetClusterName": "orders-drill"})
        }
        "cloud_pit" => {
            json!({"deliveryType": "pointInTime", "pointInTimeUTCSeconds": Utc::now().timestamp() - 600, "targetGroupId": GROUP, "targetClusterName": "orders-drill"})
        }
        other => panic!("unknown base {other}"),
    };
    let backup_type = if name.starts_with("cloud") {
        "cloud"
    } else {
        "legacy"
    };
    json!({
        "groupId": GROUP, "clusterName": "orders", "backupType": backup_type, "restore": restore,
        "idempotencyKey": key, "requestedBy": REQUESTER, "approvedBy": APPROVER, "reason": "bad-input catalogue"
    })
}

/// Fills in the catalogue's placeholders.
fn placeholder(value: &Value) -> Value {
    let Some(text) = value.as_str() else {
        return value.clone();
    };
    let now = Utc::now().timestamp_millis();
    if text == "$now_ms" {
        return json!(now);
    }
    if let Some(offset) = text.strip_prefix("$now_ms+") {
        return json!(now + offset.parse::<i64>().unwrap());
    }
    if let Some(offset) = text.strip_prefix("$now_ms-") {
        return json!(now - offset.parse::<i64>().unwrap());
    }
    if text == "$deep" {
        let mut deep = json!(1);
        for _ in 0..100 {
            deep = json!({ "a": deep });
        }
        return deep;
    }
    value.clone()
}

fn body_text(text: &str) -> String {
    match text {
        "$oversized" => format!("{{\"reason\": \"{}\"}}", "x".repeat(70 * 1024)),
        // Under the 64 KiB limit, far over the parser's depth limit.
        "$deep_text" => "[".repeat(30_000) + &"]".repeat(30_000),
        other => other.to_owned(),
    }
}

fn command(case: &Value, key: &str) -> Value {
    let mut command = base(case["base"].as_str().unwrap_or("legacy"), key);
    for pointer in case["remove"].as_array().into_iter().flatten() {
        let pointer = pointer.as_str().unwrap();
        let (parent, name) = pointer.rsplit_once('/').unwrap();
        command
            .pointer_mut(parent)
            .unwrap()
            .as_object_mut()
            .unwrap()
            .remove(name);
    }
    for edit in case["set"].as_array().into_iter().flatten() {
        let (pointer, value) = (edit[0].as_str().unwrap(), placeholder(&edit[1]));
        let (parent, name) = pointer.rsplit_once('/').unwrap();
        command
            .pointer_mut(parent)
            .unwrap()
            .as_object_mut()
            .unwrap()
            .insert(name.to_owned(), value);
    }
    command
}

fn event_for(case: &Value, key: &str) -> Value {
    match case["trigger"].as_str().unwrap() {
        "direct" => command(case, key),
        "schedule" => {
            json!({"schedule": {"executionId": format!("exec-{key}")}, "command": command(case, key)})
        }
        "webhook" => signed(&command(case, key)),
        // The body as the catalogue writes it, signed as it stands (flagged as base64 or not).
        "webhook_raw" => with(
            webhook(
                &body_text(case["body"].as_str().unwrap()),
                Some(SIGNING_SECRET),
            ),
            "/isBase64Encoded",
            json!(case["base64"].as_bool().unwrap_or(false)),
        ),
        "raw" => case["event"].clone(),
        other => panic!("unknown trigger {other}"),
    }
}

fn sorted(mut pairs: Vec<(String, String)>) -> Vec<(String, String)> {
    pairs.sort();
    pairs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_is_rejected_with_each_problem_named_and_nothing_is_submitted() {
    let catalogue: Value = serde_json::from_str(include_str!("bad_input/cases.json")).unwrap();
    let cases = catalogue["cases"].as_array().unwrap();
    assert!(cases.len() >= 60, "the catalogue holds at least 60 cases");

    let stack = Stack::start().await;
    let api = RuntimeApi::start().await;
    let env = stack.function_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let mut function =
        FunctionProcess::start(Path::new(env!("CARGO_BIN_EXE_bootstrap")), &api, &env);

    let mut failures = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        let name = case["name"].as_str().unwrap();
        let event = event_for(case, &format!("bad-{index}"));
        let answer = match api
            .invoke(event, Duration::from_secs(30), Duration::from_secs(30))
            .await
        {
            Invocation::Response(answer) => answer,
            other => {
                failures.push(format!("{name}: no answer: {other:?}"));
                continue;
            }
        };
        let (status, outcome) = match answer.get("statusCode") {
            Some(status) => (
                status.as_u64(),
                serde_json::from_str::<Value>(answer["body"].as_str().unwrap()).unwrap(),
            ),
            None => (None, answer),
        };
        let expected_status = case["status"].as_u64().or(
            if case["trigger"].as_str().unwrap().starts_with("webhook") {
                Some(400)
            } else {
                None
            },
        );
        if status != expected_status {
            failures.push(format!(
                "{name}: status {status:?}, expected {expected_status:?}"
            ));
        }
        if outcome["outcome"] != "REJECTED" {
            failures.push(format!(
                "{name}: outcome {}, expected REJECTED",
                outcome["outcome"]
            ));
            continue;
        }
        let got: Vec<(String, String)> = outcome["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["field"].as_str().unwrap().to_owned(),
                    e["code"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let want: Vec<(String, String)> = case["expect"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p[0].as_str().unwrap().to_owned(),
                    p[1].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        if sorted(got.clone()) != sorted(want.clone()) {
            failures.push(format!("{name}: problems {got:?}, expected {want:?}"));
        }
        if outcome["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["message"].as_str().unwrap_or("").is_empty())
        {
            failures.push(format!("{name}: a problem without a message"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    assert_eq!(
        stack.atlas.requests_on(Route::CreateRestoreJob).len(),
        0,
        "nothing was sent to Atlas"
    );
    assert_eq!(
        stack.atlas.requests_on(Route::CreateCloudRestoreJob).len(),
        0
    );
    assert_eq!(
        stack.moto.count("Publish"),
        cases.len() as u64,
        "every REJECTED outcome was published"
    );
    assert!(function.exited().is_none(), "the function is still running");
    assert!(
        !function.output().contains("panicked"),
        "no panic:\n{}",
        function.output()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_nested_beyond_the_runtime_s_limit_is_an_error_not_a_panic_or_a_submission() {
    let stack = Stack::start().await;
    let api = RuntimeApi::start().await;
    let env = stack.function_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let mut function =
        FunctionProcess::start(Path::new(env!("CARGO_BIN_EXE_bootstrap")), &api, &env);
    let mut deep = json!(1);
    for _ in 0..200 {
        deep = json!({ "groupId": deep });
    }
    match api
        .invoke(deep, Duration::from_secs(30), Duration::from_secs(30))
        .await
    {
        Invocation::Error { error_message, .. } => {
            assert!(error_message.contains("recursion limit"), "{error_message}")
        }
        other => panic!("expected the runtime's deserialization error, got {other:?}"),
    }
    // The function goes on answering.
    let answer = api
        .invoke(
            json!({"hello": 1}),
            Duration::from_secs(30),
            Duration::from_secs(30),
        )
        .await;
    assert!(
        matches!(answer, Invocation::Response(ref v) if v["outcome"] == "REJECTED"),
        "{answer:?}"
    );
    assert!(function.exited().is_none());
    assert!(stack.atlas.requests().is_empty());
}
