//! The demo's DR drills (CONTRACT section 7): three drills under one name, run at once. One
//! passes; one misses its RTO target (1 minute: the Atlas double keeps its job running for a
//! little over a minute, the shortest target there is); one ends BROKEN (the Atlas double
//! breaks its job). Then the summary as `GET /drills/{name}` answers it, and the report and
//! CSV written to files to open.

use std::path::Path;
use std::time::{Duration, Instant};

use atlas_restore_runner::drill::link;
use atlas_restore_runner::notify::{NotifyFormat, render};
use atlas_restore_runner::outcome::Outcome;
use atlas_restore_runner::triggers::signature::sign;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use chrono::Utc;
use serde_json::{Value, json};

use super::shared;
use super::support::atlas_double::AtlasDouble;
use super::support::moto::receive_all;

pub const DRILL_TABLE: &str = "atlas-restore-runner-drills";
const NAME: &str = "orders-monthly";
/// How long the drill that misses its 1-minute RTO target keeps running.
const SLOW_DRILL: Duration = Duration::from_secs(65);

/// What the drills need of the demo's stack.
pub struct DrillStack<'a> {
    pub client: &'a reqwest::Client,
    pub address: &'a str,
    pub sdk: &'a aws_config::SdkConfig,
    pub work_queue: &'a str,
    pub work_queue_arn: &'a str,
    pub outcomes_queue: &'a str,
    pub atlas: &'a AtlasDouble,
    pub signing_secret: &'a str,
    pub group: &'a str,
    pub report_dir: &'a Path,
}

/// Creates the drill table (partition key `drill`, sort key `startedAt`) on moto.
pub async fn create_table(sdk: &aws_config::SdkConfig) -> Result<(), String> {
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(|e| e.to_string())
    };
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| e.to_string())
    };
    aws_sdk_dynamodb::Client::new(sdk)
        .create_table()
        .table_name(DRILL_TABLE)
        .key_schema(key("drill", KeyType::Hash)?)
        .key_schema(key("startedAt", KeyType::Range)?)
        .attribute_definitions(attribute("drill")?)
        .attribute_definitions(attribute("startedAt")?)
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .map_err(|e| format!("creating the drill table on moto: {e}"))?;
    Ok(())
}

/// Runs the three drills to their ends and shows the evidence; returns what went wrong.
pub async fn run(stack: &DrillStack<'_>) -> Result<Vec<String>, String> {
    println!();
    println!(
        "Three DR drills under the name {NAME} (RTO target 1 min, RPO target 24 h): one passes, one keeps Atlas busy for {} s and misses its RTO target, one the Atlas double breaks.",
        SLOW_DRILL.as_secs()
    );
    println!("  (this takes a little over a minute: the smallest RTO target is a whole minute)");
    let mut drills = Vec::new();
    for (key, behaviour) in [
        ("drill-demo-pass", "FINISHED"),
        ("drill-demo-slow", "SLOW"),
        ("drill-demo-broken", "BROKEN"),
    ] {
        let command = drill_command(stack.group, key);
        let invoked = shared::invoke(
            stack.client,
            stack.address,
            &command,
            Duration::from_secs(120),
        )
        .await?;
        let outcome = &invoked.payload;
        if outcome["outcome"] != "SUBMITTED" {
            return Err(format!("drill {key}: expected SUBMITTED, got {outcome}"));
        }
        let job = outcome["atlas"]["jobs"][0]["id"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        match behaviour {
            "FINISHED" => stack.atlas.set_job_status(&job, "FINISHED", None),
            "BROKEN" => stack.atlas.set_job_status(&job, "BROKEN", None),
            _ => {}
        }
        println!(
            "  {key:<20} SUBMITTED  restore point {}",
            outcome["drill"]["restorePointTime"].as_str().unwrap_or("-")
        );
        drills.push((job, behaviour));
    }
    let started = Instant::now();
    let ends = follow(stack, &drills, started).await?;
    let mut surprises = Vec::new();
    println!(
        "  {:<20} {:<9} {:<14} {:<8} {:<12} TITLE IN CHAT",
        "REQUEST", "OUTCOME", "VERDICT", "RTO", "RPO"
    );
    for end in &ends {
        let drill = &end["drill"];
        println!(
            "  {:<20} {:<9} {:<14} {:<8} {:<12} {}",
            end["requestId"].as_str().unwrap_or("-"),
            end["outcome"].as_str().unwrap_or("-"),
            drill["verdict"].as_str().unwrap_or("-"),
            figure(&drill["rtoSeconds"]),
            figure(&drill["rpoSeconds"]),
            chat_title(end),
        );
    }
    let mut verdicts: Vec<&str> = ends
        .iter()
        .filter_map(|e| e["drill"]["verdict"].as_str())
        .collect();
    verdicts.sort_unstable();
    if verdicts != ["BROKEN", "MISSED_TARGET", "PASSED"] {
        surprises.push(format!(
            "drill verdicts {verdicts:?}, expected BROKEN, MISSED_TARGET and PASSED"
        ));
    }
    surprises.extend(show_evidence(stack).await?);
    Ok(surprises)
}

fn drill_command(group: &str, key: &str) -> Value {
    json!({
        "groupId": group,
        "clusterName": "orders",
        "idempotencyKey": key,
        "restorePoint": "latestSnapshot",
        "restore": {"delivery": {"methodName": "AUTOMATED_RESTORE", "targetGroupId": group, "targetClusterName": "orders-drill"}},
        "requestedBy": "runbook:dr-drill",
        "reason": "monthly DR drill (demo)",
        "drill": {"name": NAME, "rtoTargetMinutes": 1, "rpoTargetMinutes": 1440}
    })
}

/// Delivers the follow-up checks as the event source mapping would, until every drill ended;
/// the slow drill's job finishes once it has run for [`SLOW_DRILL`].
async fn follow(
    stack: &DrillStack<'_>,
    drills: &[(String, &str)],
    started: Instant,
) -> Result<Vec<Value>, String> {
    let mut ends = Vec::new();
    let give_up = started + SLOW_DRILL + Duration::from_secs(40);
    while ends.len() < drills.len() {
        if Instant::now() > give_up {
            return Err(format!(
                "only {} of {} drills ended in time",
                ends.len(),
                drills.len()
            ));
        }
        if started.elapsed() >= SLOW_DRILL {
            for (job, behaviour) in drills {
                if *behaviour == "SLOW" {
                    stack.atlas.set_job_status(job, "FINISHED", None);
                }
            }
        }
        for message in receive_all(stack.sdk, stack.work_queue, 1).await {
            deliver(stack, message.body().unwrap_or_default()).await?;
        }
        for message in receive_all(stack.sdk, stack.outcomes_queue, 0).await {
            let outcome: Value =
                serde_json::from_str(message.body().unwrap_or_default()).unwrap_or(Value::Null);
            if outcome.get("drill").is_some() && outcome["outcome"] != "SUBMITTED" {
                ends.push(outcome);
            }
        }
    }
    Ok(ends)
}

async fn deliver(stack: &DrillStack<'_>, body: &str) -> Result<(), String> {
    let event = json!({"Records": [{
        "messageId": format!("drill-{}", Utc::now().timestamp_nanos_opt().unwrap_or(0)),
        "receiptHandle": "demo", "body": body, "attributes": {}, "messageAttributes": {},
        "md5OfBody": "", "eventSource": "aws:sqs", "eventSourceARN": stack.work_queue_arn,
        "awsRegion": "us-east-1",
    }]});
    let invoked = shared::invoke(
        stack.client,
        stack.address,
        &event,
        Duration::from_secs(120),
    )
    .await?;
    if invoked.payload != json!({"batchItemFailures": []}) {
        return Err(format!(
            "a drill's follow-up check failed: {}",
            invoked.payload
        ));
    }
    Ok(())
}

/// The evidence read back: the signed JSON summary, then the report and CSV behind a signed
/// link, written to files.
async fn show_evidence(stack: &DrillStack<'_>) -> Result<Vec<String>, String> {
    let mut surprises = Vec::new();
    let path = format!("/drills/{NAME}");
    let timestamp = Utc::now().timestamp();
    let signature = sign(
        stack.signing_secret.as_bytes(),
        timestamp,
        format!("GET {path}").as_bytes(),
    );
    let event = json!({
        "version": "2.0", "routeKey": "GET /drills/{name}", "rawPath": path, "rawQueryString": "",
        "headers": {"x-signature-timestamp": timestamp.to_string(), "x-signature": signature},
        "requestContext": {"http": {"method": "GET", "path": path}}, "isBase64Encoded": false
    });
    let answer = shared::invoke(stack.client, stack.address, &event, Duration::from_secs(60))
        .await?
        .payload;
    let body: Value = answer["body"]
        .as_str()
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    let summary = &body["summary"];
    println!(
        "  signed GET {path}: HTTP {}, summary:",
        answer["statusCode"]
    );
    println!(
        "    count {}  passed {}  passRate {}  RTO median {} / p90 {} / max {}  RPO max {}  last passed {}",
        summary["count"],
        summary["passed"],
        summary["passRate"],
        figure(&summary["rtoSecondsMedian"]),
        figure(&summary["rtoSecondsP90"]),
        figure(&summary["rtoSecondsMax"]),
        figure(&summary["rpoSecondsMax"]),
        summary["lastPassedAt"].as_str().unwrap_or("never"),
    );
    if summary["count"] != 3 || summary["passed"] != 1 {
        surprises.push(format!("the drill summary: {summary}"));
    }
    let query = link::query(stack.signing_secret.as_bytes(), NAME, Utc::now(), 1);
    std::fs::create_dir_all(stack.report_dir)
        .map_err(|e| format!("{}: {e}", stack.report_dir.display()))?;
    for (leaf, file) in [
        ("report", "drill-report.html"),
        ("report.csv", "drill-report.csv"),
    ] {
        let path = format!("/drills/{NAME}/{leaf}");
        let event = json!({
            "version": "2.0", "routeKey": format!("GET /drills/{{name}}/{leaf}"), "rawPath": path,
            "rawQueryString": query, "headers": {},
            "requestContext": {"http": {"method": "GET", "path": path}}, "isBase64Encoded": false
        });
        let answer = shared::invoke(stack.client, stack.address, &event, Duration::from_secs(60))
            .await?
            .payload;
        if answer["statusCode"] != 200 {
            surprises.push(format!("GET {path}: {answer}"));
            continue;
        }
        let out = stack.report_dir.join(file);
        std::fs::write(&out, answer["body"].as_str().unwrap_or_default())
            .map_err(|e| format!("{}: {e}", out.display()))?;
        println!(
            "  signed link GET {path}?expires=...&sig=...: written to {}",
            out.display()
        );
    }
    let html = stack.report_dir.join("drill-report.html");
    println!(
        "  open the report in any browser: file://{} (or: xdg-open {0}, open {0} on macOS); the CSV opens in a spreadsheet",
        html.display()
    );
    Ok(surprises)
}

fn figure(seconds: &Value) -> String {
    seconds.as_u64().map_or_else(
        || "-".to_owned(),
        atlas_restore_runner::drill::human_duration,
    )
}

/// The Chatbot title this drill's end gets (NOTIFY_FORMAT=chatbot), rendered by the function's
/// own code.
fn chat_title(end: &Value) -> String {
    let Ok(outcome) = serde_json::from_value::<Outcome>(end.clone()) else {
        return "-".to_owned();
    };
    let note = render(&outcome, NotifyFormat::Chatbot, false);
    serde_json::from_str::<Value>(&note.message)
        .ok()
        .and_then(|m| m["content"]["title"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "-".to_owned())
}
