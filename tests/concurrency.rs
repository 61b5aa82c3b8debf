//! Concurrency (issue 8, point 3): the handler run concurrently in one process with the real
//! adapters (Atlas over HTTP to the double; Secrets Manager, DynamoDB and SNS on moto, which
//! the harness serialises as real DynamoDB's conditional writes would be atomic).
mod support;

use atlas_restore_runner::handler::{DeployedApp, Invocation};
use chrono::Utc;
use serde_json::Value;
use support::sample::{command, signed};
use support::stack::*;

async fn deliver_all(app: &DeployedApp, events: Vec<Value>) -> Vec<(u64, Value)> {
    let invocation = Invocation {
        request_id: "concurrent".into(),
        deadline: Utc::now() + chrono::Duration::seconds(60),
    };
    let answers = futures_join_all(events.iter().map(|event| app.handle(event, &invocation))).await;
    answers
        .into_iter()
        .map(|answer| {
            let answer = answer.expect("no dependency failure");
            (
                answer["statusCode"].as_u64().unwrap(),
                serde_json::from_str(answer["body"].as_str().unwrap()).unwrap(),
            )
        })
        .collect()
}

/// Polls every future on one task, so all 50 are in flight together.
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futures.map(Box::pin).collect();
    let mut results: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, result) in pinned.iter_mut().zip(results.iter_mut()) {
            if result.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(output) => *result = Some(output),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    results
        .into_iter()
        .map(|r| r.expect("every future finished"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_deliveries_of_one_command_create_one_job_and_forty_nine_duplicates() {
    let stack = Stack::start().await;
    let app = stack.app(&[]);
    let event = signed(&command(Some("approval-concurrent")));
    let answers = deliver_all(&app, vec![event; 50]).await;

    let submitted: Vec<&(u64, Value)> = answers
        .iter()
        .filter(|(_, o)| o["outcome"] == "SUBMITTED")
        .collect();
    let duplicates: Vec<&(u64, Value)> = answers
        .iter()
        .filter(|(_, o)| o["outcome"] == "DUPLICATE")
        .collect();
    assert_eq!(submitted.len(), 1, "{answers:?}");
    assert_eq!(submitted[0].0, 202);
    assert_eq!(duplicates.len(), 49);
    for (status, outcome) in &duplicates {
        match outcome.get("first") {
            // 409 while the first attempt holds the right to publish its stored outcome: it
            // may still be publishing (docs/IDEMPOTENCY.md), so the duplicate is in flight.
            Some(first) => {
                assert_eq!(first["outcome"], "SUBMITTED", "{outcome}");
                assert!(matches!(*status, 200 | 409), "{status} {outcome}");
            }
            None => assert_eq!(*status, 409, "still running"),
        }
    }
    let in_flight = duplicates
        .iter()
        .filter(|(status, _)| *status == 409)
        .count();
    assert!(
        in_flight > 0,
        "the deliveries overlapped: some found the first still running"
    );
    assert_eq!(stack.atlas.created_jobs(), 1, "exactly one job");
    assert_eq!(stack.moto.count("Publish"), 1, "published once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_different_commands_at_once_create_one_job_each() {
    let stack = Stack::start().await;
    let app = stack.app(&[]);
    let events: Vec<Value> = (0..50)
        .map(|i| signed(&command(Some(&format!("approval-{i}")))))
        .collect();
    let answers = deliver_all(&app, events).await;
    assert!(
        answers
            .iter()
            .all(|(status, outcome)| *status == 202 && outcome["outcome"] == "SUBMITTED"),
        "{answers:?}"
    );
    let mut ids: Vec<&str> = answers
        .iter()
        .map(|(_, o)| o["atlas"]["jobs"][0]["id"].as_str().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 50, "fifty distinct jobs");
    assert_eq!(stack.atlas.created_jobs(), 50);
    assert_eq!(stack.moto.count("Publish"), 50);
}
