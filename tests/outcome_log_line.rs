//! The one log line per outcome, written by the real `bootstrap` (through the Lambda Runtime
//! API, against moto and the Atlas double), is what CloudWatch Logs Insights can query (issue
//! 17): one JSON object whose `trigger` is in its contract form (`direct`, `webhook`), and whose
//! `jobs` and `errors` are JSON lists, not strings holding a list. The README's Logs Insights
//! query filters on `message`, `outcome` and reads `jobs.0`, `jobs.1`, ... from it.
mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::e2e::*;
use support::sample::{command, signed};

/// Every outcome line the function has written so far, parsed.
fn outcome_lines(output: &str) -> Vec<Value> {
    output
        .lines()
        .filter(|l| l.contains("\"message\":\"outcome\""))
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("an outcome line that is no JSON ({e}): {l}"))
        })
        .collect()
}

async fn line_of(e2e: &E2e, request_id: &str) -> Value {
    let needle = format!("\"request_id\":\"{request_id}\"");
    // The log is read from the process's stdout, which may trail its answer.
    assert!(
        e2e.function
            .wait_for_output(&needle, Duration::from_secs(5))
            .await,
        "no outcome line for {request_id}:\n{}",
        e2e.function.output()
    );
    let lines: Vec<Value> = outcome_lines(&e2e.function.output())
        .into_iter()
        .filter(|l| l["request_id"] == request_id)
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "one outcome line for {request_id}: {lines:?}"
    );
    lines.into_iter().next().expect("one line")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outcome_line_names_the_trigger_as_the_contract_does_and_lists_jobs_and_errors_as_json()
{
    let e2e = E2e::start(&[]).await;

    // A direct invoke that submits: one job.
    let submitted = e2e.answer(command(Some("log-direct-1"))).await;
    assert_eq!(submitted["outcome"], "SUBMITTED", "{submitted}");
    assert_eq!(submitted["trigger"], "direct");
    let line = line_of(&e2e, "log-direct-1").await;
    assert_eq!(
        line["trigger"], "direct",
        "the contract's form, not Debug's: {line}"
    );
    assert_eq!(line["outcome"], "SUBMITTED");
    assert_eq!(
        line["level"], "INFO",
        "Lambda filters JSON lines by their level"
    );
    let job = submitted["atlas"]["jobs"][0]["id"].clone();
    assert!(job.is_string(), "{submitted}");
    assert_eq!(line["jobs"], json!([job]), "jobs is a JSON list: {line}");
    assert_eq!(line["errors"], json!([]), "errors is a JSON list: {line}");
    assert_eq!(line["error_count"], 0);
    assert_eq!(line["published"], true);
    assert_eq!(line["group_id"], submitted["groupId"]);
    assert_eq!(line["cluster_name"], "orders");

    // A direct invoke that is rejected: its problems, each with its field and code.
    let mut invalid = command(Some("log-direct-2"));
    invalid["clusterName"] = json!("orders/../prod");
    invalid["dryRun"] = json!("yes");
    let rejected = e2e.answer(invalid).await;
    assert_eq!(rejected["outcome"], "REJECTED", "{rejected}");
    let line = line_of(&e2e, "log-direct-2").await;
    assert_eq!(line["trigger"], "direct");
    assert_eq!(line["jobs"], json!([]));
    let expected: Vec<Value> = rejected["errors"]
        .as_array()
        .expect("the answer's errors")
        .iter()
        .map(|e| json!({"field": e["field"], "code": e["code"]}))
        .collect();
    assert!(expected.len() >= 2, "{rejected}");
    assert_eq!(line["errors"], Value::Array(expected.clone()), "{line}");
    assert_eq!(line["error_count"], expected.len());

    // A webhook: its trigger in the same form.
    let (status, answer) = e2e.http(signed(&command(Some("log-webhook-1")))).await;
    assert_eq!(status, 202, "{answer}");
    let line = line_of(&e2e, "log-webhook-1").await;
    assert_eq!(line["trigger"], "webhook");
    assert_eq!(line["jobs"], json!([answer["atlas"]["jobs"][0]["id"]]));

    // Every outcome line of the run is a JSON object of that shape.
    for line in outcome_lines(&e2e.function.output()) {
        assert!(
            line["jobs"].is_array() && line["errors"].is_array(),
            "{line}"
        );
        let trigger = line["trigger"].as_str().unwrap_or_default();
        assert!(
            ["webhook", "schedule", "direct", "event"].contains(&trigger),
            "{line}"
        );
    }
}
