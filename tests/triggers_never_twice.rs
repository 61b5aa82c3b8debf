//! "Never twice" through the real `bootstrap` (issue 13): the paths a review found to a second
//! destructive POST or a lost outcome, each driven the way it happens in production: a function
//! instance killed mid-call, a webhook re-sent by the approver, an old queue message redriven,
//! an SQS-shaped event invoked directly, a policy changed while a command waited in the queue.

mod support;

use std::time::Duration;

use atlas_restore_runner::aws::idempotency::DynamoIdempotencyStore;
use atlas_restore_runner::ports::{IdempotencyRecord, IdempotencyStore};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use serde_json::{Value, json};
use support::atlas_double::{Fault, Route};
use support::e2e::*;
use support::events::{hand_off, sqs_event};
use support::lambda_runtime_api::Invocation;
use support::moto::receive_all;
use support::sample::{command, signed, status_lookup};
use support::stack::*;

/// The one message the webhook handed to the work queue.
async fn handed_off(e2e: &E2e) -> String {
    let messages = receive_all(&e2e.stack.sdk, &e2e.stack.work_queue, 1).await;
    assert_eq!(messages.len(), 1, "one hand-off message");
    messages[0].body().expect("a message body").to_owned()
}

async fn record(e2e: &E2e, key: &str) -> Option<IdempotencyRecord> {
    DynamoIdempotencyStore::new(&e2e.stack.sdk, TABLE.into())
        .read(key)
        .await
        .expect("the record can be read")
}

/// The authenticated POSTs Atlas processed (the unauthenticated Digest challenge excluded).
fn posts(e2e: &E2e) -> usize {
    e2e.stack.atlas.authenticated_posts(Route::CreateRestoreJob)
}

/// Delivery D1 claims the queued command, Atlas creates the job, and the instance dies before
/// the answer comes back. Its lease (a 10 s invocation deadline) runs out.
async fn first_delivery_dies_after_atlas_created_the_job(e2e: &mut E2e, message: &str) {
    e2e.stack.atlas.push_fault(
        Route::CreateRestoreJob,
        Fault::ProcessThenDelay(Duration::from_secs(120)),
    );
    let atlas = &e2e.stack.atlas;
    let function = &mut e2e.function;
    let dying = e2e.api.invoke(
        sqs_event(message, "m-1"),
        Duration::from_secs(10),
        Duration::from_secs(60),
    );
    let killed = async {
        for _ in 0..100 {
            if atlas.created_jobs() >= 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(atlas.created_jobs(), 1, "Atlas created the job");
        function.kill();
    };
    let (invocation, ()) =
        tokio::join!(tokio::time::timeout(Duration::from_secs(20), dying), killed);
    assert!(
        !matches!(invocation, Ok(Invocation::Response(_))),
        "the first delivery never answered: {invocation:?}"
    );
    e2e.stack.atlas.clear_faults();
    e2e.restart(&[]);
    // Past the dead delivery's lease (its invocation deadline).
    tokio::time::sleep(Duration::from_secs(11)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_sent_webhook_after_a_delivery_died_mid_post_adopts_the_job_instead_of_wiping_twice() {
    let mut e2e = E2e::start_with_work_queue(&[]).await;
    let the_command = command(Some("k-crash"));
    let (status, _) = e2e.http(signed(&the_command)).await;
    assert_eq!(status, 202);
    let message = handed_off(&e2e).await;
    first_delivery_dies_after_atlas_created_the_job(&mut e2e, &message).await;
    let marked = record(&e2e, "k-crash").await.expect("the record stays");
    assert!(
        marked.sending.is_some(),
        "the record says the dead delivery may have sent: {marked:?}"
    );

    // The approver re-sends the webhook; its delivery must look for the job first.
    let (status, body) = e2e.http(signed(&the_command)).await;
    assert_eq!((status, body["outcome"].as_str()), (202, Some("QUEUED")));
    let again = handed_off(&e2e).await;
    assert_eq!(
        e2e.answer(sqs_event(&again, "m-2")).await,
        json!({"batchItemFailures": []})
    );
    assert_eq!(e2e.jobs(), 1, "the target is wiped once");
    assert_eq!(posts(&e2e), 1, "one restore POST reached Atlas");
    let published = e2e.published(1).await;
    assert_eq!(published.len(), 1, "{published:?}");
    assert_eq!(published[0]["outcome"], "SUBMITTED");
    assert_eq!(published[0]["atlas"]["reconciled"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_redelivering_the_message_of_a_delivery_that_died_mid_post_adopts_the_job() {
    let mut e2e = E2e::start_with_work_queue(&[]).await;
    let (status, _) = e2e.http(signed(&command(Some("k-redelivered")))).await;
    assert_eq!(status, 202);
    let message = handed_off(&e2e).await;
    first_delivery_dies_after_atlas_created_the_job(&mut e2e, &message).await;

    // SQS delivers the same message again after its visibility timeout.
    assert_eq!(
        e2e.answer(sqs_event(&message, "m-1")).await,
        json!({"batchItemFailures": []})
    );
    assert_eq!((e2e.jobs(), posts(&e2e)), (1, 1));
    let published = e2e.published(1).await;
    assert_eq!(published.len(), 1, "{published:?}");
    assert_eq!(
        (
            published[0]["outcome"].as_str(),
            published[0]["atlas"]["reconciled"].as_bool()
        ),
        (Some("SUBMITTED"), Some(true))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_message_redriven_after_its_key_was_released_sends_nothing() {
    let e2e = E2e::start_with_work_queue(&[]).await;
    let (status, _) = e2e.http(signed(&command(Some("k-refused")))).await;
    assert_eq!(status, 202);
    let message = handed_off(&e2e).await;
    e2e.stack.atlas.push_fault(
        Route::CreateRestoreJob,
        Fault::Status {
            status: 400,
            error_code: "INVALID_ATTRIBUTE".into(),
            retry_after: None,
        },
    );
    e2e.answer(sqs_event(&message, "m-1")).await;
    assert_eq!(e2e.published(1).await[0]["outcome"], "FAILED");
    let requests_before = e2e.stack.atlas.requests_on(Route::CreateRestoreJob).len();
    assert!(
        record(&e2e, "k-refused").await.is_none(),
        "FAILED frees the key"
    );

    // Days later the message is redriven from the dead-letter queue.
    assert_eq!(
        e2e.answer(sqs_event(&message, "m-redriven")).await,
        json!({"batchItemFailures": []}),
        "dropped, not retried"
    );
    assert_eq!(
        (
            e2e.jobs(),
            e2e.stack.atlas.requests_on(Route::CreateRestoreJob).len()
        ),
        (0, requests_before),
        "no second POST"
    );
    assert!(e2e.published(0).await.is_empty(), "nothing published");
    assert!(
        e2e.function
            .wait_for_output("was dropped", Duration::from_secs(5))
            .await,
        "a warning says so\n{}",
        e2e.function.output()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sqs_shaped_direct_invoke_with_a_signed_body_never_reaches_atlas() {
    // Whoever may invoke the function, holding one validly signed body, tries to skip the
    // queue's claim, the 300 s window and PROTECTED_CLUSTERS.
    let e2e = E2e::start_with_work_queue(&[("PROTECTED_CLUSTERS", "orders-drill")]).await;
    let body = command(Some("k-forged")).to_string();
    let signed_long_ago = Utc::now().timestamp() - 86_400;
    let message = hand_off(&body, SIGNING_SECRET, signed_long_ago);
    assert_eq!(
        e2e.answer(sqs_event(&message.to_string(), "m-forged"))
            .await,
        json!({"batchItemFailures": []})
    );
    assert_eq!((e2e.jobs(), posts(&e2e)), (0, 0));
    assert!(record(&e2e, "k-forged").await.is_none(), "no key taken");
    assert!(e2e.published(0).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_command_whose_approver_was_removed_is_rejected_published_and_its_key_freed() {
    let mut e2e = E2e::start_with_work_queue(&[]).await;
    let (status, _) = e2e.http(signed(&command(Some("k-revoked")))).await;
    assert_eq!(status, 202);
    let message = handed_off(&e2e).await;
    // APPROVERS changes while the command waits in the queue.
    e2e.restart(&[("APPROVERS", "U0SOMEONEELSE")]);
    assert_eq!(
        e2e.answer(sqs_event(&message, "m-1")).await,
        json!({"batchItemFailures": []})
    );
    assert_eq!(posts(&e2e), 0, "nothing sent");
    let published = e2e.published(1).await;
    assert_eq!(published.len(), 1, "{published:?}");
    assert_eq!(published[0]["outcome"], "REJECTED");
    assert_eq!(published[0]["trigger"], "webhook");
    assert_eq!(published[0]["errors"][0]["field"], "/approvedBy");
    assert_eq!(published[0]["errors"][0]["code"], "APPROVER_NOT_ALLOWED");
    assert!(record(&e2e, "k-revoked").await.is_none(), "the key is free");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_run_after_a_dry_run_whose_publish_failed_is_submitted() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let unreachable = format!("http://{}", closed.local_addr().expect("its address"));
    drop(closed);
    let mut e2e = E2e::start(&[("AWS_ENDPOINT_URL_SNS", unreachable.as_str())]).await;
    let mut dry = command(Some("k-dry-then-real"));
    dry["dryRun"] = json!(true);
    let failed = e2e.invoke(dry).await;
    assert!(
        matches!(failed, Invocation::Error { .. }),
        "SNS is down: the dry run's invocation fails to be retried: {failed:?}"
    );
    e2e.restart(&[("AWS_ENDPOINT_URL_SNS", "")]);
    let outcome = e2e.answer(command(Some("k-dry-then-real"))).await;
    assert_eq!(outcome["outcome"], "SUBMITTED", "{outcome}");
    assert_eq!(e2e.jobs(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_is_held_for_the_ttl_after_the_latest_outcome_not_after_the_first_attempt() {
    let e2e = E2e::start_with_work_queue(&[]).await;
    let (status, _) = e2e.http(signed(&command(Some("k-ttl")))).await;
    assert_eq!(status, 202);
    let message = handed_off(&e2e).await;
    // The delivery comes a few seconds after the hand-off.
    tokio::time::sleep(Duration::from_secs(3)).await;
    e2e.answer(sqs_event(&message, "m-1")).await;
    let record = record(&e2e, "k-ttl")
        .await
        .expect("SUBMITTED keeps the key");
    let submitted = record.latest_outcome().expect("an outcome");
    let ttl = chrono::Duration::seconds(86_400);
    assert!(
        record.expires_at.timestamp() >= (submitted.finished_at + ttl).timestamp(),
        "expires {} < SUBMITTED at {} + the TTL",
        record.expires_at,
        submitted.finished_at
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_with_characters_sqs_refuses_is_still_handed_off_and_run() {
    let e2e = E2e::start_with_work_queue(&[]).await;
    let mut the_command = command(Some("k-noncharacters"));
    the_command["reason"] = json!("INC-4211 \u{FFFE}\u{FFFF}");
    let (status, body) = e2e.http(signed(&the_command)).await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (202, Some("QUEUED")),
        "{body}"
    );
    let message = handed_off(&e2e).await;
    e2e.answer(sqs_event(&message, "m-1")).await;
    assert_eq!(e2e.jobs(), 1);
    let published = e2e.published(1).await;
    assert_eq!(published[0]["reason"], "INC-4211 \u{FFFE}\u{FFFF}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_lookup_of_an_expired_record_is_404() {
    let e2e = E2e::start(&[]).await;
    assert_eq!(
        e2e.answer(command(Some("k-old"))).await["outcome"],
        "SUBMITTED"
    );
    let (status, _) = e2e.http(status_lookup("k-old")).await;
    assert_eq!(status, 200);
    // Expired, but not yet deleted (DynamoDB deletes expired items up to days later).
    aws_sdk_dynamodb::Client::new(&e2e.stack.sdk)
        .update_item()
        .table_name(TABLE)
        .key("id", AttributeValue::S("k-old".into()))
        .update_expression("SET expiration = :past")
        .expression_attribute_values(
            ":past",
            AttributeValue::N((Utc::now().timestamp() - 60).to_string()),
        )
        .send()
        .await
        .expect("the record is updated");
    let (status, body): (u16, Value) = e2e.http(status_lookup("k-old")).await;
    assert_eq!(status, 404, "{body}");
}
