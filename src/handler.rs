//! The one handler: tells the triggers apart by the event's shape (CONTRACT section 2), turns
//! each into a command for the runner, and each outcome into the trigger's answer.

use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::atlas::{AtlasClient, AtlasClientConfig};
use crate::aws::idempotency::DynamoIdempotencyStore;
use crate::aws::queue::SqsWorkQueue;
use crate::aws::secrets::SecretsManagerSecrets;
use crate::aws::sns::SnsNotifier;
use crate::command::{COMMAND_FIELDS, RestoreCommand, json as strict_json};
use crate::config::Config;
use crate::deadline;
use crate::follow::FollowUpMessage;
use crate::outcome::{ErrorCode, Outcome, OutcomeKind, Problem, Trigger};
use crate::policy::{People, check_webhook_approval};
use crate::ports::{Adapters, DependencyError, Ports, Secrets, SystemClock};
use crate::runner::{
    CheckReport, Delivered, Publication, Report, RunRequest, Runner, RunnerSettings,
};
use crate::triggers::hand_off::HandOffMessage;
use crate::triggers::signature::{SignatureHeaders, verify};

/// Webhook bodies larger than this are refused (413).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// API Gateway's HTTP API gives up on a request after 30 s: a webhook answers within this of its
/// arrival, or by the invocation's deadline if that is earlier (CONTRACT section 2, "Webhook
/// budget").
pub const WEBHOOK_BUDGET: TimeDelta = TimeDelta::seconds(25);

/// Kept back from an event's deadline to answer: every Atlas or AWS call ends this long before
/// it (CONTRACT section 4, "Deadlines").
pub const ANSWER_MARGIN: Duration = Duration::from_secs(1);

/// The 503 to a webhook that could not be verified says nothing about the system.
const UNVERIFIED_UNAVAILABLE: &str = "a dependency is unavailable";

const ACCEPTED_SHAPES: &str = "accepted events: an API Gateway HTTP API (payload 2.0) or Function URL request; an EventBridge Scheduler input {\"schedule\": {\"executionId\", \"scheduledTime\"}, \"command\"}; a scheduled rule event (\"detail-type\": \"Scheduled Event\"); an EventBridge \"Restore Requested\" event; an SQS batch from the work queue; or a bare restore command";

/// The invocation, as far as the handler needs it.
#[derive(Clone, Debug)]
pub struct Invocation {
    pub request_id: String,
    pub deadline: DateTime<Utc>,
}

impl Invocation {
    /// The invocation's deadline from `Lambda-Runtime-Deadline-Ms`. Lambda sends epoch
    /// milliseconds; `cargo lambda watch` sends the time budget instead (600000, ten minutes),
    /// which read as epoch milliseconds is 1970. A value too small to be a date after 2001 is
    /// therefore read as a budget from `now`.
    pub fn deadline_from_header(deadline_ms: u64, now: DateTime<Utc>) -> DateTime<Utc> {
        const EARLIEST_EPOCH_DEADLINE_MS: u64 = 1_000_000_000_000;
        let as_epoch = i64::try_from(deadline_ms)
            .ok()
            .and_then(DateTime::<Utc>::from_timestamp_millis);
        match as_epoch {
            Some(deadline) if deadline_ms >= EARLIEST_EPOCH_DEADLINE_MS => deadline,
            _ => {
                now + chrono::Duration::milliseconds(
                    i64::try_from(deadline_ms.min(EARLIEST_EPOCH_DEADLINE_MS)).unwrap_or(0),
                )
            }
        }
    }
}

/// Why a work-queue message is handed back to SQS to be delivered again.
#[derive(Debug, thiserror::Error)]
enum Retry {
    #[error("{0}")]
    Dependency(#[from] DependencyError),
    #[error(
        "another delivery is running this command now; it is tried again after the visibility timeout"
    )]
    Busy,
}

/// A dependency failed: the invocation fails so Lambda retries it (and, after the retries,
/// the event reaches the dead-letter destination).
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("{0}; the event will be retried")]
    Dependency(#[from] DependencyError),
    /// Another attempt holds the request (it is working on it, or publishing its outcome) and
    /// may have died: answering success would end the event with nothing recorded, so it is
    /// retried until the request has its outcome.
    #[error(
        "request {request_id:?} is being worked on by another attempt, which may have died; the event will be retried (look it up with GET /restore/{request_id} before anything else)"
    )]
    InFlight { request_id: String },
}

/// Everything the handler needs, built once per Lambda instance.
pub struct App<P: Ports> {
    pub runner: Runner<P>,
    pub config: Config,
}

/// The adapters as deployed.
pub type Deployed = Adapters<
    AtlasClient,
    SecretsManagerSecrets,
    SnsNotifier,
    DynamoIdempotencyStore,
    SystemClock,
    SqsWorkQueue,
>;

/// The handler as deployed: the real adapters.
pub type DeployedApp = App<Deployed>;

impl DeployedApp {
    /// Builds every client once, from the configuration and the AWS SDK's configuration: the
    /// function's start-up, and the tests that run the handler in their own process.
    pub fn from_config(
        config: Config,
        sdk: &aws_config::SdkConfig,
    ) -> Result<DeployedApp, reqwest::Error> {
        let atlas = AtlasClient::without_credentials(AtlasClientConfig::new(
            config.atlas_base_url.clone(),
        ))?;
        let secrets = SecretsManagerSecrets::new(
            sdk,
            config.atlas_secret_id.clone(),
            config.webhook_secret_id.clone(),
            config.secret_cache_ttl,
        );
        let notifier = SnsNotifier::new(sdk, config.notify_topic_arn.clone(), config.notify_format);
        let store = DynamoIdempotencyStore::new(sdk, config.idempotency_table.clone());
        let queue = config
            .work_queue_url
            .clone()
            .map(|url| SqsWorkQueue::new(sdk, url));
        let runner = Runner::new(
            atlas,
            secrets,
            notifier,
            store,
            SystemClock,
            queue,
            RunnerSettings::from_config(&config),
        );
        Ok(App { runner, config })
    }
}

impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(error: HandlerError) -> lambda_runtime::Diagnostic {
        let error_type = match &error {
            HandlerError::Dependency(_) => "DependencyFailure",
            HandlerError::InFlight { .. } => "RequestInFlight",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.into(),
            error_message: error.to_string(),
        }
    }
}

/// The shapes of event the function accepts.
enum Shape<'a> {
    Http,
    Sqs(&'a [Value]),
    Scheduler {
        execution_id: &'a str,
        command: &'a Value,
    },
    ScheduledRule {
        id: &'a str,
        detail: &'a Value,
    },
    RestoreRequested {
        id: Option<&'a str>,
        detail: &'a Value,
    },
    Direct,
    Unknown,
}

fn shape(event: &Value) -> Shape<'_> {
    let text = |pointer: &str| event.pointer(pointer).and_then(Value::as_str);
    if event
        .pointer("/requestContext/http")
        .is_some_and(Value::is_object)
    {
        return Shape::Http;
    }
    if let Some(records) = event.get("Records").and_then(Value::as_array)
        && !records.is_empty()
        && records
            .iter()
            .all(|r| r.get("eventSource").and_then(Value::as_str) == Some("aws:sqs"))
    {
        return Shape::Sqs(records);
    }
    if let (Some(execution_id), Some(command)) =
        (text("/schedule/executionId"), event.get("command"))
    {
        return Shape::Scheduler {
            execution_id,
            command,
        };
    }
    match (text("/detail-type"), event.get("detail")) {
        (Some("Scheduled Event"), Some(detail)) if text("/source") == Some("aws.events") => {
            return match text("/id") {
                Some(id) => Shape::ScheduledRule { id, detail },
                None => Shape::Unknown,
            };
        }
        (Some("Restore Requested"), Some(detail)) => {
            return Shape::RestoreRequested {
                id: text("/id"),
                detail,
            };
        }
        (Some(_), _) => return Shape::Unknown,
        _ => {}
    }
    match event.as_object() {
        Some(object)
            if COMMAND_FIELDS
                .iter()
                .any(|field| object.contains_key(*field)) =>
        {
            Shape::Direct
        }
        _ => Shape::Unknown,
    }
}

/// Where a non-HTTP trigger's key comes from.
enum KeyFrom<'a> {
    /// A schedule: the execution id or the rule event's id; a key in the command is an error.
    Schedule(&'a str),
    /// An event: `idempotencyKey`, else the event's id.
    Event(Option<&'a str>),
    /// A direct invocation: `idempotencyKey`, else `sha256:` + the fingerprint.
    Direct,
}

impl<P: Ports> App<P> {
    /// Answers one event. `Err` only for a dependency failure on a non-HTTP trigger.
    pub async fn handle(
        &self,
        event: &Value,
        invocation: &Invocation,
    ) -> Result<Value, HandlerError> {
        let calls_end = calls_end(invocation.deadline, self.runner.now());
        // Boxed: the work is a large future, and each move of it in a debug build takes its
        // size of stack again (fifty of them polled on one task overflowed the test thread).
        let work = Box::pin(self.handle_shape(event, invocation));
        deadline::scope(calls_end, work).await
    }

    /// [`App::handle`]'s work, inside the deadline's scope.
    async fn handle_shape(
        &self,
        event: &Value,
        invocation: &Invocation,
    ) -> Result<Value, HandlerError> {
        match shape(event) {
            Shape::Http => Ok(self.webhook(event, invocation).await),
            Shape::Sqs(records) => Ok(self.queue_batch(records, invocation).await),
            Shape::Scheduler {
                execution_id,
                command,
            } => {
                self.command(
                    Trigger::Schedule,
                    command,
                    KeyFrom::Schedule(execution_id),
                    invocation,
                )
                .await
            }
            Shape::ScheduledRule { id, detail } => {
                self.command(Trigger::Schedule, detail, KeyFrom::Schedule(id), invocation)
                    .await
            }
            Shape::RestoreRequested { id, detail } => {
                self.command(Trigger::Event, detail, KeyFrom::Event(id), invocation)
                    .await
            }
            Shape::Direct => {
                self.command(Trigger::Direct, event, KeyFrom::Direct, invocation)
                    .await
            }
            Shape::Unknown => {
                let problem = Problem::new(
                    "",
                    ErrorCode::UnknownEvent,
                    format!("the event has no known shape; {ACCEPTED_SHAPES}"),
                );
                let outcome = self.rejected(Trigger::Direct, event, None, vec![problem]);
                let report = self.runner.publish_only(outcome).await;
                self.answer_non_http(report)
            }
        }
    }

    /// A schedule, an event or a direct invocation.
    async fn command(
        &self,
        trigger: Trigger,
        value: &Value,
        key_from: KeyFrom<'_>,
        invocation: &Invocation,
    ) -> Result<Value, HandlerError> {
        let now = self.runner.now();
        let mut problems = Vec::new();
        if let KeyFrom::Schedule(_) = key_from
            && value.get("idempotencyKey").is_some_and(|k| !k.is_null())
        {
            problems.push(Problem::new(
                "/idempotencyKey",
                ErrorCode::Conflict,
                "a scheduled command must not carry an idempotencyKey: the schedule's execution id is the key, and a fixed key would make every later drill a duplicate",
            ));
        }
        let parsed = RestoreCommand::from_value(value, now);
        let command = match parsed {
            Ok(command) if problems.is_empty() => command,
            Ok(_) => return self.reject_non_http(trigger, value, None, problems).await,
            Err(mut found) => {
                problems.append(&mut found);
                return self.reject_non_http(trigger, value, None, problems).await;
            }
        };
        let request_id = match key_from {
            KeyFrom::Schedule(id) => id.to_owned(),
            KeyFrom::Event(id) => match (&command.idempotency_key, id) {
                (Some(key), _) => key.to_string(),
                (None, Some(id)) => id.to_owned(),
                (None, None) => format!("sha256:{}", command.fingerprint()),
            },
            KeyFrom::Direct => match &command.idempotency_key {
                Some(key) => key.to_string(),
                None => format!("sha256:{}", command.fingerprint()),
            },
        };
        let key_field = if command.idempotency_key.is_some() {
            "/idempotencyKey"
        } else {
            ""
        };
        if let Some(problem) = self
            .runner
            .protected_target_problem(
                &command,
                false,
                &self.config.protected_clusters,
                invocation.deadline,
            )
            .await?
        {
            return self
                .reject_non_http(trigger, value, Some(request_id), vec![problem])
                .await;
        }
        let request = RunRequest {
            command,
            request_id,
            key_field,
            trigger,
            deadline: invocation.deadline,
            from_queue: false,
        };
        let report = self.runner.run(&request).await?;
        self.answer_non_http(report)
    }

    async fn reject_non_http(
        &self,
        trigger: Trigger,
        value: &Value,
        request_id: Option<String>,
        problems: Vec<Problem>,
    ) -> Result<Value, HandlerError> {
        let request_id = request_id.or_else(|| {
            value
                .get("idempotencyKey")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
        let outcome = self.rejected(trigger, value, request_id, problems);
        let report = self.runner.publish_only(outcome).await;
        self.answer_non_http(report)
    }

    fn answer_non_http(&self, report: Report) -> Result<Value, HandlerError> {
        log_outcome(&report);
        if let Publication::Failed(error) = report.publication {
            // The outcome is stored (or, for a rejection, costs nothing to repeat): the retry
            // publishes it.
            return Err(HandlerError::Dependency(error));
        }
        if report.in_flight {
            return Err(HandlerError::InFlight {
                request_id: report.outcome.request_id.unwrap_or_default(),
            });
        }
        Ok(serde_json::to_value(&report.outcome).unwrap_or(Value::Null))
    }

    /// API Gateway HTTP API (payload 2.0) or Function URL request.
    ///
    /// Its deadline is its budget's ([`webhook_deadline`]): the runner's Atlas deadlines come
    /// from it, and every call ends by it less [`ANSWER_MARGIN`].
    async fn webhook(&self, event: &Value, invocation: &Invocation) -> Value {
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

    async fn webhook_inner(
        &self,
        event: &Value,
        invocation: &Invocation,
    ) -> Result<Value, DependencyError> {
        let now = self.runner.now();
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
        let signing = match self.runner.secrets().webhook_signing_secrets().await {
            Ok(signing) => signing,
            Err(error) => {
                // Not verified: the caller may be anyone, so it learns nothing about the system
                // (no ARN, no account, no SDK text). The log has the details.
                tracing::error!(%error, "webhook: the signing secret could not be read, so the request cannot be verified; answering 503");
                return Ok(http_response(
                    503,
                    &json!({"error": UNVERIFIED_UNAVAILABLE, "retryable": true}),
                ));
            }
        };
        // A lookup signs `GET /restore/{requestId}` in place of a body; the id as sent in the
        // path (percent-encoded) or decoded both verify.
        let verified = match &lookup {
            Some(path) => [path.signed_decoded(), path.signed_as_sent()]
                .iter()
                .map(|signed| verify(&headers, signed.as_bytes(), &signing, now, true))
                .reduce(|first, second| first.or(second))
                .unwrap_or(Ok(())),
            None => verify(
                &headers,
                decoded.as_deref().unwrap_or(raw.as_bytes()),
                &signing,
                now,
                true,
            ),
        };
        if let Err(reason) = verified {
            tracing::warn!(%reason, "webhook: unverified request refused with 401");
            return Ok(http_response(401, &json!({"message": "Unauthorized"})));
        }
        if let Some(path) = lookup {
            return self.status_lookup(&path.request_id).await;
        }
        if !method.eq_ignore_ascii_case("POST") {
            return Ok(http_response(
                405,
                &json!({"message": "use POST with a restore command, or GET /restore/{requestId} for a request's status"}),
            ));
        }
        let Some(body) = decoded else {
            let problem = Problem::new(
                "",
                ErrorCode::MalformedJson,
                "the body is marked base64-encoded but is not valid base64",
            );
            return Ok(self
                .webhook_rejected(&Value::Null, None, vec![problem], 400)
                .await);
        };
        if body.len() > MAX_BODY_BYTES {
            let problem = Problem::new(
                "",
                ErrorCode::BodyTooLarge,
                format!(
                    "the body is {} bytes; at most {MAX_BODY_BYTES} are accepted",
                    body.len()
                ),
            );
            return Ok(self
                .webhook_rejected(&Value::Null, None, vec![problem], 413)
                .await);
        }
        let value = match strict_json::parse_strict(&body) {
            Ok(value) => value,
            Err(error) => {
                let problem = Problem::new(
                    "",
                    ErrorCode::MalformedJson,
                    format!("the body is not valid JSON: {error}"),
                );
                return Ok(self
                    .webhook_rejected(&Value::Null, None, vec![problem], 400)
                    .await);
            }
        };
        let (command, problems) = self.webhook_command(&value, now);
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
            return Ok(self
                .webhook_rejected(&value, request_id, problems, status)
                .await);
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
    fn webhook_command(
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

    /// The work queue's deliveries: verified again (signature, not its age), checked against
    /// validation and policy again, and run only by claiming the record their webhook queued.
    /// Only dependency failures and a delivery that finds another running are retried.
    async fn queue_batch(&self, records: &[Value], invocation: &Invocation) -> Value {
        let mut failures = Vec::new();
        for record in records {
            let message_id = record
                .get("messageId")
                .and_then(Value::as_str)
                .unwrap_or("");
            if let Err(retry) = self.queue_record(record, invocation).await {
                tracing::error!(message_id, %retry, "work queue: the message will be retried");
                failures.push(json!({"itemIdentifier": message_id}));
            }
        }
        json!({"batchItemFailures": failures})
    }

    async fn queue_record(&self, record: &Value, invocation: &Invocation) -> Result<(), Retry> {
        let message_id = record
            .get("messageId")
            .and_then(Value::as_str)
            .unwrap_or("");
        let message: Value = record
            .get("body")
            .and_then(Value::as_str)
            .and_then(|b| serde_json::from_str(b).ok())
            .unwrap_or(Value::Null);
        match FollowUpMessage::from_value(&message) {
            Some(Ok(follow_up)) => return Ok(self.follow_up(&follow_up, invocation).await?),
            Some(Err(problem)) => {
                tracing::warn!(message_id, %problem, "work queue: a malformed follow-up message was dropped");
                return Ok(());
            }
            None => {}
        }
        let Some(hand_off) = HandOffMessage::from_value(&message) else {
            tracing::warn!(
                message_id,
                "work queue: a message that is neither a hand-off nor a follow-up was dropped"
            );
            return Ok(());
        };
        let signing = self.runner.secrets().webhook_signing_secrets().await?;
        let now = self.runner.now();
        if let Err(reason) = verify(&hand_off.headers, &hand_off.body, &signing, now, false) {
            tracing::warn!(message_id, %reason, "work queue: a message without a valid webhook signature was dropped");
            return Ok(());
        }
        let value = strict_json::parse_strict(&hand_off.body).unwrap_or(Value::Null);
        let (command, problems) = self.webhook_command(&value, now);
        let delivered = match command {
            Some(command) => {
                let request = webhook_request(command, invocation, true);
                self.runner.deliver(&request, problems).await?
            }
            // It no longer validates: only the record this very body queued is rejected.
            None => {
                let key = value.get("idempotencyKey").and_then(Value::as_str);
                let outcome =
                    self.rejected(Trigger::Webhook, &value, key.map(str::to_owned), problems);
                match key {
                    Some(key) => {
                        self.runner
                            .reject_delivery(key, &hand_off.digest(), outcome, invocation.deadline)
                            .await?
                    }
                    None => Delivered::Dropped("the command names no idempotency key"),
                }
            }
        };
        match delivered {
            Delivered::Ran(report) => {
                log_outcome(&report);
                match report.publication {
                    Publication::Failed(error) => Err(Retry::Dependency(error)),
                    // Another attempt holds the request and may have died: come back later.
                    _ if report.in_flight => Err(Retry::Busy),
                    _ => Ok(()),
                }
            }
            Delivered::Dropped(why) => {
                tracing::warn!(
                    message_id,
                    why,
                    "work queue: a hand-off message was dropped; nothing was sent to Atlas"
                );
                Ok(())
            }
            Delivered::Busy => Err(Retry::Busy),
        }
    }

    /// One follow-up check from the work queue. Only dependency failures are retried.
    async fn follow_up(
        &self,
        message: &FollowUpMessage,
        invocation: &Invocation,
    ) -> Result<(), DependencyError> {
        let request_id = message.request_id.as_str();
        match self.runner.check(message, invocation.deadline).await? {
            CheckReport::Skipped(why) => {
                tracing::info!(
                    request_id,
                    check = message.check,
                    why,
                    "follow-up check skipped"
                );
                Ok(())
            }
            CheckReport::Rescheduled { next, jobs } => {
                let statuses: Vec<String> = jobs
                    .iter()
                    .map(|j| format!("{} {}", j.id, j.status_name.as_deref().unwrap_or("?")))
                    .collect();
                tracing::info!(request_id, check = message.check, next, jobs = ?statuses, "jobs still running; next check queued");
                Ok(())
            }
            CheckReport::Final(report) => {
                log_outcome(&report);
                Ok(())
            }
        }
    }

    /// A `REJECTED` outcome for a command refused before it could run.
    ///
    /// It stays under SNS's 256 KB however large the event (CONTRACT section 3, "Size"): an
    /// outcome that cannot be published fails a non-HTTP invocation, which Lambda retries into
    /// the failure destination. Each raw value echoed from the event (the request id, the ids,
    /// the backup type, the people, the reason, a field name in a problem's pointer) is cut to
    /// 1000 characters, a problem's message to 2000 (the values it quotes are cut shorter where
    /// it is written, `src/command/`), and the problems are listed while they fit in 160 KiB,
    /// policy problems always: the last one listed says how many more were left out.
    fn rejected(
        &self,
        trigger: Trigger,
        value: &Value,
        request_id: Option<String>,
        errors: Vec<Problem>,
    ) -> Outcome {
        /// Characters kept of each raw value echoed from the event.
        const ECHO_MAX_CHARS: usize = 1000;
        /// Characters kept of a problem's message (the function's own words).
        const MESSAGE_MAX_CHARS: usize = 2000;
        /// Serialised bytes of the problems listed before the rest are counted instead. With
        /// seven echoed fields of at most 6 KB each (1000 characters of at most 6 bytes of JSON)
        /// and one problem past the budget (at most 18 KB), the outcome stays near 230 KB.
        const ERRORS_MAX_BYTES: usize = 160 * 1024;

        fn cut(text: &str, max: usize) -> String {
            match text.char_indices().nth(max) {
                None => text.to_owned(),
                Some(_) => {
                    let mut short: String = text.chars().take(max - 1).collect();
                    short.push('…');
                    short
                }
            }
        }

        let total = errors.len();
        let mut listed: Vec<Problem> = Vec::new();
        let mut bytes = 0;
        let mut left_out = 0;
        for mut problem in errors {
            problem.field = cut(&problem.field, ECHO_MAX_CHARS);
            problem.message = cut(&problem.message, MESSAGE_MAX_CHARS);
            let size = serde_json::to_string(&problem).map_or(ERRORS_MAX_BYTES, |t| t.len());
            if bytes < ERRORS_MAX_BYTES || problem.code.is_policy() {
                bytes += size;
                listed.push(problem);
            } else {
                left_out += 1;
            }
        }
        if left_out > 0
            && let Some(last) = listed.last_mut()
        {
            last.message.push_str(&format!(
                " (and {left_out} more of the {total} problems, not listed: an outcome must fit in one SNS message)"
            ));
        }

        let text = |name: &str| {
            value
                .get(name)
                .and_then(Value::as_str)
                .map(|v| cut(v, ECHO_MAX_CHARS))
        };
        let now = self.runner.now();
        Outcome {
            outcome: OutcomeKind::Rejected,
            request_id: request_id.map(|id| cut(&id, ECHO_MAX_CHARS)),
            trigger,
            group_id: text("groupId"),
            cluster_name: text("clusterName"),
            backup_type: text("backupType")
                .or_else(|| value.get("groupId").map(|_| "legacy".to_owned())),
            restore: None,
            atlas: None,
            errors: listed,
            requested_by: text("requestedBy"),
            approved_by: text("approvedBy"),
            reason: text("reason"),
            started_at: now,
            finished_at: now,
            first: None,
            notified: None,
            duration_seconds: None,
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
fn webhook_request(
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

/// An Embedded Metric Format record: metric `Outcomes` (count 1) with dimension `Outcome`.
pub fn metric_line(kind: OutcomeKind, at: DateTime<Utc>) -> String {
    json!({
        "_aws": {
            "Timestamp": at.timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": METRIC_NAMESPACE,
                "Dimensions": [["Outcome"]],
                "Metrics": [{"Name": "Outcomes", "Unit": "Count"}]
            }]
        },
        "Outcome": kind.as_str(),
        "Outcomes": 1
    })
    .to_string()
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

/// The instant by which every dependency call of an event due by `deadline` ends: the deadline
/// less [`ANSWER_MARGIN`], on the clock the calls are timed with.
fn calls_end(deadline: DateTime<Utc>, now: DateTime<Utc>) -> Instant {
    let left = (deadline - now).to_std().unwrap_or(Duration::ZERO);
    Instant::now() + left.saturating_sub(ANSWER_MARGIN)
}

fn http_response(status: u16, body: &Value) -> Value {
    json!({
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": body.to_string(),
        "isBase64Encoded": false,
    })
}

/// How many of an outcome's problems its log line names (all are counted).
const LOGGED_PROBLEMS: usize = 20;

/// CloudWatch namespace of the outcome metric (alarms on FAILED and UNKNOWN use it).
pub const METRIC_NAMESPACE: &str = "AtlasRestoreRunner";

/// One log line per outcome: the request, the trigger, the outcome and what it touched; and one
/// CloudWatch Embedded Metric Format line counting the outcome by kind.
///
/// The outcome line is one JSON object written whole, not a `tracing` event: tracing's JSON
/// formatter writes every field that is not a number or a boolean as a string, so a list would
/// reach CloudWatch Logs Insights as `"[\"...\"]"`. Here `jobs` and `errors` are JSON lists and
/// `trigger` is in its contract form (`direct`), so a query can filter on them and read
/// `jobs.0`, `errors.0.code` (README, "Finding outcomes in the logs"). It carries `level`, so
/// Lambda's log-level filter treats it as INFO, and it is written only when INFO is enabled, as
/// the tracing event was.
fn log_outcome(report: &Report) {
    write_log_line(&metric_line(report.outcome.outcome, Utc::now()));
    if tracing::enabled!(tracing::Level::INFO) {
        write_log_line(&outcome_line(report).to_string());
    }
}

/// The outcome line's fields; absent ids are `null`.
fn outcome_line(report: &Report) -> Value {
    let outcome = &report.outcome;
    let jobs: Vec<&str> = outcome
        .atlas
        .iter()
        .flat_map(|a| a.jobs.iter().map(|j| j.id.as_str()))
        .collect();
    // Bounded, so a rejection listing thousands of problems stays one CloudWatch event (256 KB).
    let errors: Vec<Value> = outcome
        .errors
        .iter()
        .take(LOGGED_PROBLEMS)
        .map(|e| json!({"field": e.field, "code": e.code}))
        .collect();
    json!({
        "level": "INFO",
        "message": "outcome",
        "request_id": outcome.request_id,
        "trigger": outcome.trigger,
        "outcome": outcome.outcome.as_str(),
        "group_id": outcome.group_id,
        "cluster_name": outcome.cluster_name,
        "jobs": jobs,
        "errors": errors,
        "error_count": outcome.errors.len(),
        "published": matches!(report.publication, Publication::Published),
    })
}

/// One line on stdout, where Lambda collects the function's logs. A line that cannot be
/// written is lost rather than a panic in the middle of an outcome.
fn write_log_line(line: &str) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_is_epoch_milliseconds_or_a_budget_from_cargo_lambda_watch() {
        let now: DateTime<Utc> = "2026-11-28T17:06:15Z".parse().unwrap();
        let epoch = now.timestamp_millis() as u64 + 30_000;
        assert_eq!(
            Invocation::deadline_from_header(epoch, now),
            now + chrono::Duration::seconds(30)
        );
        assert_eq!(
            Invocation::deadline_from_header(600_000, now),
            now + chrono::Duration::minutes(10)
        );
        assert_eq!(Invocation::deadline_from_header(0, now), now);
    }

    #[test]
    fn the_metric_line_is_embedded_metric_format() {
        let at = DateTime::from_timestamp_millis(1_795_885_575_120).unwrap();
        let line: Value = serde_json::from_str(&metric_line(OutcomeKind::Unknown, at)).unwrap();
        assert_eq!(line["_aws"]["Timestamp"], 1_795_885_575_120_i64);
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            METRIC_NAMESPACE
        );
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Outcome"]])
        );
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"],
            "Outcomes"
        );
        assert_eq!(
            (line["Outcome"].as_str(), line["Outcomes"].as_i64()),
            (Some("UNKNOWN"), Some(1))
        );
    }

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

    #[tokio::test(start_paused = true)]
    async fn calls_end_a_margin_before_the_deadline_and_never_before_now() {
        let now: DateTime<Utc> = "2026-11-28T17:06:15Z".parse().unwrap();
        let start = Instant::now();
        assert_eq!(
            calls_end(now + TimeDelta::seconds(25), now) - start,
            Duration::from_secs(24)
        );
        assert_eq!(calls_end(now - TimeDelta::seconds(3), now), start);
    }
}
