//! The Step Functions callback (CONTRACT section 8), through the real `bootstrap`: a runbook
//! invokes the function with a command carrying `taskToken`; the function answers at once,
//! follows the restore, sends a heartbeat on every check, and reports the end to the token.
//!
//! moto's Step Functions accepts `SendTask*` for any token without checking it, so a
//! recording proxy sits between the function and moto (`AWS_ENDPOINT_URL_SFN`): the tests
//! read the calls it saw (action, JSON body, status) and make it answer as the real service
//! does when a task has timed out, or when it is unavailable.
mod support;

use serde_json::{Value, json};
use support::atlas_double::{Fault, RecordedAuth, Route};
use support::e2e::*;
use support::events::sqs_event;
use support::lambda_runtime_api::Invocation;
use support::moto::receive_all;
use support::sample::{command, signed, status_lookup, with};
use support::sfn_proxy::{SfnCall, SfnFault, StepFunctionsProxy};

/// A token shaped as Step Functions hands them out (long, base64-like), with a marker that a
/// leak check can find anywhere.
fn token(marker: &str) -> String {
    format!(
        "AQCkAAAAKgAAAAMAAAAAAAAAAVn3yWzB{marker}SECRETTOKENPART7Hq2x0uFvQmZp+Jc/KdR8sT1wYbL4nE6gA9oXiUe5MhCfVjN3rO=="
    )
}

/// The function against moto and the Atlas double, its Step Functions calls through the
/// recording proxy, checking every second, stalling after an hour unless a test says less.
struct Runbook {
    e2e: E2e,
    sfn: StepFunctionsProxy,
}

async fn runbook(extra_env: &[(&str, &str)]) -> Runbook {
    let mut env = vec![("FOLLOW_INTERVAL_SECONDS", "1"), ("FOLLOW_MAX_HOURS", "1")];
    for (name, value) in extra_env {
        env.retain(|(n, _)| n != name);
        env.push((name, value));
    }
    let sfn = StepFunctionsProxy::start().await;
    let endpoint = sfn.endpoint();
    env.push(("AWS_ENDPOINT_URL_SFN", &endpoint));
    let e2e = E2e::start_with_work_queue(&env).await;
    sfn.forward_to(&e2e.stack.moto.endpoint());
    Runbook { e2e, sfn }
}

/// The sample command under `key`, carrying `token`.
fn runbook_command(key: &str, token: &str) -> Value {
    let mut command = command(Some(key));
    command["taskToken"] = json!(token);
    command
}

impl Runbook {
    /// Invokes the function directly, as `lambda:invoke.waitForTaskToken` does.
    async fn invoke(&self, command: Value) -> Value {
        self.e2e.answer(command).await
    }

    /// Submits `key` with `token`: the SUBMITTED outcome and its job's id.
    async fn submit(&self, key: &str, token: &str) -> (Value, String) {
        let submitted = self.invoke(runbook_command(key, token)).await;
        assert_eq!(submitted["outcome"], "SUBMITTED", "{submitted}");
        let job = submitted["atlas"]["jobs"][0]["id"]
            .as_str()
            .expect("a job id")
            .to_owned();
        (submitted, job)
    }

    /// The Atlas double ends `job` with `status` (`FINISHED`, `BROKEN`).
    fn end_job(&self, job: &str, status: &str) {
        self.e2e.stack.atlas.set_job_status(job, status, None);
    }

    /// The one follow-up message queued now (waits up to about 5 s for it).
    async fn follow_up(&self) -> String {
        let messages = receive_all(&self.e2e.stack.sdk, &self.e2e.stack.work_queue, 1).await;
        assert_eq!(
            messages.len(),
            1,
            "one follow-up message\n{}",
            self.e2e.function.output()
        );
        messages[0].body().unwrap().to_owned()
    }

    /// No follow-up message is queued.
    async fn no_follow_up(&self) {
        let messages = receive_all(&self.e2e.stack.sdk, &self.e2e.stack.work_queue, 0).await;
        assert!(messages.is_empty(), "{messages:?}");
    }

    /// Delivers a follow-up message; the batch's answer (`batchItemFailures`).
    async fn deliver(&self, body: &str) -> Value {
        self.e2e.answer(sqs_event(body, "m-follow")).await
    }

    /// Delivers a follow-up message that must be done with (no retry asked).
    async fn deliver_ok(&self, body: &str) {
        assert_eq!(
            self.deliver(body).await,
            json!({"batchItemFailures": []}),
            "{}",
            self.e2e.function.output()
        );
    }

    /// The calls Step Functions accepted, as (action, token).
    fn accepted(&self) -> Vec<(String, String)> {
        self.sfn
            .accepted()
            .iter()
            .map(|c| (c.action.clone(), c.token().to_owned()))
            .collect()
    }

    /// The one end reported (a success or a failure), which must be the last call accepted.
    fn the_end(&self) -> SfnCall {
        let ends: Vec<SfnCall> = self
            .sfn
            .accepted()
            .into_iter()
            .filter(|c| c.action != "SendTaskHeartbeat")
            .collect();
        assert_eq!(ends.len(), 1, "exactly one end: {:?}", self.sfn.calls());
        let last = self.sfn.accepted().pop().unwrap();
        assert_eq!(last, ends[0], "nothing after the end");
        last
    }

    /// The restore POSTs that reached Atlas with valid credentials (a Digest challenge's
    /// first, unauthenticated request is not a restore sent).
    fn atlas_posts(&self) -> usize {
        self.e2e
            .stack
            .atlas
            .requests_on(Route::CreateRestoreJob)
            .iter()
            .filter(|r| !matches!(r.auth, RecordedAuth::None))
            .count()
    }
}

fn action_list(calls: &[(String, String)]) -> Vec<&str> {
    calls.iter().map(|(a, _)| a.as_str()).collect()
}

/// `SendTaskFailure`'s error and parsed cause.
fn failure_of(call: &SfnCall) -> (String, Value) {
    assert_eq!(call.action, "SendTaskFailure", "{call:?}");
    let cause = call.body["cause"].as_str().expect("a cause");
    assert!(cause.chars().count() <= 32_768);
    (
        call.body["error"].as_str().expect("an error").to_owned(),
        serde_json::from_str(cause).expect("the cause is JSON"),
    )
}

/// `SendTaskSuccess`'s output, parsed.
fn output_of(call: &SfnCall) -> Value {
    assert_eq!(call.action, "SendTaskSuccess", "{call:?}");
    let output = call.body["output"].as_str().expect("an output");
    assert!(output.len() <= 256 * 1024);
    serde_json::from_str(output).expect("the output is JSON")
}

/// Submits `key` with `token`, then runs check 1 with the job still running: one heartbeat.
async fn submitted_and_checked_once(runbook: &Runbook, key: &str, token: &str) -> (Value, String) {
    let (submitted, job) = runbook.submit(key, token).await;
    assert!(
        runbook.sfn.calls().is_empty(),
        "nothing is reported at the submission"
    );
    let check_1 = runbook.follow_up().await;
    runbook.deliver_ok(&check_1).await;
    assert_eq!(
        runbook.accepted(),
        [("SendTaskHeartbeat".to_owned(), token.to_owned())]
    );
    (submitted, job)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_restore_reports_heartbeats_then_one_success_with_the_final_outcome() {
    let runbook = runbook(&[]).await;
    let token = token("FINISHED");
    let (_, job) = submitted_and_checked_once(&runbook, "rb-finished", &token).await;
    runbook.end_job(&job, "FINISHED");
    let check_2 = runbook.follow_up().await;
    runbook.deliver_ok(&check_2).await;

    let calls = runbook.accepted();
    assert_eq!(
        action_list(&calls),
        ["SendTaskHeartbeat", "SendTaskHeartbeat", "SendTaskSuccess"]
    );
    assert!(
        calls.iter().all(|(_, t)| *t == token),
        "every call to the token"
    );
    let output = output_of(&runbook.the_end());
    let published = runbook.e2e.published(2).await;
    assert_eq!(published[1]["outcome"], "FINISHED");
    assert_eq!(
        output, published[1],
        "the output is the final outcome as published"
    );
    assert!(output["durationSeconds"].as_u64().is_some());

    // Redelivered checks and the same invocation again report nothing more.
    runbook.deliver_ok(&check_2).await;
    let again = runbook.invoke(runbook_command("rb-finished", &token)).await;
    assert_eq!(again["outcome"], "DUPLICATE");
    assert_eq!(runbook.sfn.accepted().len(), 3, "{:?}", runbook.sfn.calls());
    assert_eq!(runbook.atlas_posts(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_restore_fails_the_task_with_atlas_restore_broken() {
    let runbook = runbook(&[]).await;
    let token = token("BROKEN");
    let (_, job) = submitted_and_checked_once(&runbook, "rb-broken", &token).await;
    runbook.end_job(&job, "BROKEN");
    runbook.deliver_ok(&runbook.follow_up().await).await;
    assert_eq!(
        action_list(&runbook.accepted()),
        ["SendTaskHeartbeat", "SendTaskHeartbeat", "SendTaskFailure"]
    );
    let (error, cause) = failure_of(&runbook.the_end());
    assert_eq!(error, "AtlasRestore.BROKEN");
    assert_eq!(cause["outcome"], "BROKEN");
    assert_eq!(cause["requestId"], "rb-broken");
    assert_eq!(cause["atlas"]["jobs"][0]["id"], job);
    assert_eq!(cause["atlas"]["jobs"][0]["statusName"], "BROKEN");
    assert_eq!(runbook.atlas_posts(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_restore_fails_the_task_with_atlas_restore_stalled() {
    // 0.0005 h = 1.8 s: the first check finds the job running, a later one stalls it.
    let runbook = runbook(&[("FOLLOW_MAX_HOURS", "0.0005")]).await;
    let token = token("STALLED");
    submitted_and_checked_once(&runbook, "rb-stalled", &token).await;
    let mut checks = 1;
    while !runbook
        .accepted()
        .iter()
        .any(|(a, _)| a != "SendTaskHeartbeat")
    {
        runbook.deliver_ok(&runbook.follow_up().await).await;
        checks += 1;
        assert!(checks < 6, "not stalled after {checks} checks");
    }
    let calls = runbook.accepted();
    assert_eq!(
        calls.len(),
        checks + 1,
        "a heartbeat per check, then the end"
    );
    let (error, cause) = failure_of(&runbook.the_end());
    assert_eq!(error, "AtlasRestore.STALLED");
    assert_eq!(cause["outcome"], "STALLED");
    assert!(
        cause["atlas"]["reason"]
            .as_str()
            .unwrap()
            .contains("FOLLOW_MAX_HOURS")
    );
    runbook.no_follow_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_succeeds_at_once_with_its_outcome() {
    let runbook = runbook(&[]).await;
    let token = token("DRYRUN");
    let mut command = runbook_command("rb-dry", &token);
    command["dryRun"] = json!(true);
    let answer = runbook.invoke(command).await;
    assert_eq!(answer["outcome"], "DRY_RUN");
    assert_eq!(action_list(&runbook.accepted()), ["SendTaskSuccess"]);
    assert_eq!(output_of(&runbook.the_end()), answer);
    assert_eq!(runbook.atlas_posts(), 0);
    runbook.no_follow_up().await;
    // The key is freed after the report, as a dry run's is.
    assert_eq!(runbook.e2e.records().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_command_fails_the_task_at_once_naming_its_problems() {
    let runbook = runbook(&[]).await;
    let token = token("REJECTED");
    let bad = with(
        runbook_command("rb-rejected", &token),
        "/clusterName",
        json!("orders/../prod"),
    );
    let answer = runbook.invoke(bad).await;
    assert_eq!(answer["outcome"], "REJECTED");
    assert_eq!(action_list(&runbook.accepted()), ["SendTaskFailure"]);
    let (error, cause) = failure_of(&runbook.the_end());
    assert_eq!(error, "AtlasRestore.REJECTED");
    assert_eq!(cause["errors"][0]["field"], "/clusterName");
    assert_eq!(cause["errors"][0]["code"], "INVALID_FORMAT");
    assert_eq!(runbook.atlas_posts(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_submission_fails_the_task_and_frees_the_key_after_reporting() {
    let runbook = runbook(&[]).await;
    let token = token("FAILED");
    runbook.e2e.stack.atlas.push_fault(
        Route::CreateRestoreJob,
        Fault::Status {
            status: 404,
            error_code: "SNAPSHOT_NOT_FOUND".into(),
            retry_after: None,
        },
    );
    let answer = runbook.invoke(runbook_command("rb-failed", &token)).await;
    assert_eq!(answer["outcome"], "FAILED");
    assert_eq!(action_list(&runbook.accepted()), ["SendTaskFailure"]);
    let (error, cause) = failure_of(&runbook.the_end());
    assert_eq!(error, "AtlasRestore.FAILED");
    assert_eq!(cause["atlas"]["errorCode"], "SNAPSHOT_NOT_FOUND");
    assert_eq!(cause["atlas"]["httpStatus"], 404);
    assert_eq!(runbook.atlas_posts(), 1);
    assert_eq!(
        runbook.e2e.records().await,
        0,
        "a FAILED outcome frees its key"
    );
    runbook.no_follow_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_a_token_makes_no_step_functions_call() {
    let runbook = runbook(&[("FOLLOW_JOBS", "true")]).await;
    let submitted = runbook.invoke(command(Some("rb-no-token"))).await;
    assert_eq!(submitted["outcome"], "SUBMITTED");
    let job = submitted["atlas"]["jobs"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    runbook.deliver_ok(&runbook.follow_up().await).await;
    runbook.end_job(&job, "FINISHED");
    runbook.deliver_ok(&runbook.follow_up().await).await;
    let published = runbook.e2e.published(2).await;
    assert_eq!(published[1]["outcome"], "FINISHED");
    let mut dry = command(Some("rb-no-token-dry"));
    dry["dryRun"] = json!(true);
    assert_eq!(runbook.invoke(dry).await["outcome"], "DRY_RUN");
    let bad = with(command(None), "/clusterName", json!("orders/../prod"));
    assert_eq!(runbook.invoke(bad).await["outcome"], "REJECTED");
    assert!(runbook.sfn.calls().is_empty(), "{:?}", runbook.sfn.calls());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_state_is_reported_to_its_new_token_only() {
    let runbook = runbook(&[]).await;
    let (first, retried, late) = (token("FIRST"), token("RETRIED"), token("LATE"));
    let (_, job) = submitted_and_checked_once(&runbook, "rb-retried", &first).await;
    // The state is retried: the same command with a new token is a DUPLICATE.
    let duplicate = runbook
        .invoke(runbook_command("rb-retried", &retried))
        .await;
    assert_eq!(duplicate["outcome"], "DUPLICATE");
    assert_eq!(duplicate["first"]["outcome"], "SUBMITTED");
    runbook.end_job(&job, "FINISHED");
    runbook.deliver_ok(&runbook.follow_up().await).await;
    let calls = runbook.accepted();
    assert_eq!(
        calls[1..],
        [
            ("SendTaskHeartbeat".to_owned(), retried.clone()),
            ("SendTaskSuccess".to_owned(), retried.clone()),
        ]
    );
    // A retry after the end gets the end at once.
    let after_end = runbook.invoke(runbook_command("rb-retried", &late)).await;
    assert_eq!(after_end["outcome"], "DUPLICATE");
    let calls = runbook.accepted();
    assert_eq!(calls.len(), 4, "{calls:?}");
    assert_eq!(calls[3], ("SendTaskSuccess".to_owned(), late.clone()));
    assert_eq!(output_of(&runbook.sfn.accepted()[3])["outcome"], "FINISHED");
    assert!(
        calls[1..].iter().all(|(_, t)| *t != first),
        "nothing more to the first token"
    );
    assert_eq!(runbook.atlas_posts(), 1, "sent to Atlas once");
    runbook.no_follow_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_task_is_recorded_and_never_called_again() {
    let runbook = runbook(&[]).await;
    let token = token("TIMEDOUT");
    let (_, job) = runbook.submit("rb-timed-out", &token).await;
    runbook
        .sfn
        .fail_next(Some("SendTaskHeartbeat"), SfnFault::TaskTimedOut);
    // The refusal does not fail the check: it is not retried.
    runbook.deliver_ok(&runbook.follow_up().await).await;
    runbook.end_job(&job, "FINISHED");
    runbook.deliver_ok(&runbook.follow_up().await).await;
    let calls = runbook.sfn.calls();
    assert_eq!(
        calls.len(),
        1,
        "one heartbeat, refused, then nothing: {calls:?}"
    );
    assert_eq!(
        (calls[0].action.as_str(), calls[0].status),
        ("SendTaskHeartbeat", 400)
    );
    // The request itself still ends and is published.
    let published = runbook.e2e.published(2).await;
    assert_eq!(published[1]["outcome"], "FINISHED");
    let output = runbook.e2e.function.output();
    assert!(output.contains("TaskTimedOut"), "the refusal is logged");
    assert_eq!(runbook.atlas_posts(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_end_refused_as_timed_out_is_not_retried() {
    let runbook = runbook(&[]).await;
    let token = token("ENDREFUSED");
    let (_, job) = submitted_and_checked_once(&runbook, "rb-end-refused", &token).await;
    runbook.end_job(&job, "FINISHED");
    runbook
        .sfn
        .fail_next(Some("SendTaskSuccess"), SfnFault::TaskTimedOut);
    let check_2 = runbook.follow_up().await;
    runbook.deliver_ok(&check_2).await;
    runbook.deliver_ok(&check_2).await;
    let calls = runbook.sfn.calls();
    let seen: Vec<(&str, u16)> = calls
        .iter()
        .map(|c| (c.action.as_str(), c.status))
        .collect();
    assert_eq!(
        seen,
        [
            ("SendTaskHeartbeat", 200),
            ("SendTaskHeartbeat", 200),
            ("SendTaskSuccess", 400)
        ]
    );
    assert_eq!(runbook.e2e.published(2).await.len(), 2, "published once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_functions_unavailable_is_retried_and_the_end_reported_once() {
    let runbook = runbook(&[]).await;
    let token = token("UNAVAILABLE");
    let (_, job) = submitted_and_checked_once(&runbook, "rb-unavailable", &token).await;
    runbook.end_job(&job, "FINISHED");
    runbook.sfn.fail_all(SfnFault::Unavailable);
    let check_2 = runbook.follow_up().await;
    let answer = runbook.deliver(&check_2).await;
    assert_eq!(
        answer["batchItemFailures"].as_array().map(Vec::len),
        Some(1),
        "the check is retried: {answer}\n{}",
        runbook.e2e.function.output()
    );
    assert!(runbook.sfn.calls().iter().any(|c| c.status == 500));
    // The final outcome was published before the report failed.
    let published = runbook.e2e.published(2).await;
    assert_eq!(published.len(), 2);
    assert_eq!(published[1]["outcome"], "FINISHED");

    // Step Functions is back; SQS delivers the check again: the end is reported, once.
    runbook.sfn.heal();
    runbook.deliver_ok(&check_2).await;
    runbook.deliver_ok(&check_2).await;
    let ends: Vec<SfnCall> = runbook
        .sfn
        .accepted()
        .into_iter()
        .filter(|c| c.action == "SendTaskSuccess")
        .collect();
    assert_eq!(ends.len(), 1, "{:?}", runbook.sfn.calls());
    assert_eq!(output_of(&ends[0])["outcome"], "FINISHED");
    assert!(
        runbook.e2e.published(0).await.is_empty(),
        "not published again"
    );
    assert_eq!(runbook.atlas_posts(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_functions_unavailable_at_a_first_outcome_fails_the_invocation_and_the_retry_reports()
{
    let runbook = runbook(&[]).await;
    let token = token("FIRSTDOWN");
    runbook.sfn.fail_all(SfnFault::Throttled);
    runbook.e2e.stack.atlas.push_fault(
        Route::CreateRestoreJob,
        Fault::Status {
            status: 400,
            error_code: "INVALID_CLUSTER_CONFIGURATION".into(),
            retry_after: None,
        },
    );
    let failed = runbook
        .e2e
        .invoke(runbook_command("rb-first-down", &token))
        .await;
    let Invocation::Error { error_type, .. } = failed else {
        panic!("the invocation fails so it is retried: {failed:?}");
    };
    assert_eq!(error_type, "DependencyFailure");
    // The retry (the state's Retry, or Lambda's) answers the stored FAILED and reports it,
    // without sending to Atlas again.
    runbook.sfn.heal();
    let answer = runbook
        .invoke(runbook_command("rb-first-down", &token))
        .await;
    assert_eq!(answer["outcome"], "FAILED", "{answer}");
    let ends: Vec<SfnCall> = runbook.sfn.accepted();
    assert_eq!(ends.len(), 1, "{:?}", runbook.sfn.calls());
    assert_eq!(failure_of(&ends[0]).0, "AtlasRestore.FAILED");
    assert_eq!(runbook.atlas_posts(), 1, "never sent twice");
    assert_eq!(
        runbook.e2e.records().await,
        0,
        "the key is freed once reported"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_from_a_webhook_or_a_schedule_is_rejected_and_never_called() {
    let runbook = runbook(&[]).await;
    let webhook_token = token("WEBHOOK");
    let (status, body) = runbook
        .e2e
        .http(signed(&runbook_command("rb-webhook", &webhook_token)))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["outcome"], "REJECTED");
    assert!(
        body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["field"] == "/taskToken" && e["code"] == "CONFLICT"),
        "{body}"
    );
    let schedule = json!({
        "schedule": {"executionId": "c0f1e2d3-4b5a-4978-8a1b-2c3d4e5f6a70", "scheduledTime": "2026-11-28T03:00:00Z"},
        "command": with(command(None), "/clusterName", json!("orders")),
    });
    let mut schedule = schedule;
    schedule["command"]["taskToken"] = json!(token("SCHEDULE"));
    let answer = runbook.invoke(schedule).await;
    assert_eq!(answer["outcome"], "REJECTED");
    assert!(
        answer["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["field"] == "/taskToken" && e["code"] == "CONFLICT"),
        "{answer}"
    );
    assert!(runbook.sfn.calls().is_empty(), "{:?}", runbook.sfn.calls());
    assert_eq!(runbook.atlas_posts(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_appears_in_no_log_line_outcome_notification_or_lookup() {
    let runbook = runbook(&[]).await;
    let marker = "LEAKCHECK";
    let token = token(marker);
    let secret_part = "SECRETTOKENPART";
    // A followed request to FINISHED (with a heartbeat refused once, then a retried state),
    // a REJECTED one, and a webhook that tries to pass it.
    let (submitted, job) = submitted_and_checked_once(&runbook, "rb-leak", &token).await;
    let retried = token.replace(marker, "LEAKRETRY");
    let duplicate = runbook.invoke(runbook_command("rb-leak", &retried)).await;
    runbook.end_job(&job, "FINISHED");
    runbook
        .sfn
        .fail_next(Some("SendTaskHeartbeat"), SfnFault::Throttled);
    runbook.deliver_ok(&runbook.follow_up().await).await;
    let bad = with(
        runbook_command("rb-leak-bad", &token),
        "/clusterName",
        json!("orders/../prod"),
    );
    let rejected = runbook.invoke(bad).await;
    let (_, webhook_answer) = runbook
        .e2e
        .http(signed(&runbook_command("rb-leak-hook", &token)))
        .await;
    let (status, lookup) = runbook.e2e.http(status_lookup("rb-leak")).await;
    assert_eq!(status, 200);
    assert_eq!(lookup["outcome"], "FINISHED");
    // The calls did carry it (the proxy saw it): the check below is not vacuous.
    assert!(runbook.sfn.calls().iter().any(|c| c.token() == token));

    let published = runbook.e2e.published(3).await;
    let notifications = runbook.e2e.stack.moto.data()["sns"].to_string();
    let answers = [submitted, duplicate, rejected, webhook_answer, lookup];
    let mut places = vec![
        (
            "the function's log".to_owned(),
            runbook.e2e.function.output(),
        ),
        ("what SNS holds".to_owned(), notifications),
    ];
    places.extend(
        published
            .iter()
            .map(|p| ("a published outcome".to_owned(), p.to_string())),
    );
    places.extend(
        answers
            .iter()
            .map(|a| ("an answer".to_owned(), a.to_string())),
    );
    for (place, text) in places {
        assert!(
            !text.contains(secret_part),
            "the token appears in {place}: {}",
            text.chars().take(3000).collect::<String>()
        );
    }
    // The log names the token by its fingerprint only.
    assert!(runbook.e2e.function.output().contains("sha256:"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_heartbeat_does_not_stop_following() {
    let runbook = runbook(&[]).await;
    let token = token("HEARTBEATDOWN");
    let (_, job) = runbook.submit("rb-heartbeat-down", &token).await;
    runbook.sfn.fail_all(SfnFault::Unavailable);
    // The check completes and queues the next one; the heartbeat is only logged as failed.
    runbook.deliver_ok(&runbook.follow_up().await).await;
    assert!(runbook.sfn.calls().iter().all(|c| c.status == 500));
    assert!(!runbook.sfn.calls().is_empty());
    runbook.sfn.heal();
    runbook.end_job(&job, "FINISHED");
    runbook.deliver_ok(&runbook.follow_up().await).await;
    assert_eq!(
        action_list(&runbook.accepted()),
        ["SendTaskHeartbeat", "SendTaskSuccess"]
    );
    assert!(
        runbook
            .e2e
            .function
            .output()
            .contains("the heartbeat failed")
    );
    assert_eq!(runbook.atlas_posts(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_work_queue_a_token_is_rejected_and_its_task_told_so() {
    let sfn = StepFunctionsProxy::start().await;
    let e2e = E2e::start(&[("AWS_ENDPOINT_URL_SFN", &sfn.endpoint())]).await;
    sfn.forward_to(&e2e.stack.moto.endpoint());
    let token = token("NOQUEUE");
    let answer = e2e.answer(runbook_command("rb-no-queue", &token)).await;
    assert_eq!(answer["outcome"], "REJECTED");
    assert_eq!(answer["errors"][0]["field"], "/taskToken");
    assert_eq!(answer["errors"][0]["code"], "FOLLOW_NEEDS_QUEUE");
    let calls = sfn.accepted();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].token(), token);
    let (error, cause) = failure_of(&calls[0]);
    assert_eq!(error, "AtlasRestore.REJECTED");
    assert_eq!(cause["errors"][0]["code"], "FOLLOW_NEEDS_QUEUE");
    assert_eq!(e2e.jobs(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_under_a_followed_request_s_key_never_takes_its_token() {
    let runbook = runbook(&[]).await;
    let (real, dry) = (token("REALRUN"), token("DRYUNDER"));
    let (_, job) = runbook.submit("rb-dry-under", &real).await;
    let mut dry_run = runbook_command("rb-dry-under", &dry);
    dry_run["dryRun"] = json!(true);
    assert_eq!(runbook.invoke(dry_run).await["outcome"], "DUPLICATE");
    runbook.end_job(&job, "FINISHED");
    runbook.deliver_ok(&runbook.follow_up().await).await;
    let calls = runbook.accepted();
    assert_eq!(
        calls,
        [
            ("SendTaskHeartbeat".to_owned(), real.clone()),
            ("SendTaskSuccess".to_owned(), real.clone()),
        ]
    );
    assert_eq!(runbook.atlas_posts(), 1);
}
