//! CONTRACT section 3, "When a dependency fails", with the dependency *unreachable* rather than
//! missing: the real `bootstrap` through the Lambda Runtime API, each AWS service pointed (by the
//! SDK's per-service `AWS_ENDPOINT_URL_<SERVICE>`) at a closed 127.0.0.1 port, or at a listener
//! that accepts and never answers, while the others stay on moto. A non-HTTP invocation returns
//! an error (retried), an SQS message is listed in `batchItemFailures`, the webhook answers 503
//! `{"error", "retryable": true}` or, for a failed publish, its answer with `"notified": false`;
//! never more than one job per request, and no outcome lost. Also: a secret stored as
//! `SecretBinary`, and the service-account token endpoint's errors checked for leaks.
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::primitives::Blob;
use base64::Engine;
use chrono::Utc;
use serde_json::{Value, json};
use support::atlas_double::{Fault, RecordedAuth, Route};
use support::events::sqs_event;
use support::fault_proxy::FaultProxy;
use support::lambda_runtime_api::{FunctionProcess, Invocation, RuntimeApi};
use support::moto::receive_all;
use support::sample::{command, signed, with};
use support::stack::*;

/// The function's production SDK timeouts (src/main.rs) end a hanging call within 15 s; the
/// function's timeout is 120 s (infra/template.yaml) and the HTTP API's 30 s.
const HANG_BOUND: Duration = Duration::from_secs(20);
/// A refused connection fails at once; the SDK's standard retries (3 attempts, jittered
/// backoff) add a few seconds per call.
const REFUSED_BOUND: Duration = Duration::from_secs(12);
/// CONTRACT section 2, "Webhook budget": a webhook answers within 25 s of its arrival (the
/// HTTP API cuts at 30 s).
const WEBHOOK_BUDGET: Duration = Duration::from_secs(25);
/// The 503 of a request that was not verified: nothing about the system.
fn generic_503() -> Value {
    json!({"error": "a dependency is unavailable", "retryable": true})
}

/// `http://127.0.0.1:<port>` where nothing listens (bound, then closed).
fn closed_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// A listener that accepts every connection and never answers, for as long as it lives.
struct Blackhole {
    endpoint: String,
    task: tokio::task::JoinHandle<()>,
}

impl Blackhole {
    async fn start() -> Blackhole {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        Blackhole { endpoint, task }
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One `bootstrap` on its own Runtime API, configured for `stack` plus `extra` (which wins).
struct Function {
    api: RuntimeApi,
    process: FunctionProcess,
}

impl Function {
    async fn start(stack: &Stack, extra: &[(&str, &str)]) -> Function {
        let api = RuntimeApi::start().await;
        let mut env = stack.function_env();
        for (name, value) in extra {
            env.retain(|(n, _)| n != name);
            env.push((name.to_string(), value.to_string()));
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let process =
            FunctionProcess::start(Path::new(env!("CARGO_BIN_EXE_bootstrap")), &api, &env);
        Function { api, process }
    }

    /// The invocation's end and how long it took; the deadline is 120 s away, as deployed.
    async fn invoke(&self, event: Value) -> (Invocation, Duration) {
        let started = Instant::now();
        let answer = self
            .api
            .invoke(event, Duration::from_secs(120), Duration::from_secs(60))
            .await;
        (answer, started.elapsed())
    }

    async fn answer(&self, event: Value) -> Value {
        match self.invoke(event).await.0 {
            Invocation::Response(value) => value,
            other => panic!(
                "expected an answer, got {other:?}\n--- function output ---\n{}",
                self.process.output()
            ),
        }
    }

    /// A failed invocation's error type and message, and how long it took.
    async fn error(&self, event: Value) -> (String, String, Duration) {
        match self.invoke(event).await {
            (
                Invocation::Error {
                    error_type,
                    error_message,
                    ..
                },
                took,
            ) => (error_type, error_message, took),
            (other, _) => panic!(
                "expected the invocation to fail for a retry, got {other:?}\n--- function output ---\n{}",
                self.process.output()
            ),
        }
    }

    /// A webhook's status, parsed body and how long it took.
    async fn http(&self, event: Value) -> (u16, Value, Duration) {
        let started = Instant::now();
        let answer = self.answer(event).await;
        let status = answer["statusCode"].as_u64().expect("a statusCode") as u16;
        let body = serde_json::from_str(answer["body"].as_str().expect("a body")).unwrap();
        (status, body, started.elapsed())
    }
}

/// `command` signed as a webhook that reached API Gateway at `arrived`
/// (`requestContext.timeEpoch`), as when the function's start-up took part of the budget.
fn webhook_arrived(command: &Value, arrived: chrono::DateTime<Utc>) -> Value {
    with(
        signed(command),
        "/requestContext/timeEpoch",
        json!(arrived.timestamp_millis()),
    )
}

/// The work-queue delivery of the webhook for `key`, handed off by a healthy function in queue
/// mode: its `QUEUED` record exists, as a real delivery finds it (CONTRACT section 2, "Queue
/// hand-off": a message without one is dropped).
async fn handed_off(stack: &Stack, key: &str, message_id: &str) -> Value {
    let queueing = Function::start(stack, &[("WORK_QUEUE_URL", &stack.work_queue)]).await;
    let (status, body, _) = queueing.http(signed(&command(Some(key)))).await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (202, Some("QUEUED")),
        "{body}"
    );
    let messages = receive_all(&stack.sdk, &stack.work_queue, 1).await;
    assert_eq!(messages.len(), 1, "one hand-off message");
    sqs_event(messages[0].body().unwrap(), message_id)
}

fn schedule(key: &str) -> Value {
    let mut drill = command(Some(key));
    drill.as_object_mut().unwrap().remove("idempotencyKey");
    json!({"schedule": {"executionId": key, "scheduledTime": "2026-11-28T06:00:00Z"}, "command": drill})
}

/// The idempotency records, by key: (status, published).
async fn records(stack: &Stack) -> Vec<(String, String, Option<bool>)> {
    let items = aws_sdk_dynamodb::Client::new(&stack.sdk)
        .scan()
        .table_name(TABLE)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    let mut records: Vec<_> = items
        .iter()
        .map(|item| {
            let text = |name: &str| {
                item.get(name)
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default()
            };
            let published = item
                .get("published")
                .and_then(|v| v.as_bool().ok())
                .copied();
            (text("id"), text("status"), published)
        })
        .collect();
    records.sort();
    records
}

async fn published(stack: &Stack, expected: usize) -> Vec<Value> {
    receive_all(&stack.sdk, &stack.outcomes_queue, expected)
        .await
        .iter()
        .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
        .collect()
}

/// Secrets Manager or DynamoDB unreachable: nothing can start, so every trigger fails for a
/// retry; nothing is sent, stored or published; the retry, once the service is back, runs it.
async fn unreachable_before_the_work(variable: &str, service: &str, verified: bool) {
    let stack = Stack::start().await;
    let delivery = handed_off(&stack, "k-sqs", "m-1").await;
    let function = Function::start(&stack, &[(variable, &closed_endpoint())]).await;

    let (error_type, message, took) = function.error(command(Some("k-direct"))).await;
    assert_eq!(error_type, "DependencyFailure");
    assert!(message.contains(service), "{message}");
    assert!(took < REFUSED_BOUND, "failed in {took:?}");

    let (error_type, message, _) = function.error(schedule("exec-1")).await;
    assert_eq!(error_type, "DependencyFailure", "{message}");

    let (status, body, took) = function.http(signed(&command(Some("k-web")))).await;
    assert_eq!(
        (status, body["retryable"].as_bool()),
        (503, Some(true)),
        "{body}"
    );
    if verified {
        assert!(
            body["error"].as_str().unwrap().contains(service),
            "the 503 to a verified request names the dependency: {body}"
        );
    } else {
        assert_eq!(
            body,
            generic_503(),
            "the 503 to a request that could not be verified says nothing about the system"
        );
    }
    assert!(took < REFUSED_BOUND, "answered in {took:?}");

    assert_eq!(
        function.answer(delivery.clone()).await,
        json!({"batchItemFailures": [{"itemIdentifier": "m-1"}]}),
        "the message is listed for SQS to deliver again"
    );

    assert_eq!(stack.atlas.created_jobs(), 0, "nothing was sent to Atlas");
    assert!(
        stack.atlas.requests_on(Route::CreateRestoreJob).is_empty(),
        "not even an unauthenticated POST"
    );
    let held: Vec<String> = records(&stack).await.into_iter().map(|r| r.0).collect();
    assert_eq!(
        held,
        ["k-sqs"],
        "no key is left held but the one queued before the failure"
    );
    assert_eq!(published(&stack, 0).await.len(), 0, "nothing was published");
    for secret in [PRIVATE_KEY, SIGNING_SECRET] {
        assert!(!message.contains(secret) && !body.to_string().contains(secret));
    }

    // The service is back: the retries run, once each.
    let healthy = Function::start(&stack, &[]).await;
    let outcome = healthy.answer(command(Some("k-direct"))).await;
    assert_eq!(outcome["outcome"], "SUBMITTED", "{outcome}");
    assert_eq!(
        healthy.answer(delivery.clone()).await,
        json!({"batchItemFailures": []})
    );
    assert_eq!(stack.atlas.created_jobs(), 2);
    assert_eq!(published(&stack, 2).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_manager_unreachable_fails_every_trigger_for_a_retry_and_sends_nothing() {
    unreachable_before_the_work("AWS_ENDPOINT_URL_SECRETS_MANAGER", "Secrets Manager", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_unreachable_fails_every_trigger_for_a_retry_and_sends_nothing() {
    unreachable_before_the_work("AWS_ENDPOINT_URL_DYNAMODB", "DynamoDB", true).await;
}

/// SNS unreachable after the job was created: the outcome is stored unpublished; a direct
/// invocation and an SQS message fail so they are retried, and the retry publishes the stored
/// outcome without sending anything again; the webhook answers with `"notified": false`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sns_unreachable_keeps_the_outcome_for_the_retry_which_publishes_it_once() {
    let stack = Stack::start().await;
    let delivery = handed_off(&stack, "k-sqs", "m-1").await;
    let function = Function::start(&stack, &[("AWS_ENDPOINT_URL_SNS", &closed_endpoint())]).await;

    let (error_type, message, took) = function.error(command(Some("k-direct"))).await;
    assert_eq!(error_type, "DependencyFailure");
    assert!(message.contains("SNS"), "{message}");
    assert!(took < REFUSED_BOUND, "failed in {took:?}");
    assert_eq!(stack.atlas.created_jobs(), 1);

    let (status, body, _) = function.http(signed(&command(Some("k-web")))).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        (body["outcome"].as_str(), body["notified"].as_bool()),
        (Some("SUBMITTED"), Some(false))
    );
    let mut refused = command(Some("k-refused"));
    refused["approvedBy"] = json!(REQUESTER);
    let (status, body, _) = function.http(signed(&refused)).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        (body["outcome"].as_str(), body["notified"].as_bool()),
        (Some("REJECTED"), Some(false))
    );

    assert_eq!(
        function.answer(delivery.clone()).await,
        json!({"batchItemFailures": [{"itemIdentifier": "m-1"}]})
    );
    assert_eq!(stack.atlas.created_jobs(), 3, "one job per request");
    assert_eq!(published(&stack, 0).await.len(), 0);
    let held: Vec<_> = records(&stack).await;
    assert_eq!(
        held,
        ["k-direct", "k-sqs", "k-web"]
            .iter()
            .map(|k| (k.to_string(), "COMPLETED".to_owned(), Some(false)))
            .collect::<Vec<_>>(),
        "each outcome is kept, marked unpublished"
    );

    // SNS is back: the retries (and a repeated webhook) publish the kept outcomes, once each,
    // and send nothing.
    let healthy = Function::start(&stack, &[]).await;
    let again = healthy.answer(command(Some("k-direct"))).await;
    assert_eq!(again["outcome"], "DUPLICATE");
    assert_eq!(again["first"]["outcome"], "SUBMITTED");
    assert_eq!(
        healthy.answer(delivery.clone()).await,
        json!({"batchItemFailures": []})
    );
    let (status, body, _) = healthy.http(signed(&command(Some("k-web")))).await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("DUPLICATE")));
    let mut outcomes: Vec<(String, String)> = published(&stack, 3)
        .await
        .iter()
        .map(|o| {
            (
                o["requestId"].as_str().unwrap().to_owned(),
                o["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    outcomes.sort();
    assert_eq!(
        outcomes,
        ["k-direct", "k-sqs", "k-web"]
            .iter()
            .map(|k| (k.to_string(), "SUBMITTED".to_owned()))
            .collect::<Vec<_>>()
    );
    assert_eq!(stack.atlas.created_jobs(), 3, "nothing sent again");
    assert!(records(&stack).await.iter().all(|r| r.2 == Some(true)));
}

/// SQS unreachable on the webhook's hand-off: the key recorded as `QUEUED` is released and the
/// webhook answers 503, so the chat bot's retry is handed off once SQS is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_unreachable_on_the_hand_off_answers_503_and_frees_the_key() {
    let stack = Stack::start().await;
    let queue = stack.work_queue.clone();
    let function = Function::start(
        &stack,
        &[
            ("WORK_QUEUE_URL", &queue),
            ("AWS_ENDPOINT_URL_SQS", &closed_endpoint()),
        ],
    )
    .await;
    let (status, body, took) = function.http(signed(&command(Some("k-hand-off")))).await;
    assert_eq!(
        (status, body["retryable"].as_bool()),
        (503, Some(true)),
        "{body}"
    );
    assert!(body["error"].as_str().unwrap().contains("SQS"), "{body}");
    assert!(took < REFUSED_BOUND, "answered in {took:?}");
    assert_eq!(records(&stack).await, vec![], "the key was released");

    let healthy = Function::start(&stack, &[("WORK_QUEUE_URL", &queue)]).await;
    let (status, body, _) = healthy.http(signed(&command(Some("k-hand-off")))).await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (202, Some("QUEUED")),
        "{body}"
    );
    assert_eq!(
        receive_all(&stack.sdk, &queue, 1).await.len(),
        1,
        "handed off once"
    );
    assert_eq!(stack.atlas.created_jobs(), 0);
}

/// DynamoDB lost between the job's creation and the outcome's storing: the outcome is
/// published anyway (not lost) and the invocation fails for a retry; the retry, after the dead
/// attempt's lease (Lambda retries an asynchronous invocation a minute later), finds the job by
/// reconciliation and sends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_lost_after_the_job_was_created_publishes_and_the_retry_adopts_the_job() {
    let stack = Stack::start().await;
    let proxy = FaultProxy::start(stack.moto.endpoint().trim_start_matches("http://")).await;
    let function =
        Function::start(&stack, &[("AWS_ENDPOINT_URL_DYNAMODB", &proxy.endpoint())]).await;
    // Atlas creates the job, then answers 1.5 s later: DynamoDB goes in between.
    stack.atlas.push_fault(
        Route::CreateRestoreJob,
        Fault::ProcessThenDelay(Duration::from_millis(1500)),
    );
    let lease = Duration::from_secs(20);
    let started = Instant::now();
    let cut_when_created = async {
        while stack.atlas.created_jobs() == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        proxy.cut();
    };
    let (first, ()) = tokio::join!(
        function
            .api
            .invoke(command(Some("k-mid")), lease, Duration::from_secs(60)),
        cut_when_created
    );
    match first {
        Invocation::Error {
            error_type,
            error_message,
            ..
        } => {
            assert_eq!(error_type, "DependencyFailure");
            assert!(error_message.contains("DynamoDB"), "{error_message}");
        }
        other => panic!("expected a failure for a retry, got {other:?}"),
    }
    assert_eq!(stack.atlas.created_jobs(), 1);
    let outcomes = published(&stack, 1).await;
    assert_eq!(outcomes.len(), 1, "the outcome was published, not lost");
    assert_eq!(
        (
            outcomes[0]["outcome"].as_str(),
            outcomes[0]["requestId"].as_str()
        ),
        (Some("SUBMITTED"), Some("k-mid"))
    );
    assert_eq!(
        records(&stack).await,
        vec![("k-mid".to_owned(), "IN_PROGRESS".to_owned(), None)],
        "the key stays held by the attempt that could not finish"
    );

    proxy.restore();
    tokio::time::sleep(
        (started + lease + Duration::from_secs(1)).saturating_duration_since(Instant::now()),
    )
    .await;
    let retry = function.answer(command(Some("k-mid"))).await;
    assert_eq!(retry["outcome"], "SUBMITTED", "{retry}");
    assert_eq!(
        retry["atlas"]["reconciled"], true,
        "adopted, not sent: {retry}"
    );
    assert_eq!(
        retry["atlas"]["jobs"][0]["id"],
        outcomes[0]["atlas"]["jobs"][0]["id"]
    );
    assert_eq!(stack.atlas.created_jobs(), 1, "never sent twice");
    assert_eq!(
        published(&stack, 1).await.len(),
        1,
        "the adopted outcome is published"
    );
    assert_eq!(
        records(&stack).await,
        vec![("k-mid".to_owned(), "COMPLETED".to_owned(), Some(true))]
    );
}

/// A dependency that accepts the connection and never answers: the production SDK timeouts
/// (src/main.rs: 3 s connect, 5 s per attempt, 15 s per operation) end the call, so the
/// invocation fails for a retry long before the function's 120 s deadline, and the webhook
/// answers 503 before the HTTP API's 30 s limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_dependency_fails_within_the_sdk_timeouts_not_the_deadline() {
    let stack = Stack::start().await;
    let hole = Blackhole::start().await;
    let no_table = Function::start(&stack, &[("AWS_ENDPOINT_URL_DYNAMODB", &hole.endpoint)]).await;
    let no_secrets = Function::start(
        &stack,
        &[("AWS_ENDPOINT_URL_SECRETS_MANAGER", &hole.endpoint)],
    )
    .await;

    let (direct, web) = tokio::join!(
        no_table.error(command(Some("k-hang"))),
        no_secrets.http(signed(&command(Some("k-hang-web"))))
    );
    let (error_type, message, took) = direct;
    assert_eq!(error_type, "DependencyFailure");
    assert!(message.contains("DynamoDB"), "{message}");
    assert!(took < HANG_BOUND, "a hanging DynamoDB took {took:?}");
    let (status, body, took) = web;
    assert_eq!((status, &body), (503, &generic_503()), "not verified");
    assert!(took < HANG_BOUND, "a hanging Secrets Manager took {took:?}");
    assert_eq!(stack.atlas.created_jobs(), 0);
}

/// A secret stored as `SecretBinary` (`--secret-binary fileb://atlas.json`) is read as UTF-8
/// text, as the Powertools parameters utility reads it; binary that is not text is a dependency
/// failure naming the secret, never its bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binary_secret_is_read_as_text_and_non_text_is_a_clear_dependency_failure() {
    let stack = Stack::start().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&stack.sdk);
    let json = json!({"publicKey": PUBLIC_KEY, "privateKey": PRIVATE_KEY}).to_string();
    for (name, bytes) in [
        ("atlas/binary-json", json.clone().into_bytes()),
        ("atlas/binary-raw", {
            let mut raw = vec![0xff, 0xfe, 0x00];
            raw.extend_from_slice(PRIVATE_KEY.as_bytes());
            raw
        }),
    ] {
        secrets
            .create_secret()
            .name(name)
            .secret_binary(Blob::new(bytes))
            .send()
            .await
            .unwrap();
    }
    secrets
        .create_secret()
        .name("webhook/binary")
        .secret_binary(Blob::new(SIGNING_SECRET.as_bytes().to_vec()))
        .send()
        .await
        .unwrap();

    let binary = Function::start(
        &stack,
        &[
            ("ATLAS_SECRET_ID", "atlas/binary-json"),
            ("WEBHOOK_SECRET_ID", "webhook/binary"),
        ],
    )
    .await;
    let outcome = binary.answer(command(Some("k-binary"))).await;
    assert_eq!(outcome["outcome"], "SUBMITTED", "{outcome}");
    let (status, body, _) = binary.http(signed(&command(Some("k-binary-web")))).await;
    assert_eq!(status, 202, "the binary signing secret verifies: {body}");
    assert_eq!(stack.atlas.created_jobs(), 2);

    let raw = Function::start(&stack, &[("ATLAS_SECRET_ID", "atlas/binary-raw")]).await;
    let (error_type, message, _) = raw.error(command(Some("k-raw"))).await;
    assert_eq!(error_type, "DependencyFailure");
    assert!(
        message.contains("atlas/binary-raw") && message.contains("not UTF-8"),
        "{message}"
    );
    assert!(!message.contains(PRIVATE_KEY), "{message}");
    assert!(!raw.process.output().contains(PRIVATE_KEY));
    assert_eq!(stack.atlas.created_jobs(), 2);
}

/// The service-account token endpoint refusing the client, failing with 500, answering
/// something unreadable or dropping the connection: outcomes, answers, notifications, the
/// table and every log line at TRACE (all crates) hold neither the client secret, nor its
/// Basic credentials, nor any token issued before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_endpoint_errors_carry_no_client_secret_or_token() {
    const CLIENT_ID: &str = "mdb_sa_id_faults";
    const CLIENT_SECRET: &str = "mdb_sa_sk_SECRET-token-faults-31c4";
    let stack = Stack::start().await;
    stack.atlas.add_service_account(CLIENT_ID, CLIENT_SECRET);
    aws_sdk_secretsmanager::Client::new(&stack.sdk)
        .put_secret_value()
        .secret_id(ATLAS_SECRET)
        .secret_string(json!({"clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET}).to_string())
        .send()
        .await
        .unwrap();
    let function = Function::start(&stack, &[("AWS_LAMBDA_LOG_LEVEL", "trace")]).await;
    let short = |event: Value| {
        let api = &function.api;
        async move {
            match api
                .invoke(event, Duration::from_secs(12), Duration::from_secs(60))
                .await
            {
                Invocation::Response(value) => value,
                other => panic!("{other:?}"),
            }
        }
    };

    let mut answers = vec![short(command(Some("k-token-ok"))).await];
    assert_eq!(answers[0]["outcome"], "SUBMITTED", "{}", answers[0]);

    // The token is revoked (Atlas answers 401), and each new token request fails another way.
    let faults = [
        Fault::Status {
            status: 401,
            error_code: "INVALID_CLIENT".into(),
            retry_after: None,
        },
        Fault::NonJson {
            status: 500,
            body: "upstream token service failed".into(),
            process: false,
        },
        Fault::NonJson {
            status: 200,
            body: "<html>not a token</html>".into(),
            process: false,
        },
        Fault::DropAfterBody,
    ];
    for (i, fault) in faults.into_iter().enumerate() {
        stack.atlas.revoke_tokens();
        // More than the attempt can use before its deadline: every token request fails.
        for _ in 0..200 {
            stack.atlas.push_fault(Route::Token, fault.clone());
        }
        let answer = short(command(Some(&format!("k-token-fault-{i}")))).await;
        assert_eq!(answer["outcome"], "FAILED", "fault {i}: {answer}");
        assert!(stack.atlas.pending_faults() < 200, "fault {i} was met");
        stack.atlas.clear_faults();
        answers.push(answer);
    }
    assert_eq!(
        stack.atlas.created_jobs(),
        1,
        "only the first command was sent"
    );

    let tokens: Vec<String> = stack
        .atlas
        .requests()
        .iter()
        .flat_map(|r| r.headers.clone())
        .filter(|(name, _)| name == "authorization")
        .filter_map(|(_, value)| value.strip_prefix("Bearer ").map(str::to_owned))
        .collect();
    assert!(!tokens.is_empty(), "a token was issued and used");
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
    let mut secrets = vec![CLIENT_SECRET.to_owned(), basic];
    secrets.extend(tokens);

    let logs = function.process.output();
    assert!(
        logs.contains("token endpoint") || logs.contains("token"),
        "the token failures were logged"
    );
    assert!(logs.lines().count() > 100, "TRACE logging was captured");
    let answers_text = serde_json::to_string(&answers).unwrap();
    let published_text = serde_json::to_string(&published(&stack, answers.len()).await).unwrap();
    let table_text = format!(
        "{:?}",
        aws_sdk_dynamodb::Client::new(&stack.sdk)
            .scan()
            .table_name(TABLE)
            .send()
            .await
            .unwrap()
            .items()
    );
    for secret in &secrets {
        for (place, text) in [
            ("the logs", &logs),
            ("an answer", &answers_text),
            ("a notification", &published_text),
            ("the table", &table_text),
        ] {
            assert!(!text.contains(secret.as_str()), "a secret reached {place}");
        }
    }
}

// CONTRACT section 4, "Deadlines", and section 2, "Webhook budget": every Atlas or AWS call ends
// by the request's deadline, less a margin to record and answer; a webhook's deadline is 25 s
// after its arrival, whatever the invocation's.

/// Authenticated restore POSTs that reached the Atlas double.
fn authenticated_posts(stack: &Stack) -> usize {
    stack
        .atlas
        .requests_on(Route::CreateRestoreJob)
        .iter()
        .filter(|r| {
            matches!(
                r.auth,
                RecordedAuth::Digest {
                    valid: true,
                    stale: false,
                    ..
                }
            )
        })
        .count()
}

/// Atlas creates the job and never answers, then never answers the listing that would find
/// it: a webhook with the function's 120 s deadline still answers within its 25 s budget,
/// `UNKNOWN` (504: the request may have reached Atlas and nothing says it did), published once,
/// the key kept; the same webhook again is a `DUPLICATE`, and nothing is sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_with_a_hanging_atlas_answers_within_its_budget_and_sends_once() {
    let stack = Stack::start().await;
    let function = Function::start(&stack, &[]).await;
    stack.atlas.push_fault(
        Route::CreateRestoreJob,
        Fault::ProcessThenDelay(Duration::from_secs(300)),
    );
    for _ in 0..10 {
        stack.atlas.push_fault(
            Route::ListRestoreJobs,
            Fault::DelayThenProcess(Duration::from_secs(300)),
        );
    }
    let event = signed(&command(Some("k-hang-atlas")));
    let (status, body, took) = function.http(event.clone()).await;
    assert!(took < WEBHOOK_BUDGET, "answered in {took:?}");
    assert_eq!(
        (status, body["outcome"].as_str()),
        (504, Some("UNKNOWN")),
        "{body}"
    );
    assert_eq!(body["requestId"], "k-hang-atlas");
    assert_eq!(authenticated_posts(&stack), 1, "one POST");
    assert_eq!(stack.atlas.created_jobs(), 1, "one job");
    let outcomes = published(&stack, 1).await;
    assert_eq!(outcomes.len(), 1, "published once");
    assert_eq!(outcomes[0]["outcome"], "UNKNOWN");

    let (status, again, _) = function.http(event).await;
    assert_eq!(
        (status, again["outcome"].as_str()),
        (200, Some("DUPLICATE")),
        "{again}"
    );
    assert_eq!(authenticated_posts(&stack), 1, "never sent again");
    assert_eq!(stack.atlas.created_jobs(), 1);
}

/// DynamoDB accepts connections and never answers: the webhook answers 503 retryable within its
/// budget; when the function's start-up already took 12 s of it (`requestContext.timeEpoch`),
/// within the 13 s left, not the SDK's own 15 s per call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_with_a_hanging_aws_endpoint_answers_503_within_its_budget() {
    let stack = Stack::start().await;
    let hole = Blackhole::start().await;
    let fresh = Function::start(&stack, &[("AWS_ENDPOINT_URL_DYNAMODB", &hole.endpoint)]).await;
    let late = Function::start(&stack, &[("AWS_ENDPOINT_URL_DYNAMODB", &hole.endpoint)]).await;
    let waited = Duration::from_secs(12);
    let arrived = Utc::now() - chrono::Duration::from_std(waited).unwrap();
    let (fresh_answer, late_answer) = tokio::join!(
        fresh.http(signed(&command(Some("k-hang-fresh")))),
        late.http(webhook_arrived(&command(Some("k-hang-late")), arrived))
    );
    for (name, (status, body, took), budget) in [
        ("fresh", fresh_answer, WEBHOOK_BUDGET),
        ("late", late_answer, WEBHOOK_BUDGET - waited),
    ] {
        assert_eq!(
            (status, body["retryable"].as_bool()),
            (503, Some(true)),
            "{name}: {body}"
        );
        assert!(
            body["error"].as_str().unwrap().contains("DynamoDB"),
            "{name}: a verified request is told which dependency: {body}"
        );
        assert!(took < budget, "{name}: answered in {took:?}");
    }
    assert_eq!(stack.atlas.created_jobs(), 0);
    assert!(stack.atlas.requests_on(Route::CreateRestoreJob).is_empty());
}

/// A direct invocation with a 10 s deadline: DynamoDB never answering, or SNS never answering
/// after the job was created, fails the invocation for a retry before the deadline, not after
/// the SDK's own 15 s per call (Lambda would cut it off mid-call).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_invoke_with_a_short_deadline_and_a_hanging_dependency_returns_before_it() {
    let stack = Stack::start().await;
    let hole = Blackhole::start().await;
    let no_table = Function::start(&stack, &[("AWS_ENDPOINT_URL_DYNAMODB", &hole.endpoint)]).await;
    let no_topic = Function::start(&stack, &[("AWS_ENDPOINT_URL_SNS", &hole.endpoint)]).await;
    let deadline = Duration::from_secs(10);
    async fn timed(function: &Function, key: &str, deadline: Duration) -> (Invocation, Duration) {
        let started = Instant::now();
        let answer = function
            .api
            .invoke(command(Some(key)), deadline, Duration::from_secs(60))
            .await;
        (answer, started.elapsed())
    }
    let (table, topic) = tokio::join!(
        timed(&no_table, "k-short-table", deadline),
        timed(&no_topic, "k-short-topic", deadline)
    );
    for (service, (answer, took)) in [("DynamoDB", table), ("SNS", topic)] {
        match answer {
            Invocation::Error {
                error_type,
                error_message,
                ..
            } => {
                assert_eq!(error_type, "DependencyFailure", "{service}");
                assert!(error_message.contains(service), "{error_message}");
            }
            other => panic!("{service}: expected a failure for a retry, got {other:?}"),
        }
        assert!(took < deadline, "{service}: returned after {took:?}");
    }
    assert_eq!(
        stack.atlas.created_jobs(),
        1,
        "only the command whose table answered was sent"
    );
}

/// The webhook signing secret cannot be read (here: no such secret), so the request cannot be
/// verified: its 503 says nothing about the system (no ARN, no account, no SDK text); the log
/// line says what failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unverified_request_whose_signing_secret_cannot_be_read_gets_the_generic_503() {
    const MISSING: &str =
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:atlas-restore-runner/gone-Ab12Cd";
    let stack = Stack::start().await;
    let function = Function::start(&stack, &[("WEBHOOK_SECRET_ID", MISSING)]).await;
    let answer = function
        .answer(signed(&command(Some("k-unverified"))))
        .await;
    assert_eq!(answer["statusCode"], 503, "{answer}");
    let text = answer["body"].as_str().unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(text).unwrap(),
        generic_503(),
        "{text}"
    );
    for internal in [
        "123456789012",
        "arn:",
        "gone-Ab12Cd",
        "Secrets Manager",
        "ResourceNotFound",
    ] {
        assert!(!text.contains(internal), "{internal} in {text}");
    }
    assert!(
        function
            .process
            .wait_for_output("gone-Ab12Cd", Duration::from_secs(5))
            .await,
        "the log names the secret that could not be read:\n{}",
        function.process.output()
    );
    assert!(
        function.process.output().contains("ResourceNotFound"),
        "the log has the SDK's error:\n{}",
        function.process.output()
    );
    assert_eq!(stack.atlas.created_jobs(), 0);
    assert_eq!(records(&stack).await, vec![], "nothing stored");
}
