//! What the `demo` and `send_event` examples share: preparing a sample from `events/` for
//! sending (signing it at send time, see `events/README.md`), invoking the function through the
//! Lambda Invoke API that `cargo lambda watch` emulates, and reading its answer at a glance.
#![allow(dead_code)]

use std::time::Duration;

use atlas_restore_runner::triggers::signature::sign;
use base64::Engine;
use chrono::{DateTime, Utc};
use md5::{Digest, Md5};
use serde_json::{Map, Value, json};

/// The function's name under `cargo lambda watch`: the `[[bin]]` name.
pub const FUNCTION_NAME: &str = "bootstrap";
/// Where `cargo lambda watch` listens unless told otherwise.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:9000";
/// The environment variable the signing secret is read from, unless told otherwise.
pub const DEFAULT_SECRET_ENV: &str = "WEBHOOK_SIGNING_SECRET";
/// A webhook sample with this header set to `"true"` keeps its `x-signature` as written.
pub const KEEP_SIGNATURE_HEADER: &str = "x-demo-keep-signature";

const TIMESTAMP_HEADER: &str = "x-signature-timestamp";
const SIGNATURE_HEADER: &str = "x-signature";

/// Which of the function's inputs a sample is, as far as sending it goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleKind {
    /// API Gateway HTTP API (payload 2.0) / Function URL request: signed at send time.
    Webhook,
    /// An SQS batch: each hand-off message is signed at send time.
    Queue,
    /// Anything else (schedules, events, direct commands): sent as written.
    Plain,
}

pub fn kind_of(event: &Value) -> SampleKind {
    if event
        .pointer("/requestContext/http")
        .is_some_and(Value::is_object)
    {
        SampleKind::Webhook
    } else if event
        .get("Records")
        .and_then(Value::as_array)
        .is_some_and(|records| {
            records
                .iter()
                .any(|r| r.get("eventSource").and_then(Value::as_str) == Some("aws:sqs"))
        })
    {
        SampleKind::Queue
    } else {
        SampleKind::Plain
    }
}

/// A sample made ready to send, and what was filled in.
pub struct Prepared {
    pub event: Value,
    pub kind: SampleKind,
    pub filled: Vec<String>,
}

/// Whether sending `event` needs the signing secret.
pub fn needs_secret(event: &Value) -> bool {
    match kind_of(event) {
        SampleKind::Webhook => !keeps_signature(event),
        SampleKind::Queue => event["Records"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|record| handoff_message(record).is_some_and(|m| !has_text(&m, "signature"))),
        SampleKind::Plain => false,
    }
}

/// Fills in what a stored sample cannot hold (see `events/README.md`): a webhook's
/// `x-signature-timestamp` and `x-signature`, and a hand-off message's `timestamp` and
/// `signature` (with the record's `md5OfBody`), computed now with `secret`.
pub fn prepare(
    event: &Value,
    secret: Option<&[u8]>,
    now: DateTime<Utc>,
) -> Result<Prepared, String> {
    let mut event = event.clone();
    let kind = kind_of(&event);
    let mut filled = Vec::new();
    match kind {
        SampleKind::Webhook => prepare_webhook(&mut event, secret, now, &mut filled)?,
        SampleKind::Queue => prepare_queue(&mut event, secret, now, &mut filled)?,
        SampleKind::Plain => {}
    }
    Ok(Prepared {
        event,
        kind,
        filled,
    })
}

fn keeps_signature(event: &Value) -> bool {
    event
        .get("headers")
        .and_then(Value::as_object)
        .and_then(|h| {
            h.iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(KEEP_SIGNATURE_HEADER))
        })
        .and_then(|(_, v)| v.as_str())
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

fn prepare_webhook(
    event: &mut Value,
    secret: Option<&[u8]>,
    now: DateTime<Utc>,
    filled: &mut Vec<String>,
) -> Result<(), String> {
    let keep = keeps_signature(event);
    let body = webhook_body(event)?;
    if !event.get("headers").is_some_and(Value::is_object) {
        event["headers"] = json!({});
    }
    let headers = event["headers"]
        .as_object_mut()
        .ok_or("the sample's headers are not an object")?;
    // The marker is an instruction to the sender, not part of the request.
    headers.retain(|name, _| !name.eq_ignore_ascii_case(KEEP_SIGNATURE_HEADER));
    let timestamp = now.timestamp();
    if keep {
        if find_header(headers, TIMESTAMP_HEADER).is_none() {
            headers.insert(TIMESTAMP_HEADER.into(), json!(timestamp.to_string()));
            filled.push(format!("{TIMESTAMP_HEADER} (now)"));
        }
        filled.push(format!("{SIGNATURE_HEADER} kept as written"));
    } else {
        let secret = secret
            .ok_or("this webhook sample is signed at send time: the signing secret is needed")?;
        headers.retain(|name, _| {
            !name.eq_ignore_ascii_case(TIMESTAMP_HEADER)
                && !name.eq_ignore_ascii_case(SIGNATURE_HEADER)
        });
        headers.insert(TIMESTAMP_HEADER.into(), json!(timestamp.to_string()));
        headers.insert(
            SIGNATURE_HEADER.into(),
            json!(sign(secret, timestamp, &body)),
        );
        filled.push(format!(
            "{TIMESTAMP_HEADER}, {SIGNATURE_HEADER} (signed now)"
        ));
    }
    if let Some(context) = event
        .get_mut("requestContext")
        .and_then(Value::as_object_mut)
    {
        context.insert("timeEpoch".into(), json!(now.timestamp_millis()));
        context.insert(
            "time".into(),
            json!(now.format("%d/%b/%Y:%H:%M:%S +0000").to_string()),
        );
    }
    Ok(())
}

/// The exact bytes of a webhook sample's body (decoded when `isBase64Encoded`).
fn webhook_body(event: &Value) -> Result<Vec<u8>, String> {
    let raw = event.get("body").and_then(Value::as_str).unwrap_or("");
    if event
        .get("isBase64Encoded")
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        base64::engine::general_purpose::STANDARD
            .decode(raw)
            .map_err(|e| format!("the sample's body is marked base64 but is not: {e}"))
    } else {
        Ok(raw.as_bytes().to_vec())
    }
}

fn find_header<'a>(headers: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn has_text(message: &Value, name: &str) -> bool {
    message.get(name).and_then(Value::as_str).is_some()
}

/// The hand-off message a record carries: `{"body": <webhook body>, "timestamp", "signature"}`.
fn handoff_message(record: &Value) -> Option<Value> {
    let body = record.get("body")?.as_str()?;
    let message: Value = serde_json::from_str(body).ok()?;
    message
        .get("body")
        .is_some_and(Value::is_string)
        .then_some(message)
}

fn prepare_queue(
    event: &mut Value,
    secret: Option<&[u8]>,
    now: DateTime<Utc>,
    filled: &mut Vec<String>,
) -> Result<(), String> {
    let records = event["Records"]
        .as_array_mut()
        .ok_or("the sample's Records is not an array")?;
    for (index, record) in records.iter_mut().enumerate() {
        let Some(mut message) = handoff_message(record) else {
            continue;
        };
        if !has_text(&message, "signature") {
            let secret = secret.ok_or(
                "this hand-off message is signed at send time: the signing secret is needed",
            )?;
            let timestamp = match message.get("timestamp").and_then(Value::as_str) {
                Some(text) => text
                    .parse::<i64>()
                    .map_err(|_| format!("record {index}: timestamp {text:?} is not a number"))?,
                None => now.timestamp(),
            };
            let body = message["body"].as_str().unwrap_or_default().to_owned();
            message["timestamp"] = json!(timestamp.to_string());
            message["signature"] = json!(sign(secret, timestamp, body.as_bytes()));
            filled.push(format!("record {index}: timestamp, signature (signed now)"));
        }
        let text = message.to_string();
        record["md5OfBody"] = json!(hex::encode(Md5::digest(text.as_bytes())));
        record["body"] = json!(text);
    }
    Ok(())
}

/// The function's answer to one invocation.
pub struct Invoked {
    /// The Invoke API's HTTP status (200, or an error of the emulator / the function).
    pub http_status: u16,
    /// The function's result, or its error (`{"errorType", "errorMessage"}`).
    pub payload: Value,
    pub function_error: bool,
    pub took: Duration,
}

/// `http://<address>/2015-03-31/functions/bootstrap/invocations`.
pub fn invoke_url(address: &str) -> String {
    format!("http://{address}/2015-03-31/functions/{FUNCTION_NAME}/invocations")
}

/// Invokes the function (synchronously, like `aws lambda invoke`) through the Invoke API.
pub async fn invoke(
    client: &reqwest::Client,
    address: &str,
    event: &Value,
    timeout: Duration,
) -> Result<Invoked, String> {
    let started = std::time::Instant::now();
    let url = invoke_url(address);
    let response = client
        .post(&url)
        .header("content-type", "application/json")
        .body(event.to_string())
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| format!("POST {url}: {e}"))?;
    let http_status = response.status().as_u16();
    let error_header = response.headers().contains_key("x-amz-function-error");
    let bytes = response
        .bytes()
        .await
        .map_err(|e| format!("reading the answer of {url}: {e}"))?;
    let payload = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    let function_error = error_header
        || (payload.get("errorType").is_some() && payload.get("errorMessage").is_some());
    Ok(Invoked {
        http_status,
        payload,
        function_error,
        took: started.elapsed(),
    })
}

/// One job of an outcome.
pub struct JobLine {
    pub id: String,
    pub status: String,
    pub target: String,
}

/// One problem of an outcome.
pub struct ErrorLine {
    pub field: String,
    pub code: String,
    pub message: String,
}

/// An answer, read at a glance.
#[derive(Default)]
pub struct Summary {
    /// How the function answered: `HTTP 202`, `ok`, `error DependencyFailure`, ...
    pub answer: String,
    pub outcome: Option<String>,
    pub trigger: Option<String>,
    pub request_id: Option<String>,
    pub jobs: Vec<JobLine>,
    pub errors: Vec<ErrorLine>,
    /// The Atlas body of a `DRY_RUN` (what would be sent).
    pub would_send: Option<Value>,
    /// The Atlas body sent (`SUBMITTED`, `FAILED`, `UNKNOWN`), restore point filled in.
    pub sent: Option<Value>,
    /// Atlas's refusal of a `FAILED`: `HTTP 404 SNAPSHOT_NOT_FOUND: ...`.
    pub atlas_refusal: Option<String>,
    /// The first outcome of a `DUPLICATE`.
    pub first: Option<String>,
    /// Anything else worth a line (401 body, batch failures, an error message).
    pub note: Option<String>,
    /// The outcome object itself, when there is one.
    pub outcome_value: Option<Value>,
}

/// Reads an invocation's answer: a webhook's HTTP response, an SQS batch response, an outcome,
/// or a function error.
pub fn summarize(invoked: &Invoked) -> Summary {
    let payload = &invoked.payload;
    if invoked.function_error {
        return Summary {
            answer: format!(
                "error {}",
                payload
                    .get("errorType")
                    .and_then(Value::as_str)
                    .unwrap_or("(untyped)")
            ),
            note: payload
                .get("errorMessage")
                .and_then(Value::as_str)
                .map(|m| shorten(m, 160))
                .or_else(|| Some(shorten(&payload.to_string(), 160))),
            ..Summary::default()
        };
    }
    if let Some(status) = payload.get("statusCode").and_then(Value::as_u64) {
        let body = payload.get("body").and_then(Value::as_str).unwrap_or("");
        let body: Value = serde_json::from_str(body).unwrap_or(Value::String(body.to_owned()));
        let mut summary = if body.get("outcome").is_some() {
            of_outcome(&body)
        } else {
            Summary {
                note: Some(shorten(&body.to_string(), 160)),
                ..Summary::default()
            }
        };
        summary.answer = format!("HTTP {status}");
        return summary;
    }
    if let Some(failures) = payload.get("batchItemFailures").and_then(Value::as_array) {
        return Summary {
            answer: if failures.is_empty() {
                "batch ok".to_owned()
            } else {
                format!("batch, {} failed", failures.len())
            },
            note: (!failures.is_empty())
                .then(|| shorten(&Value::from(failures.clone()).to_string(), 160)),
            ..Summary::default()
        };
    }
    if payload.get("outcome").is_some() {
        let mut summary = of_outcome(payload);
        summary.answer = "returned".into();
        return summary;
    }
    Summary {
        answer: format!("HTTP {}", invoked.http_status),
        note: Some(shorten(&payload.to_string(), 160)),
        ..Summary::default()
    }
}

/// The parts of an outcome (CONTRACT section 3) a person looks at first.
pub fn of_outcome(outcome: &Value) -> Summary {
    let text = |pointer: &str| {
        outcome
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let jobs = outcome
        .pointer("/atlas/jobs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|job| JobLine {
            id: job["id"].as_str().unwrap_or("?").to_owned(),
            // Cloud Backup jobs have no statusName: a new one is simply running.
            status: job["statusName"].as_str().unwrap_or("running").to_owned(),
            target: job["targetClusterName"]
                .as_str()
                .unwrap_or("download")
                .to_owned(),
        })
        .collect();
    let errors = outcome
        .get("errors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|e| ErrorLine {
            field: match e["field"].as_str() {
                Some("") | None => "(event)".to_owned(),
                Some(field) => field.to_owned(),
            },
            code: e["code"].as_str().unwrap_or("?").to_owned(),
            message: e["message"].as_str().unwrap_or("").to_owned(),
        })
        .collect();
    let kind = text("/outcome");
    let atlas_refusal = (kind.as_deref() == Some("FAILED") || kind.as_deref() == Some("UNKNOWN"))
        .then(|| {
            let status = outcome
                .pointer("/atlas/httpStatus")
                .and_then(Value::as_u64)
                .map_or("no answer".to_owned(), |s| format!("HTTP {s}"));
            let code = text("/atlas/errorCode").unwrap_or_default();
            let detail = text("/atlas/detail").unwrap_or_default();
            format!("{status} {code} {detail}").trim().to_owned()
        });
    Summary {
        outcome: kind.clone(),
        trigger: text("/trigger"),
        request_id: text("/requestId"),
        jobs,
        errors,
        would_send: (kind.as_deref() == Some("DRY_RUN"))
            .then(|| outcome.get("restore").cloned())
            .flatten(),
        sent: matches!(kind.as_deref(), Some("SUBMITTED" | "FAILED" | "UNKNOWN"))
            .then(|| outcome.get("restore").filter(|r| r.is_object()).cloned())
            .flatten(),
        atlas_refusal,
        first: text("/first/outcome").map(|first| {
            let jobs: Vec<&str> = outcome
                .pointer("/first/atlas/jobs")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|j| j["id"].as_str())
                .collect();
            if jobs.is_empty() {
                first
            } else {
                format!("{first}, job {}", jobs.join(", "))
            }
        }),
        outcome_value: Some(outcome.clone()),
        ..Summary::default()
    }
}

/// `text` cut to `max` characters, with an ellipsis when cut.
pub fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// The detail lines under a summary: jobs, errors, the body a dry run would send, Atlas's
/// refusal, the first outcome of a duplicate, or a note.
pub fn detail_lines(summary: &Summary) -> Vec<(String, String)> {
    let mut lines = Vec::new();
    if let Some(body) = &summary.sent {
        lines.push(("sent".to_owned(), describe_restore(body)));
    }
    for job in &summary.jobs {
        lines.push((
            "job".to_owned(),
            format!("{}  {}  -> {}", job.id, job.status, job.target),
        ));
    }
    let width = summary
        .errors
        .iter()
        .map(|e| e.field.chars().count())
        .max()
        .unwrap_or(0);
    let code_width = summary
        .errors
        .iter()
        .map(|e| e.code.len())
        .max()
        .unwrap_or(0);
    for error in &summary.errors {
        lines.push((
            "error".to_owned(),
            format!(
                "{:<width$}  {:<code_width$}  {}",
                error.field,
                error.code,
                shorten(&error.message, 72)
            ),
        ));
    }
    if let Some(body) = &summary.would_send {
        lines.push(("would send".to_owned(), describe_restore(body)));
    }
    if let Some(refusal) = &summary.atlas_refusal {
        lines.push(("atlas".to_owned(), shorten(refusal, 130)));
    }
    if let Some(first) = &summary.first {
        lines.push(("first".to_owned(), first.clone()));
    }
    if let Some(note) = &summary.note {
        lines.push(("answer".to_owned(), note.clone()));
    }
    lines
}

/// An Atlas restore body on one line: its restore point (a time also shown as such), then
/// where it goes: `pointInTimeUTCMillis=1795890975120 (2026-11-28T15:36:15Z), AUTOMATED_RESTORE
/// -> orders-drill`. Legacy bodies hold the method and target in `delivery`; Cloud Backup
/// bodies hold `deliveryType` and the target at the top.
pub fn describe_restore(body: &Value) -> String {
    const PLACEMENT: [&str; 5] = [
        "delivery",
        "deliveryType",
        "targetClusterName",
        "targetGroupId",
        "targetClusterId",
    ];
    let mut parts = Vec::new();
    for (name, value) in body.as_object().into_iter().flatten() {
        if PLACEMENT.contains(&name.as_str()) {
            continue;
        }
        let mut part = format!(
            "{name}={}",
            value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_owned)
        );
        let time = match name.as_str() {
            "pointInTimeUTCMillis" => value
                .as_i64()
                .and_then(DateTime::<Utc>::from_timestamp_millis),
            "pointInTimeUTCSeconds" | "oplogTs" => value
                .as_i64()
                .and_then(|s| DateTime::<Utc>::from_timestamp(s, 0)),
            _ => None,
        };
        if let Some(time) = time {
            part.push_str(&format!(" ({})", time.format("%Y-%m-%dT%H:%M:%SZ")));
        }
        parts.push(part);
    }
    let delivery = body.get("delivery").unwrap_or(body);
    let method = delivery["methodName"]
        .as_str()
        .or(body["deliveryType"].as_str())
        .unwrap_or("?");
    parts.push(
        match delivery["targetClusterName"]
            .as_str()
            .or(delivery["targetClusterId"].as_str())
        {
            Some(target) => format!("{method} -> {target}"),
            None => method.to_owned(),
        },
    );
    parts.join(", ")
}
