//! examples/runbook.asl.json (CONTRACT section 8): the Step Functions runbook the README shows
//! parses, names only states it has, waits for the task token, passes only command fields,
//! retries Lambda's own errors, catches BROKEN and STALLED into a notify state, and sets
//! `HeartbeatSeconds` to twice the follow interval it says it assumes.

use std::collections::BTreeSet;

use atlas_restore_runner::command::COMMAND_FIELDS;
use serde_json::Value;

fn runbook() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/runbook.asl.json");
    let text = std::fs::read_to_string(path).expect("examples/runbook.asl.json");
    serde_json::from_str(&text).expect("the runbook is JSON")
}

fn states(runbook: &Value) -> &serde_json::Map<String, Value> {
    runbook["States"].as_object().expect("States is an object")
}

/// Every state name a state refers to: `Next`, `Default`, each `Choices[].Next` and each
/// `Catch[].Next`.
fn targets(state: &Value) -> Vec<String> {
    let mut names = Vec::new();
    for field in ["Next", "Default"] {
        if let Some(name) = state.get(field).and_then(Value::as_str) {
            names.push(name.to_owned());
        }
    }
    for list in ["Choices", "Catch"] {
        for entry in state
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            names.push(entry["Next"].as_str().expect("a Next").to_owned());
        }
    }
    names
}

fn is_terminal(state: &Value) -> bool {
    matches!(state["Type"].as_str(), Some("Succeed" | "Fail")) || state["End"] == true
}

/// The `FOLLOW_INTERVAL_SECONDS=<n>` the runbook's comment says it assumes.
fn declared_interval(runbook: &Value) -> u64 {
    let comment = runbook["Comment"].as_str().expect("a Comment");
    let (_, rest) = comment
        .split_once("FOLLOW_INTERVAL_SECONDS=")
        .expect("the Comment names the follow interval it assumes");
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().expect("a number of seconds")
}

/// The task that invokes the runner and waits for its callback.
fn waiting_task(runbook: &Value) -> (&String, &Value) {
    let waiting: Vec<_> = states(runbook)
        .iter()
        .filter(|(_, s)| {
            s["Resource"].as_str() == Some("arn:aws:states:::lambda:invoke.waitForTaskToken")
        })
        .collect();
    assert_eq!(waiting.len(), 1, "one task waits for the token");
    waiting[0]
}

#[test]
fn every_state_named_exists_and_every_path_ends() {
    let runbook = runbook();
    let states = states(&runbook);
    let names: BTreeSet<&String> = states.keys().collect();
    let start = runbook["StartAt"].as_str().expect("StartAt");
    assert!(names.contains(&start.to_owned()), "StartAt {start} exists");
    for (name, state) in states {
        assert!(state["Type"].is_string(), "{name} has a Type");
        for target in targets(state) {
            assert!(
                names.contains(&target),
                "{name} names {target}, which does not exist"
            );
        }
        assert!(
            is_terminal(state) || state.get("Next").is_some() || state["Type"] == "Choice",
            "{name} neither ends nor goes on"
        );
    }
    // Every state is reachable from StartAt, and a terminal state is among them.
    let mut reached = BTreeSet::from([start.to_owned()]);
    let mut frontier = vec![start.to_owned()];
    while let Some(name) = frontier.pop() {
        for target in targets(&states[&name]) {
            if reached.insert(target.clone()) {
                frontier.push(target);
            }
        }
    }
    let all: BTreeSet<String> = states.keys().cloned().collect();
    assert_eq!(reached, all, "every state is reachable");
    assert!(states.values().any(is_terminal));
}

#[test]
fn the_restore_waits_for_its_token_with_a_heartbeat_twice_the_interval() {
    let runbook = runbook();
    let (_, task) = waiting_task(&runbook);
    let payload = task["Parameters"]["Payload"]
        .as_object()
        .expect("a Payload");
    assert_eq!(payload["taskToken.$"], "$$.Task.Token");
    for field in payload.keys() {
        let name = field.trim_end_matches(".$");
        assert!(
            COMMAND_FIELDS.contains(&name),
            "the Payload passes {name}, which is no command field"
        );
    }
    let interval = declared_interval(&runbook);
    assert_eq!(task["HeartbeatSeconds"], 2 * interval);
    // The task's own timeout is a backstop past the runner's STALLED (FOLLOW_MAX_HOURS=48).
    assert!(task["TimeoutSeconds"].as_u64().unwrap() > 48 * 3600);
}

#[test]
fn lambda_errors_are_retried_and_broken_or_stalled_go_to_a_notify_state() {
    let runbook = runbook();
    let states = states(&runbook);
    let (_, task) = waiting_task(&runbook);
    let retried: BTreeSet<&str> = task["Retry"]
        .as_array()
        .expect("a Retry")
        .iter()
        .flat_map(|r| r["ErrorEquals"].as_array().unwrap())
        .map(|e| e.as_str().unwrap())
        .collect();
    for error in [
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
        "Lambda.TooManyRequestsException",
    ] {
        assert!(retried.contains(error), "{error} is retried");
    }
    assert!(
        !retried
            .iter()
            .any(|e| e.starts_with("AtlasRestore.") || *e == "States.ALL"),
        "an end the runner reported is never retried: {retried:?}"
    );
    let catches = task["Catch"].as_array().expect("a Catch");
    for error in ["AtlasRestore.BROKEN", "AtlasRestore.STALLED"] {
        let catch = catches
            .iter()
            .find(|c| {
                c["ErrorEquals"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|e| e == error)
            })
            .unwrap_or_else(|| panic!("{error} is caught"));
        let notify = &states[catch["Next"].as_str().unwrap()];
        assert_eq!(notify["Resource"], "arn:aws:states:::sns:publish");
    }
    // On success, a next step.
    let next = &states[task["Next"].as_str().expect("a Next on success")];
    assert!(!is_terminal(next) || next["Type"] == "Succeed");
}
