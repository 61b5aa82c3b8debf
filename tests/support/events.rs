//! The events the tests send the function: API Gateway HTTP API requests (the webhook and its
//! status lookup), signed by a [`Signer`] or not, and SQS deliveries of the work queue.
//!
//! tests/support/invariants.rs includes this file by path, and the fuzz targets include that
//! one (fuzz/fuzz_targets/*.rs), so it uses nothing else of tests/support and only crates that
//! fuzz/Cargo.toml lists; tests/support/sample.rs binds these to the stack's signing secret.
#![allow(dead_code)]

use atlas_restore_runner::triggers::signature::sign;
use chrono::Utc;
use serde_json::{Value, json};

/// Who signs a request and when.
#[derive(Clone, Copy, Debug)]
pub struct Signer<'a> {
    pub secret: &'a str,
    /// Unix seconds.
    pub timestamp: i64,
    /// Slack's header names (`X-Slack-Request-Timestamp`, `X-Slack-Signature`), which the
    /// runner also reads, instead of ours (`x-signature-timestamp`, `x-signature`).
    pub slack: bool,
}

impl<'a> Signer<'a> {
    /// `secret`, now, under our header names.
    pub fn now(secret: &'a str) -> Signer<'a> {
        Signer::at(secret, Utc::now().timestamp())
    }

    /// `secret` at `timestamp`, under our header names.
    pub fn at(secret: &'a str, timestamp: i64) -> Signer<'a> {
        Signer {
            secret,
            timestamp,
            slack: false,
        }
    }

    /// The same, under Slack's header names.
    pub fn slack(self) -> Signer<'a> {
        Signer {
            slack: true,
            ..self
        }
    }
}

/// An API Gateway HTTP API (payload 2.0) request with only the fields the function reads:
/// `method` on `path`, `body` as the event carries it (base64 text when `base64`), and headers
/// signed over `signed` (the body's bytes, or `GET <path>` for a status lookup) by `signer`,
/// or unsigned.
pub fn http_request(
    method: &str,
    path: &str,
    body: Option<&str>,
    base64: bool,
    signed: &[u8],
    signer: Option<Signer>,
) -> Value {
    let mut headers = json!({"content-type": "application/json"});
    if let Some(signer) = signer {
        let (timestamp, signature) = if signer.slack {
            ("X-Slack-Request-Timestamp", "X-Slack-Signature")
        } else {
            ("x-signature-timestamp", "x-signature")
        };
        headers[timestamp] = json!(signer.timestamp.to_string());
        headers[signature] = json!(sign(signer.secret.as_bytes(), signer.timestamp, signed));
    }
    let route = match method {
        "GET" => "GET /restore/{requestId}".to_owned(),
        other => format!("{other} /restore"),
    };
    json!({
        "version": "2.0",
        "routeKey": route,
        "rawPath": path,
        "headers": headers,
        "requestContext": {"http": {"method": method, "path": path}},
        "body": body,
        "isBase64Encoded": base64,
    })
}

/// `event` (from [`http_request`]) with the rest of what API Gateway sends, which the function
/// does not read: the host header, the query string, the request context's account, API,
/// stage, caller and times. Its `timeEpoch` is the pinned moment of tests/support/clock.rs,
/// long past for a function on the real clock, which then counts its webhook budget from now.
pub fn as_api_gateway_sends(mut event: Value) -> Value {
    let host = "abc123.execute-api.us-east-1.amazonaws.com";
    event["headers"]["host"] = json!(host);
    event["rawQueryString"] = json!("");
    let route = event["routeKey"].clone();
    let context = &mut event["requestContext"];
    for (name, value) in [
        ("accountId", json!("123456789012")),
        ("apiId", json!("abc123")),
        ("domainName", json!(host)),
        ("requestId", json!("JKJaXmPLvHcESHA=")),
        ("routeKey", route),
        ("stage", json!("$default")),
        ("time", json!("28/Nov/2026:17:06:15 +0000")),
        ("timeEpoch", json!(1795885575000_i64)),
    ] {
        context[name] = value;
    }
    let http = &mut context["http"];
    http["protocol"] = json!("HTTP/1.1");
    http["sourceIp"] = json!("203.0.113.7");
    http["userAgent"] = json!("chatbot");
    event
}

/// `POST /restore` carrying `body` as API Gateway sends it, signed now with `secret` unless
/// `None`.
pub fn webhook(body: &str, secret: Option<&str>) -> Value {
    webhook_signed_by(body, secret.map(Signer::now))
}

/// `POST /restore` carrying `body` as API Gateway sends it, signed by `signer` (another
/// moment, Slack's header names) unless `None`.
pub fn webhook_signed_by(body: &str, signer: Option<Signer>) -> Value {
    as_api_gateway_sends(http_request(
        "POST",
        "/restore",
        Some(body),
        false,
        body.as_bytes(),
        signer,
    ))
}

/// `GET {path}` (a status lookup, no body) as API Gateway sends it, signed now over `signed`
/// with `secret` unless `None`.
pub fn get_request(path: &str, signed: &str, secret: Option<&str>) -> Value {
    as_api_gateway_sends(http_request(
        "GET",
        path,
        None,
        false,
        signed.as_bytes(),
        secret.map(Signer::now),
    ))
}

/// An SQS event delivering one message (`body`) from the work queue, as Lambda delivers it.
pub fn sqs_event(body: &str, message_id: &str) -> Value {
    json!({"Records": [{
        "messageId": message_id, "receiptHandle": "r", "body": body, "attributes": {},
        "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:restore-work", "awsRegion": "us-east-1"
    }]})
}

/// A work-queue message as the webhook hands `body` off: signed with `secret` at `timestamp`.
pub fn hand_off(body: &str, secret: &str, timestamp: i64) -> Value {
    json!({
        "body": body,
        "timestamp": timestamp.to_string(),
        "signature": sign(secret.as_bytes(), timestamp, body.as_bytes()),
    })
}
