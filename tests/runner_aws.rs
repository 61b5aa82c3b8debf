//! The runner end to end with its real adapters: Secrets Manager, DynamoDB and SNS on moto
//! (server mode on 127.0.0.1, through the AWS SDK) and Atlas as the HTTP double. Every test
//! asserts how many jobs Atlas created: never two for one request.
mod support;

use std::time::Duration;

use atlas_restore_runner::atlas::{AtlasClient, AtlasClientConfig};
use atlas_restore_runner::aws::idempotency::DynamoIdempotencyStore;
use atlas_restore_runner::aws::queue::SqsWorkQueue;
use atlas_restore_runner::aws::secrets_manager::SecretsManagerSecrets;
use atlas_restore_runner::aws::sns::SnsNotifier;
use atlas_restore_runner::command::RestoreCommand;
use atlas_restore_runner::config::NotifyFormat;
use atlas_restore_runner::outcome::{ErrorCode, Outcome, OutcomeKind, Trigger};
use atlas_restore_runner::ports::{Adapters, Fresh, IdempotencyStore, SendingMark, SystemClock};
use atlas_restore_runner::runner::{Publication, Report, RunRequest, Runner, RunnerSettings};
use chrono::Utc;
use serde_json::{Value, json};
use support::atlas_double::{AtlasDouble, Fault, Route};
use support::moto::receive_all;
use support::sample;
use support::stack::*;

type TestRunner = Runner<
    Adapters<
        AtlasClient,
        SecretsManagerSecrets,
        SnsNotifier,
        DynamoIdempotencyStore,
        SystemClock,
        SqsWorkQueue,
    >,
>;

/// The stack of every end-to-end test (moto resources and the Atlas double), plus a sharded
/// cluster for batch tests.
struct World(Stack);

impl std::ops::Deref for World {
    type Target = Stack;

    fn deref(&self) -> &Stack {
        &self.0
    }
}

impl World {
    async fn new() -> World {
        let stack = Stack::start().await;
        stack
            .atlas
            .add_cluster(GROUP, "sharded", "6a0000000000000000000003", 2);
        stack.atlas.add_snapshot(
            GROUP,
            "sharded",
            SNAPSHOT,
            Utc::now() - chrono::Duration::hours(1),
            true,
        );
        World(stack)
    }

    fn runner(&self) -> TestRunner {
        self.runner_with(&self.topic_arn, RunnerSettings::default())
    }

    fn runner_with(&self, topic_arn: &str, settings: RunnerSettings) -> TestRunner {
        self.runner_on(
            &Names {
                topic_arn,
                ..Names::default()
            },
            settings,
        )
    }

    /// A runner whose adapters use `names` (a missing secret or table for failure tests).
    fn runner_on(&self, names: &Names<'_>, settings: RunnerSettings) -> TestRunner {
        let mut config = AtlasClientConfig::new(self.atlas.base_url().parse().unwrap());
        config.backoff_base = Duration::from_millis(20);
        config.request_timeout = Duration::from_secs(3);
        let topic_arn = if names.topic_arn.is_empty() {
            self.topic_arn.as_str()
        } else {
            names.topic_arn
        };
        Runner::new(
            AtlasClient::with_source(
                config,
                SecretsManagerSecrets::new(
                    &self.sdk,
                    names.atlas_secret.into(),
                    None,
                    Duration::from_secs(300),
                ),
            )
            .unwrap(),
            SecretsManagerSecrets::new(
                &self.sdk,
                names.atlas_secret.into(),
                None,
                Duration::from_secs(300),
            ),
            SnsNotifier::new(&self.sdk, topic_arn.to_owned(), NotifyFormat::Json),
            DynamoIdempotencyStore::new(&self.sdk, names.table.into()),
            SystemClock,
            None,
            RunnerSettings {
                unavailable_backoff: Duration::from_millis(50),
                ..settings
            },
        )
    }

    fn store(&self) -> DynamoIdempotencyStore {
        DynamoIdempotencyStore::new(&self.sdk, TABLE.into())
    }

    /// Outcomes that reached the topic, read from the subscribed queue.
    async fn published(&self, expected: usize) -> Vec<Value> {
        receive_all(&self.sdk, &self.outcomes_queue, expected)
            .await
            .into_iter()
            .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
            .collect()
    }
}

/// Which AWS resources a runner uses; an empty `topic_arn` means the world's topic.
struct Names<'a> {
    atlas_secret: &'a str,
    table: &'a str,
    topic_arn: &'a str,
}

impl Default for Names<'_> {
    fn default() -> Self {
        Names {
            atlas_secret: ATLAS_SECRET,
            table: TABLE,
            topic_arn: "",
        }
    }
}

/// The sample command under `approval-7f3a`, with `overrides` over its top-level fields.
fn command(overrides: Value) -> RestoreCommand {
    let mut value = sample::command(Some("approval-7f3a"));
    for (name, override_value) in overrides.as_object().unwrap() {
        value[name] = override_value.clone();
    }
    RestoreCommand::from_value(&value, Utc::now()).unwrap()
}

fn request(command: RestoreCommand, key: &str) -> RunRequest {
    RunRequest {
        command,
        request_id: key.to_owned(),
        key_field: "/idempotencyKey",
        trigger: Trigger::Direct,
        deadline: Utc::now() + chrono::Duration::seconds(60),
        from_queue: false,
    }
}

/// Requests on `route` that passed authentication (processed or answered by a fault).
fn authenticated(atlas: &AtlasDouble, route: Route) -> usize {
    atlas
        .requests_on(route)
        .iter()
        .filter(|r| {
            matches!(
                r.auth,
                support::atlas_double::RecordedAuth::Digest {
                    valid: true,
                    stale: false,
                    ..
                }
            )
        })
        .count()
}

async fn run(runner: &TestRunner, request: &RunRequest) -> Report {
    runner.run(request).await.expect("no dependency failure")
}

fn kind(report: &Report) -> OutcomeKind {
    report.outcome.outcome
}

fn job_ids(outcome: &Outcome) -> Vec<String> {
    outcome
        .atlas
        .as_ref()
        .map(|a| a.jobs.iter().map(|j| j.id.clone()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_command_is_submitted_stored_and_published_once() {
    let world = World::new().await;
    let report = run(
        &world.runner(),
        &request(command(json!({})), "approval-7f3a"),
    )
    .await;
    assert_eq!(kind(&report), OutcomeKind::Submitted);
    assert!(matches!(report.publication, Publication::Published));
    assert_eq!(world.atlas.created_jobs(), 1);
    let atlas = report.outcome.atlas.as_ref().unwrap();
    assert_eq!(
        (atlas.http_status, atlas.reconciled, atlas.jobs.len()),
        (Some(200), false, 1)
    );
    assert_eq!(
        report.outcome.restore.as_ref().unwrap()["snapshotId"],
        SNAPSHOT
    );

    let published = world.published(1).await;
    assert_eq!(published.len(), 1);
    assert_eq!(published[0]["outcome"], "SUBMITTED");
    assert_eq!(published[0]["requestId"], "approval-7f3a");
    assert_eq!(
        published[0]["atlas"]["jobs"][0]["id"],
        json!(job_ids(&report.outcome)[0])
    );
}

#[tokio::test]
async fn the_same_key_twice_is_a_duplicate_with_the_first_outcome_and_one_job() {
    let world = World::new().await;
    let runner = world.runner();
    let first = run(&runner, &request(command(json!({})), "approval-7f3a")).await;
    let second = run(&runner, &request(command(json!({})), "approval-7f3a")).await;
    assert_eq!(kind(&second), OutcomeKind::Duplicate);
    assert!(!second.in_flight);
    assert!(
        matches!(second.publication, Publication::NotPublished),
        "a duplicate publishes nothing"
    );
    let carried = second.outcome.first.as_ref().expect("the first outcome");
    assert_eq!(carried.outcome, OutcomeKind::Submitted);
    assert_eq!(job_ids(carried), job_ids(&first.outcome));
    assert_eq!(world.atlas.created_jobs(), 1);
    assert_eq!(world.atlas.authenticated_posts(Route::CreateRestoreJob), 1);
    assert_eq!(
        world.published(2).await.len(),
        1,
        "only the first outcome was published"
    );
}

#[tokio::test]
async fn another_command_under_a_held_key_is_rejected_key_reused() {
    let world = World::new().await;
    let runner = world.runner();
    run(&runner, &request(command(json!({})), "approval-7f3a")).await;
    let other = command(
        json!({"restore": {"snapshotId": NEWER_SNAPSHOT, "delivery": {"methodName": "HTTP"}}}),
    );
    let report = run(&runner, &request(other, "approval-7f3a")).await;
    assert_eq!(kind(&report), OutcomeKind::Rejected);
    assert_eq!(report.outcome.errors.len(), 1);
    assert_eq!(
        (
            report.outcome.errors[0].field.as_str(),
            report.outcome.errors[0].code
        ),
        ("/idempotencyKey", ErrorCode::KeyReused)
    );
    assert_eq!(world.atlas.created_jobs(), 1);
    let published = world.published(2).await;
    assert_eq!(
        published
            .iter()
            .map(|p| p["outcome"].as_str().unwrap())
            .collect::<Vec<_>>(),
        vec!["SUBMITTED", "REJECTED"]
    );
}

/// An attempt took the request's key and died: its lease (its invocation's deadline) has
/// passed. With `sent`, it had written its sending mark, as every attempt does before a POST.
async fn died_holding_the_key(world: &World, request: &RunRequest, sent: bool) {
    let now = Utc::now();
    let fingerprint = request.command.fingerprint();
    let fresh = Fresh {
        key: &request.request_id,
        fingerprint: &fingerprint,
        dry_run: false,
        attempt: 1,
        now: now - chrono::Duration::seconds(30),
        lease_until: now - chrono::Duration::seconds(1),
        expires_at: now + chrono::Duration::days(1),
    };
    assert!(world.store().put_fresh(&fresh, None).await.unwrap());
    if sent {
        let mark = SendingMark {
            since: now - chrono::Duration::seconds(29),
            snapshot_id: None,
        };
        world
            .store()
            .mark_sending(&request.request_id, 1, &mark)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_crash_after_submitting_is_adopted_by_the_next_attempt() {
    let world = World::new().await;
    // The first attempt takes the key, submits, and dies before storing its outcome: its lease
    // (its invocation's deadline) has passed.
    let the_request = request(command(json!({})), "approval-7f3a");
    died_holding_the_key(&world, &the_request, true).await;
    let dying = world.runner();
    let mut config = AtlasClientConfig::new(world.atlas.base_url().parse().unwrap());
    config.request_timeout = Duration::from_secs(3);
    let client = AtlasClient::new(
        config,
        atlas_restore_runner::atlas::AtlasCredentials::ApiKey {
            public_key: PUBLIC_KEY.into(),
            private_key: atlas_restore_runner::redacted::Secret::new(PRIVATE_KEY),
        },
    )
    .unwrap();
    let body = json!({"snapshotId": SNAPSHOT, "delivery": {"methodName": "AUTOMATED_RESTORE", "targetGroupId": GROUP, "targetClusterName": "orders-drill"}});
    let created = client
        .create_legacy_restore_job(
            &the_request.command.source,
            &body,
            tokio::time::Instant::now() + Duration::from_secs(5),
        )
        .await;
    let atlas_restore_runner::atlas::CreateAnswer::Created { jobs, .. } = created else {
        panic!("{created:?}")
    };
    drop(dying);

    let report = run(&world.runner(), &the_request).await;
    assert_eq!(kind(&report), OutcomeKind::Submitted);
    assert!(
        report.outcome.atlas.as_ref().unwrap().reconciled,
        "found by reconciliation"
    );
    assert_eq!(job_ids(&report.outcome), vec![jobs[0].id.clone()]);
    assert_eq!(world.atlas.created_jobs(), 1, "adopted, not sent again");
    assert_eq!(world.published(1).await[0]["atlas"]["reconciled"], true);
}

#[tokio::test]
async fn a_crash_before_submitting_is_sent_by_the_next_attempt_once() {
    let world = World::new().await;
    let the_request = request(command(json!({})), "approval-7f3a");
    died_holding_the_key(&world, &the_request, false).await;
    let report = run(&world.runner(), &the_request).await;
    assert_eq!(kind(&report), OutcomeKind::Submitted);
    assert!(!report.outcome.atlas.as_ref().unwrap().reconciled);
    assert_eq!(world.atlas.created_jobs(), 1);
    assert_eq!(
        world.atlas.authenticated_posts(Route::ListRestoreJobs),
        1,
        "it looked before sending"
    );
}

#[tokio::test]
async fn an_attempt_within_its_lease_is_a_duplicate_in_flight() {
    let world = World::new().await;
    let the_request = request(command(json!({})), "approval-7f3a");
    let now = Utc::now();
    let fingerprint = the_request.command.fingerprint();
    let fresh = Fresh {
        key: "approval-7f3a",
        fingerprint: &fingerprint,
        dry_run: false,
        attempt: 1,
        now,
        lease_until: now + chrono::Duration::seconds(60),
        expires_at: now + chrono::Duration::days(1),
    };
    assert!(world.store().put_fresh(&fresh, None).await.unwrap());
    let report = run(&world.runner(), &the_request).await;
    assert_eq!(kind(&report), OutcomeKind::Duplicate);
    assert!(report.in_flight && report.outcome.first.is_none());
    assert_eq!(world.atlas.created_jobs(), 0);
}

#[tokio::test]
async fn a_failed_publish_is_published_by_the_retry_which_never_submits() {
    let world = World::new().await;
    let missing_topic = "arn:aws:sns:us-east-1:123456789012:no-such-topic";
    let report = run(
        &world.runner_with(missing_topic, RunnerSettings::default()),
        &request(command(json!({})), "approval-7f3a"),
    )
    .await;
    assert_eq!(kind(&report), OutcomeKind::Submitted);
    match &report.publication {
        Publication::Failed(error) => assert_eq!(error.service, "SNS"),
        other => panic!("expected a failed publication, got {other:?}"),
    }
    assert_eq!(world.published(1).await.len(), 0);

    let retry = run(
        &world.runner(),
        &request(command(json!({})), "approval-7f3a"),
    )
    .await;
    assert_eq!(kind(&retry), OutcomeKind::Duplicate);
    assert!(
        matches!(retry.publication, Publication::Published),
        "the stored outcome is published now"
    );
    let published = world.published(1).await;
    assert_eq!(published.len(), 1);
    assert_eq!(published[0]["outcome"], "SUBMITTED");
    assert_eq!(world.atlas.created_jobs(), 1, "created once");

    let again = run(
        &world.runner(),
        &request(command(json!({})), "approval-7f3a"),
    )
    .await;
    assert!(
        matches!(again.publication, Publication::NotPublished),
        "published once"
    );
    assert_eq!(
        world.published(1).await.len(),
        0,
        "nothing more reached the topic"
    );
}

#[tokio::test]
async fn a_500_after_the_job_was_created_is_adopted() {
    let world = World::new().await;
    world.atlas.push_fault(
        Route::CreateRestoreJob,
        Fault::CreateThenFail {
            status: 500,
            error_code: "UNEXPECTED_ERROR".into(),
        },
    );
    let report = run(&world.runner(), &request(command(json!({})), "k-500")).await;
    assert_eq!(kind(&report), OutcomeKind::Submitted);
    let atlas = report.outcome.atlas.as_ref().unwrap();
    assert!(atlas.reconciled);
    assert_eq!(atlas.jobs.len(), 1);
    assert_eq!(world.atlas.created_jobs(), 1);
    assert_eq!(
        world.atlas.authenticated_posts(Route::CreateRestoreJob),
        1,
        "never sent again"
    );
}

#[tokio::test]
async fn a_sharded_batch_is_adopted_whole() {
    let world = World::new().await;
    world
        .atlas
        .push_fault(Route::CreateRestoreJob, Fault::CreateThenDrop);
    let report = run(
        &world.runner(),
        &request(command(json!({"clusterName": "sharded"})), "k-sharded"),
    )
    .await;
    assert_eq!(kind(&report), OutcomeKind::Submitted);
    assert_eq!(
        job_ids(&report.outcome).len(),
        3,
        "every shard and the config server"
    );
    assert_eq!(world.atlas.created_jobs(), 3);
}

#[tokio::test]
async fn a_503_with_no_job_is_sent_again_once() {
    let world = World::new().await;
    world.atlas.push_fault(
        Route::CreateRestoreJob,
        Fault::Status {
            status: 503,
            error_code: "SERVICE_UNAVAILABLE".into(),
            retry_after: Some(1),
        },
    );
    let report = run(&world.runner(), &request(command(json!({})), "k-503")).await;
    assert_eq!(kind(&report), OutcomeKind::Submitted);
    assert!(!report.outcome.atlas.as_ref().unwrap().reconciled);
    assert_eq!(world.atlas.created_jobs(), 1);
    assert_eq!(
        authenticated(&world.atlas, Route::CreateRestoreJob),
        2,
        "the 503, then the one that worked"
    );
}

#[tokio::test]
async fn a_503_after_the_job_was_created_is_adopted_not_sent_again() {
    let world = World::new().await;
    world.atlas.push_fault(
        Route::CreateRestoreJob,
        Fault::CreateThenFail {
            status: 503,
            error_code: "SERVICE_UNAVAILABLE".into(),
        },
    );
    let report = run(
        &world.runner(),
        &request(command(json!({})), "k-503-created"),
    )
    .await;
    assert_eq!(kind(&report), OutcomeKind::Submitted);
    assert!(report.outcome.atlas.as_ref().unwrap().reconciled);
    assert_eq!(world.atlas.created_jobs(), 1);
}

#[tokio::test]
async fn no_answer_and_no_job_is_unknown_keeps_the_key_and_is_never_sent_again() {
    let world = World::new().await;
    world
        .atlas
        .push_fault(Route::CreateRestoreJob, Fault::DropAfterBody);
    let runner = world.runner();
    let report = run(&runner, &request(command(json!({})), "k-unknown")).await;
    assert_eq!(kind(&report), OutcomeKind::Unknown);
    assert!(report.outcome.atlas.as_ref().unwrap().reason.is_some());
    assert_eq!(world.atlas.created_jobs(), 0);
    let retry = run(&runner, &request(command(json!({})), "k-unknown")).await;
    assert_eq!(
        kind(&retry),
        OutcomeKind::Duplicate,
        "UNKNOWN keeps the key: a person must check first"
    );
    assert_eq!(
        world.atlas.requests_on(Route::CreateRestoreJob).len(),
        2,
        "the challenge and the one dropped POST"
    );
    assert_eq!(world.published(1).await[0]["outcome"], "UNKNOWN");
}

#[tokio::test]
async fn a_refusal_is_failed_verbatim_and_frees_the_key() {
    let world = World::new().await;
    world.atlas.push_fault(
        Route::CreateRestoreJob,
        Fault::Status {
            status: 400,
            error_code: "INVALID_ATTRIBUTE".into(),
            retry_after: None,
        },
    );
    let runner = world.runner();
    let report = run(&runner, &request(command(json!({})), "k-400")).await;
    assert_eq!(kind(&report), OutcomeKind::Failed);
    let atlas = report.outcome.atlas.as_ref().unwrap();
    assert_eq!(
        (atlas.http_status, atlas.error_code.as_deref()),
        (Some(400), Some("INVALID_ATTRIBUTE"))
    );
    assert_eq!(world.atlas.created_jobs(), 0);
    let again = run(&runner, &request(command(json!({})), "k-400")).await;
    assert_eq!(kind(&again), OutcomeKind::Submitted, "the key was released");
    assert_eq!(world.atlas.created_jobs(), 1);
}

#[tokio::test]
async fn a_dry_run_sends_nothing_and_frees_the_key_for_the_real_run() {
    let world = World::new().await;
    let runner = world.runner();
    let report = run(&runner, &request(command(json!({"dryRun": true})), "k-dry")).await;
    assert_eq!(kind(&report), OutcomeKind::DryRun);
    assert_eq!(
        report.outcome.restore.as_ref().unwrap()["delivery"]["targetClusterName"],
        "orders-drill"
    );
    assert_eq!(world.atlas.requests_on(Route::CreateRestoreJob).len(), 0);
    let real = run(&runner, &request(command(json!({})), "k-dry")).await;
    assert_eq!(kind(&real), OutcomeKind::Submitted);
    assert_eq!(world.atlas.created_jobs(), 1);

    let global = world.runner_with(
        &world.topic_arn,
        RunnerSettings {
            dry_run: true,
            ..RunnerSettings::default()
        },
    );
    assert_eq!(
        kind(&run(&global, &request(command(json!({})), "k-dry-global")).await),
        OutcomeKind::DryRun
    );
    assert_eq!(world.atlas.created_jobs(), 1);
}

#[tokio::test]
async fn latest_snapshot_and_minutes_ago_are_resolved_at_run_time() {
    let world = World::new().await;
    let runner = world.runner();
    let latest = command(
        json!({"restore": {"delivery": {"methodName": "HTTP"}}, "restorePoint": "latestSnapshot"}),
    );
    let report = run(&runner, &request(latest, "k-latest")).await;
    assert_eq!(kind(&report), OutcomeKind::Submitted);
    assert_eq!(
        report.outcome.restore.as_ref().unwrap()["snapshotId"],
        NEWER_SNAPSHOT,
        "the newest completed snapshot"
    );

    let minutes = command(
        json!({"restore": {"delivery": {"methodName": "AUTOMATED_RESTORE", "targetGroupId": GROUP, "targetClusterName": "orders-drill"}}, "restorePoint": {"minutesAgo": 30}}),
    );
    let before = Utc::now().timestamp_millis();
    let report = run(&runner, &request(minutes, "k-minutes")).await;
    assert_eq!(kind(&report), OutcomeKind::Submitted);
    let millis = report.outcome.restore.as_ref().unwrap()["pointInTimeUTCMillis"]
        .as_i64()
        .unwrap();
    assert!(
        (before - 30 * 60_000 - 5_000..=Utc::now().timestamp_millis() - 30 * 60_000)
            .contains(&millis)
    );

    let nothing = command(
        json!({"clusterName": "orders-drill", "restore": {"delivery": {"methodName": "HTTP"}}, "restorePoint": "latestSnapshot"}),
    );
    let report = run(&runner, &request(nothing, "k-none")).await;
    assert_eq!(kind(&report), OutcomeKind::Rejected);
    assert_eq!(report.outcome.errors[0].code, ErrorCode::SnapshotNotFound);
    assert_eq!(world.atlas.created_jobs(), 2);
}

#[tokio::test]
async fn credentials_are_fetched_once_within_the_ttl_and_a_rotation_costs_one_fetch() {
    let world = World::new().await;
    let runner = world.runner();
    run(&runner, &request(command(json!({})), "k-1")).await;
    run(&runner, &request(command(json!({})), "k-2")).await;
    assert_eq!(
        world.moto.count("secretsmanager.GetSecretValue"),
        1,
        "cached within the TTL"
    );

    // Rotation: Atlas drops the old key; the secret holds the new one; the cache still has the old.
    world
        .atlas
        .add_api_key("rotated-public", "rotated-private-SECRET");
    world.atlas.remove_api_key(PUBLIC_KEY);
    aws_sdk_secretsmanager::Client::new(&world.sdk)
        .put_secret_value()
        .secret_id(ATLAS_SECRET)
        .secret_string(
            json!({"publicKey": "rotated-public", "privateKey": "rotated-private-SECRET"})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    let report = run(&runner, &request(command(json!({})), "k-3")).await;
    assert_eq!(kind(&report), OutcomeKind::Submitted);
    assert_eq!(
        world.moto.count("secretsmanager.GetSecretValue"),
        2,
        "one more fetch recovered"
    );
    assert_eq!(world.atlas.created_jobs(), 3);
}

#[tokio::test]
async fn dependency_failures_submit_nothing_and_free_the_key() {
    let world = World::new().await;
    // A secret that does not exist.
    let no_secret = world.runner_on(
        &Names {
            atlas_secret: "no/such/secret",
            ..Names::default()
        },
        RunnerSettings::default(),
    );
    let error = no_secret
        .run(&request(command(json!({})), "k-dep"))
        .await
        .unwrap_err();
    assert_eq!(error.service, "Secrets Manager");
    assert!(error.message.contains("no/such/secret"), "{error}");
    assert_eq!(world.atlas.requests().len(), 0, "nothing was sent to Atlas");
    let retry = run(&world.runner(), &request(command(json!({})), "k-dep")).await;
    assert_eq!(
        kind(&retry),
        OutcomeKind::Submitted,
        "the key was freed for the retry"
    );

    // A secret of the wrong shape.
    aws_sdk_secretsmanager::Client::new(&world.sdk)
        .put_secret_value()
        .secret_id(ATLAS_SECRET)
        .secret_string(json!({"publicKey": PUBLIC_KEY}).to_string())
        .send()
        .await
        .unwrap();
    let error = world
        .runner()
        .run(&request(command(json!({})), "k-shape"))
        .await
        .unwrap_err();
    assert!(error.message.contains("privateKey"), "{error}");

    // A table that does not exist.
    let no_table = world.runner_on(
        &Names {
            table: "no-such-table",
            ..Names::default()
        },
        RunnerSettings::default(),
    );
    let error = no_table
        .run(&request(command(json!({})), "k-table"))
        .await
        .unwrap_err();
    assert_eq!(error.service, "DynamoDB");
    assert!(error.message.contains("no-such-table"), "{error}");
    assert_eq!(
        world.atlas.created_jobs(),
        1,
        "only the earlier successful retry"
    );
}

/// Captures every log line of this thread at TRACE level (all crates: the SDK, hyper, reqwest).
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_secret_reaches_a_log_line_an_outcome_a_notification_or_the_table() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .json()
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let world = World::new().await;
    world
        .atlas
        .add_service_account("mdb_sa_id_leak", "mdb_sa_sk_SECRET-9d2e");
    let runner = world.runner();
    let mut outcomes = Vec::new();
    // Digest: a cold and a warm submission, a refusal, and a rotation.
    outcomes.push(
        run(&runner, &request(command(json!({})), "leak-1"))
            .await
            .outcome,
    );
    outcomes.push(
        run(&runner, &request(command(json!({})), "leak-2"))
            .await
            .outcome,
    );
    world.atlas.push_fault(
        Route::CreateRestoreJob,
        Fault::Status {
            status: 400,
            error_code: "INVALID_ATTRIBUTE".into(),
            retry_after: None,
        },
    );
    outcomes.push(
        run(&runner, &request(command(json!({})), "leak-3"))
            .await
            .outcome,
    );
    world
        .atlas
        .add_api_key("rotated-public", "rotated-private-SECRET");
    world.atlas.remove_api_key(PUBLIC_KEY);
    let secrets = aws_sdk_secretsmanager::Client::new(&world.sdk);
    let put = |text: String| {
        secrets
            .put_secret_value()
            .secret_id(ATLAS_SECRET)
            .secret_string(text)
            .send()
    };
    put(json!({"publicKey": "rotated-public", "privateKey": "rotated-private-SECRET"}).to_string())
        .await
        .unwrap();
    outcomes.push(
        run(&runner, &request(command(json!({})), "leak-4"))
            .await
            .outcome,
    );
    // A service account, and a secret of the wrong shape.
    put(json!({"clientId": "mdb_sa_id_leak", "clientSecret": "mdb_sa_sk_SECRET-9d2e"}).to_string())
        .await
        .unwrap();
    let fresh = world.runner();
    outcomes.push(
        run(&fresh, &request(command(json!({})), "leak-5"))
            .await
            .outcome,
    );
    put(json!({"clientId": "mdb_sa_id_leak", "secret": "mdb_sa_sk_SECRET-9d2e"}).to_string())
        .await
        .unwrap();
    let error = world
        .runner()
        .run(&request(command(json!({})), "leak-6"))
        .await
        .unwrap_err();

    let tokens: Vec<String> = world
        .atlas
        .requests()
        .iter()
        .flat_map(|r| {
            r.headers
                .iter()
                .filter(|(n, _)| n == "authorization")
                .map(|(_, v)| v.clone())
                .collect::<Vec<_>>()
        })
        .filter_map(|v| v.strip_prefix("Bearer ").map(str::to_owned))
        .collect();
    assert!(!tokens.is_empty(), "the service account was used");
    let mut secrets_to_find = vec![
        PRIVATE_KEY.to_owned(),
        "rotated-private-SECRET".to_owned(),
        "mdb_sa_sk_SECRET-9d2e".to_owned(),
    ];
    secrets_to_find.extend(tokens);

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.lines().count() > 50,
        "trace logging was captured ({} lines)",
        logs.lines().count()
    );
    let outcome_text = serde_json::to_string(&outcomes).unwrap();
    let published: Vec<String> = receive_all(&world.sdk, &world.outcomes_queue, outcomes.len())
        .await
        .iter()
        .map(|m| m.body().unwrap().to_owned())
        .collect();
    assert_eq!(published.len(), outcomes.len());
    let table = aws_sdk_dynamodb::Client::new(&world.sdk)
        .scan()
        .table_name(TABLE)
        .send()
        .await
        .unwrap();
    let table_text = format!("{:?}", table.items());
    for secret in &secrets_to_find {
        for (place, text) in [
            ("logs", &logs),
            ("outcomes", &outcome_text),
            ("notifications", &published.join("\n")),
            ("the table", &table_text),
            ("the error", &format!("{error} {error:?}")),
        ] {
            assert!(!text.contains(secret.as_str()), "a secret reached {place}");
        }
    }
}

fn cloud_command(restore: Value, restore_point: Value) -> RestoreCommand {
    let value = json!({"groupId": GROUP, "clusterName": "orders", "backupType": "cloud", "restore": restore, "restorePoint": restore_point});
    RestoreCommand::from_value(&value, Utc::now()).unwrap()
}

fn cloud_automated() -> Value {
    json!({"deliveryType": "automated", "snapshotId": SNAPSHOT, "targetGroupId": GROUP, "targetClusterName": "orders-drill"})
}

#[tokio::test]
async fn a_cloud_restore_is_submitted_once_and_a_busy_target_fails_verbatim() {
    let world = World::new().await;
    let runner = world.runner();
    let report = run(
        &runner,
        &request(cloud_command(cloud_automated(), Value::Null), "cloud-1"),
    )
    .await;
    assert_eq!(kind(&report), OutcomeKind::Submitted);
    assert_eq!(report.outcome.backup_type.as_deref(), Some("cloud"));
    assert_eq!(
        report.outcome.atlas.as_ref().unwrap().jobs[0]
            .target_cluster_name
            .as_deref(),
        Some("orders-drill")
    );
    assert_eq!(world.atlas.created_cloud_jobs(), 1);
    assert_eq!(
        kind(
            &run(
                &runner,
                &request(cloud_command(cloud_automated(), Value::Null), "cloud-1")
            )
            .await
        ),
        OutcomeKind::Duplicate
    );

    // Another request into the same target while the first restore runs: Atlas refuses it.
    let busy = run(
        &runner,
        &request(cloud_command(cloud_automated(), Value::Null), "cloud-2"),
    )
    .await;
    assert_eq!(kind(&busy), OutcomeKind::Failed);
    let atlas = busy.outcome.atlas.as_ref().unwrap();
    assert_eq!(
        (atlas.http_status, atlas.error_code.as_deref()),
        (Some(409), Some("ATLAS_CLUSTER_RESTORE_IN_PROGRESS"))
    );
    assert_eq!(world.atlas.created_cloud_jobs(), 1);
    assert_eq!(
        world.atlas.created_jobs(),
        0,
        "nothing on the legacy endpoint"
    );
}

#[tokio::test]
async fn a_cloud_job_created_behind_a_500_is_adopted() {
    let world = World::new().await;
    world.atlas.push_fault(
        Route::CreateCloudRestoreJob,
        Fault::CreateThenFail {
            status: 500,
            error_code: "UNEXPECTED_ERROR".into(),
        },
    );
    let report = run(
        &world.runner(),
        &request(cloud_command(cloud_automated(), Value::Null), "cloud-500"),
    )
    .await;
    assert_eq!(kind(&report), OutcomeKind::Submitted);
    assert!(report.outcome.atlas.as_ref().unwrap().reconciled);
    assert_eq!(world.atlas.created_cloud_jobs(), 1);
    assert_eq!(
        world
            .atlas
            .authenticated_posts(Route::CreateCloudRestoreJob),
        1
    );
}

#[tokio::test]
async fn cloud_points_chosen_at_run_time() {
    let world = World::new().await;
    let runner = world.runner();
    let latest = cloud_command(json!({"deliveryType": "download"}), json!("latestSnapshot"));
    let report = run(&runner, &request(latest, "cloud-latest")).await;
    assert_eq!(
        report.outcome.restore.as_ref().unwrap()["snapshotId"],
        NEWER_SNAPSHOT
    );
    let minutes = cloud_command(
        json!({"deliveryType": "pointInTime", "targetGroupId": GROUP, "targetClusterName": "orders-drill"}),
        json!({"minutesAgo": 30}),
    );
    let before = Utc::now().timestamp();
    let report = run(&runner, &request(minutes, "cloud-minutes")).await;
    assert_eq!(
        kind(&report),
        OutcomeKind::Submitted,
        "{:?}",
        report.outcome
    );
    let seconds = report.outcome.restore.as_ref().unwrap()["pointInTimeUTCSeconds"]
        .as_i64()
        .unwrap();
    assert!(
        (before - 1800 - 5..=Utc::now().timestamp() - 1800).contains(&seconds),
        "seconds, not milliseconds"
    );
    assert_eq!(world.atlas.created_cloud_jobs(), 2);
}

// ---------------------------------------------------------------------------------------------
// Reconciliation against Atlas as its reference describes it: an automated restore's job answers
// `delivery.methodName: "HTTP"` (the double never echoes the method sent), every id is an
// ObjectId carrying its creation time, and only a job shown to be this request's is adopted.

fn automated_body() -> Value {
    json!({"snapshotId": SNAPSHOT, "delivery": {"methodName": "AUTOMATED_RESTORE", "targetGroupId": GROUP, "targetClusterName": "orders-drill"}})
}

/// What an `UNKNOWN` outcome says happened.
fn unknown_reason(report: &Report) -> String {
    assert_eq!(kind(report), OutcomeKind::Unknown, "{:?}", report.outcome);
    report
        .outcome
        .atlas
        .as_ref()
        .and_then(|a| a.reason.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_job_created_behind_a_500_is_adopted_though_atlas_answers_method_http() {
    let world = World::new().await;
    world.atlas.push_fault(
        Route::CreateRestoreJob,
        Fault::CreateThenFail {
            status: 500,
            error_code: "UNEXPECTED_ERROR".into(),
        },
    );
    let report = run(&world.runner(), &request(command(json!({})), "k-http")).await;
    let created = world.atlas.jobs();
    assert_eq!(created.len(), 1);
    assert_eq!(
        created[0]["delivery"]["methodName"], "HTTP",
        "Atlas's answer, not an echo"
    );
    assert_eq!(
        kind(&report),
        OutcomeKind::Submitted,
        "{:?}",
        report.outcome
    );
    let atlas = report.outcome.atlas.as_ref().unwrap();
    assert!(atlas.reconciled);
    assert_eq!(
        job_ids(&report.outcome),
        [created[0]["id"].as_str().unwrap()]
    );
    assert_eq!(
        world.atlas.authenticated_posts(Route::CreateRestoreJob),
        1,
        "never sent again"
    );
}

#[tokio::test]
async fn a_downloads_reconcile_does_not_adopt_someone_elses_automated_restore() {
    let world = World::new().await;
    let runner = world.runner();
    // Someone restores the snapshot into orders-drill: Atlas answers its job with method HTTP.
    let theirs = run(&runner, &request(command(json!({})), "someone-else")).await;
    assert_eq!(kind(&theirs), OutcomeKind::Submitted);
    // Our download of the same snapshot reaches Atlas, and no answer comes back.
    world
        .atlas
        .push_fault(Route::CreateRestoreJob, Fault::DropAfterBody);
    let download =
        command(json!({"restore": {"snapshotId": SNAPSHOT, "delivery": {"methodName": "HTTP"}}}));
    let report = run(&runner, &request(download, "k-download")).await;
    let reason = unknown_reason(&report);
    assert!(job_ids(&report.outcome).is_empty(), "{reason}");
    assert_eq!(world.atlas.created_jobs(), 1, "only theirs");
    assert_eq!(
        world.atlas.authenticated_posts(Route::CreateRestoreJob),
        1,
        "theirs; ours was dropped unprocessed and never sent again"
    );
}

#[tokio::test]
async fn an_older_legacy_job_of_another_request_on_the_same_target_is_not_adopted() {
    let world = World::new().await;
    let ten_minutes_ago = Utc::now() - chrono::Duration::minutes(10);
    let older = world
        .atlas
        .add_restore_job(GROUP, "orders", &automated_body(), ten_minutes_ago);
    let older_id = older[0]["id"].as_str().unwrap().to_owned();

    // No answer: the older job is not this request's, so nothing can be shown to be.
    world
        .atlas
        .push_fault(Route::CreateRestoreJob, Fault::DropAfterBody);
    let report = run(&world.runner(), &request(command(json!({})), "k-older")).await;
    let reason = unknown_reason(&report);
    assert!(job_ids(&report.outcome).is_empty(), "{reason}");

    // A 503 before anything was created: sent again, and the new job is the one reported.
    world.atlas.push_fault(
        Route::CreateRestoreJob,
        Fault::Status {
            status: 503,
            error_code: "SERVICE_UNAVAILABLE".into(),
            retry_after: None,
        },
    );
    let report = run(&world.runner(), &request(command(json!({})), "k-older-503")).await;
    assert_eq!(
        kind(&report),
        OutcomeKind::Submitted,
        "{:?}",
        report.outcome
    );
    assert!(!report.outcome.atlas.as_ref().unwrap().reconciled);
    let ids = job_ids(&report.outcome);
    assert_eq!(ids.len(), 1);
    assert_ne!(ids[0], older_id);
    assert_eq!(world.atlas.created_jobs(), 2);

    // A job whose creation time Atlas wrote unreadably may be ours or not: neither adopted nor
    // sent again.
    let world = World::new().await;
    let older = world
        .atlas
        .add_restore_job(GROUP, "orders", &automated_body(), ten_minutes_ago);
    let older_id = older[0]["id"].as_str().unwrap().to_owned();
    world
        .atlas
        .edit_job(&older_id, |job| job["created"] = json!("Nov 28, 2026"));
    world.atlas.push_fault(
        Route::CreateRestoreJob,
        Fault::Status {
            status: 503,
            error_code: "SERVICE_UNAVAILABLE".into(),
            retry_after: None,
        },
    );
    let report = run(
        &world.runner(),
        &request(command(json!({})), "k-unreadable"),
    )
    .await;
    let reason = unknown_reason(&report);
    assert!(reason.contains(&older_id), "{reason}");
    assert!(job_ids(&report.outcome).is_empty());
    assert_eq!(world.atlas.created_jobs(), 1, "not sent again: {reason}");
}

#[tokio::test]
async fn an_older_cloud_job_of_another_request_on_the_same_target_is_not_adopted() {
    let world = World::new().await;
    let ten_minutes_ago = Utc::now() - chrono::Duration::minutes(10);
    // Still running: a cloud job states no creation time, its id does.
    let older =
        world
            .atlas
            .add_cloud_restore_job(GROUP, "orders", &cloud_automated(), ten_minutes_ago);
    world
        .atlas
        .push_fault(Route::CreateCloudRestoreJob, Fault::DropAfterBody);
    let report = run(
        &world.runner(),
        &request(cloud_command(cloud_automated(), Value::Null), "cloud-older"),
    )
    .await;
    let reason = unknown_reason(&report);
    assert!(job_ids(&report.outcome).is_empty(), "{reason}");
    assert_eq!(world.atlas.created_cloud_jobs(), 1, "only the older one");

    // It has just finished; a 503 answers our request before anything is created.
    world.atlas.set_cloud_job_state(
        older["id"].as_str().unwrap(),
        support::atlas_double::CloudJobState {
            finished_at: Some(Utc::now()),
            ..Default::default()
        },
    );
    world.atlas.push_fault(
        Route::CreateCloudRestoreJob,
        Fault::Status {
            status: 503,
            error_code: "SERVICE_UNAVAILABLE".into(),
            retry_after: None,
        },
    );
    let report = run(
        &world.runner(),
        &request(
            cloud_command(cloud_automated(), Value::Null),
            "cloud-older-503",
        ),
    )
    .await;
    assert_eq!(
        kind(&report),
        OutcomeKind::Submitted,
        "{:?}",
        report.outcome
    );
    assert!(!report.outcome.atlas.as_ref().unwrap().reconciled);
    let ids = job_ids(&report.outcome);
    assert_eq!(ids.len(), 1);
    assert_ne!(ids[0], older["id"].as_str().unwrap(), "sent, not adopted");
    assert_eq!(world.atlas.created_cloud_jobs(), 2);
}

#[tokio::test]
async fn two_jobs_that_could_each_be_ours_are_unknown_naming_both_and_never_sent_again() {
    let world = World::new().await;
    let runner = world.runner();
    // The same restore, a minute ago, under another key (someone ran it again by hand).
    let first = run(&runner, &request(command(json!({})), "by-hand")).await;
    assert_eq!(kind(&first), OutcomeKind::Submitted);
    let first_id = job_ids(&first.outcome).remove(0);

    // Ours is created, and the answer lost: either job could be ours.
    world.atlas.push_fault(
        Route::CreateRestoreJob,
        Fault::CreateThenFail {
            status: 500,
            error_code: "UNEXPECTED_ERROR".into(),
        },
    );
    let report = run(&runner, &request(command(json!({})), "k-ambiguous")).await;
    let ours_id = world.atlas.jobs()[1]["id"].as_str().unwrap().to_owned();
    let reason = unknown_reason(&report);
    assert!(
        reason.contains(&first_id) && reason.contains(&ours_id),
        "{reason}"
    );
    assert!(job_ids(&report.outcome).is_empty());

    // The same after a 503: never sent again when it cannot tell.
    world.atlas.push_fault(
        Route::CreateRestoreJob,
        Fault::CreateThenFail {
            status: 503,
            error_code: "SERVICE_UNAVAILABLE".into(),
        },
    );
    let report = run(&runner, &request(command(json!({})), "k-ambiguous-503")).await;
    let reason = unknown_reason(&report);
    assert_eq!(
        report.outcome.atlas.as_ref().unwrap().http_status,
        Some(503)
    );
    for job in world.atlas.jobs() {
        assert!(reason.contains(job["id"].as_str().unwrap()), "{reason}");
    }
    assert_eq!(
        world.atlas.created_jobs(),
        3,
        "one POST each, none sent again"
    );
    assert_eq!(world.atlas.authenticated_posts(Route::CreateRestoreJob), 3);
    let mut published: Vec<String> = world
        .published(3)
        .await
        .iter()
        .map(|o| o["outcome"].as_str().unwrap_or_default().to_owned())
        .collect();
    published.sort();
    assert_eq!(published, ["SUBMITTED", "UNKNOWN", "UNKNOWN"]);
}
