//! The reliability properties (issue 8), written once for the proptest suite
//! (`tests/properties.rs`, part of `make test`) and the fuzz targets (`fuzz/`, `make fuzz`),
//! which include this file by path. Each `check_*` function panics when a property breaks.
//!
//! Events run through the real `App::handle` (routing, webhook verification, validation,
//! policy, the runner) with in-process fakes of the ports: no network, a pinned clock, and
//! every Atlas creation, stored and published outcome counted.
#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use atlas_restore_runner::atlas_api::model::{
    BsonTimestamp, CloudSnapshot, Cluster, RestoreJob, Snapshot,
};
use atlas_restore_runner::atlas_api::{AtlasCredentials, AtlasError, CreateAnswer};
use atlas_restore_runner::command::{ObjectId, RestoreCommand, SourceCluster, canonical_json};
use atlas_restore_runner::config::Config;
use atlas_restore_runner::handler::{App, Invocation};
use atlas_restore_runner::ledger::memory::MemoryStore;
use atlas_restore_runner::outcome::{Outcome, OutcomeKind};
use atlas_restore_runner::ports::{
    Atlas, Clock, DependencyError, FollowUpState, IdempotencyRecord, Notifier, RecordState,
    Secrets, SigningSecrets, WorkQueue,
};
use atlas_restore_runner::redacted::Secret;
use atlas_restore_runner::runner::{FollowSettings, Runner, RunnerSettings};
use atlas_restore_runner::triggers::signature::{MAX_SKEW_SECONDS, SignatureHeaders, sign, verify};
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

// By path, as the fuzz targets include this file: neither may use more of tests/support.
#[path = "clock.rs"]
mod clock;
#[path = "events.rs"]
mod events;

/// The pinned clock: the moment the samples in events/ were written for.
pub use clock::{NOW_SECONDS, now};
use events::{Signer, hand_off, http_request};
pub const SIGNING_SECRET: &str = "fuzz-signing-secret-SECRET-1f0c";
pub const PREVIOUS_SIGNING_SECRET: &str = "fuzz-previous-signing-secret-SECRET-77e2";
pub const PRIVATE_KEY: &str = "fuzz-private-key-SECRET-5a3b";
pub const SNAPSHOT: &str = "5f1c6b1e2a9b4f3d8c7e6a5b";
pub const PROTECTED_ID: &str = "6a0000000000000000000009";

/// The error codes CONTRACT section 3 lists, spelled as there: the oracle for `errors[].code`.
pub const CONTRACT_CODES: &[&str] = &[
    "REQUIRED",
    "UNKNOWN_FIELD",
    "READ_ONLY_FIELD",
    "INVALID_TYPE",
    "INVALID_FORMAT",
    "OUT_OF_RANGE",
    "OUT_OF_WINDOW",
    "CONFLICT",
    "UNSUPPORTED_METHOD",
    "NOT_ALLOWED_WITH_METHOD",
    "MALFORMED_JSON",
    "BODY_TOO_LARGE",
    "UNKNOWN_EVENT",
    "APPROVER_NOT_ALLOWED",
    "SELF_APPROVAL",
    "PROTECTED_TARGET",
    "UNRESOLVED_TARGET",
    "KEY_REUSED",
    "SNAPSHOT_NOT_FOUND",
];

const POLICY_CODES: &[&str] = &["APPROVER_NOT_ALLOWED", "SELF_APPROVAL", "PROTECTED_TARGET"];

// ---------------------------------------------------------------------------------------------
// Fakes of the ports
// ---------------------------------------------------------------------------------------------

/// Atlas: every creation succeeds with one job and is counted; one completed snapshot of each
/// kind; the protected cluster's id names it.
#[derive(Default)]
pub struct FakeAtlas {
    pub creates: Arc<AtomicUsize>,
}

fn created() -> CreateAnswer {
    CreateAnswer::Created {
        http_status: 200,
        jobs: vec![RestoreJob {
            id: "6b0000000000000000000001".into(),
            status_name: Some("IN_PROGRESS".into()),
            ..RestoreJob::default()
        }],
    }
}

impl Atlas for FakeAtlas {
    async fn create_legacy_restore_job(
        &self,
        _: &SourceCluster,
        _: &Value,
        _: tokio::time::Instant,
    ) -> CreateAnswer {
        self.creates.fetch_add(1, Ordering::SeqCst);
        created()
    }

    async fn list_restore_jobs(
        &self,
        _: &SourceCluster,
        _: Option<DateTime<Utc>>,
        _: tokio::time::Instant,
    ) -> Result<Vec<RestoreJob>, AtlasError> {
        Ok(Vec::new())
    }

    async fn list_completed_snapshots(
        &self,
        _: &SourceCluster,
        _: tokio::time::Instant,
    ) -> Result<Vec<Snapshot>, AtlasError> {
        Ok(vec![Snapshot {
            id: SNAPSHOT.into(),
            complete: Some(true),
            created: Some(BsonTimestamp {
                date: Some("2026-11-28T11:00:00Z".into()),
                increment: Some(1),
            }),
            ..Snapshot::default()
        }])
    }

    async fn list_clusters(
        &self,
        _: &ObjectId,
        _: tokio::time::Instant,
    ) -> Result<Vec<Cluster>, AtlasError> {
        Ok(vec![Cluster {
            id: PROTECTED_ID.into(),
            name: "orders-live".into(),
            ..Cluster::default()
        }])
    }

    async fn create_cloud_restore_job(
        &self,
        _: &SourceCluster,
        _: &Value,
        _: tokio::time::Instant,
    ) -> CreateAnswer {
        self.creates.fetch_add(1, Ordering::SeqCst);
        created()
    }

    async fn list_cloud_restore_jobs(
        &self,
        _: &SourceCluster,
        _: tokio::time::Instant,
    ) -> Result<Vec<RestoreJob>, AtlasError> {
        Ok(Vec::new())
    }

    async fn list_cloud_snapshots(
        &self,
        _: &SourceCluster,
        _: tokio::time::Instant,
    ) -> Result<Vec<CloudSnapshot>, AtlasError> {
        Ok(vec![CloudSnapshot {
            id: SNAPSHOT.into(),
            created_at: Some("2026-11-28T11:00:00Z".into()),
            status: Some("completed".into()),
            ..CloudSnapshot::default()
        }])
    }

    async fn get_restore_job(
        &self,
        _: &SourceCluster,
        job_id: &str,
        _: tokio::time::Instant,
    ) -> Result<RestoreJob, AtlasError> {
        Ok(RestoreJob {
            id: job_id.to_owned(),
            status_name: Some("FINISHED".into()),
            ..RestoreJob::default()
        })
    }

    async fn get_cloud_restore_job(
        &self,
        _: &SourceCluster,
        job_id: &str,
        _: tokio::time::Instant,
    ) -> Result<RestoreJob, AtlasError> {
        Ok(RestoreJob {
            id: job_id.to_owned(),
            ..RestoreJob::default()
        })
    }

    async fn get_restore_point(
        &self,
        _: &SourceCluster,
        _: &atlas_restore_runner::drill::RestorePoint,
        _: tokio::time::Instant,
    ) -> Result<serde_json::Value, AtlasError> {
        Ok(serde_json::Value::Null)
    }

    async fn load_credentials(&self) -> Result<(), DependencyError> {
        Ok(())
    }
}

pub struct FakeSecrets;

impl Secrets for FakeSecrets {
    async fn atlas_credentials(&self, _: bool) -> Result<AtlasCredentials, DependencyError> {
        Ok(AtlasCredentials::ApiKey {
            public_key: "fuzz-public".into(),
            private_key: Secret::new(PRIVATE_KEY),
        })
    }

    async fn webhook_signing_secrets(&self) -> Result<SigningSecrets, DependencyError> {
        Ok(SigningSecrets {
            current: Secret::new(SIGNING_SECRET),
            previous: Some(Secret::new(PREVIOUS_SIGNING_SECRET)),
        })
    }
}

#[derive(Default)]
pub struct FakeNotifier {
    pub published: Arc<Mutex<Vec<Outcome>>>,
}

impl Notifier for FakeNotifier {
    async fn publish(&self, outcome: &Outcome) -> Result<(), DependencyError> {
        lock(&self.published).push(outcome.clone());
        Ok(())
    }
}

/// The one key the store knows, for status lookups: a `SUBMITTED` outcome.
pub const KNOWN_KEY: &str = "approval-7f3a";

/// The in-memory store with [`KNOWN_KEY`] in it, whose follow-up check 1 is due: every other
/// key is free, so each event is judged on its own.
pub fn store_knowing_one_request() -> MemoryStore {
    // From JSON, so that fields added to `Outcome` later need no change here.
    let outcome: Outcome = serde_json::from_value(json!({
        "outcome": "SUBMITTED", "requestId": KNOWN_KEY, "trigger": "webhook",
        "groupId": "5e2211c17a3e5a48f5497de3", "clusterName": "orders", "backupType": "legacy",
        "restore": null, "errors": [], "requestedBy": null, "approvedBy": null,
        "atlas": {"httpStatus": 200, "jobs": [{"id": "6b0000000000000000000001", "batchId": null, "statusName": "IN_PROGRESS", "targetClusterName": "orders-drill"}], "errorCode": null, "detail": null, "reason": null, "reconciled": false},
        "reason": null, "startedAt": "2026-11-28T17:06:15Z", "finishedAt": "2026-11-28T17:06:15Z"
    }))
    .unwrap_or_else(|e| panic!("an outcome: {e}"));
    let store = MemoryStore::new();
    store.insert(IdempotencyRecord {
        key: KNOWN_KEY.into(),
        fingerprint: "0".repeat(64),
        dry_run: false,
        state: RecordState::Completed {
            outcome: Box::new(outcome),
            published: true,
        },
        attempt: 1,
        first_started_at: now(),
        expires_at: now() + chrono::Duration::days(1),
        sending: None,
        publish_claim_until: None,
        hand_off_digest: None,
        history: vec![OutcomeKind::Queued, OutcomeKind::Submitted],
        follow_up: Some(FollowUpState {
            check: 1,
            lease_until: None,
        }),
        final_outcome: None,
        task_callback: None,
    });
    store
}

pub struct FixedClock;

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        now()
    }
}

#[derive(Default)]
pub struct FakeQueue {
    pub sent: Arc<Mutex<Vec<String>>>,
}

impl WorkQueue for FakeQueue {
    async fn send(&self, message: String, _: std::time::Duration) -> Result<(), DependencyError> {
        lock(&self.sent).push(message);
        Ok(())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

// ---------------------------------------------------------------------------------------------
// Running an event
// ---------------------------------------------------------------------------------------------

/// What one event did.
#[derive(Debug)]
pub struct Observed {
    /// The handler's answer (`Err` is its error's text).
    pub answer: Result<Value, String>,
    pub published: Vec<Outcome>,
    pub stored: Vec<Outcome>,
    pub creates: usize,
    pub queued: Vec<String>,
}

fn config() -> Config {
    let vars: HashMap<String, String> = [
        ("ATLAS_SECRET_ID", "atlas"),
        ("WEBHOOK_SECRET_ID", "webhook"),
        (
            "NOTIFY_TOPIC_ARN",
            "arn:aws:sns:us-east-1:123456789012:outcomes",
        ),
        ("IDEMPOTENCY_TABLE", "idempotency"),
        ("APPROVERS", "U0G9QF9C6,U0OTHERAPPROVER"),
        ("PROTECTED_CLUSTERS", "orders-live"),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_owned(), v.to_owned()))
    .collect();
    match Config::from_vars(&vars) {
        Ok(config) => config,
        Err(error) => panic!("the fuzz configuration is valid: {error}"),
    }
}

thread_local! {
    static RUNTIME: RefCell<Option<tokio::runtime::Runtime>> = const { RefCell::new(None) };
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    RUNTIME.with(|cell| {
        let mut slot = cell.borrow_mut();
        let runtime = slot.get_or_insert_with(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap_or_else(|e| panic!("a tokio runtime: {e}"))
        });
        runtime.block_on(future)
    })
}

/// Runs `event` through `App::handle` with fresh fakes; `with_queue` turns the webhook's queue
/// hand-off and the following of submitted jobs on.
pub fn handle(event: &Value, with_queue: bool) -> Observed {
    let atlas = FakeAtlas::default();
    let creates = atlas.creates.clone();
    let notifier = FakeNotifier::default();
    let published = notifier.published.clone();
    let store = store_knowing_one_request();
    let queue = FakeQueue::default();
    let sent = queue.sent.clone();
    let settings = RunnerSettings {
        follow: FollowSettings::default(),
        follow_all: with_queue,
        ..RunnerSettings::default()
    };
    let app = App {
        runner: Runner::new(
            atlas,
            FakeSecrets,
            notifier,
            store,
            FixedClock,
            with_queue.then_some(queue),
            settings,
        ),
        config: config(),
    };
    let invocation = Invocation {
        request_id: "fuzz".into(),
        deadline: now() + chrono::Duration::seconds(120),
    };
    let answer = block_on(app.handle(event, &invocation)).map_err(|e| e.to_string());
    Observed {
        answer,
        published: lock(&published).clone(),
        stored: app.runner.store().stored_outcomes(),
        creates: creates.load(Ordering::SeqCst),
        queued: lock(&sent).clone(),
    }
}

/// An API Gateway HTTP API (payload 2.0) request carrying `body`, signed now with the current
/// signing secret (or the previous one) under our header names or Slack's. With `GET`, a status
/// lookup of `/restore/<body>`, signed as `GET /restore/<body>`.
pub fn webhook_event(
    body: &[u8],
    base64: bool,
    method: &str,
    slack: bool,
    previous: bool,
) -> Value {
    let signer = Signer {
        secret: if previous {
            PREVIOUS_SIGNING_SECRET
        } else {
            SIGNING_SECRET
        },
        timestamp: NOW_SECONDS,
        slack,
    };
    if method == "GET" {
        let path = format!("/restore/{}", String::from_utf8_lossy(body));
        let signed = format!("GET {path}");
        return http_request(
            "GET",
            &path,
            Some(""),
            base64,
            signed.as_bytes(),
            Some(signer),
        );
    }
    let text = if base64 {
        base64::engine::general_purpose::STANDARD.encode(body)
    } else {
        String::from_utf8_lossy(body).into_owned()
    };
    http_request(method, "/restore", Some(&text), base64, body, Some(signer))
}

/// An SQS batch of one follow-up message (unsigned, as the runner queues them).
pub fn follow_up_event(request_id: &Value, check: &Value) -> Value {
    let message = json!({"followUp": {"requestId": request_id, "check": check}});
    json!({"Records": [{"messageId": "m-f", "body": message.to_string(), "eventSource": "aws:sqs"}]})
}

/// An SQS batch of one work-queue message carrying `body`, signed as the webhook hand-off does.
pub fn sqs_event(body: &str) -> Value {
    let message = hand_off(body, SIGNING_SECRET, NOW_SECONDS);
    json!({"Records": [{"messageId": "m-1", "body": message.to_string(), "eventSource": "aws:sqs"}]})
}

/// EventBridge Scheduler input around `command`.
pub fn schedule_event(command: Value) -> Value {
    json!({"schedule": {"executionId": "exec-1", "scheduledTime": "2026-11-28T17:06:15Z"}, "command": command})
}

/// An EventBridge `Restore Requested` event around `command`.
pub fn restore_requested_event(command: Value) -> Value {
    json!({"id": "ev-1", "source": "runbook", "detail-type": "Restore Requested", "detail": command})
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

/// RFC 6901: empty, or `/`-separated tokens in which `~` is only ever `~0` or `~1`.
pub fn is_json_pointer(pointer: &str) -> bool {
    if pointer.is_empty() {
        return true;
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return false;
    };
    let bytes = rest.as_bytes();
    bytes
        .iter()
        .enumerate()
        .all(|(i, b)| *b != b'~' || matches!(bytes.get(i + 1), Some(b'0') | Some(b'1')))
}

/// Where a problem may point: into a command the event carries (CONTRACT section 3: a field's
/// own problem at the field, a missing field where it belongs, a conflict at the object holding
/// the fields, the whole event at ``). So the pointer's parent must exist in one of them.
fn points_into(pointer: &str, commands: &[Value]) -> bool {
    let parent = match pointer.rfind('/') {
        Some(at) => &pointer[..at],
        None => return true,
    };
    commands
        .iter()
        .any(|command| command.pointer(parent).is_some())
}

/// The commands an event may carry, as values: the event itself, its `command` or `detail`,
/// a webhook body, an SQS message's body.
pub fn carried_commands(event: &Value) -> Vec<Value> {
    let mut commands = vec![event.clone()];
    for name in ["command", "detail"] {
        if let Some(inner) = event.get(name) {
            commands.push(inner.clone());
        }
    }
    if let Some(body) = event.get("body").and_then(Value::as_str) {
        let bytes = if event.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) {
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .unwrap_or_default()
        } else {
            body.as_bytes().to_vec()
        };
        if let Ok(value) = serde_json::from_slice::<Value>(&bytes) {
            commands.push(value);
        }
    }
    for record in event
        .get("Records")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let message: Value = record
            .get("body")
            .and_then(Value::as_str)
            .and_then(|b| serde_json::from_str(b).ok())
            .unwrap_or(Value::Null);
        if let Some(body) = message.get("body").and_then(Value::as_str)
            && let Ok(value) = serde_json::from_str::<Value>(body)
        {
            commands.push(value);
        }
    }
    commands
}

/// Every outcome, as JSON: `errors` is not empty exactly when it is `REJECTED`; each error has
/// a contract code, a JSON Pointer into one of `commands`, and a message.
pub fn check_outcome(outcome: &Value, commands: &[Value]) {
    let kind = outcome["outcome"].as_str().unwrap_or_default();
    let errors = outcome["errors"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        kind == "REJECTED",
        !errors.is_empty(),
        "errors are listed exactly for REJECTED: {outcome}"
    );
    for error in &errors {
        let code = error["code"].as_str().unwrap_or_default();
        let field = error["field"].as_str();
        assert!(CONTRACT_CODES.contains(&code), "a contract code: {error}");
        let Some(field) = field else {
            panic!("every error has a field: {error}");
        };
        assert!(is_json_pointer(field), "a JSON Pointer: {error}");
        assert!(
            points_into(field, commands),
            "the pointer's parent is in the command: {error} in {commands:?}"
        );
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "a message for a person: {error}"
        );
    }
}

fn as_json(outcome: &Outcome) -> Value {
    serde_json::to_value(outcome).unwrap_or_else(|e| panic!("an outcome serialises: {e}"))
}

/// The properties of one event's handling with fakes that never fail.
pub fn check_event(event: &Value, observed: &Observed) {
    let commands = carried_commands(event);
    let answer = match &observed.answer {
        Ok(answer) => answer,
        Err(error) => panic!("no dependency failed, so no error: {error}"),
    };
    // No secret reaches an answer, a publication or the store (unless the event itself
    // carries it, as a fuzzer may write it into any field).
    let everything = format!(
        "{answer} {:?} {:?} {:?}",
        observed.published, observed.stored, observed.queued
    );
    let input: String = commands.iter().map(Value::to_string).collect();
    for secret in [PRIVATE_KEY, SIGNING_SECRET, PREVIOUS_SIGNING_SECRET] {
        assert!(
            input.contains(secret) || !everything.contains(secret),
            "a secret leaked: {everything}"
        );
    }
    for outcome in observed.published.iter().chain(&observed.stored) {
        check_outcome(&as_json(outcome), &commands);
    }
    for outcome in &observed.published {
        assert!(
            outcome.outcome.is_published(),
            "only publishable outcomes are published: {outcome:?}"
        );
    }

    let records = event
        .get("Records")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if let Some(status) = answer.get("statusCode").and_then(Value::as_u64) {
        let body: Value = answer["body"]
            .as_str()
            .and_then(|b| serde_json::from_str(b).ok())
            .unwrap_or(Value::Null);
        let method = event
            .pointer("/requestContext/http/method")
            .and_then(Value::as_str)
            .unwrap_or_default();
        check_http(status, method, &body, &commands, observed);
    } else if answer.get("batchItemFailures").is_some() {
        assert_eq!(
            answer["batchItemFailures"],
            json!([]),
            "nothing failed, so nothing is retried"
        );
        assert!(observed.creates <= records, "at most one job per message");
    } else {
        check_outcome(answer, &commands);
        let kind = answer["outcome"].as_str().unwrap_or_default();
        assert!(observed.creates <= 1, "at most one job per event");
        if matches!(kind, "REJECTED" | "DRY_RUN") {
            assert_eq!(observed.creates, 0, "{kind} sends nothing: {answer}");
        }
        if kind == "SUBMITTED" {
            assert_eq!(observed.creates, 1, "SUBMITTED created the job");
        }
        assert_eq!(
            observed.published.len(),
            1,
            "the one outcome is published once: {answer}"
        );
    }
}

fn check_http(status: u64, method: &str, body: &Value, commands: &[Value], observed: &Observed) {
    if method.eq_ignore_ascii_case("GET") && matches!(status, 200 | 404) {
        // A status lookup reads and answers; it changes nothing.
        assert!(
            observed.published.is_empty() && observed.stored.is_empty(),
            "a lookup stores and publishes nothing"
        );
        assert_eq!(observed.creates, 0);
        if status == 200 {
            assert!(
                body["history"].is_array(),
                "a lookup lists the history: {body}"
            );
            if body.get("outcome").is_some() {
                check_outcome(body, commands);
            }
        }
        return;
    }
    if status == 401 {
        assert_eq!(body, &json!({"message": "Unauthorized"}));
        assert!(
            observed.published.is_empty() && observed.stored.is_empty(),
            "an unverified request stores and publishes nothing"
        );
        assert_eq!(observed.creates, 0);
        return;
    }
    if status == 405 {
        assert!(observed.published.is_empty() && observed.creates == 0);
        return;
    }
    check_outcome(body, commands);
    let kind = body["outcome"].as_str().unwrap_or_default();
    let codes: Vec<&str> = body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["code"].as_str())
        .collect();
    let expected: &[u64] = match kind {
        "SUBMITTED" | "QUEUED" => &[202],
        "DRY_RUN" => &[200],
        "DUPLICATE" => &[200, 409],
        "REJECTED" if codes.contains(&"KEY_REUSED") => &[409],
        "REJECTED" if codes.iter().any(|c| POLICY_CODES.contains(c)) => &[403],
        "REJECTED" if codes.contains(&"BODY_TOO_LARGE") => &[413],
        "REJECTED" => &[400],
        other => panic!("an unexpected webhook outcome {other:?}: {body}"),
    };
    assert!(
        expected.contains(&status),
        "{kind} answers {expected:?}, not {status}: {body}"
    );
    if matches!(kind, "REJECTED" | "DRY_RUN" | "QUEUED") {
        assert_eq!(observed.creates, 0, "{kind} sends nothing");
    }
    if kind == "QUEUED" {
        assert_eq!(observed.queued.len(), 1, "QUEUED handed one message over");
    }
    assert!(observed.creates <= 1);
}

/// A command's bytes: problems are well formed; a valid command keeps its fingerprint through
/// its canonical form and through re-serialisation, and resolves to an Atlas body.
pub fn check_command(bytes: &[u8]) {
    let now = now();
    let value = atlas_restore_runner::command::json::parse_strict(bytes);
    match RestoreCommand::parse(bytes, now) {
        Err(problems) => {
            assert!(!problems.is_empty(), "a refusal names a problem");
            let commands: Vec<Value> = value.iter().cloned().collect();
            let problems = serde_json::to_value(&problems).unwrap_or_default();
            check_outcome(
                &json!({"outcome": "REJECTED", "errors": problems}),
                &commands,
            );
            if value.is_err() {
                assert_eq!(problems[0]["code"], "MALFORMED_JSON");
            }
        }
        Ok(command) => {
            let value = value.unwrap_or_else(|e| panic!("a valid command is JSON: {e}"));
            let fingerprint = command.fingerprint();
            assert_eq!(fingerprint.len(), 64);
            // Its canonical form is itself a valid command with the same fingerprint.
            let canonical = command.canonical();
            let text = canonical_json(&canonical);
            let again = RestoreCommand::parse(text.as_bytes(), now)
                .unwrap_or_else(|e| panic!("the canonical form {text} is valid: {e:?}"));
            assert_eq!(again.fingerprint(), fingerprint, "canonical: {text}");
            assert_eq!(again.canonical(), canonical);
            // Written out and read back, it is the same command.
            let written = serde_json::to_vec(&value).unwrap_or_default();
            let reread = RestoreCommand::parse(&written, now)
                .unwrap_or_else(|e| panic!("re-serialised, still valid: {e:?}"));
            assert_eq!(reread, command);
            // Resolved with a snapshot at hand, it is an Atlas body.
            let snapshot = ObjectId::parse(SNAPSHOT);
            let resolved = command.restore.resolve(now, snapshot.as_ref());
            let body = resolved
                .map(|r| r.atlas_body())
                .unwrap_or_else(|| panic!("a valid command resolves: {text}"));
            assert!(body.is_object(), "an Atlas body: {body}");
        }
    }
}

/// Webhook signatures: `from_pairs` picks our header over Slack's, case-insensitively;
/// `verify` never accepts a signature that is not the HMAC of this timestamp and body under one
/// of the secrets, nor (with `check_age`) a timestamp outside the window; a fresh signature of
/// the body verifies, and one byte more, another timestamp or another secret does not.
pub fn check_signature(
    current: &str,
    previous: Option<&str>,
    pairs: &[(String, String)],
    body: &[u8],
    now_seconds: i64,
    check_age: bool,
) {
    let now_seconds = now_seconds.clamp(0, 100_000_000_000);
    let Some(at) = DateTime::from_timestamp(now_seconds, 0) else {
        return;
    };
    let headers = SignatureHeaders::from_pairs(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    let first = |names: &[&str]| {
        names.iter().find_map(|name| {
            pairs
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_owned())
        })
    };
    assert_eq!(
        headers.timestamp,
        first(&["x-signature-timestamp", "x-slack-request-timestamp"])
    );
    assert_eq!(
        headers.signature,
        first(&["x-signature", "x-slack-signature"])
    );

    let secrets = SigningSecrets {
        current: Secret::new(current),
        previous: previous.map(Secret::new),
    };
    if verify(&headers, body, &secrets, at, check_age).is_ok() {
        let timestamp = headers.timestamp.clone().unwrap_or_default();
        let signature = headers.signature.clone().unwrap_or_default();
        let computed_by = |secret: &str| {
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
                .unwrap_or_else(|e| panic!("HMAC takes any key: {e}"));
            mac.update(format!("v0:{timestamp}:").as_bytes());
            mac.update(body);
            let expected = format!("v0={}", hex::encode(mac.finalize().into_bytes()));
            signature.eq_ignore_ascii_case(&expected)
        };
        assert!(
            computed_by(current) || previous.is_some_and(computed_by),
            "accepted a signature not computed for this body and timestamp"
        );
        if check_age {
            let seconds: i64 = timestamp.parse().unwrap_or(i64::MIN);
            assert!(
                seconds.abs_diff(now_seconds) <= MAX_SKEW_SECONDS as u64,
                "accepted a timestamp outside the window"
            );
        }
    }

    // A signature made now verifies (with either secret); changed in any way, it does not.
    let fresh = |secret: &str, ts: i64| SignatureHeaders {
        timestamp: Some(ts.to_string()),
        signature: Some(sign(secret.as_bytes(), ts, body)),
    };
    assert!(verify(&fresh(current, now_seconds), body, &secrets, at, true).is_ok());
    if let Some(previous) = previous {
        assert!(verify(&fresh(previous, now_seconds), body, &secrets, at, true).is_ok());
    }
    let edge = now_seconds - MAX_SKEW_SECONDS;
    assert!(verify(&fresh(current, edge), body, &secrets, at, true).is_ok());
    assert!(verify(&fresh(current, edge - 1), body, &secrets, at, true).is_err());
    assert!(verify(&fresh(current, edge - 1), body, &secrets, at, false).is_ok());
    let mut longer = body.to_vec();
    longer.push(b' ');
    assert!(verify(&fresh(current, now_seconds), &longer, &secrets, at, true).is_err());
    let mut moved = fresh(current, now_seconds);
    moved.timestamp = Some((now_seconds + 1).to_string());
    assert!(verify(&moved, body, &secrets, at, true).is_err());
    // HMAC pads a key shorter than its 64-byte block with zeros, so "k" and "k\0" are one key
    // (found by the fuzzer: not a flaw of the runner, which cannot tell them apart either).
    let same_key = |a: &str, b: &str| {
        a.len() <= 64 && b.len() <= 64 && a.trim_end_matches('\0') == b.trim_end_matches('\0')
    };
    let other = format!("{current}-other");
    if !same_key(&other, current) && !previous.is_some_and(|p| same_key(&other, p)) {
        assert!(verify(&fresh(&other, now_seconds), body, &secrets, at, true).is_err());
    }
}
