//! The webhook: an API Gateway HTTP API (payload 2.0) or Function URL request, verified,
//! bounded, validated and checked against the approval policy in the contract's order, then run
//! or handed to the work queue; and the signed status lookup `GET /restore/{requestId}`.

use base64::Engine;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};

use crate::command::{RestoreCommand, json as strict_json};
use crate::deadline;
use crate::handler::{App, Invocation, calls_end};
use crate::outcome::{ErrorCode, OutcomeKind, Problem, Trigger};
use crate::policy::{People, check_webhook_approval, follow_requirements};
use crate::ports::{DependencyError, Ports, Secrets, SigningSecrets};
use crate::runner::{Publication, Report, RunRequest};
use crate::telemetry::log_outcome;
use crate::triggers::hand_off::HandOffMessage;
use crate::triggers::signature::{SignatureError, SignatureHeaders, verify};

/// Webhook bodies larger than this are refused (413).
pub const WEBHOOK_MAX_BODY_BYTES: usize = 64 * 1024;

/// API Gateway's HTTP API gives up on a request after 30 s: a webhook answers within this of its
/// arrival, or by the invocation's deadline if that is earlier (CONTRACT section 2, "Webhook
/// budget").
pub const WEBHOOK_BUDGET: TimeDelta = TimeDelta::seconds(25);

/// The 503 to a webhook that could not be verified says nothing about the system.
const UNVERIFIED_UNAVAILABLE: &str = "a dependency is unavailable";

impl<P: Ports> App<P> {
    /// API Gateway HTTP API (payload 2.0) or Function URL request.
    ///
    /// Its deadline is its budget's ([`webhook_deadline`]): the runner's Atlas deadlines come
    /// from it, and every call ends by it less [`ANSWER_MARGIN`].
    pub(crate) async fn webhook(&self, event: &Value, invocation: &Invocation) -> Value {
        let now = self.runner.now();
        let invocation = Invocation {
            request_id: invocation.request_id.clone(),
            deadline: webhook_deadline(event, invocation.deadline, now),
        };
        // Boxed, as in `handle`.
        let inner = Box::pin(self.webhook_inner(event, &invocation));
        match deadline::scope(calls_end(invocation.deadline, now), inner).await {
            Ok(response) => response,
            Err(error) => {
                tracing::error!(%error, "webhook: a dependency failed; answering 503");
                http_response(503, &json!({"error": error.to_string(), "retryable": true}))
            }
        }
    }

    /// The contract's order (CONTRACT section 2): verify (a status lookup is answered once
    /// verified), the method, the body (base64, size 413, JSON 400), validation and the
    /// approval policy together, then run or hand off.
    async fn webhook_inner(
        &self,
        event: &Value,
        invocation: &Invocation,
    ) -> Result<Value, DependencyError> {
        let now = self.runner.now();
        let request = WebhookEvent::read(event);
        if let Some(refused) = self.webhook_unverified(&request, now).await {
            return Ok(refused);
        }
        if let Some(path) = &request.lookup {
            return self.status_lookup(&path.request_id).await;
        }
        if !request.method.eq_ignore_ascii_case("POST") {
            return Ok(http_response(
                405,
                &json!({"message": "use POST with a restore command, or GET /restore/{requestId} for a request's status"}),
            ));
        }
        let WebhookEvent {
            headers, decoded, ..
        } = request;
        let (body, value) = match self.webhook_body(decoded).await {
            Ok(read) => read,
            Err(rejected) => return Ok(rejected),
        };
        let command = match self.webhook_accepted(&value, now).await {
            Ok(command) => command,
            Err(rejected) => return Ok(rejected),
        };
        let request = webhook_request(command, invocation, false);
        let report = if self.runner.has_work_queue() {
            let hand_off = HandOffMessage { body, headers };
            self.runner
                .hand_off(&request, hand_off.to_json(), &hand_off.digest())
                .await?
        } else {
            self.runner.run(&request).await?
        };
        Ok(webhook_answer(report))
    }

    /// The answer to a request that is not verified (503 when the signing secret cannot be
    /// read, 401 when the signature does not verify), or `None` once it is verified.
    async fn webhook_unverified(
        &self,
        request: &WebhookEvent<'_>,
        now: DateTime<Utc>,
    ) -> Option<Value> {
        let signing = match self.runner.secrets().webhook_signing_secrets().await {
            Ok(signing) => signing,
            Err(error) => {
                // Not verified: the caller may be anyone, so it learns nothing about the system
                // (no ARN, no account, no SDK text). The log has the details.
                tracing::error!(%error, "webhook: the signing secret could not be read, so the request cannot be verified; answering 503");
                return Some(http_response(
                    503,
                    &json!({"error": UNVERIFIED_UNAVAILABLE, "retryable": true}),
                ));
            }
        };
        let reason = request.verify_with(&signing, now).err()?;
        tracing::warn!(%reason, "webhook: unverified request refused with 401");
        Some(http_response(401, &json!({"message": "Unauthorized"})))
    }

    /// The body's bytes and its JSON, or the rejection: 400 for base64 that does not decode,
    /// 413 for a body over [`WEBHOOK_MAX_BODY_BYTES`], 400 for JSON that does not parse.
    async fn webhook_body(&self, decoded: Option<Vec<u8>>) -> Result<(Vec<u8>, Value), Value> {
        let Some(body) = decoded else {
            let problem = Problem::new(
                "",
                ErrorCode::MalformedJson,
                "the body is marked base64-encoded but is not valid base64",
            );
            return Err(self
                .webhook_rejected(&Value::Null, None, vec![problem], 400)
                .await);
        };
        if body.len() > WEBHOOK_MAX_BODY_BYTES {
            let problem = Problem::new(
                "",
                ErrorCode::BodyTooLarge,
                format!(
                    "the body is {} bytes; at most {WEBHOOK_MAX_BODY_BYTES} are accepted",
                    body.len()
                ),
            );
            return Err(self
                .webhook_rejected(&Value::Null, None, vec![problem], 413)
                .await);
        }
        match strict_json::parse_strict(&body) {
            Ok(value) => Ok((body, value)),
            Err(error) => {
                let problem = Problem::new(
                    "",
                    ErrorCode::MalformedJson,
                    format!("the body is not valid JSON: {error}"),
                );
                Err(self
                    .webhook_rejected(&Value::Null, None, vec![problem], 400)
                    .await)
            }
        }
    }

    /// The command, or its rejection with every validation and policy problem together: 403
    /// when any is the policy's, 400 otherwise.
    async fn webhook_accepted(
        &self,
        value: &Value,
        now: DateTime<Utc>,
    ) -> Result<RestoreCommand, Value> {
        let (command, problems) = self.webhook_command(value, now);
        let request_id = value
            .get("idempotencyKey")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let Some(command) = command.filter(|_| problems.is_empty()) else {
            let status = if problems.iter().any(|p| p.code.is_policy()) {
                403
            } else {
                400
            };
            return Err(self
                .webhook_rejected(value, request_id, problems, status)
                .await);
        };
        Ok(command)
    }

    /// `GET /restore/{requestId}` (CONTRACT section 6): the request's latest outcome and the
    /// kinds of its outcomes so far, or 404.
    async fn status_lookup(&self, request_id: &str) -> Result<Value, DependencyError> {
        let Some(record) = self.runner.lookup(request_id).await? else {
            return Ok(http_response(
                404,
                &json!({"message": format!("no restore request is known by the id {request_id:?}: it was never received, its outcome released the key (REJECTED, FAILED, DRY_RUN), or its record expired")}),
            ));
        };
        let history = record.history_so_far();
        let body = match record.latest_outcome() {
            Some(outcome) => {
                let mut body = serde_json::to_value(outcome).unwrap_or(Value::Null);
                body["history"] = json!(history);
                body
            }
            // An attempt is submitting it right now.
            None => json!({"requestId": request_id, "inProgress": true, "history": history}),
        };
        tracing::info!(request_id, history = ?history, "status lookup");
        Ok(http_response(200, &body))
    }

    /// Validation, the webhook's own requirements and the approval policy, all together.
    pub(crate) fn webhook_command(
        &self,
        value: &Value,
        now: DateTime<Utc>,
    ) -> (Option<RestoreCommand>, Vec<Problem>) {
        let (command, mut problems) = match RestoreCommand::from_value(value, now) {
            Ok(command) => (Some(command), Vec::new()),
            Err(problems) => (None, problems),
        };
        if value.is_object() && value.get("idempotencyKey").is_none_or(Value::is_null) {
            problems.push(Problem::new(
                "/idempotencyKey",
                ErrorCode::Required,
                "a webhook command needs an idempotencyKey (for example the approval's id)",
            ));
        }
        problems.extend(follow_requirements(
            value,
            Trigger::Webhook,
            self.follow_capacity(),
        ));
        if value.is_object() {
            let mut approval =
                check_webhook_approval(&People::from_value(value), &self.config.approvers);
            // A field with the wrong type is already reported by validation.
            approval.retain(|p| {
                !problems
                    .iter()
                    .any(|q| q.field == p.field && p.code == ErrorCode::Required)
            });
            problems.append(&mut approval);
        }
        (command, problems)
    }

    async fn webhook_rejected(
        &self,
        value: &Value,
        request_id: Option<String>,
        problems: Vec<Problem>,
        status: u16,
    ) -> Value {
        let outcome = self.rejected(Trigger::Webhook, value, request_id, problems);
        let report = self.runner.publish_only(outcome).await;
        let mut answer = webhook_answer(report);
        answer["statusCode"] = json!(status);
        answer
    }
}

/// What a webhook event carries, read before anything is checked.
struct WebhookEvent<'a> {
    headers: SignatureHeaders,
    /// The body as it arrived.
    raw: &'a str,
    /// The body's bytes: `None` when it is marked base64-encoded but is not valid base64.
    decoded: Option<Vec<u8>>,
    method: &'a str,
    /// The status lookup a `GET` asks for.
    lookup: Option<LookupPath>,
}

impl<'a> WebhookEvent<'a> {
    fn read(event: &'a Value) -> WebhookEvent<'a> {
        let headers = SignatureHeaders::from_pairs(
            event
                .get("headers")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .filter_map(|(n, v)| Some((n.as_str(), v.as_str()?))),
        );
        let raw = event.get("body").and_then(Value::as_str).unwrap_or("");
        let base64 = event
            .get("isBase64Encoded")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let decoded = if base64 {
            base64::engine::general_purpose::STANDARD.decode(raw).ok()
        } else {
            Some(raw.as_bytes().to_vec())
        };
        let method = event
            .pointer("/requestContext/http/method")
            .and_then(Value::as_str)
            .unwrap_or("");
        let lookup = method
            .eq_ignore_ascii_case("GET")
            .then(|| status_lookup_path(event))
            .flatten();
        WebhookEvent {
            headers,
            raw,
            decoded,
            method,
            lookup,
        }
    }

    /// Verifies the signature over the body (as received, when it is not valid base64). A
    /// lookup signs `GET /restore/{requestId}` in place of a body; the id as sent in the path
    /// (percent-encoded) or decoded both verify.
    fn verify_with(
        &self,
        signing: &SigningSecrets,
        now: DateTime<Utc>,
    ) -> Result<(), SignatureError> {
        match &self.lookup {
            Some(path) => [path.signed_decoded(), path.signed_as_sent()]
                .iter()
                .map(|signed| verify(&self.headers, signed.as_bytes(), signing, now, true))
                .reduce(|first, second| first.or(second))
                .unwrap_or(Ok(())),
            None => verify(
                &self.headers,
                self.decoded.as_deref().unwrap_or(self.raw.as_bytes()),
                signing,
                now,
                true,
            ),
        }
    }
}

/// The path of a status lookup, `.../restore/{requestId}` (a stage name may come first).
struct LookupPath {
    request_id: String,
    as_sent: String,
}

impl LookupPath {
    fn signed_decoded(&self) -> String {
        format!("GET /restore/{}", self.request_id)
    }

    fn signed_as_sent(&self) -> String {
        format!("GET /restore/{}", self.as_sent)
    }
}

fn status_lookup_path(event: &Value) -> Option<LookupPath> {
    let path = event
        .get("rawPath")
        .or_else(|| event.pointer("/requestContext/http/path"))
        .and_then(Value::as_str)?;
    let (_, as_sent) = path.rsplit_once("/restore/")?;
    let request_id = percent_encoding::percent_decode_str(as_sent)
        .decode_utf8()
        .ok()?
        .into_owned();
    (!as_sent.is_empty() && !as_sent.contains('/')).then(|| LookupPath {
        request_id,
        as_sent: as_sent.to_owned(),
    })
}

/// A verified webhook command for the runner: its `idempotencyKey` is the key.
pub(crate) fn webhook_request(
    command: RestoreCommand,
    invocation: &Invocation,
    from_queue: bool,
) -> RunRequest {
    RunRequest {
        request_id: command
            .idempotency_key
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        command,
        key_field: "/idempotencyKey",
        trigger: Trigger::Webhook,
        deadline: invocation.deadline,
        from_queue,
    }
}

/// The webhook's HTTP answer for an outcome (CONTRACT section 3).
fn webhook_answer(report: Report) -> Value {
    log_outcome(&report);
    let mut outcome = report.outcome;
    let status = match outcome.outcome {
        OutcomeKind::Submitted | OutcomeKind::Queued => 202,
        // A final outcome is only ever answered by a status lookup.
        OutcomeKind::DryRun
        | OutcomeKind::Finished
        | OutcomeKind::Broken
        | OutcomeKind::Stalled => 200,
        OutcomeKind::Rejected
            if outcome
                .errors
                .iter()
                .any(|e| e.code == ErrorCode::KeyReused) =>
        {
            409
        }
        OutcomeKind::Rejected if outcome.errors.iter().any(|e| e.code.is_policy()) => 403,
        OutcomeKind::Rejected
            if outcome
                .errors
                .iter()
                .any(|e| e.code == ErrorCode::BodyTooLarge) =>
        {
            413
        }
        OutcomeKind::Rejected => 400,
        OutcomeKind::Failed => match outcome.atlas.as_ref().and_then(|a| a.http_status) {
            Some(400 | 404 | 409) => 422,
            _ => 502,
        },
        OutcomeKind::Unknown => 504,
        OutcomeKind::Duplicate => {
            let first_still_running = outcome
                .first
                .as_ref()
                .is_none_or(|f| f.outcome == OutcomeKind::Queued);
            if report.in_flight || first_still_running {
                409
            } else {
                200
            }
        }
    };
    if let Publication::Failed(_) = report.publication {
        outcome.notified = Some(false);
    }
    http_response(
        status,
        &serde_json::to_value(&outcome).unwrap_or(Value::Null),
    )
}

/// A webhook's deadline: [`WEBHOOK_BUDGET`] after its arrival, or the invocation's if earlier.
/// The arrival is API Gateway's `requestContext.timeEpoch` (the HTTP API's 30 s run from it,
/// the function's start-up included) when it lies within the budget before `now`; a time
/// outside it is a clock not to be trusted, and `now` stands in.
pub fn webhook_deadline(
    event: &Value,
    invocation_deadline: DateTime<Utc>,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    let arrived = event
        .pointer("/requestContext/timeEpoch")
        .and_then(Value::as_i64)
        .and_then(DateTime::from_timestamp_millis)
        .filter(|at| *at <= now && now - *at <= WEBHOOK_BUDGET)
        .unwrap_or(now);
    invocation_deadline.min(arrived + WEBHOOK_BUDGET)
}

fn http_response(status: u16, body: &Value) -> Value {
    json!({
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": body.to_string(),
        "isBase64Encoded": false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_is_due_25_s_after_its_arrival_or_at_the_invocation_s_deadline_if_earlier() {
        let now: DateTime<Utc> = "2026-11-28T17:06:15Z".parse().unwrap();
        let far = now + TimeDelta::seconds(120);
        let arrived = |at: DateTime<Utc>| json!({"requestContext": {"http": {"method": "POST"}, "timeEpoch": at.timestamp_millis()}});
        let no_time = json!({"requestContext": {"http": {"method": "POST"}}});
        assert_eq!(
            webhook_deadline(&no_time, far, now),
            now + TimeDelta::seconds(25)
        );
        assert_eq!(
            webhook_deadline(&no_time, now + TimeDelta::seconds(8), now),
            now + TimeDelta::seconds(8),
            "the invocation's deadline, when earlier"
        );
        // Start-up took 12 s of the budget: 13 s are left.
        assert_eq!(
            webhook_deadline(&arrived(now - TimeDelta::seconds(12)), far, now),
            now + TimeDelta::seconds(13)
        );
        // An arrival in the future or older than the budget is a clock not to be trusted.
        for untrusted in [now + TimeDelta::seconds(5), now - TimeDelta::seconds(26)] {
            assert_eq!(
                webhook_deadline(&arrived(untrusted), far, now),
                now + TimeDelta::seconds(25)
            );
        }
    }
}
