//! Following a restore to its end (CONTRACT section 6), through the real `bootstrap`: the
//! follow-up messages the function puts on the work queue (moto SQS, delay honoured) are
//! delivered back to it as SQS events, as the event source mapping would, while the Atlas
//! double moves the jobs through their states.
mod support;

use atlas_restore_runner::handler::{DeployedApp, Invocation};
use chrono::Utc;
use serde_json::{Value, json};
use support::atlas_double::{CloudJobState, Fault, Route};
use support::e2e::*;
use support::events::{get_request, sqs_event};
use support::moto::receive_all;
use support::sample::{command, signed, status_lookup, with};
use support::stack::*;

/// Checks every second; stalls after `FOLLOW_MAX_HOURS` (an hour unless a test says less).
async fn followed(extra_env: &[(&str, &str)]) -> E2e {
    let mut env = vec![
        ("FOLLOW_JOBS", "true"),
        ("FOLLOW_INTERVAL_SECONDS", "1"),
        ("FOLLOW_MAX_HOURS", "1"),
    ];
    for (name, value) in extra_env {
        env.retain(|(n, _)| n != name);
        env.push((name, value));
    }
    let e2e = E2e::start_with_work_queue(&env).await;
    e2e.stack
        .atlas
        .add_cluster(GROUP, "sharded", "6a0000000000000000000003", 2);
    e2e.stack.atlas.add_snapshot(
        GROUP,
        "sharded",
        SNAPSHOT,
        Utc::now() - chrono::Duration::hours(1),
        true,
    );
    e2e
}

/// A direct command (a runbook) restoring `cluster` into `orders-drill`.
fn drill(key: &str, cluster: &str) -> Value {
    let mut command = command(Some(key));
    command["clusterName"] = json!(cluster);
    command
}

/// The follow-up messages now on the work queue (waits up to about 5 s for `expected`).
async fn follow_ups(e2e: &E2e, expected: usize) -> Vec<String> {
    receive_all(&e2e.stack.sdk, &e2e.stack.work_queue, expected)
        .await
        .iter()
        .map(|m| m.body().unwrap().to_owned())
        .collect()
}

/// The one follow-up message that must be queued now, as JSON and as its raw body.
async fn one_follow_up(e2e: &E2e) -> (Value, String) {
    let messages = follow_ups(e2e, 1).await;
    assert_eq!(
        messages.len(),
        1,
        "exactly one follow-up message per request: {messages:?}\n{}",
        e2e.function.output()
    );
    (
        serde_json::from_str(&messages[0]).unwrap(),
        messages[0].clone(),
    )
}

/// Delivers a work-queue message; the function must complete it.
async fn deliver(e2e: &E2e, body: &str) {
    let answer = e2e.answer(sqs_event(body, "m-follow")).await;
    assert_eq!(
        answer,
        json!({"batchItemFailures": []}),
        "{}",
        e2e.function.output()
    );
}

fn job_ids(outcome: &Value) -> Vec<String> {
    outcome["atlas"]["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_owned())
        .collect()
}

fn statuses(outcome: &Value) -> Vec<(String, String)> {
    outcome["atlas"]["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["id"].as_str().unwrap().to_owned(),
                j["statusName"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_is_followed_to_finished_with_its_measured_duration() {
    let e2e = followed(&[]).await;
    let submitted = e2e.submit(drill("drill-finished", "orders")).await;
    let job = job_ids(&submitted).remove(0);

    // The check waits out its delay: nothing is visible at once.
    assert!(
        follow_ups(&e2e, 0).await.is_empty(),
        "the follow-up is delayed by FOLLOW_INTERVAL_SECONDS"
    );
    let (message, check_1) = one_follow_up(&e2e).await;
    assert_eq!(
        message,
        json!({"followUp": {"requestId": "drill-finished", "check": 1}})
    );

    // Still running: the next check is queued, nothing published.
    deliver(&e2e, &check_1).await;
    let (message, check_2) = one_follow_up(&e2e).await;
    assert_eq!(message["followUp"]["check"], 2);

    e2e.stack.atlas.set_job_status(&job, "FINISHED", None);
    deliver(&e2e, &check_2).await;
    let published = e2e.published(2).await;
    let kinds: Vec<&str> = published
        .iter()
        .map(|o| o["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["SUBMITTED", "FINISHED"]);
    let finished = &published[1];
    assert_eq!(finished["requestId"], "drill-finished");
    assert_eq!(finished["trigger"], "direct");
    assert_eq!(finished["restore"], submitted["restore"]);
    assert_eq!(statuses(finished), [(job.clone(), "FINISHED".to_owned())]);
    // From the submission to the check that saw the end: at least the two intervals waited.
    let duration = finished["durationSeconds"]
        .as_u64()
        .expect("durationSeconds");
    assert!((1..60).contains(&duration), "durationSeconds {duration}");
    let submitted_at: chrono::DateTime<Utc> =
        submitted["finishedAt"].as_str().unwrap().parse().unwrap();
    let seen_at: chrono::DateTime<Utc> = finished["finishedAt"].as_str().unwrap().parse().unwrap();
    assert_eq!((seen_at - submitted_at).num_seconds() as u64, duration);

    // The end needs no further check; both GETs of the job went to Atlas.
    assert!(
        follow_ups(&e2e, 0).await.is_empty(),
        "no check after the end"
    );
    assert_eq!(e2e.stack.atlas.requests_on(Route::GetRestoreJob).len(), 2);

    // Redelivered checks (SQS is at-least-once) do nothing: no read, no second outcome.
    deliver(&e2e, &check_2).await;
    deliver(&e2e, &check_1).await;
    assert_eq!(e2e.stack.atlas.requests_on(Route::GetRestoreJob).len(), 2);
    assert!(e2e.published(0).await.is_empty(), "published once");
    assert!(follow_ups(&e2e, 0).await.is_empty());
    assert_eq!(e2e.jobs(), 1, "following never creates a job");

    // The same command again: a duplicate of the first outcome.
    let duplicate = e2e.answer(drill("drill-finished", "orders")).await;
    assert_eq!(duplicate["outcome"], "DUPLICATE");
    assert_eq!(duplicate["first"]["outcome"], "SUBMITTED");
    assert!(follow_ups(&e2e, 0).await.is_empty(), "not followed twice");

    // The status lookup answers the final outcome and the history.
    let (status, body) = e2e.http(status_lookup("drill-finished")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outcome"], "FINISHED");
    assert_eq!(body["durationSeconds"], duration);
    assert_eq!(body["history"], json!(["SUBMITTED", "FINISHED"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_job_ends_the_request_broken() {
    let e2e = followed(&[]).await;
    let submitted = e2e.submit(drill("drill-broken", "orders")).await;
    let job = job_ids(&submitted).remove(0);
    e2e.stack.atlas.set_job_status(&job, "BROKEN", None);
    let (_, check_1) = one_follow_up(&e2e).await;
    deliver(&e2e, &check_1).await;
    let published = e2e.published(2).await;
    assert_eq!(published[1]["outcome"], "BROKEN");
    assert_eq!(statuses(&published[1]), [(job, "BROKEN".to_owned())]);
    assert!(published[1]["durationSeconds"].is_u64());
    assert!(follow_ups(&e2e, 0).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_automated_restore_whose_file_transfer_is_ready_is_followed_until_it_finishes() {
    let e2e = followed(&[]).await;
    let submitted = e2e.submit(drill("drill-ready", "orders")).await;
    let job = job_ids(&submitted).remove(0);
    // Atlas answers the job of an automated restore with method HTTP, its targets kept; its
    // delivery (the file transfer to the target) may be READY while the restore still runs.
    let served = e2e.stack.atlas.jobs().remove(0);
    assert_eq!(served["delivery"]["methodName"], "HTTP");
    assert_eq!(served["delivery"]["targetClusterName"], "orders-drill");
    e2e.stack
        .atlas
        .set_job_status(&job, "IN_PROGRESS", Some("READY"));
    let (_, check_1) = one_follow_up(&e2e).await;
    deliver(&e2e, &check_1).await;
    let published = e2e.published(1).await;
    assert_eq!(
        published.len(),
        1,
        "only the SUBMITTED: not FINISHED at delivery READY: {published:?}"
    );
    assert_eq!(published[0]["outcome"], "SUBMITTED");
    let (message, check_2) = one_follow_up(&e2e).await;
    assert_eq!(message["followUp"]["check"], 2, "still running");

    // Its own statusName ends it.
    e2e.stack
        .atlas
        .set_job_status(&job, "FINISHED", Some("READY"));
    deliver(&e2e, &check_2).await;
    let published = e2e.published(1).await;
    assert_eq!(published.len(), 1);
    assert_eq!(published[0]["outcome"], "FINISHED");
    assert_eq!(statuses(&published[0]), [(job, "FINISHED".to_owned())]);
    assert!(
        follow_ups(&e2e, 0).await.is_empty(),
        "no check after the end"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_ends_when_its_file_is_ready() {
    let e2e = followed(&[]).await;
    let download = with(
        drill("download-ready", "orders"),
        "/restore/delivery",
        json!({"methodName": "HTTP"}),
    );
    let submitted = e2e.submit(download).await;
    let job = job_ids(&submitted).remove(0);
    e2e.stack
        .atlas
        .set_job_status(&job, "IN_PROGRESS", Some("IN_PROGRESS"));
    let (_, check_1) = one_follow_up(&e2e).await;
    deliver(&e2e, &check_1).await;
    let (_, check_2) = one_follow_up(&e2e).await;
    e2e.stack
        .atlas
        .set_job_status(&job, "IN_PROGRESS", Some("READY"));
    deliver(&e2e, &check_2).await;
    let published = e2e.published(2).await;
    let kinds: Vec<&str> = published
        .iter()
        .map(|o| o["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["SUBMITTED", "FINISHED"]);
    assert!(
        follow_ups(&e2e, 0).await.is_empty(),
        "no check after the end"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharded_batch_with_one_broken_shard_is_broken_once_every_job_ended() {
    let e2e = followed(&[]).await;
    let submitted = e2e.submit(drill("drill-sharded", "sharded")).await;
    let jobs = job_ids(&submitted);
    assert_eq!(jobs.len(), 3, "two shards and the config server");

    // One shard broke, the others still run: the request has not ended.
    e2e.stack.atlas.set_job_status(&jobs[1], "BROKEN", None);
    e2e.stack.atlas.set_job_status(&jobs[0], "FINISHED", None);
    let (_, check_1) = one_follow_up(&e2e).await;
    deliver(&e2e, &check_1).await;
    let (message, check_2) = one_follow_up(&e2e).await;
    assert_eq!(message["followUp"]["check"], 2);
    assert_eq!(e2e.published(1).await.len(), 1, "only the SUBMITTED so far");

    e2e.stack.atlas.set_job_status(&jobs[2], "FINISHED", None);
    deliver(&e2e, &check_2).await;
    let published = e2e.published(1).await;
    assert_eq!(published.len(), 1);
    assert_eq!(published[0]["outcome"], "BROKEN");
    assert_eq!(
        statuses(&published[0]),
        [
            (jobs[0].clone(), "FINISHED".to_owned()),
            (jobs[1].clone(), "BROKEN".to_owned()),
            (jobs[2].clone(), "FINISHED".to_owned()),
        ]
    );
    let batch = &submitted["atlas"]["jobs"][0]["batchId"];
    assert!(batch.is_string());
    assert!(
        published[0]["atlas"]["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| &j["batchId"] == batch)
    );
    // 3 jobs read at each of the two checks.
    assert_eq!(e2e.stack.atlas.requests_on(Route::GetRestoreJob).len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_not_ended_in_time_is_stalled() {
    // 0.0005 h = 1.8 s: the first check (after 1 s) finds it running, the second stalls it.
    let e2e = followed(&[("FOLLOW_MAX_HOURS", "0.0005")]).await;
    let submitted = e2e.submit(drill("drill-stalled", "orders")).await;
    let job = job_ids(&submitted).remove(0);
    let mut checks = 0;
    let stalled = loop {
        let (_, message) = one_follow_up(&e2e).await;
        deliver(&e2e, &message).await;
        checks += 1;
        let published = e2e.published(0).await;
        if let Some(outcome) = published.into_iter().find(|o| o["outcome"] != "SUBMITTED") {
            break outcome;
        }
        assert!(checks < 5, "not stalled after {checks} checks");
    };
    assert!(checks >= 2, "the first check came before FOLLOW_MAX_HOURS");
    assert_eq!(stalled["outcome"], "STALLED");
    assert_eq!(statuses(&stalled), [(job, "IN_PROGRESS".to_owned())]);
    assert!(
        stalled["atlas"]["reason"]
            .as_str()
            .unwrap()
            .contains("FOLLOW_MAX_HOURS"),
        "{stalled}"
    );
    assert!(stalled["durationSeconds"].as_u64().unwrap() >= 1);
    assert!(
        follow_ups(&e2e, 0).await.is_empty(),
        "no check after STALLED"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloud_restore_is_followed_through_the_v2_api() {
    let e2e = followed(&[]).await;
    let command = json!({
        "groupId": GROUP, "clusterName": "orders", "backupType": "cloud",
        "idempotencyKey": "drill-cloud",
        "restore": {"deliveryType": "automated", "snapshotId": SNAPSHOT, "targetGroupId": GROUP, "targetClusterName": "orders-drill"},
        "reason": "quarterly DR drill"
    });
    let submitted = e2e.submit(command).await;
    let job = job_ids(&submitted).remove(0);
    let (_, check_1) = one_follow_up(&e2e).await;
    deliver(&e2e, &check_1).await;
    let (_, check_2) = one_follow_up(&e2e).await;
    e2e.stack.atlas.set_cloud_job_state(
        &job,
        CloudJobState {
            finished_at: Some(Utc::now()),
            ..CloudJobState::default()
        },
    );
    deliver(&e2e, &check_2).await;
    let published = e2e.published(2).await;
    assert_eq!(published[1]["outcome"], "FINISHED", "{published:?}");
    assert_eq!(published[1]["backupType"], "cloud");
    assert_eq!(statuses(&published[1]), [(job, "FINISHED".to_owned())]);
    let reads = e2e.stack.atlas.requests_on(Route::GetCloudRestoreJob);
    assert_eq!(reads.len(), 2);
    assert!(
        reads.iter().all(|r| r
            .headers
            .iter()
            .any(|(n, v)| n == "accept" && v.contains("application/vnd.atlas.2023-01-01+json"))),
        "the versioned media type of the v2 API"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_up_survives_atlas_and_sns_failures_and_publishes_once() {
    let e2e = followed(&[]).await;
    let submitted = e2e.submit(drill("drill-faults", "orders")).await;
    let job = job_ids(&submitted).remove(0);
    assert_eq!(e2e.published(1).await.len(), 1);

    // Atlas answers 500 to the read: not a reason to stop, nor to fail the message.
    e2e.stack.atlas.push_fault(
        Route::GetRestoreJob,
        Fault::Status {
            status: 500,
            error_code: "UNEXPECTED_ERROR".into(),
            retry_after: None,
        },
    );
    let (_, check_1) = one_follow_up(&e2e).await;
    deliver(&e2e, &check_1).await;
    assert_eq!(e2e.stack.atlas.pending_faults(), 0, "the fault was met");
    let (message, check_2) = one_follow_up(&e2e).await;
    assert_eq!(message["followUp"]["check"], 2);

    // The end is seen, but SNS fails: the message is listed for retry, nothing is lost.
    e2e.stack.atlas.set_job_status(&job, "FINISHED", None);
    let sns = aws_sdk_sns::Client::new(&e2e.stack.sdk);
    sns.delete_topic()
        .topic_arn(&e2e.stack.topic_arn)
        .send()
        .await
        .unwrap();
    let answer = e2e.answer(sqs_event(&check_2, "m-sns-down")).await;
    assert_eq!(
        answer,
        json!({"batchItemFailures": [{"itemIdentifier": "m-sns-down"}]}),
        "{}",
        e2e.function.output()
    );
    let (status, body) = e2e.http(status_lookup("drill-faults")).await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (200, Some("SUBMITTED")),
        "an unpublished final outcome is not shown yet: {body}"
    );
    assert_eq!(body["history"], json!(["SUBMITTED"]));

    // SNS is back; SQS delivers the message again: the stored final outcome is published once.
    let topic = sns
        .create_topic()
        .name("restore-outcomes")
        .send()
        .await
        .unwrap();
    assert_eq!(
        topic.topic_arn.as_deref(),
        Some(e2e.stack.topic_arn.as_str())
    );
    let outcomes =
        support::moto::sqs_subscribed_queue(&e2e.stack.sdk, &e2e.stack.topic_arn, false).await;
    let reads = e2e.stack.atlas.requests_on(Route::GetRestoreJob).len();
    deliver(&e2e, &check_2).await;
    deliver(&e2e, &check_2).await;
    let published = receive_all(&e2e.stack.sdk, &outcomes, 1).await;
    assert_eq!(published.len(), 1, "published once");
    let finished: Value = serde_json::from_str(published[0].body().unwrap()).unwrap();
    assert_eq!(finished["outcome"], "FINISHED");
    assert_eq!(
        e2e.stack.atlas.requests_on(Route::GetRestoreJob).len(),
        reads,
        "the stored final outcome is published as it was seen, not read again"
    );
    let (_, body) = e2e.http(status_lookup("drill-faults")).await;
    assert_eq!(body["outcome"], "FINISHED");
    assert_eq!(body["history"], json!(["SUBMITTED", "FINISHED"]));
    assert!(follow_ups(&e2e, 0).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_malformed_follow_ups_do_nothing() {
    let e2e = followed(&[]).await;
    let submitted = e2e.submit(drill("drill-forged", "orders")).await;
    let (_, check_1) = one_follow_up(&e2e).await;
    for forged in [
        // An unknown request, a check that is not due, and nonsense.
        json!({"followUp": {"requestId": "no-such-request", "check": 1}}),
        json!({"followUp": {"requestId": "drill-forged", "check": 7}}),
        json!({"followUp": {"requestId": "drill-forged"}}),
        json!({"followUp": "drill-forged"}),
    ] {
        deliver(&e2e, &forged.to_string()).await;
    }
    assert!(
        e2e.stack.atlas.requests_on(Route::GetRestoreJob).is_empty(),
        "no job was read"
    );
    assert!(follow_ups(&e2e, 0).await.is_empty(), "no check was queued");
    assert_eq!(e2e.published(1).await.len(), 1, "only the SUBMITTED");
    // The real check still runs.
    e2e.stack
        .atlas
        .set_job_status(&job_ids(&submitted)[0], "FINISHED", None);
    deliver(&e2e, &check_1).await;
    assert_eq!(e2e.published(1).await[0]["outcome"], "FINISHED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_lookup_is_signed_and_follows_a_webhook_from_queued_to_finished() {
    let e2e = followed(&[("NOTIFY_FORMAT", "chatbot")]).await;
    let (status, body) = e2e.http(signed(&command(Some("approval-9c1e")))).await;
    assert_eq!((status, body["outcome"].as_str()), (202, Some("QUEUED")));
    let (status, body) = e2e.http(status_lookup("approval-9c1e")).await;
    assert_eq!(status, 200);
    assert_eq!(
        (body["outcome"].as_str(), &body["history"]),
        (Some("QUEUED"), &json!(["QUEUED"]))
    );

    // The hand-off, delivered: SUBMITTED, and then the follow-up.
    let (_, hand_off) = one_follow_up(&e2e).await;
    deliver(&e2e, &hand_off).await;
    let (_, body) = e2e.http(status_lookup("approval-9c1e")).await;
    assert_eq!(body["outcome"], "SUBMITTED");
    assert_eq!(body["history"], json!(["QUEUED", "SUBMITTED"]));
    let job = body["atlas"]["jobs"][0]["id"].as_str().unwrap().to_owned();
    e2e.stack.atlas.set_job_status(&job, "FINISHED", None);
    let (message, check_1) = one_follow_up(&e2e).await;
    assert_eq!(message["followUp"]["requestId"], "approval-9c1e");
    deliver(&e2e, &check_1).await;
    let (_, body) = e2e.http(status_lookup("approval-9c1e")).await;
    assert_eq!(body["outcome"], "FINISHED");
    assert_eq!(body["trigger"], "webhook");
    assert_eq!(body["history"], json!(["QUEUED", "SUBMITTED", "FINISHED"]));

    // Both notifications in one chat thread: the request's id.
    let published = e2e.published(2).await;
    let threads: Vec<(&str, &str)> = published
        .iter()
        .map(|m| {
            (
                m["metadata"]["threadId"].as_str().unwrap(),
                m["metadata"]["eventType"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        threads,
        [
            ("approval-9c1e", "SUBMITTED"),
            ("approval-9c1e", "FINISHED")
        ]
    );
    assert!(
        published[1]["content"]["title"]
            .as_str()
            .unwrap()
            .starts_with("Restore FINISHED: `orders`"),
        "{}",
        published[1]
    );

    // Unknown: 404. Unsigned, signed with the wrong secret, or signed for another id: 401.
    let (status, body) = e2e.http(status_lookup("approval-unknown")).await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("approval-unknown")
    );
    for (what, event) in [
        (
            "unsigned",
            get_request("/restore/approval-9c1e", "GET /restore/approval-9c1e", None),
        ),
        (
            "wrong secret",
            get_request(
                "/restore/approval-9c1e",
                "GET /restore/approval-9c1e",
                Some("not-the-secret"),
            ),
        ),
        (
            "signed for another id",
            get_request(
                "/restore/approval-9c1e",
                "GET /restore/approval-unknown",
                Some(SIGNING_SECRET),
            ),
        ),
        (
            "signed as a POST body",
            get_request("/restore/approval-9c1e", "", Some(SIGNING_SECRET)),
        ),
    ] {
        let (status, body) = e2e.http(event).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert_eq!(body, json!({"message": "Unauthorized"}), "{what}");
    }
    // Under a stage name, and with an id that needs percent-encoding, signed as decoded.
    let (status, body) = e2e
        .http(get_request(
            "/prod/restore/approval-9c1e",
            "GET /restore/approval-9c1e",
            Some(SIGNING_SECRET),
        ))
        .await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("FINISHED")));
    let (status, _) = e2e
        .http(get_request(
            "/restore/sha256%3Aabc",
            "GET /restore/sha256:abc",
            Some(SIGNING_SECRET),
        ))
        .await;
    assert_eq!(status, 404, "decoded and looked up as sha256:abc");

    // No secret in anything the follow-up or the lookups wrote (debug logs, notifications).
    let logged = e2e
        .function
        .wait_for_output(
            "\"outcome\":\"FINISHED\"",
            std::time::Duration::from_secs(5),
        )
        .await;
    let output = e2e.function.output();
    for secret in [PRIVATE_KEY, SIGNING_SECRET] {
        assert!(!output.contains(secret), "a secret reached the log");
        assert!(
            published.iter().all(|m| !m.to_string().contains(secret)),
            "a secret reached a notification"
        );
    }
    assert!(logged, "the final outcome's log line was captured");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_up_that_cannot_be_queued_is_started_by_the_retry() {
    let stack = Stack::start().await;
    let invocation = Invocation {
        request_id: "inv-1".into(),
        deadline: Utc::now() + chrono::Duration::seconds(30),
    };
    let gone = format!("{}/123456789012/no-such-queue", stack.moto.endpoint());
    let broken = followed_app(&stack, &[("WORK_QUEUE_URL", &gone)]);
    let command = drill("drill-sqs-down", "orders");
    let error = broken
        .handle(&command, &invocation)
        .await
        .expect_err("the invocation fails so that Lambda retries it");
    assert!(error.to_string().contains("SQS"), "{error}");
    // The restore itself went through and its outcome is not lost.
    assert_eq!(stack.atlas.created_jobs(), 1);
    let published = receive_all(&stack.sdk, &stack.outcomes_queue, 1).await;
    assert_eq!(published.len(), 1);

    // The retry: a duplicate, which starts the follow-up the first attempt could not.
    let fixed = followed_app(&stack, &[]);
    let answer = fixed.handle(&command, &invocation).await.unwrap();
    assert_eq!(answer["outcome"], "DUPLICATE");
    assert_eq!(stack.atlas.created_jobs(), 1, "never sent twice");
    let messages = receive_all(&stack.sdk, &stack.work_queue, 1).await;
    let bodies: Vec<Value> = messages
        .iter()
        .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
        .collect();
    assert_eq!(
        bodies,
        [json!({"followUp": {"requestId": "drill-sqs-down", "check": 1}})]
    );
    // A third delivery finds the follow-up started: no second chain.
    fixed.handle(&command, &invocation).await.unwrap();
    assert!(
        receive_all(&stack.sdk, &stack.work_queue, 0)
            .await
            .is_empty(),
        "one follow-up chain per request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_whose_table_is_unavailable_is_listed_for_retry_and_runs_later() {
    let stack = Stack::start().await;
    let invocation = Invocation {
        request_id: "inv-2".into(),
        deadline: Utc::now() + chrono::Duration::seconds(30),
    };
    let app = followed_app(&stack, &[]);
    let command = drill("drill-dynamodb-down", "orders");
    assert_eq!(
        app.handle(&command, &invocation).await.unwrap()["outcome"],
        "SUBMITTED"
    );
    let messages = receive_all(&stack.sdk, &stack.work_queue, 1).await;
    let check_1 = messages[0].body().unwrap().to_owned();
    let job = stack.atlas.jobs()[0]["id"].as_str().unwrap().to_owned();
    stack.atlas.set_job_status(&job, "FINISHED", None);

    // DynamoDB answers with an error (the table is not there): the message is retried.
    let no_table = followed_app(&stack, &[("IDEMPOTENCY_TABLE", "no-such-table")]);
    let answer = no_table
        .handle(&sqs_event(&check_1, "m-ddb"), &invocation)
        .await
        .unwrap();
    assert_eq!(
        answer,
        json!({"batchItemFailures": [{"itemIdentifier": "m-ddb"}]})
    );
    assert!(stack.atlas.requests_on(Route::GetRestoreJob).is_empty());

    // Its redelivery, with DynamoDB back, runs the check: FINISHED, published once.
    let answer = app
        .handle(&sqs_event(&check_1, "m-ddb"), &invocation)
        .await
        .unwrap();
    assert_eq!(answer, json!({"batchItemFailures": []}));
    let published = receive_all(&stack.sdk, &stack.outcomes_queue, 2).await;
    let kinds: Vec<String> = published
        .iter()
        .map(|m| {
            let outcome: Value = serde_json::from_str(m.body().unwrap()).unwrap();
            outcome["outcome"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(kinds, ["SUBMITTED", "FINISHED"]);
}

/// The handler in this process, following jobs through the stack's work queue every second.
fn followed_app(stack: &Stack, overrides: &[(&str, &str)]) -> DeployedApp {
    let mut env = vec![
        ("WORK_QUEUE_URL", stack.work_queue.as_str()),
        ("FOLLOW_JOBS", "true"),
        ("FOLLOW_INTERVAL_SECONDS", "1"),
    ];
    for (name, value) in overrides {
        env.retain(|(n, _)| n != name);
        env.push((name, value));
    }
    stack.app(&env)
}
