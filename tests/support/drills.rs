//! Drills against a [`Stack`](super::stack::Stack): the drill table in moto, drill commands,
//! following one to its end through the real `bootstrap`, and the signed reads of the evidence
//! (CONTRACT section 7).

use atlas_restore_runner::drill::link;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use serde_json::{Value, json};

use super::e2e::E2e;
use super::events::{as_api_gateway_sends, get_request, http_request, sqs_event};
use super::moto::receive_all;
use super::sample::command;
use super::stack::SIGNING_SECRET;

pub const DRILL_TABLE: &str = "atlas-restore-runner-drills";

/// The function with the work queue and the drill table, checking every second.
pub async fn drills_e2e(extra_env: &[(&str, &str)]) -> E2e {
    let mut env = vec![
        ("DRILL_TABLE", DRILL_TABLE),
        ("FOLLOW_INTERVAL_SECONDS", "1"),
        ("FOLLOW_MAX_HOURS", "1"),
    ];
    for (name, value) in extra_env {
        env.retain(|(n, _)| n != name);
        env.push((name, value));
    }
    let e2e = E2e::start_with_work_queue(&env).await;
    create_drill_table(&e2e.stack.sdk).await;
    e2e
}

/// The drill table as the stack defines it: `drill` and `startedAt`, strings.
pub async fn create_drill_table(sdk: &aws_config::SdkConfig) {
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .expect("key schema")
    };
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("attribute")
    };
    aws_sdk_dynamodb::Client::new(sdk)
        .create_table()
        .table_name(DRILL_TABLE)
        .key_schema(key("drill", KeyType::Hash))
        .key_schema(key("startedAt", KeyType::Range))
        .attribute_definitions(attribute("drill"))
        .attribute_definitions(attribute("startedAt"))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("create the drill table");
}

/// The sample command (a snapshot restore of `orders` into `orders-drill`) as drill `name`.
pub fn drill_command(key: &str, name: &str, rto: Option<u32>, rpo: Option<u32>) -> Value {
    let mut command = command(Some(key));
    let mut drill = json!({"name": name});
    if let Some(rto) = rto {
        drill["rtoTargetMinutes"] = json!(rto);
    }
    if let Some(rpo) = rpo {
        drill["rpoTargetMinutes"] = json!(rpo);
    }
    command["drill"] = drill;
    command
}

/// Every evidence record in the drill table, as stored (`record` parsed).
pub async fn evidence(e2e: &E2e) -> Vec<Value> {
    let items = aws_sdk_dynamodb::Client::new(&e2e.stack.sdk)
        .scan()
        .table_name(DRILL_TABLE)
        .send()
        .await
        .expect("scan the drill table")
        .items
        .unwrap_or_default();
    items
        .iter()
        .map(|item| {
            let record = item["record"].as_s().expect("a record attribute");
            serde_json::from_str(record).expect("a JSON record")
        })
        .collect()
}

/// Follows a submitted drill to its end: delivers each follow-up check the function queues
/// (after `before_each`) until an outcome other than `SUBMITTED` is published; that outcome.
pub async fn follow_to_end(e2e: &E2e, mut before_each: impl FnMut(usize)) -> Value {
    for check in 0..8 {
        let messages = receive_all(&e2e.stack.sdk, &e2e.stack.work_queue, 1).await;
        assert_eq!(
            messages.len(),
            1,
            "one follow-up at check {check}\n{}",
            e2e.function.output()
        );
        before_each(check);
        let answer = e2e
            .answer(sqs_event(messages[0].body().unwrap(), "m-drill"))
            .await;
        let published = e2e.published(0).await;
        if let Some(end) = published.into_iter().find(|o| o["outcome"] != "SUBMITTED") {
            return end;
        }
        assert_eq!(
            answer,
            json!({"batchItemFailures": []}),
            "{}",
            e2e.function.output()
        );
    }
    panic!(
        "the drill did not end within 8 checks\n{}",
        e2e.function.output()
    );
}

/// `GET /drills/{name}[?query]`, signed in the headers over `GET /drills/{name}`.
pub fn drills_lookup(name: &str, query: &str) -> Value {
    let path = format!("/drills/{name}");
    let mut event = get_request(&path, &format!("GET {path}"), Some(SIGNING_SECRET));
    event["rawQueryString"] = json!(query);
    event
}

/// `GET /drills/{name}/{leaf}?{query}`, unsigned headers (a link opened in a browser).
pub fn link_request(name: &str, leaf: &str, query: &str) -> Value {
    let path = format!("/drills/{name}/{leaf}");
    let mut event = as_api_gateway_sends(http_request("GET", &path, None, false, b"", None));
    event["rawQueryString"] = json!(query);
    event
}

/// The query of a report link for `name` expiring at `expires`, signed with the stack's secret.
pub fn link_query(name: &str, expires: i64) -> String {
    let sig = link::sign(SIGNING_SECRET.as_bytes(), name, expires);
    format!("expires={expires}&sig={}", sig.replace('=', "%3D"))
}
