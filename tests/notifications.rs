//! Outcomes published through `SnsNotifier` to SNS on moto (server mode, real AWS SDK), read
//! back from SQS queues subscribed with raw delivery, and from moto's own record of what was
//! published (the `Subject`, which raw delivery drops).
mod support;

use std::collections::{BTreeMap, HashMap};

use atlas_restore_runner::aws::sns::SnsNotifier;
use atlas_restore_runner::config::NotifyFormat;
use atlas_restore_runner::notify;
use atlas_restore_runner::outcome::{
    AtlasSummary, ErrorCode, JobSummary, Outcome, OutcomeKind, Problem, Trigger,
};
use atlas_restore_runner::ports::Notifier;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::moto::{MotoLease, MotoPool, moto, receive_all, sqs_subscribed_queue};

const GROUP: &str = "5e2211c17a3e5a48f5497de3";

fn at(seconds: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 17, 6, seconds).unwrap()
}

fn legacy_body(target: &str) -> Value {
    json!({
        "snapshotId": "5f1c6b1e2a9b4f3d8c7e6a5b",
        "delivery": {
            "methodName": "AUTOMATED_RESTORE",
            "targetGroupId": GROUP,
            "targetClusterName": target
        }
    })
}

fn job(id: &str, batch: Option<&str>, target: &str) -> JobSummary {
    JobSummary {
        id: id.into(),
        batch_id: batch.map(str::to_owned),
        status_name: Some("IN_PROGRESS".into()),
        target_cluster_name: Some(target.into()),
        delivery_status_name: None,
    }
}

fn base(kind: OutcomeKind, request_id: &str) -> Outcome {
    Outcome {
        outcome: kind,
        request_id: Some(request_id.into()),
        trigger: Trigger::Webhook,
        group_id: Some(GROUP.into()),
        cluster_name: Some("orders".into()),
        backup_type: Some("legacy".into()),
        restore: Some(legacy_body("orders-drill")),
        atlas: None,
        errors: vec![],
        requested_by: Some("U024BE7LH".into()),
        approved_by: Some("U0G9QF9C6".into()),
        reason: Some("INC-4211 drop of orders.items".into()),
        started_at: at(15),
        finished_at: at(16),
        first: None,
        notified: None,
        duration_seconds: None,
        drill: None,
        report_url: None,
    }
}

/// One outcome of every published kind (two SUBMITTED: one job, and a sharded batch), plus a
/// REJECTED event of no known shape, which has no key, no cluster and no backup type.
fn outcomes() -> Vec<Outcome> {
    let submitted = Outcome {
        atlas: Some(AtlasSummary {
            http_status: Some(200),
            jobs: vec![job("6a1b2c3d4e5f6a7b8c9d0e1f", None, "orders-drill")],
            ..AtlasSummary::default()
        }),
        ..base(OutcomeKind::Submitted, "approval-7f3a")
    };
    let sharded = Outcome {
        trigger: Trigger::Schedule,
        cluster_name: Some("catalog".into()),
        restore: Some(legacy_body("catalog-drill")),
        atlas: Some(AtlasSummary {
            http_status: Some(200),
            jobs: vec![
                job(
                    "6b000000000000000000000a",
                    Some("batch-77"),
                    "catalog-drill",
                ),
                job(
                    "6b000000000000000000000b",
                    Some("batch-77"),
                    "catalog-drill",
                ),
                job(
                    "6b000000000000000000000c",
                    Some("batch-77"),
                    "catalog-drill",
                ),
            ],
            reconciled: true,
            ..AtlasSummary::default()
        }),
        approved_by: None,
        requested_by: None,
        reason: None,
        ..base(OutcomeKind::Submitted, "exec-2f9e")
    };
    let dry_run = Outcome {
        trigger: Trigger::Direct,
        ..base(OutcomeKind::DryRun, "dry-run-\u{00FC}n\u{00EF}code")
    };
    let rejected = Outcome {
        backup_type: None,
        restore: None,
        errors: vec![
            Problem::new(
                "/restore/snapshotID",
                ErrorCode::UnknownField,
                "unknown field \"snapshotID\"; did you mean \"snapshotId\"?",
            ),
            Problem::new(
                "/approvedBy",
                ErrorCode::SelfApproval,
                "the approver is the requester",
            ),
        ],
        ..base(OutcomeKind::Rejected, "approval-bad1")
    };
    let failed = Outcome {
        atlas: Some(AtlasSummary {
            http_status: Some(400),
            error_code: Some("INVALID_SNAPSHOT_ID".into()),
            detail: Some("Snapshot 5f1c6b1e2a9b4f3d8c7e6a5b not found.".into()),
            reason: Some("Bad Request".into()),
            ..AtlasSummary::default()
        }),
        ..base(OutcomeKind::Failed, "approval-f41l")
    };
    let unknown = Outcome {
        trigger: Trigger::Event,
        atlas: Some(AtlasSummary {
            http_status: Some(502),
            ..AtlasSummary::default()
        }),
        ..base(OutcomeKind::Unknown, "event-0c1d")
    };
    let unknown_event = Outcome {
        request_id: None,
        trigger: Trigger::Direct,
        group_id: None,
        cluster_name: None,
        backup_type: None,
        restore: None,
        requested_by: None,
        approved_by: None,
        reason: None,
        errors: vec![Problem::new(
            "",
            ErrorCode::UnknownEvent,
            "the event has no known shape",
        )],
        ..base(OutcomeKind::Rejected, "unused")
    };
    let finished = Outcome {
        duration_seconds: Some(42 * 60 + 30),
        drill: None,
        report_url: None,
        atlas: Some(AtlasSummary {
            jobs: vec![JobSummary {
                status_name: Some("FINISHED".into()),
                ..job("6a1b2c3d4e5f6a7b8c9d0e1f", None, "orders-drill")
            }],
            ..AtlasSummary::default()
        }),
        ..base(OutcomeKind::Finished, "drill-0042")
    };
    let mut broken_jobs = sharded.atlas.clone().unwrap().jobs;
    for (job, status) in broken_jobs
        .iter_mut()
        .zip(["FINISHED", "BROKEN", "FINISHED"])
    {
        job.status_name = Some(status.into());
    }
    let broken = Outcome {
        outcome: OutcomeKind::Broken,
        duration_seconds: Some(2 * 3600 + 5 * 60 + 7),
        drill: None,
        report_url: None,
        atlas: Some(AtlasSummary {
            jobs: broken_jobs,
            ..AtlasSummary::default()
        }),
        ..sharded.clone()
    };
    let stalled = Outcome {
        duration_seconds: Some(48 * 3600 + 12),
        drill: None,
        report_url: None,
        atlas: Some(AtlasSummary {
            jobs: vec![job("6a1b2c3d4e5f6a7b8c9d0e1f", None, "orders-drill")],
            reason: Some("not every job ended within 48 hours of the submission".into()),
            ..AtlasSummary::default()
        }),
        ..base(OutcomeKind::Stalled, "drill-0043")
    };
    vec![
        submitted,
        sharded,
        dry_run,
        rejected,
        failed,
        unknown,
        unknown_event,
        finished,
        broken,
        stalled,
    ]
}

/// The subject each outcome of [`outcomes`] must carry, in order.
const SUBJECTS: [&str; 10] = [
    "SUBMITTED: restore of orders into orders-drill (approval-7f3a)",
    "SUBMITTED: restore of catalog into catalog-drill (exec-2f9e)",
    "DRY_RUN: restore of orders into orders-drill (dry-run-?n?code)",
    "REJECTED: restore of orders (approval-bad1)",
    "FAILED: restore of orders into orders-drill (approval-f41l)",
    "UNKNOWN: restore of orders into orders-drill (event-0c1d)",
    "REJECTED: restore command",
    "FINISHED: restore of orders into orders-drill (drill-0042)",
    "BROKEN: restore of catalog into catalog-drill (exec-2f9e)",
    "STALLED: restore of orders into orders-drill (drill-0043)",
];

/// The message attributes each outcome must carry, exactly.
fn expected_attributes(outcome: &Outcome) -> BTreeMap<String, String> {
    let mut expected = BTreeMap::new();
    expected.insert("outcome".to_owned(), outcome.outcome.as_str().to_owned());
    let trigger = serde_json::to_value(outcome.trigger).unwrap();
    expected.insert("trigger".to_owned(), trigger.as_str().unwrap().to_owned());
    for (name, value) in [
        ("groupId", &outcome.group_id),
        ("clusterName", &outcome.cluster_name),
        ("backupType", &outcome.backup_type),
    ] {
        if let Some(value) = value {
            expected.insert(name.to_owned(), value.clone());
        }
    }
    expected
}

/// `(MessageGroupId, MessageDeduplicationId)` each outcome must carry on a FIFO topic.
fn expected_fifo_ids(outcome: &Outcome) -> (String, String) {
    match outcome.request_id.as_deref() {
        Some("approval-7f3a") => (format!("{GROUP}/orders"), "approval-7f3a:SUBMITTED".into()),
        Some("exec-2f9e") if outcome.outcome == OutcomeKind::Submitted => {
            (format!("{GROUP}/catalog"), "exec-2f9e:SUBMITTED".into())
        }
        // The final outcome of a followed request has its own id: both reach a FIFO topic.
        Some("exec-2f9e") => (format!("{GROUP}/catalog"), "exec-2f9e:BROKEN".into()),
        Some("drill-0042") => (format!("{GROUP}/orders"), "drill-0042:FINISHED".into()),
        Some("drill-0043") => (format!("{GROUP}/orders"), "drill-0043:STALLED".into()),
        Some("approval-bad1") => (format!("{GROUP}/orders"), "approval-bad1:REJECTED".into()),
        Some("approval-f41l") => (format!("{GROUP}/orders"), "approval-f41l:FAILED".into()),
        Some("event-0c1d") => (format!("{GROUP}/orders"), "event-0c1d:UNKNOWN".into()),
        // Not a valid FIFO id as it is: a readable prefix and the SHA-256 of the raw id.
        Some(raw @ "dry-run-\u{00FC}n\u{00EF}code") => {
            let raw = format!("{raw}:DRY_RUN");
            let digest = hex::encode(Sha256::digest(raw.as_bytes()));
            (
                format!("{GROUP}/orders"),
                format!("dry-run-_n_code:DRY_RUN~{digest}"),
            )
        }
        // No key: the outcome's own digest stands in for it.
        None => {
            let digest = hex::encode(Sha256::digest(serde_json::to_string(outcome).unwrap()));
            ("-/-".into(), format!("outcome-{digest}:REJECTED"))
        }
        Some(other) => panic!("no FIFO ids written down for {other}"),
    }
}

async fn create_topic(config: &aws_config::SdkConfig, name: &str) -> String {
    let sns = aws_sdk_sns::Client::new(config);
    let mut create = sns.create_topic().name(name);
    if name.ends_with(".fifo") {
        create = create.attributes("FifoTopic", "true");
    }
    create
        .send()
        .await
        .expect("create the topic")
        .topic_arn()
        .expect("CreateTopic answers the ARN")
        .to_owned()
}

/// What moto recorded as published to `topic_arn`: message body -> subject.
fn subjects_by_message(moto: &MotoLease, topic_arn: &str) -> HashMap<String, Option<String>> {
    let data = moto.data();
    let topic = data["sns"]["Topic"]
        .as_array()
        .expect("moto lists its topics")
        .iter()
        .find(|t| t["arn"] == topic_arn)
        .unwrap_or_else(|| panic!("moto has no topic {topic_arn}: {data:#}"));
    topic["sent_notifications"]
        .as_array()
        .expect("moto lists what was published")
        .iter()
        .map(|sent| {
            (
                sent[1].as_str().unwrap().to_owned(),
                sent[2].as_str().map(str::to_owned),
            )
        })
        .collect()
}

/// How many SNS topics moto holds (moto leaves out a service it has not served yet).
fn topics(moto: &MotoLease) -> usize {
    moto.data()["sns"]["Topic"].as_array().map_or(0, Vec::len)
}

fn message_attributes(message: &Message) -> BTreeMap<String, String> {
    message
        .message_attributes()
        .map(|attributes| {
            attributes
                .iter()
                .map(|(name, value)| {
                    assert_eq!(value.data_type(), "String", "attribute {name}");
                    let text = value
                        .string_value()
                        .expect("a String attribute has a value");
                    (name.clone(), text.to_owned())
                })
                .collect()
        })
        .unwrap_or_default()
}

fn system_attribute(message: &Message, name: MessageSystemAttributeName) -> Option<String> {
    message.attributes().and_then(|a| a.get(&name)).cloned()
}

fn no_nulls(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Array(items) => items.iter().all(no_nulls),
        Value::Object(map) => map.values().all(no_nulls),
        _ => true,
    }
}

/// The outcome a received message is about, told by its body.
fn outcome_of<'a>(outcomes: &'a [Outcome], body: &Value, format: NotifyFormat) -> &'a Outcome {
    outcomes
        .iter()
        .find(|outcome| match format {
            NotifyFormat::Json => *body == serde_json::to_value(outcome).unwrap(),
            NotifyFormat::Chatbot => {
                body["metadata"]["eventType"] == outcome.outcome.as_str()
                    && body["metadata"].get("threadId").and_then(Value::as_str)
                        == outcome.request_id.as_deref()
            }
        })
        .unwrap_or_else(|| panic!("a message about no outcome published: {body:#}"))
}

/// What a person reads in the chat form, checked against the outcome itself.
fn check_chat_content(outcome: &Outcome, body: &Value) {
    assert_eq!(body["version"], "1.0");
    assert_eq!(body["source"], "custom");
    assert_eq!(body["content"]["textType"], "client-markdown");
    assert_eq!(body["metadata"]["eventType"], outcome.outcome.as_str());
    assert!(no_nulls(body), "null in {body:#}");
    let title = body["content"]["title"].as_str().unwrap();
    let description = body["content"]["description"].as_str().unwrap();
    assert!(description.chars().count() <= 8_000);
    let steps: Vec<&str> = body["content"]
        .get("nextSteps")
        .and_then(Value::as_array)
        .map(|steps| steps.iter().map(|s| s.as_str().unwrap()).collect())
        .unwrap_or_default();
    let context = body["metadata"]["additionalContext"].as_object().unwrap();
    assert!(context.values().all(Value::is_string), "{context:?}");
    if let Some(source) = &outcome.cluster_name {
        assert!(title.contains(&format!("`{source}`")), "{title}");
        assert!(
            description.contains(&format!("`{source}`")),
            "{description}"
        );
    }
    if let Some(target) = outcome
        .restore
        .as_ref()
        .and_then(|r| r["delivery"]["targetClusterName"].as_str())
    {
        assert!(title.contains(&format!("`{target}`")), "{title}");
        assert!(
            description.contains(&format!("*Target:* `{target}`")),
            "{description}"
        );
    }
    for person in [&outcome.requested_by, &outcome.approved_by]
        .into_iter()
        .flatten()
    {
        assert!(
            description.contains(&format!("`{person}`")),
            "{description}"
        );
    }
    if let Some(reason) = &outcome.reason {
        assert!(
            description.contains(&format!("*Reason:* {reason}")),
            "{description}"
        );
    }
    for job in outcome.atlas.iter().flat_map(|a| &a.jobs) {
        assert!(
            description.contains(&format!("`{}`", job.id)),
            "{description}"
        );
        if let Some(batch) = &job.batch_id {
            assert!(
                description.contains(&format!("*Batch:* `{batch}`")),
                "{description}"
            );
        }
    }
    match outcome.outcome {
        OutcomeKind::Submitted => {
            let ids: Vec<&str> = outcome
                .atlas
                .iter()
                .flat_map(|a| &a.jobs)
                .map(|j| j.id.as_str())
                .collect();
            assert_eq!(context["jobIds"], ids.join(","));
            assert!(title.starts_with("Restore submitted"), "{title}");
        }
        OutcomeKind::DryRun => {
            assert!(title.starts_with("Dry run"), "{title}");
            assert!(description.contains("Nothing was sent to Atlas"));
        }
        OutcomeKind::Rejected => {
            assert!(!steps.is_empty());
            for problem in &outcome.errors {
                assert!(
                    description.contains(&format!("`{}`", problem.code)),
                    "{description}"
                );
                if !problem.field.is_empty() {
                    assert!(
                        steps[0].contains(&format!("`{}`", problem.field)),
                        "{steps:?}"
                    );
                }
            }
        }
        OutcomeKind::Failed => {
            let atlas = outcome.atlas.as_ref().unwrap();
            let code = atlas.error_code.as_deref().unwrap();
            let detail = atlas.detail.as_deref().unwrap();
            assert!(title.contains(code), "{title}");
            assert!(description.contains(detail), "{description}");
            assert!(
                steps[0].contains(code) && steps[0].contains(detail),
                "{steps:?}"
            );
        }
        OutcomeKind::Unknown => {
            assert!(
                steps[0].contains("created since 2026-11-28T17:06:15.000Z"),
                "{steps:?}"
            );
            assert!(steps[0].contains("do not resend blindly"), "{steps:?}");
        }
        OutcomeKind::Finished => {
            assert_eq!(
                title,
                "Restore FINISHED: `orders` \u{2192} `orders-drill` in 42 min 30 s"
            );
            assert!(
                description.contains("measured recovery time"),
                "{description}"
            );
            assert!(
                description.contains("`6a1b2c3d4e5f6a7b8c9d0e1f` FINISHED"),
                "{description}"
            );
            assert_eq!(context["durationSeconds"], "2550");
            assert!(steps[1].contains("durationSeconds 2550"), "{steps:?}");
        }
        OutcomeKind::Broken => {
            assert_eq!(
                title,
                "Restore BROKEN: `catalog` \u{2192} `catalog-drill` after 2 h 05 min"
            );
            assert!(
                description.contains("1 of 3 jobs did not end well"),
                "{description}"
            );
            assert!(
                steps[0].contains("`6b000000000000000000000b`")
                    && !steps[0].contains("`6b000000000000000000000a`"),
                "only the broken job is named: {steps:?}"
            );
            assert!(steps[1].contains("new idempotencyKey"), "{steps:?}");
        }
        OutcomeKind::Stalled => {
            assert_eq!(
                title,
                "Restore STALLED: `orders` \u{2192} `orders-drill` not ended after 48 h 00 min"
            );
            assert!(description.contains("stopped following"), "{description}");
            assert!(steps[0].contains("no longer follows it"), "{steps:?}");
        }
        OutcomeKind::Duplicate | OutcomeKind::Queued => unreachable!("not published"),
    }
}

/// Publishes every outcome to a standard and a FIFO topic in `format`, and checks what arrived.
async fn publish_all_and_check(format: NotifyFormat) {
    let moto = moto();
    let config = moto.sdk_config().await;
    let outcomes = outcomes();
    let prefix = match format {
        NotifyFormat::Json => "outcomes-json",
        NotifyFormat::Chatbot => "outcomes-chat",
    };
    for fifo in [false, true] {
        let name = if fifo {
            format!("{prefix}.fifo")
        } else {
            prefix.to_owned()
        };
        let topic_arn = create_topic(&config, &name).await;
        let queue_url = sqs_subscribed_queue(&config, &topic_arn, fifo).await;
        let notifier = SnsNotifier::new(&config, topic_arn.clone(), format);
        let before = moto.count("Publish");
        for outcome in &outcomes {
            notifier
                .publish(outcome)
                .await
                .expect("publish the outcome");
        }
        assert_eq!(moto.count("Publish") - before, outcomes.len() as u64);

        let messages = receive_all(&config, &queue_url, outcomes.len()).await;
        assert_eq!(
            messages.len(),
            outcomes.len(),
            "{name}: one message per outcome"
        );
        let subjects = subjects_by_message(&moto, &topic_arn);
        assert_eq!(subjects.len(), outcomes.len());
        let mut seen = Vec::new();
        for message in &messages {
            let raw = message.body().expect("a body");
            let body: Value = serde_json::from_str(raw).expect("the message is JSON");
            let outcome = outcome_of(&outcomes, &body, format);
            let index = outcomes.iter().position(|o| o == outcome).unwrap();
            seen.push(index);

            // The body, as published.
            match format {
                NotifyFormat::Json => {
                    let back: Outcome = serde_json::from_value(body.clone()).unwrap();
                    assert_eq!(&back, outcome);
                }
                NotifyFormat::Chatbot => {
                    let rendered = notify::render(outcome, format, fifo).message;
                    assert_eq!(body, serde_json::from_str::<Value>(&rendered).unwrap());
                    check_chat_content(outcome, &body);
                }
            }

            // The attributes: exactly the ones with a value.
            assert_eq!(
                message_attributes(message),
                expected_attributes(outcome),
                "{name}: attributes of {:?}",
                outcome.request_id
            );

            // FIFO ids, or none.
            let group = system_attribute(message, MessageSystemAttributeName::MessageGroupId);
            let dedup =
                system_attribute(message, MessageSystemAttributeName::MessageDeduplicationId);
            if fifo {
                let (expected_group, expected_dedup) = expected_fifo_ids(outcome);
                assert_eq!(group.as_deref(), Some(expected_group.as_str()));
                assert_eq!(dedup.as_deref(), Some(expected_dedup.as_str()));
                assert!(expected_dedup.len() <= 128);
                assert!(expected_dedup.chars().all(|c| c.is_ascii_graphic()));
            } else {
                assert_eq!((group, dedup), (None, None), "{name}: no FIFO ids");
            }

            // The subject, from moto's record.
            let subject = subjects.get(raw).cloned().flatten();
            assert_eq!(subject.as_deref(), Some(SUBJECTS[index]), "{name}");
        }
        seen.sort_unstable();
        assert_eq!(
            seen,
            (0..outcomes.len()).collect::<Vec<_>>(),
            "{name}: each outcome once"
        );
    }
}

#[tokio::test]
async fn every_published_kind_arrives_as_json_with_its_subject_attributes_and_fifo_ids() {
    publish_all_and_check(NotifyFormat::Json).await;
}

#[tokio::test]
async fn every_published_kind_arrives_as_a_chatbot_notification() {
    publish_all_and_check(NotifyFormat::Chatbot).await;
}

#[tokio::test]
async fn a_fifo_topic_keeps_the_order_of_one_clusters_outcomes() {
    let moto = moto();
    let config = moto.sdk_config().await;
    let topic_arn = create_topic(&config, "ordered.fifo").await;
    let queue_url = sqs_subscribed_queue(&config, &topic_arn, true).await;
    let notifier = SnsNotifier::new(&config, topic_arn, NotifyFormat::Json);
    let kinds = [
        OutcomeKind::Unknown,
        OutcomeKind::Failed,
        OutcomeKind::DryRun,
    ];
    for (i, kind) in kinds.iter().enumerate() {
        notifier
            .publish(&base(*kind, &format!("order-{i}")))
            .await
            .unwrap();
    }
    let messages = receive_all(&config, &queue_url, kinds.len()).await;
    let received: Vec<String> = messages
        .iter()
        .map(|m| {
            let body: Value = serde_json::from_str(m.body().unwrap()).unwrap();
            body["requestId"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(received, ["order-0", "order-1", "order-2"]);
}

#[tokio::test]
async fn publishing_to_a_topic_that_does_not_exist_is_an_sns_dependency_error() {
    let moto = moto();
    let config = moto.sdk_config().await;
    let missing = "arn:aws:sns:us-east-1:123456789012:no-such-topic";
    let notifier = SnsNotifier::new(&config, missing.into(), NotifyFormat::Json);
    let error = notifier
        .publish(&base(OutcomeKind::Failed, "approval-f41l"))
        .await
        .expect_err("there is no such topic");
    assert_eq!(error.service, "SNS");
    assert!(error.message.contains(missing), "{error}");
    assert!(error.message.contains("(NotFound)"), "{error}");
    assert!(
        !error.message.contains("testing"),
        "no credentials in {error}"
    );
    assert!(error.to_string().starts_with("SNS failed: "), "{error}");
    assert_eq!(moto.count("Publish"), 1);
}

#[tokio::test]
async fn publishing_without_an_answer_is_an_sns_dependency_error() {
    // A port with no server: the SDK gets no answer at all.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .region(aws_sdk_sns::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sns::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    let topic = "arn:aws:sns:us-east-1:123456789012:outcomes";
    let notifier = SnsNotifier::new(&config, topic.into(), NotifyFormat::Json);
    let error = notifier
        .publish(&base(OutcomeKind::Submitted, "approval-7f3a"))
        .await
        .expect_err("nothing listens there");
    assert_eq!(error.service, "SNS");
    assert!(error.message.contains(topic), "{error}");
    assert!(
        error.message.contains("(dispatch failure, no response)"),
        "{error}"
    );
}

/// The harness itself, on a pool of its own so that the other tests cannot take its servers.
#[tokio::test]
async fn moto_leases_are_separate_servers_reset_for_the_next_user_and_count_requests() {
    let pool = MotoPool::new();
    let (first, second) = std::thread::scope(|scope| {
        let a = scope.spawn(|| pool.lease());
        let b = scope.spawn(|| pool.lease());
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_ne!(
        first.endpoint(),
        second.endpoint(),
        "two leases, two servers"
    );
    assert_eq!(pool.idle(), 0);

    let config = first.sdk_config().await;
    let topic_arn = create_topic(&config, "harness").await;
    let notifier = SnsNotifier::new(&config, topic_arn.clone(), NotifyFormat::Json);
    for kind in [OutcomeKind::Submitted, OutcomeKind::Failed] {
        notifier.publish(&base(kind, "harness-1")).await.unwrap();
    }
    assert_eq!(first.count("Publish"), 2);
    assert_eq!(first.count("CreateTopic"), 1);
    assert_eq!(first.count("NoSuchAction"), 0);
    assert_eq!(second.count("Publish"), 0, "the other server saw nothing");
    assert_eq!(subjects_by_message(&first, &topic_arn).len(), 2);
    assert_eq!(topics(&second), 0);

    let endpoint = first.endpoint();
    drop(first);
    assert_eq!(pool.idle(), 1, "the lease went back to the pool");
    let next = pool.lease();
    assert_eq!(next.endpoint(), endpoint, "the free server is reused");
    assert_eq!(next.counts(), json!({}), "counts reset");
    assert_eq!(topics(&next), 0, "moto's state reset");
    let config = next.sdk_config().await;
    let error = SnsNotifier::new(&config, topic_arn, NotifyFormat::Json)
        .publish(&base(OutcomeKind::Submitted, "harness-2"))
        .await
        .expect_err("the topic went with the reset");
    assert_eq!(error.service, "SNS");
    assert_eq!(next.count("Publish"), 1);

    drop(next);
    drop(second);
    assert_eq!(pool.idle(), 2);
}
