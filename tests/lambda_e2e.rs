//! The real `bootstrap` binary, driven through the Lambda Runtime API, for every trigger,
//! against moto and the Atlas double: the outcome, the HTTP status where there is one, what
//! was published, and how many jobs Atlas created.
mod support;

use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};
use support::atlas_double::{Fault, Route};
use support::e2e::*;
use support::events::{Signer, hand_off, sqs_event, webhook, webhook_signed_by};
use support::lambda_runtime_api::{FunctionProcess, Invocation, RuntimeApi};
use support::moto::receive_all;
use support::sample::{command, signed, with};
use support::stack::*;

fn codes(outcome: &Value) -> Vec<(String, String)> {
    outcome["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap().to_owned(),
                e["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn code_list(outcome: &Value) -> Vec<String> {
    codes(outcome).into_iter().map(|(_, c)| c).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_webhook_is_submitted_with_202_and_published() {
    let e2e = E2e::start(&[]).await;
    let (status, outcome) = e2e.http(signed(&command(Some("approval-7f3a")))).await;
    assert_eq!(status, 202, "{outcome}");
    assert_eq!(outcome["outcome"], "SUBMITTED");
    assert_eq!(outcome["trigger"], "webhook");
    assert_eq!(outcome["requestId"], "approval-7f3a");
    assert_eq!(
        (
            outcome["requestedBy"].as_str(),
            outcome["approvedBy"].as_str()
        ),
        (Some(REQUESTER), Some(APPROVER))
    );
    assert_eq!(
        outcome["restore"]["delivery"]["targetClusterName"],
        "orders-drill"
    );
    assert_eq!(e2e.jobs(), 1);
    let published = e2e.published(1).await;
    assert_eq!(published.len(), 1);
    assert_eq!(published[0]["outcome"], "SUBMITTED");
    assert_eq!(
        published[0]["atlas"]["jobs"][0]["id"],
        outcome["atlas"]["jobs"][0]["id"]
    );

    // The same approval again: a duplicate, nothing new created or published.
    let (status, again) = e2e.http(signed(&command(Some("approval-7f3a")))).await;
    assert_eq!(
        (status, again["outcome"].as_str()),
        (200, Some("DUPLICATE"))
    );
    assert_eq!(again["first"]["outcome"], "SUBMITTED");
    // Another command under the same key.
    let other = with(
        command(Some("approval-7f3a")),
        "/restore/snapshotId",
        json!(NEWER_SNAPSHOT),
    );
    let (status, reused) = e2e.http(signed(&other)).await;
    assert_eq!(status, 409);
    assert_eq!(code_list(&reused), vec!["KEY_REUSED"]);
    assert_eq!(e2e.jobs(), 1);

    // The log is read from the process's stdout, which may trail its answer.
    assert!(
        e2e.function
            .wait_for_output("\"outcome\":\"REJECTED\"", Duration::from_secs(5))
            .await,
        "the third outcome was logged"
    );
    let output = e2e.function.output();
    let outcome_lines: Vec<&str> = output
        .lines()
        .filter(|l| l.contains("\"message\":\"outcome\""))
        .collect();
    assert_eq!(
        outcome_lines.len(),
        3,
        "one log line per outcome:\n{output}"
    );
    assert!(
        outcome_lines[0].contains("\"request_id\":\"approval-7f3a\"")
            && outcome_lines[0].contains("\"outcome\":\"SUBMITTED\""),
        "{}",
        outcome_lines[0]
    );
    for secret in [PRIVATE_KEY, SIGNING_SECRET] {
        assert!(
            !output.contains(secret),
            "a secret reached the function's logs"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unverified_webhooks_get_401_and_nothing_else() {
    let e2e = E2e::start(&[]).await;
    let body = command(Some("k-unverified")).to_string();
    let stale = webhook_signed_by(
        &body,
        Some(Signer::at(SIGNING_SECRET, Utc::now().timestamp() - 301)),
    );
    for (case, event) in [
        ("unsigned", webhook(&body, None)),
        ("wrong secret", webhook(&body, Some("not-the-secret"))),
        ("stale by 301 s", stale),
        (
            "body changed after signing",
            with(
                webhook(&body, Some(SIGNING_SECRET)),
                "/body",
                json!(body.replace("orders-drill", "orders-live")),
            ),
        ),
    ] {
        let (status, answer) = e2e.http(event).await;
        assert_eq!(status, 401, "{case}");
        assert_eq!(
            answer,
            json!({"message": "Unauthorized"}),
            "{case}: no outcome"
        );
    }
    assert_eq!(e2e.jobs(), 0);
    assert!(
        e2e.stack.atlas.requests().is_empty(),
        "Atlas was never asked"
    );
    assert_eq!(e2e.records().await, 0, "nothing stored");
    assert!(e2e.published(1).await.is_empty(), "nothing published");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_headers_and_the_previous_secret_during_a_rotation_verify() {
    let e2e = E2e::start(&[]).await;
    aws_sdk_secretsmanager::Client::new(&e2e.stack.sdk)
        .put_secret_value()
        .secret_id(WEBHOOK_SECRET)
        .secret_string(
            json!({"signingSecret": "the-new-secret", "previousSigningSecret": SIGNING_SECRET})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    let body = command(Some("k-slack")).to_string();
    let event = webhook_signed_by(&body, Some(Signer::now(SIGNING_SECRET).slack()));
    let (status, outcome) = e2e.http(event).await;
    assert_eq!(
        (status, outcome["outcome"].as_str()),
        (202, Some("SUBMITTED")),
        "{outcome}"
    );
    let (status, _) = e2e
        .http(webhook(
            &command(Some("k-new")).to_string(),
            Some("the-new-secret"),
        ))
        .await;
    assert_eq!(status, 202);
    assert_eq!(e2e.jobs(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_refusals_follow_the_contract_order_and_statuses() {
    let e2e = E2e::start(&[]).await;
    // Self-approval and an approver not listed: policy, 403, published.
    let self_approved = with(command(Some("k-self")), "/approvedBy", json!(REQUESTER));
    let (status, outcome) = e2e.http(signed(&self_approved)).await;
    assert_eq!(status, 403);
    assert_eq!(
        codes(&outcome),
        vec![
            ("/approvedBy".to_owned(), "APPROVER_NOT_ALLOWED".to_owned()),
            ("/approvedBy".to_owned(), "SELF_APPROVAL".to_owned())
        ]
    );
    // Validation and policy together: 403, every problem listed.
    let both = with(
        with(command(Some("k-both")), "/approvedBy", json!(REQUESTER)),
        "/restore/snapshotId",
        json!("nope"),
    );
    let (status, outcome) = e2e.http(signed(&both)).await;
    assert_eq!(status, 403);
    assert!(
        code_list(&outcome).contains(&"INVALID_FORMAT".to_owned())
            && code_list(&outcome).contains(&"SELF_APPROVAL".to_owned())
    );
    // Validation only, and a missing key: 400.
    let mut no_key = command(None);
    no_key["restore"]["snapshotID"] = json!(SNAPSHOT);
    let (status, outcome) = e2e.http(signed(&no_key)).await;
    assert_eq!(status, 400);
    assert_eq!(
        code_list(&outcome),
        vec!["UNKNOWN_FIELD", "REQUIRED"],
        "{outcome}"
    );
    // Not JSON, too large, bad base64.
    let (status, outcome) = e2e
        .http(webhook("{\"groupId\": ", Some(SIGNING_SECRET)))
        .await;
    assert_eq!(
        (status, code_list(&outcome)),
        (400, vec!["MALFORMED_JSON".to_owned()])
    );
    let huge = format!("{{\"reason\": \"{}\"}}", "x".repeat(70 * 1024));
    let (status, outcome) = e2e.http(webhook(&huge, Some(SIGNING_SECRET))).await;
    assert_eq!(
        (status, code_list(&outcome)),
        (413, vec!["BODY_TOO_LARGE".to_owned()])
    );
    let mut not_base64 = webhook("%%%not-base64%%%", Some(SIGNING_SECRET));
    not_base64["isBase64Encoded"] = json!(true);
    let (status, outcome) = e2e.http(not_base64).await;
    assert_eq!(
        (status, code_list(&outcome)),
        (400, vec!["MALFORMED_JSON".to_owned()])
    );
    // A base64 body is verified and read after decoding.
    let body = command(Some("k-b64")).to_string();
    let mut encoded = webhook(&body, Some(SIGNING_SECRET));
    encoded["body"] = json!(base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        body.as_bytes()
    ));
    encoded["isBase64Encoded"] = json!(true);
    let (status, outcome) = e2e.http(encoded).await;
    assert_eq!(
        (status, outcome["outcome"].as_str()),
        (202, Some("SUBMITTED"))
    );

    assert_eq!(e2e.jobs(), 1);
    let kinds: Vec<String> = e2e
        .published(7)
        .await
        .iter()
        .map(|p| p["outcome"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds,
        vec![
            "REJECTED",
            "REJECTED",
            "REJECTED",
            "REJECTED",
            "REJECTED",
            "REJECTED",
            "SUBMITTED"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atlas_answers_become_webhook_statuses() {
    let e2e = E2e::start(&[]).await;
    e2e.stack.atlas.push_fault(
        Route::CreateRestoreJob,
        Fault::Status {
            status: 404,
            error_code: "SNAPSHOT_NOT_FOUND".into(),
            retry_after: None,
        },
    );
    let (status, outcome) = e2e.http(signed(&command(Some("k-404")))).await;
    assert_eq!((status, outcome["outcome"].as_str()), (422, Some("FAILED")));
    assert_eq!(outcome["atlas"]["errorCode"], "SNAPSHOT_NOT_FOUND");
    e2e.stack.atlas.push_fault(
        Route::CreateRestoreJob,
        Fault::Status {
            status: 403,
            error_code: "FORBIDDEN".into(),
            retry_after: None,
        },
    );
    let (status, _) = e2e.http(signed(&command(Some("k-403")))).await;
    assert_eq!(status, 502);
    e2e.stack
        .atlas
        .push_fault(Route::CreateRestoreJob, Fault::DropAfterBody);
    let (status, outcome) = e2e.http(signed(&command(Some("k-lost")))).await;
    assert_eq!(
        (status, outcome["outcome"].as_str()),
        (504, Some("UNKNOWN"))
    );
    e2e.stack.atlas.push_fault(
        Route::CreateRestoreJob,
        Fault::CreateThenFail {
            status: 500,
            error_code: "UNEXPECTED_ERROR".into(),
        },
    );
    let (status, outcome) = e2e.http(signed(&command(Some("k-500")))).await;
    assert_eq!(
        (status, outcome["atlas"]["reconciled"].as_bool()),
        (202, Some(true))
    );
    assert_eq!(e2e.jobs(), 1);
    let dry = with(command(Some("k-dry")), "/approvedBy", json!(APPROVER));
    let mut dry = dry;
    dry["dryRun"] = json!(true);
    let (status, outcome) = e2e.http(signed(&dry)).await;
    assert_eq!(
        (status, outcome["outcome"].as_str()),
        (200, Some("DRY_RUN"))
    );
    assert_eq!(e2e.jobs(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_dependency_answers_503_retryable_and_sends_nothing() {
    let e2e = E2e::start(&[("WEBHOOK_SECRET_ID", "no/such/secret")]).await;
    let (status, answer) = e2e.http(signed(&command(Some("k-503")))).await;
    // Not verified: the answer says nothing about the system; the log says what failed.
    assert_eq!(status, 503);
    assert_eq!(
        answer,
        json!({"error": "a dependency is unavailable", "retryable": true})
    );
    assert!(
        e2e.function
            .wait_for_output("no/such/secret", Duration::from_secs(5))
            .await,
        "the log names the secret\n{}",
        e2e.function.output()
    );
    assert_eq!(e2e.jobs(), 0);

    let e2e = E2e::start(&[("IDEMPOTENCY_TABLE", "no-such-table")]).await;
    let (status, answer) = e2e.http(signed(&command(Some("k-503b")))).await;
    assert_eq!((status, answer["retryable"].as_bool()), (503, Some(true)));
    assert_eq!(e2e.jobs(), 0);
    match e2e.invoke(command(Some("k-direct"))).await {
        Invocation::Error {
            error_type,
            error_message,
            ..
        } => {
            assert_eq!(error_type, "DependencyFailure");
            assert!(error_message.contains("no-such-table"), "{error_message}");
        }
        other => panic!("a direct invocation fails so Lambda retries it: {other:?}"),
    }
    assert_eq!(e2e.jobs(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_hand_off_answers_202_queued_and_the_sqs_delivery_runs_it_once() {
    let e2e = E2e::start_with_work_queue(&[]).await;
    let (stack, function) = (&e2e.stack, &e2e.function);
    let invoke = |event: Value| {
        let e2e = &e2e;
        async move { e2e.answer(event).await }
    };
    let answer = invoke(signed(&command(Some("k-queued")))).await;
    assert_eq!(answer["statusCode"], 202, "{answer}\n{}", function.output());
    let outcome: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    assert_eq!(outcome["outcome"], "QUEUED");
    assert_eq!(stack.atlas.created_jobs(), 0, "nothing submitted yet");

    let messages = receive_all(&stack.sdk, &stack.work_queue, 1).await;
    assert_eq!(messages.len(), 1);
    let delivered = messages[0].body().unwrap().to_owned();
    let answer = invoke(sqs_event(&delivered, "m-1")).await;
    assert_eq!(answer, json!({"batchItemFailures": []}));
    assert_eq!(stack.atlas.created_jobs(), 1);
    // Delivered again (SQS is at-least-once): a duplicate, still one job.
    assert_eq!(
        invoke(sqs_event(&delivered, "m-1")).await,
        json!({"batchItemFailures": []})
    );
    assert_eq!(stack.atlas.created_jobs(), 1);
    // A message forged onto the queue: dropped, not retried, nothing created.
    let mut forged: Value = serde_json::from_str(&delivered).unwrap();
    forged["body"] = json!(command(Some("k-forged")).to_string());
    assert_eq!(
        invoke(sqs_event(&forged.to_string(), "m-2")).await,
        json!({"batchItemFailures": []})
    );
    assert_eq!(stack.atlas.created_jobs(), 1);
    // A duplicate webhook while the first is queued or done.
    let answer = invoke(signed(&command(Some("k-queued")))).await;
    let outcome: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    assert_eq!(outcome["outcome"], "DUPLICATE");

    let published = receive_all(&stack.sdk, &stack.outcomes_queue, 1).await;
    let published: Vec<Value> = published
        .iter()
        .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
        .collect();
    assert_eq!(
        published.len(),
        1,
        "QUEUED is not published; the SUBMITTED is, once"
    );
    assert_eq!(
        (
            published[0]["outcome"].as_str(),
            published[0]["trigger"].as_str()
        ),
        (Some("SUBMITTED"), Some("webhook"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sqs_delivery_whose_dependency_fails_is_listed_for_retry() {
    let e2e = E2e::start(&[("IDEMPOTENCY_TABLE", "no-such-table")]).await;
    let body = command(Some("k-sqs-dep")).to_string();
    let message = hand_off(&body, SIGNING_SECRET, Utc::now().timestamp());
    assert_eq!(
        e2e.answer(sqs_event(&message.to_string(), "m-dep")).await,
        json!({"batchItemFailures": [{"itemIdentifier": "m-dep"}]})
    );
    assert_eq!(e2e.jobs(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_drills_resolve_their_point_at_run_time_and_use_the_execution_id() {
    let e2e = E2e::start(&[]).await;
    let mut drill = command(None);
    drill["restore"] = json!({"delivery": {"methodName": "AUTOMATED_RESTORE", "targetGroupId": GROUP, "targetClusterName": "orders-drill"}});
    drill["restorePoint"] = json!("latestSnapshot");
    let scheduler = |execution: &str, command: &Value| json!({"schedule": {"executionId": execution, "scheduledTime": "2026-11-28T03:00:00Z"}, "command": command});
    let outcome = e2e.answer(scheduler("exec-1", &drill)).await;
    assert_eq!(
        (outcome["outcome"].as_str(), outcome["trigger"].as_str()),
        (Some("SUBMITTED"), Some("schedule")),
        "{outcome}"
    );
    assert_eq!(outcome["requestId"], "exec-1");
    assert_eq!(outcome["restore"]["snapshotId"], NEWER_SNAPSHOT);
    assert_eq!(
        e2e.answer(scheduler("exec-1", &drill)).await["outcome"],
        "DUPLICATE"
    );

    drill["restorePoint"] = json!({"minutesAgo": 60});
    let before = Utc::now().timestamp_millis();
    let outcome = e2e.answer(scheduler("exec-2", &drill)).await;
    assert_eq!(outcome["outcome"], "SUBMITTED");
    let millis = outcome["restore"]["pointInTimeUTCMillis"].as_i64().unwrap();
    assert!(
        (before - 3_600_000 - 10_000..=Utc::now().timestamp_millis() - 3_600_000).contains(&millis)
    );

    let rule_event = json!({"id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa", "time": "2026-11-28T03:00:00Z", "source": "aws.events", "detail-type": "Scheduled Event", "detail": drill});
    let outcome = e2e.answer(rule_event).await;
    assert_eq!(
        (outcome["requestId"].as_str(), outcome["trigger"].as_str()),
        (
            Some("53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa"),
            Some("schedule")
        )
    );

    let mut keyed = drill.clone();
    keyed["idempotencyKey"] = json!("nightly");
    let outcome = e2e.answer(scheduler("exec-3", &keyed)).await;
    assert_eq!(outcome["outcome"], "REJECTED");
    assert_eq!(
        codes(&outcome),
        vec![("/idempotencyKey".to_owned(), "CONFLICT".to_owned())]
    );
    assert!(
        outcome["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("every later drill")
    );
    assert_eq!(e2e.jobs(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_events_and_unknown_shapes() {
    let e2e = E2e::start(&[]).await;
    let outcome = e2e.answer(command(Some("runbook-1"))).await;
    assert_eq!(
        (
            outcome["outcome"].as_str(),
            outcome["trigger"].as_str(),
            outcome["requestId"].as_str()
        ),
        (Some("SUBMITTED"), Some("direct"), Some("runbook-1"))
    );
    let download = json!({"groupId": GROUP, "clusterName": "orders", "restore": {"snapshotId": SNAPSHOT, "delivery": {"methodName": "HTTP", "expirationHours": 2}}});
    let outcome = e2e.answer(download.clone()).await;
    assert_eq!(outcome["outcome"], "SUBMITTED");
    assert!(
        outcome["requestId"]
            .as_str()
            .unwrap()
            .starts_with("sha256:"),
        "no key: the fingerprint is the key"
    );
    assert_eq!(e2e.answer(download).await["outcome"], "DUPLICATE");
    let mut dry = command(Some("runbook-dry"));
    dry["dryRun"] = json!(true);
    assert_eq!(e2e.answer(dry).await["outcome"], "DRY_RUN");

    let event = json!({"version": "0", "id": "7bf73129-1428-4cd3-a780-95db273d1602", "detail-type": "Restore Requested", "source": "com.example.runbooks", "account": "123456789012", "time": "2026-11-28T17:06:15Z", "region": "us-east-1", "resources": [], "detail": command(None)});
    let outcome = e2e.answer(event).await;
    assert_eq!(
        (outcome["trigger"].as_str(), outcome["requestId"].as_str()),
        (Some("event"), Some("7bf73129-1428-4cd3-a780-95db273d1602"))
    );

    for unknown in [
        json!({"hello": "world"}),
        json!([1, 2]),
        json!("text"),
        json!({"detail-type": "Something Else", "detail": {}}),
    ] {
        let outcome = e2e.answer(unknown.clone()).await;
        assert_eq!(outcome["outcome"], "REJECTED", "{unknown}");
        assert_eq!(
            codes(&outcome),
            vec![(String::new(), "UNKNOWN_EVENT".to_owned())]
        );
    }
    let invalid = json!({"groupId": "x", "clusterName": "a/b", "restore": {"delivery": {"methodName": "DOWNLOAD"}}});
    let outcome = e2e.answer(invalid).await;
    assert_eq!(outcome["outcome"], "REJECTED");
    assert!(codes(&outcome).len() >= 3);
    assert_eq!(e2e.jobs(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_targets_only_through_an_approved_webhook() {
    let e2e = E2e::start(&[]).await;
    let to_live = with(
        command(Some("k-live")),
        "/restore/delivery/targetClusterName",
        json!("orders-live"),
    );
    let outcome = e2e.answer(to_live.clone()).await;
    assert_eq!(
        codes(&outcome),
        vec![(
            "/restore/delivery".to_owned(),
            "PROTECTED_TARGET".to_owned()
        )]
    );

    let mut by_id = command(None);
    by_id["restore"]["delivery"] = json!({"methodName": "AUTOMATED_RESTORE", "targetGroupId": GROUP, "targetClusterId": PROTECTED_ID});
    let outcome = e2e
        .answer(json!({"schedule": {"executionId": "exec-live"}, "command": by_id}))
        .await;
    assert_eq!(
        code_list(&outcome),
        vec!["PROTECTED_TARGET"],
        "named through Atlas first: {outcome}"
    );
    by_id["restore"]["delivery"]["targetClusterId"] = json!("6affffffffffffffffffffff");
    let outcome = e2e
        .answer(json!({"schedule": {"executionId": "exec-unknown"}, "command": by_id}))
        .await;
    assert_eq!(code_list(&outcome), vec!["UNRESOLVED_TARGET"]);
    assert_eq!(e2e.jobs(), 0);

    let (status, outcome) = e2e.http(signed(&to_live)).await;
    assert_eq!(
        (status, outcome["outcome"].as_str()),
        (202, Some("SUBMITTED")),
        "an approved webhook may"
    );
    assert_eq!(e2e.jobs(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_everywhere_with_the_global_switch() {
    let e2e = E2e::start(&[("DRY_RUN", "true")]).await;
    let (status, outcome) = e2e.http(signed(&command(Some("k-global")))).await;
    assert_eq!(
        (status, outcome["outcome"].as_str()),
        (200, Some("DRY_RUN"))
    );
    assert_eq!(
        e2e.answer(command(Some("k-global-direct"))).await["outcome"],
        "DRY_RUN"
    );
    assert_eq!(
        e2e.stack.atlas.requests_on(Route::CreateRestoreJob).len(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_required_variable_fails_start_up_naming_it() {
    let stack = Stack::start().await;
    let api = RuntimeApi::start().await;
    let env: Vec<(String, String)> = stack
        .function_env()
        .into_iter()
        .filter(|(n, _)| n != "NOTIFY_TOPIC_ARN")
        .collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let mut function =
        FunctionProcess::start(Path::new(env!("CARGO_BIN_EXE_bootstrap")), &api, &env);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while function.exited().is_none() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = function.exited().expect("the function stops at start-up");
    assert!(!status.success());
    assert!(
        function
            .wait_for_output("NOTIFY_TOPIC_ARN is required", Duration::from_secs(5))
            .await,
        "{}",
        function.output()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_restores_through_the_webhook_and_a_schedule() {
    let e2e = E2e::start(&[]).await;
    let mut approved = command(Some("cloud-approval"));
    approved["backupType"] = json!("cloud");
    approved["restore"] = json!({"deliveryType": "automated", "snapshotId": SNAPSHOT, "targetGroupId": GROUP, "targetClusterName": "orders-drill"});
    let (status, outcome) = e2e.http(signed(&approved)).await;
    assert_eq!(
        (
            status,
            outcome["outcome"].as_str(),
            outcome["backupType"].as_str()
        ),
        (202, Some("SUBMITTED"), Some("cloud")),
        "{outcome}"
    );
    assert_eq!(e2e.stack.atlas.created_cloud_jobs(), 1);

    let drill = json!({"groupId": GROUP, "clusterName": "orders", "backupType": "cloud",
        "restore": {"deliveryType": "pointInTime", "targetGroupId": GROUP, "targetClusterName": "orders-copy"},
        "restorePoint": {"minutesAgo": 15}});
    e2e.stack
        .atlas
        .add_cluster(GROUP, "orders-copy", "6a0000000000000000000003", 0);
    let outcome = e2e
        .answer(json!({"schedule": {"executionId": "cloud-exec-1"}, "command": drill}))
        .await;
    assert_eq!(
        (outcome["outcome"].as_str(), outcome["trigger"].as_str()),
        (Some("SUBMITTED"), Some("schedule")),
        "{outcome}"
    );
    assert!(outcome["restore"]["pointInTimeUTCSeconds"].is_i64());
    assert_eq!(e2e.stack.atlas.created_cloud_jobs(), 2);

    let mut live = drill.clone();
    live["restore"]["targetClusterName"] = json!("orders-live");
    let outcome = e2e
        .answer(json!({"schedule": {"executionId": "cloud-exec-2"}, "command": live}))
        .await;
    assert_eq!(
        code_list(&outcome),
        vec!["PROTECTED_TARGET"],
        "pointInTime onto a protected cluster"
    );
    assert_eq!(e2e.stack.atlas.created_cloud_jobs(), 2);
    let kinds: Vec<String> = e2e
        .published(3)
        .await
        .iter()
        .map(|p| {
            format!(
                "{} {}",
                p["outcome"].as_str().unwrap(),
                p["backupType"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec!["SUBMITTED cloud", "SUBMITTED cloud", "REJECTED cloud"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_off_lost_after_queued_was_recorded_is_sent_again_by_the_retried_webhook() {
    use atlas_restore_runner::aws::idempotency::DynamoIdempotencyStore;
    use atlas_restore_runner::command::RestoreCommand;
    use atlas_restore_runner::outcome::Outcome;
    use atlas_restore_runner::ports::{Fresh, IdempotencyStore};

    let e2e = E2e::start_with_work_queue(&[]).await;
    let stack = &e2e.stack;
    // A webhook recorded QUEUED three minutes ago and died before sending the message.
    let lost = command(Some("k-lost-hand-off"));
    let queued_at = Utc::now() - chrono::Duration::minutes(3);
    let fingerprint = RestoreCommand::from_value(&lost, Utc::now())
        .unwrap()
        .fingerprint();
    let store = DynamoIdempotencyStore::new(&stack.sdk, TABLE.into());
    let later = queued_at + chrono::Duration::hours(24);
    let fresh = Fresh {
        key: "k-lost-hand-off",
        fingerprint: &fingerprint,
        dry_run: false,
        attempt: 1,
        now: queued_at,
        lease_until: queued_at,
        expires_at: later,
    };
    assert!(store.put_fresh(&fresh, None).await.unwrap());
    let queued: Outcome = serde_json::from_value(json!({
        "outcome": "QUEUED", "requestId": "k-lost-hand-off", "trigger": "webhook",
        "groupId": GROUP, "clusterName": "orders", "backupType": "legacy",
        "restore": null, "atlas": null, "errors": [], "requestedBy": REQUESTER,
        "approvedBy": APPROVER, "reason": "INC-4211 drop of orders.items",
        "startedAt": queued_at, "finishedAt": queued_at
    }))
    .unwrap();
    store
        .store_outcome("k-lost-hand-off", 1, &queued, queued_at, later, None)
        .await
        .unwrap();

    // The chat bot retries: the command is handed off again, not refused with 409.
    let (status, body) = e2e.http(signed(&lost)).await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (202, Some("QUEUED")),
        "{body}"
    );
    let messages = receive_all(&stack.sdk, &stack.work_queue, 1).await;
    assert_eq!(messages.len(), 1);
    let message = messages[0].body().unwrap().to_owned();
    for delivery in ["m-1", "m-1-again"] {
        assert_eq!(
            e2e.answer(sqs_event(&message, delivery)).await,
            json!({"batchItemFailures": []})
        );
    }
    assert_eq!(e2e.jobs(), 1, "run once");
    let published = e2e.published(1).await;
    assert_eq!(published.len(), 1);
    assert_eq!(published[0]["outcome"], "SUBMITTED");

    // A retry within the grace is still a duplicate of the queued command (409).
    let (status, body) = e2e.http(signed(&command(Some("k-fresh")))).await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = e2e.http(signed(&command(Some("k-fresh")))).await;
    assert_eq!((status, body["outcome"].as_str()), (409, Some("DUPLICATE")));
}
