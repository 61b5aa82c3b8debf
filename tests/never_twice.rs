//! "Never twice", as a property (issue 13): random interleavings of webhooks, work-queue
//! deliveries, direct invokes and their retries, all against ONE in-memory store and a fake
//! Atlas that keeps its jobs, with crashes at every port call, ambiguous Atlas answers, leases
//! running out and messages delivered again. After each case:
//!
//! - per key, Atlas holds at most one job (one accepted POST), and every SUBMITTED outcome a
//!   caller gets names that key's job;
//! - every invocation that completed answered a documented outcome (a webhook's status matching
//!   its kind, a delivery's `batchItemFailures` naming only its own message, a direct invoke's
//!   outcome) or a retryable error (webhook 503 `retryable`, a listed message, a direct
//!   invoke's error), and none hung; a `QUEUED` answer handed a message to the queue;
//! - no outcome is published again once its publication was recorded: a repeat of a
//!   (requestId, outcome kind) only ever follows a publisher that died, or failed, between
//!   publishing and recording it (SNS and DynamoDB cannot be written together; CONTRACT
//!   accepts at least once there), within one life of the key (a released key may run again);
//! - once every fault is cleared, the clock is past every lease, the hand-off grace and the
//!   queue's visibility timeout, every message is delivered and every caller without an answer
//!   has retried (the approver until a 202 or an outcome; Lambda for a direct invoke that
//!   failed or died), each request ends with its outcome stored and published: nothing lost.
//!
//! A case is one or two keys (legacy or cloud, a snapshot id or `latestSnapshot`, each with its
//! own target cluster) and up to 23 steps: the approver sends the webhook (again), SQS delivers
//! a visible message or an extra copy of any message (at least once, concurrently too), a
//! direct invoke of the same command, Lambda's retry of one that failed, two of these at once
//! (interleaved call by call), or the clock moving on (1 s to 721 s). Each invocation may die
//! at any crash point (before each port call is sent, and after it took effect), once Atlas
//! accepted its POST, or have one AWS call fail (before or after it took effect); Atlas may
//! answer a POST 500 or time out after creating the job, 503 with or without the job, 429
//! (then accept, or until the deadline), or never be reached; a listing may get no answer.
//!
//! Everything runs in-process through the real `App::handle` on a paused tokio clock: the
//! runner's clock is that clock, a crash is an invocation whose call never completes and whose
//! future the driver drops (a process dying mid-call), and every wait (a 429, a timeout, a
//! 503's back-off) costs no real time. Each case is a fresh world; the seed is fixed, so a run
//! is deterministic (`NEVER_TWICE_CASES` and `NEVER_TWICE_SEED` explore further).
//!
//! Not modelled: Atlas processing a POST after the client gave up on it (a request still in
//! flight when the next attempt reconciles), follow-ups (`FOLLOW_JOBS`), dry runs, and another
//! command under the same key.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use atlas_restore_runner::atlas_api::model::{
    ApiError, BsonTimestamp, CloudSnapshot, Cluster, RestoreJob, Snapshot,
};
use atlas_restore_runner::atlas_api::{AtlasCredentials, AtlasError, CreateAnswer};
use atlas_restore_runner::command::{ObjectId, SourceCluster};
use atlas_restore_runner::config::Config;
use atlas_restore_runner::handler::{App, Invocation};
use atlas_restore_runner::ledger::memory::MemoryStore;
use atlas_restore_runner::ledger::{Fresh, SendingMark};
use atlas_restore_runner::outcome::{Outcome, OutcomeKind};
use atlas_restore_runner::ports::{
    Atlas, Clock, DependencyError, IdempotencyRecord, IdempotencyStore, Notifier, RecordState,
    Secrets, SigningSecrets, WorkQueue,
};
use atlas_restore_runner::redacted::Secret;
use atlas_restore_runner::runner::{Runner, RunnerSettings};
use atlas_restore_runner::triggers::signature::sign;
use chrono::{DateTime, SecondsFormat, Utc};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio::time::Instant;

const GROUP: &str = "5e2211c17a3e5a48f5497de3";
const SNAPSHOT: &str = "5f1c6b1e2a9b4f3d8c7e6a5b";
const SNAPSHOT_TAKEN: &str = "2026-11-28T11:00:00Z";
const SIGNING_SECRET: &str = "never-twice-signing-secret";
const REQUESTER: &str = "U024BE7LH";
const APPROVER: &str = "U0G9QF9C6";
/// When every case starts (the events/ samples' moment).
const START_SECONDS: i64 = 1_795_885_575;
/// The webhook's budget (API Gateway cuts at 30 s), and the function's timeout (infra/).
const WEBHOOK_SECONDS: i64 = 25;
const FUNCTION_SECONDS: i64 = 120;
/// The work queue's visibility timeout (infra/: 6 x the function's timeout).
const VISIBILITY_SECONDS: i64 = 720;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

// ---------------------------------------------------------------------------------------------
// What a case is made of
// ---------------------------------------------------------------------------------------------

/// One request (idempotency key): its own target cluster, so Atlas's jobs tell the keys apart.
#[derive(Clone, Copy, Debug)]
struct KeySpec {
    cloud: bool,
    /// `restorePoint: "latestSnapshot"` instead of a snapshot id.
    latest: bool,
}

/// How Atlas answers one POST.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Post {
    Accepted,
    /// The job is created, then a 500.
    AcceptedThen500,
    /// The job is created, then no answer before the deadline.
    AcceptedThenTimeout,
    /// The job is created, then a 503.
    AcceptedThen503,
    /// 503, no job.
    Unavailable,
    /// 429 once (the client waits and sends again), then accepted.
    RateLimitedThenAccepted,
    /// 429 until the deadline: refused, no job.
    RateLimitedOut,
    /// The request never reached Atlas before the deadline.
    NotSent,
}

/// The faults of one invocation.
#[derive(Clone, Debug, Default)]
struct Faults {
    /// The process dies at this crash point: every port call has one before it is sent and one
    /// after it took effect, before its answer is seen.
    crash_at: Option<usize>,
    /// The process dies right after Atlas accepted a POST, before the answer is seen.
    crash_after_post: bool,
    /// The process dies right after the first call of this port method (`store_outcome`,
    /// `publish`, ...) took effect, before its answer is seen.
    crash_after: Option<&'static str>,
    /// This AWS call (Secrets Manager, DynamoDB, SNS, SQS; counted from 0) fails.
    fail_aws_call: Option<usize>,
    /// The first call of this port method (`atlas_credentials`, `store_outcome`, ...) fails.
    fail_method: Option<&'static str>,
    /// The failing call fails after it took effect (a write applied, a message published or
    /// sent, whose answer is lost), not before.
    fail_after_effect: bool,
    /// How Atlas answers the invocation's POSTs, in order; `Accepted` after these.
    posts: Vec<Post>,
    /// The invocation's first Atlas listing (jobs or snapshots) gets no answer.
    list_fails: bool,
}

impl Faults {
    fn none() -> Faults {
        Faults::default()
    }
}

/// Who sends an event.
#[derive(Clone, Copy, Debug)]
enum Trigger {
    /// The approver sends (or sends again) the webhook for key `.0`.
    Webhook(usize),
    /// SQS delivers a visible message (its index among them).
    Deliver(usize),
    /// SQS delivers a message once more (at least once): any message ever sent, visible or not,
    /// deleted or not.
    DeliverAgain(usize),
    /// A direct (asynchronous) invoke of key `.0`'s command.
    Direct(usize),
    /// Lambda retries a direct invoke of key `.0` that failed or died.
    RetryDirect(usize),
}

#[derive(Clone, Debug)]
enum Step {
    Run(Trigger, Faults),
    /// Two invocations at once, interleaved call by call.
    Together(Trigger, Faults, Trigger, Faults),
    /// The clock moves on (seconds).
    Advance(u32),
}

#[derive(Clone, Debug)]
struct Case {
    keys: Vec<KeySpec>,
    steps: Vec<Step>,
}

// ---------------------------------------------------------------------------------------------
// The world shared by every invocation of a case
// ---------------------------------------------------------------------------------------------

struct AtlasJob {
    target: String,
    cloud: bool,
    created: DateTime<Utc>,
    job: RestoreJob,
}

struct Message {
    id: String,
    body: String,
    deleted: bool,
    /// A delivery took it: invisible until then.
    invisible_until: Option<DateTime<Utc>>,
}

/// What a port call did, in order, by invocation.
#[derive(Clone, Debug)]
enum Did {
    Published {
        key: String,
        outcome: Box<Outcome>,
    },
    MarkedPublished {
        key: String,
    },
    /// `deleted`: the record was there and went (a release by a superseded attempt is a no-op).
    Released {
        key: String,
        deleted: bool,
    },
    /// A message went to the work queue.
    Sent,
}

struct World {
    store: MemoryStore,
    /// The paused tokio clock's start: the runner's clock is `START_SECONDS` plus the time since.
    origin: Instant,
    jobs: Mutex<Vec<AtlasJob>>,
    queue: Mutex<Vec<Message>>,
    log: Mutex<Vec<(usize, Did)>>,
}

impl World {
    fn new() -> World {
        World {
            store: MemoryStore::new(),
            origin: Instant::now(),
            jobs: Mutex::new(Vec::new()),
            queue: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
        }
    }

    fn now(&self) -> DateTime<Utc> {
        let elapsed = Instant::now().duration_since(self.origin);
        DateTime::from_timestamp(START_SECONDS, 0).unwrap()
            + chrono::Duration::from_std(elapsed).unwrap()
    }

    fn jobs_for(&self, target: &str) -> Vec<RestoreJob> {
        lock(&self.jobs)
            .iter()
            .filter(|j| j.target == target)
            .map(|j| j.job.clone())
            .collect()
    }

    /// Creates the job of an accepted POST as Atlas answers it: an ObjectId whose first four
    /// bytes are its creation time; a legacy automated restore answered with
    /// `delivery.methodName: "HTTP"` and its targets, and its `created`.
    fn create_job(&self, cloud: bool, body: &Value) -> RestoreJob {
        let now = self.now();
        let mut jobs = lock(&self.jobs);
        let seconds = u32::try_from(now.timestamp()).unwrap();
        let id = format!("{seconds:08x}{:016x}", jobs.len() + 1);
        let snapshot = body["snapshotId"].as_str().unwrap_or(SNAPSHOT);
        let (value, target) = if cloud {
            let target = body["targetClusterName"].as_str().unwrap_or("").to_owned();
            let value = json!({
                "id": id, "deliveryType": body["deliveryType"], "snapshotId": snapshot,
                "targetGroupId": body["targetGroupId"], "targetClusterName": target,
                "cancelled": false, "failed": false, "expired": false,
                "timestamp": SNAPSHOT_TAKEN,
            });
            (value, target)
        } else {
            let delivery = &body["delivery"];
            let target = delivery["targetClusterName"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            let value = json!({
                "id": id, "groupId": GROUP, "clusterName": "orders",
                "created": now.to_rfc3339_opts(SecondsFormat::Secs, true),
                "snapshotId": snapshot, "pointInTime": false, "statusName": "IN_PROGRESS",
                "timestamp": {"date": SNAPSHOT_TAKEN, "increment": 1},
                "delivery": {
                    "methodName": "HTTP", "statusName": "NOT_STARTED",
                    "targetGroupId": delivery["targetGroupId"], "targetClusterName": target,
                },
            });
            (value, target)
        };
        let job: RestoreJob = serde_json::from_value(value).unwrap();
        jobs.push(AtlasJob {
            target,
            cloud,
            created: now,
            job: job.clone(),
        });
        job
    }
}

/// One invocation's crash points and faults.
struct Ctl {
    id: usize,
    faults: Faults,
    points: AtomicUsize,
    aws_calls: AtomicUsize,
    posts: Mutex<VecDeque<Post>>,
    list_fails: AtomicBool,
    method_failed: AtomicBool,
    crashed: AtomicBool,
    died: Notify,
}

impl Ctl {
    fn new(id: usize, faults: Faults) -> Ctl {
        Ctl {
            id,
            posts: Mutex::new(faults.posts.iter().copied().collect()),
            list_fails: AtomicBool::new(faults.list_fails),
            method_failed: AtomicBool::new(false),
            faults,
            points: AtomicUsize::new(0),
            aws_calls: AtomicUsize::new(0),
            crashed: AtomicBool::new(false),
            died: Notify::new(),
        }
    }

    /// Dies here: this call never completes, and the driver drops the invocation.
    async fn die(&self) {
        self.crashed.store(true, Ordering::SeqCst);
        self.died.notify_one();
        std::future::pending::<()>().await;
    }

    /// A crash point; it also lets another invocation running at the same time go on.
    async fn point(&self) {
        tokio::task::yield_now().await;
        let n = self.points.fetch_add(1, Ordering::SeqCst);
        if self.faults.crash_at == Some(n) {
            self.die().await;
        }
    }
}

/// Every port of one invocation: the shared world, seen through the invocation's faults.
#[derive(Clone)]
struct Port {
    world: Arc<World>,
    ctl: Arc<Ctl>,
}

impl Port {
    /// Around an AWS call: a crash point, the call's effect, the crash point after it, and the
    /// injected failure (before or after the effect) if it is this call.
    async fn aws<T>(
        &self,
        service: &'static str,
        method: &str,
        effect: impl Future<Output = Result<T, DependencyError>>,
    ) -> Result<T, DependencyError> {
        self.ctl.point().await;
        let n = self.ctl.aws_calls.fetch_add(1, Ordering::SeqCst);
        let named = self.ctl.faults.fail_method == Some(method)
            && !self.ctl.method_failed.swap(true, Ordering::SeqCst);
        let fails = self.ctl.faults.fail_aws_call == Some(n) || named;
        let failure = || {
            Err(DependencyError::new(
                service,
                format!("injected failure of {method}"),
            ))
        };
        if fails && !self.ctl.faults.fail_after_effect {
            return failure();
        }
        let answer = effect.await;
        self.took_effect(method).await;
        if fails {
            return failure();
        }
        answer
    }

    /// The crash point after a call took effect (and the named crash, if it is this call).
    async fn took_effect(&self, method: &str) {
        if self.ctl.faults.crash_after == Some(method) {
            self.ctl.die().await;
        }
        self.ctl.point().await;
    }

    fn did(&self, did: Did) {
        lock(&self.world.log).push((self.ctl.id, did));
    }

    async fn dynamo<T>(
        &self,
        method: &str,
        call: impl Future<Output = Result<T, DependencyError>>,
    ) -> Result<T, DependencyError> {
        self.aws("DynamoDB", method, call).await
    }

    async fn list<T>(&self, list: impl FnOnce() -> T) -> Result<T, AtlasError> {
        self.ctl.point().await;
        let answer = if self.ctl.list_fails.swap(false, Ordering::SeqCst) {
            Err(AtlasError::NoAnswer(
                "injected: the listing got no answer".into(),
            ))
        } else {
            Ok(list())
        };
        self.ctl.point().await;
        answer
    }

    async fn post(&self, cloud: bool, body: &Value, deadline: Instant) -> CreateAnswer {
        self.ctl.point().await;
        let post = lock(&self.ctl.posts).pop_front().unwrap_or(Post::Accepted);
        let error = |status: u16, code: &str| ApiError {
            error: Some(status),
            error_code: Some(code.into()),
            detail: Some(format!("injected {status}")),
            ..ApiError::default()
        };
        let create = || self.world.create_job(cloud, body);
        let answer = match post {
            Post::Accepted => CreateAnswer::Created {
                http_status: 200,
                jobs: vec![create()],
            },
            Post::AcceptedThen500 => {
                create();
                CreateAnswer::Ambiguous {
                    http_status: Some(500),
                    reason: "Atlas answered HTTP 500".into(),
                    error: Some(error(500, "UNEXPECTED_ERROR")),
                }
            }
            Post::AcceptedThenTimeout => {
                create();
                tokio::time::sleep_until(deadline).await;
                CreateAnswer::Ambiguous {
                    http_status: None,
                    reason: "no answer before the deadline after sending".into(),
                    error: None,
                }
            }
            Post::AcceptedThen503 => {
                create();
                CreateAnswer::Unavailable {
                    error: error(503, "SERVICE_UNAVAILABLE"),
                    retry_after: None,
                }
            }
            Post::Unavailable => CreateAnswer::Unavailable {
                error: error(503, "SERVICE_UNAVAILABLE"),
                retry_after: Some(Duration::from_secs(2)),
            },
            Post::RateLimitedThenAccepted => {
                tokio::time::sleep(Duration::from_secs(2)).await;
                CreateAnswer::Created {
                    http_status: 200,
                    jobs: vec![create()],
                }
            }
            Post::RateLimitedOut => {
                tokio::time::sleep_until(deadline).await;
                CreateAnswer::Refused {
                    http_status: 429,
                    error: error(429, "RATE_LIMITED"),
                }
            }
            Post::NotSent => {
                tokio::time::sleep_until(deadline).await;
                CreateAnswer::NotSent {
                    reason: "connection refused until the deadline".into(),
                }
            }
        };
        let accepted = !matches!(
            post,
            Post::Unavailable | Post::RateLimitedOut | Post::NotSent
        );
        if self.ctl.faults.crash_after_post && accepted {
            self.ctl.die().await;
        }
        self.ctl.point().await;
        answer
    }

    fn jobs(&self, cloud: bool, since: Option<DateTime<Utc>>) -> Vec<RestoreJob> {
        lock(&self.world.jobs)
            .iter()
            .filter(|j| j.cloud == cloud && since.is_none_or(|s| j.created >= s))
            .map(|j| j.job.clone())
            .collect()
    }
}

impl Atlas for Port {
    async fn create_legacy_restore_job(
        &self,
        _: &SourceCluster,
        body: &Value,
        deadline: Instant,
    ) -> CreateAnswer {
        self.post(false, body, deadline).await
    }

    async fn list_restore_jobs(
        &self,
        _: &SourceCluster,
        created_since: Option<DateTime<Utc>>,
        _: Instant,
    ) -> Result<Vec<RestoreJob>, AtlasError> {
        self.list(|| self.jobs(false, created_since)).await
    }

    async fn list_completed_snapshots(
        &self,
        _: &SourceCluster,
        _: Instant,
    ) -> Result<Vec<Snapshot>, AtlasError> {
        self.list(|| {
            vec![Snapshot {
                id: SNAPSHOT.into(),
                complete: Some(true),
                created: Some(BsonTimestamp {
                    date: Some(SNAPSHOT_TAKEN.into()),
                    increment: Some(1),
                }),
                ..Snapshot::default()
            }]
        })
        .await
    }

    async fn list_clusters(&self, _: &ObjectId, _: Instant) -> Result<Vec<Cluster>, AtlasError> {
        self.list(Vec::new).await
    }

    async fn create_cloud_restore_job(
        &self,
        _: &SourceCluster,
        body: &Value,
        deadline: Instant,
    ) -> CreateAnswer {
        self.post(true, body, deadline).await
    }

    async fn list_cloud_restore_jobs(
        &self,
        _: &SourceCluster,
        _: Instant,
    ) -> Result<Vec<RestoreJob>, AtlasError> {
        self.list(|| self.jobs(true, None)).await
    }

    async fn list_cloud_snapshots(
        &self,
        _: &SourceCluster,
        _: Instant,
    ) -> Result<Vec<CloudSnapshot>, AtlasError> {
        self.list(|| {
            vec![CloudSnapshot {
                id: SNAPSHOT.into(),
                created_at: Some(SNAPSHOT_TAKEN.into()),
                status: Some("completed".into()),
                ..CloudSnapshot::default()
            }]
        })
        .await
    }

    async fn get_restore_job(
        &self,
        _: &SourceCluster,
        job_id: &str,
        _: Instant,
    ) -> Result<RestoreJob, AtlasError> {
        let found = self.list(|| self.jobs(false, None)).await?;
        found
            .into_iter()
            .find(|j| j.id == job_id)
            .ok_or_else(|| AtlasError::NoAnswer("no such job".into()))
    }

    async fn get_cloud_restore_job(
        &self,
        _: &SourceCluster,
        job_id: &str,
        _: Instant,
    ) -> Result<RestoreJob, AtlasError> {
        let found = self.list(|| self.jobs(true, None)).await?;
        found
            .into_iter()
            .find(|j| j.id == job_id)
            .ok_or_else(|| AtlasError::NoAnswer("no such job".into()))
    }

    /// A drill's restore point is not what these tests are about: no time is known.
    async fn get_restore_point(
        &self,
        _: &SourceCluster,
        _: &atlas_restore_runner::drill::RestorePoint,
        _: tokio::time::Instant,
    ) -> Result<serde_json::Value, AtlasError> {
        Ok(serde_json::Value::Null)
    }

    /// The client reads the Atlas credentials from Secrets Manager (its cache), as the real one.
    async fn load_credentials(&self) -> Result<(), DependencyError> {
        self.atlas_credentials(false).await.map(|_| ())
    }
}

impl Secrets for Port {
    async fn atlas_credentials(&self, _: bool) -> Result<AtlasCredentials, DependencyError> {
        let credentials = AtlasCredentials::ApiKey {
            public_key: "never-twice".into(),
            private_key: Secret::new("never-twice-private-key"),
        };
        self.aws("SecretsManager", "atlas_credentials", async {
            Ok(credentials)
        })
        .await
    }

    async fn webhook_signing_secrets(&self) -> Result<SigningSecrets, DependencyError> {
        let secrets = SigningSecrets {
            current: Secret::new(SIGNING_SECRET),
            previous: None,
        };
        self.aws("SecretsManager", "webhook_signing_secrets", async {
            Ok(secrets)
        })
        .await
    }
}

impl Notifier for Port {
    async fn publish(&self, outcome: &Outcome) -> Result<(), DependencyError> {
        self.aws("SNS", "publish", async {
            self.did(Did::Published {
                key: outcome.request_id.clone().unwrap_or_default(),
                outcome: Box::new(outcome.clone()),
            });
            Ok(())
        })
        .await
    }
}

impl WorkQueue for Port {
    async fn send(&self, message: String, _: Duration) -> Result<(), DependencyError> {
        self.aws("SQS", "send", async {
            let mut queue = lock(&self.world.queue);
            let id = format!("m-{}", queue.len() + 1);
            self.did(Did::Sent);
            queue.push(Message {
                id,
                body: message,
                deleted: false,
                invisible_until: None,
            });
            Ok(())
        })
        .await
    }
}

impl Clock for Port {
    fn now(&self) -> DateTime<Utc> {
        self.world.now()
    }
}

impl IdempotencyStore for Port {
    async fn read(&self, key: &str) -> Result<Option<IdempotencyRecord>, DependencyError> {
        self.dynamo("read", self.world.store.read(key)).await
    }

    async fn put_fresh(
        &self,
        fresh: &Fresh<'_>,
        replacing: Option<u64>,
    ) -> Result<bool, DependencyError> {
        self.dynamo("put_fresh", self.world.store.put_fresh(fresh, replacing))
            .await
    }

    async fn take_over(
        &self,
        key: &str,
        seen: u64,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, DependencyError> {
        self.dynamo(
            "take_over",
            self.world
                .store
                .take_over(key, seen, now, lease_until, expires_at),
        )
        .await
    }

    async fn mark_sending(
        &self,
        key: &str,
        attempt: u64,
        mark: &SendingMark,
    ) -> Result<(), DependencyError> {
        self.dynamo(
            "mark_sending",
            self.world.store.mark_sending(key, attempt, mark),
        )
        .await
    }

    async fn end_lease(&self, key: &str, attempt: u64) -> Result<(), DependencyError> {
        self.dynamo("end_lease", self.world.store.end_lease(key, attempt))
            .await
    }

    async fn store_outcome(
        &self,
        key: &str,
        attempt: u64,
        outcome: &Outcome,
        publish_claim_until: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        hand_off_digest: Option<&str>,
    ) -> Result<(), DependencyError> {
        self.dynamo(
            "store_outcome",
            self.world.store.store_outcome(
                key,
                attempt,
                outcome,
                publish_claim_until,
                expires_at,
                hand_off_digest,
            ),
        )
        .await
    }

    async fn claim_publication(
        &self,
        key: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, DependencyError> {
        self.dynamo(
            "claim_publication",
            self.world.store.claim_publication(key, now, until),
        )
        .await
    }

    async fn release_publication_claim(&self, key: &str) -> Result<(), DependencyError> {
        self.dynamo(
            "release_publication_claim",
            self.world.store.release_publication_claim(key),
        )
        .await
    }

    async fn mark_published(&self, key: &str) -> Result<(), DependencyError> {
        self.dynamo("mark_published", async {
            let marked = self.world.store.mark_published(key).await;
            if marked.is_ok() {
                self.did(Did::MarkedPublished {
                    key: key.to_owned(),
                });
            }
            marked
        })
        .await
    }

    async fn release(&self, key: &str, attempt: u64) -> Result<(), DependencyError> {
        self.dynamo("release", async {
            let there = |store: &MemoryStore| {
                store
                    .records()
                    .iter()
                    .any(|r| r.key == key && r.attempt == attempt)
            };
            let before = there(&self.world.store);
            let released = self.world.store.release(key, attempt).await;
            self.did(Did::Released {
                key: key.to_owned(),
                deleted: before && !there(&self.world.store),
            });
            released
        })
        .await
    }

    async fn start_follow_up(
        &self,
        key: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), DependencyError> {
        self.dynamo(
            "start_follow_up",
            self.world.store.start_follow_up(key, expires_at),
        )
        .await
    }

    async fn claim_check(
        &self,
        key: &str,
        check: u64,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<IdempotencyRecord>, DependencyError> {
        self.dynamo(
            "claim_check",
            self.world.store.claim_check(key, check, now, lease_until),
        )
        .await
    }

    async fn next_check(&self, key: &str, check: u64) -> Result<(), DependencyError> {
        self.dynamo("next_check", self.world.store.next_check(key, check))
            .await
    }

    async fn release_check(&self, key: &str, check: u64) -> Result<(), DependencyError> {
        self.dynamo("release_check", self.world.store.release_check(key, check))
            .await
    }

    async fn store_final(
        &self,
        key: &str,
        check: u64,
        outcome: &Outcome,
        expires_at: DateTime<Utc>,
    ) -> Result<(), DependencyError> {
        self.dynamo(
            "store_final",
            self.world
                .store
                .store_final(key, check, outcome, expires_at),
        )
        .await
    }

    async fn mark_final_published(&self, key: &str) -> Result<(), DependencyError> {
        self.dynamo(
            "mark_final_published",
            self.world.store.mark_final_published(key),
        )
        .await
    }

    async fn set_task_token(
        &self,
        key: &str,
        token: &atlas_restore_runner::command::TaskToken,
    ) -> Result<(), DependencyError> {
        self.dynamo(
            "set_task_token",
            self.world.store.set_task_token(key, token),
        )
        .await
    }

    async fn settle_task_callback(
        &self,
        key: &str,
        token: &atlas_restore_runner::command::TaskToken,
        settled: &atlas_restore_runner::ports::CallbackSettled,
    ) -> Result<bool, DependencyError> {
        self.dynamo(
            "settle_task_callback",
            self.world.store.settle_task_callback(key, token, settled),
        )
        .await
    }
}

// ---------------------------------------------------------------------------------------------
// The driver
// ---------------------------------------------------------------------------------------------

fn config() -> Config {
    let vars: HashMap<String, String> = [
        ("ATLAS_SECRET_ID", "atlas"),
        ("WEBHOOK_SECRET_ID", "webhook"),
        (
            "NOTIFY_TOPIC_ARN",
            "arn:aws:sns:us-east-1:123456789012:outcomes",
        ),
        ("IDEMPOTENCY_TABLE", "idempotency"),
        (
            "WORK_QUEUE_URL",
            "https://sqs.us-east-1.amazonaws.com/123456789012/work",
        ),
        ("APPROVERS", APPROVER),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_owned(), v.to_owned()))
    .collect();
    Config::from_vars(&vars).unwrap()
}

fn key_name(k: usize) -> String {
    format!("approval-{k}")
}

fn target(k: usize) -> String {
    format!("orders-drill-{k}")
}

/// Key `k`'s command, as the webhook body and as a direct invoke.
fn command(k: usize, spec: KeySpec) -> Value {
    let mut restore = if spec.cloud {
        json!({"deliveryType": "automated", "targetGroupId": GROUP, "targetClusterName": target(k)})
    } else {
        json!({"delivery": {"methodName": "AUTOMATED_RESTORE", "targetGroupId": GROUP, "targetClusterName": target(k)}})
    };
    if !spec.latest {
        restore["snapshotId"] = json!(SNAPSHOT);
    }
    let mut command = json!({
        "groupId": GROUP, "clusterName": "orders",
        "backupType": if spec.cloud { "cloud" } else { "legacy" },
        "restore": restore,
        "idempotencyKey": key_name(k),
        "requestedBy": REQUESTER, "approvedBy": APPROVER, "reason": "never twice",
    });
    if spec.latest {
        command["restorePoint"] = json!("latestSnapshot");
    }
    command
}

/// An API Gateway HTTP API (payload 2.0) request, signed at `now`.
fn webhook_event(body: &str, now: DateTime<Utc>) -> Value {
    let ts = now.timestamp();
    json!({
        "version": "2.0", "routeKey": "POST /restore", "rawPath": "/restore",
        "headers": {
            "content-type": "application/json",
            "x-signature-timestamp": ts.to_string(),
            "x-signature": sign(SIGNING_SECRET.as_bytes(), ts, body.as_bytes()),
        },
        "requestContext": {"http": {"method": "POST", "path": "/restore"}},
        "body": body, "isBase64Encoded": false,
    })
}

fn sqs_event(message_id: &str, body: &str) -> Value {
    json!({"Records": [{"messageId": message_id, "body": body, "eventSource": "aws:sqs"}]})
}

/// How an invocation ended.
#[derive(Debug)]
enum Ended {
    Answered(Result<Value, String>),
    /// The process died mid-call (a crash point).
    Crashed,
    /// Neither answered nor died long after its deadline.
    Hung,
}

#[derive(Clone, Copy, Debug)]
enum What {
    Webhook(usize),
    Delivery(usize),
    Direct(usize),
}

struct Prepared {
    inv: usize,
    what: What,
    event: Value,
    seconds: i64,
    /// Whether a delivery is a normal one (the message becomes invisible, and is deleted once
    /// handled) or an extra copy.
    extra_copy: bool,
    label: String,
}

/// Where the approver of a key stands, by the answer to their latest webhook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Approver {
    NeverSent,
    /// No answer yet that settles it (none, 503, or 409 while the first is running).
    Waiting,
    /// Got 202, or an outcome.
    Satisfied,
}

struct Sim {
    world: Arc<World>,
    config: Config,
    keys: Vec<KeySpec>,
    next_inv: usize,
    approver: Vec<Approver>,
    /// Direct invokes that failed or died and that Lambda retries, per key.
    retries: Vec<usize>,
    triggered: Vec<bool>,
    trace: Vec<String>,
    violations: Vec<String>,
    /// Answers to read in hand-written cases.
    answers: Vec<(usize, Ended)>,
}

async fn invoke(world: Arc<World>, config: Config, prepared: &Prepared, faults: Faults) -> Ended {
    let ctl = Arc::new(Ctl::new(prepared.inv, faults));
    let port = Port {
        world: world.clone(),
        ctl: ctl.clone(),
    };
    let app = App {
        runner: Runner::new(
            port.clone(),
            port.clone(),
            port.clone(),
            port.clone(),
            port.clone(),
            Some(port),
            RunnerSettings::default(),
        ),
        config,
    };
    let invocation = Invocation {
        request_id: format!("inv-{}", prepared.inv),
        deadline: world.now() + chrono::Duration::seconds(prepared.seconds),
    };
    let guard = Duration::from_secs(u64::try_from(prepared.seconds).unwrap() + 600);
    tokio::select! {
        biased;
        answer = app.handle(&prepared.event, &invocation) => {
            Ended::Answered(answer.map_err(|e| e.to_string()))
        }
        () = ctl.died.notified() => Ended::Crashed,
        () = tokio::time::sleep(guard) => Ended::Hung,
    }
}

impl Sim {
    fn new(keys: Vec<KeySpec>) -> Sim {
        let n = keys.len();
        Sim {
            world: Arc::new(World::new()),
            config: config(),
            keys,
            next_inv: 0,
            approver: vec![Approver::NeverSent; n],
            retries: vec![0; n],
            triggered: vec![false; n],
            trace: Vec::new(),
            violations: Vec::new(),
            answers: Vec::new(),
        }
    }

    fn now(&self) -> DateTime<Utc> {
        self.world.now()
    }

    fn clock(&self) -> String {
        format!("t+{}s", (self.now().timestamp() - START_SECONDS))
    }

    /// The event of `trigger`, or `None` when there is nothing to send (no message, no retry).
    fn prepare(&mut self, trigger: Trigger) -> Option<Prepared> {
        let n = self.keys.len();
        let now = self.now();
        let (what, event, seconds, extra_copy, label) = match trigger {
            Trigger::Webhook(k) => {
                let k = k % n;
                let body = command(k, self.keys[k]).to_string();
                self.triggered[k] = true;
                if self.approver[k] == Approver::NeverSent {
                    self.approver[k] = Approver::Waiting;
                }
                (
                    What::Webhook(k),
                    webhook_event(&body, now),
                    WEBHOOK_SECONDS,
                    false,
                    format!("webhook {}", key_name(k)),
                )
            }
            Trigger::Deliver(i) | Trigger::DeliverAgain(i) => {
                let again = matches!(trigger, Trigger::DeliverAgain(_));
                let mut queue = lock(&self.world.queue);
                let candidates: Vec<usize> = (0..queue.len())
                    .filter(|&m| {
                        again
                            || !queue[m].deleted
                                && queue[m].invisible_until.is_none_or(|t| t <= now)
                    })
                    .collect();
                if candidates.is_empty() {
                    return None;
                }
                let m = candidates[i % candidates.len()];
                let message = &mut queue[m];
                if !again {
                    message.invisible_until =
                        Some(now + chrono::Duration::seconds(VISIBILITY_SECONDS));
                }
                (
                    What::Delivery(m),
                    sqs_event(&message.id, &message.body),
                    FUNCTION_SECONDS,
                    again,
                    format!(
                        "{} {}",
                        if again {
                            "extra delivery of"
                        } else {
                            "delivery of"
                        },
                        message.id
                    ),
                )
            }
            Trigger::Direct(k) | Trigger::RetryDirect(k) => {
                let k = k % n;
                let retry = matches!(trigger, Trigger::RetryDirect(_));
                if retry {
                    if self.retries[k] == 0 {
                        return None;
                    }
                    self.retries[k] -= 1;
                }
                self.triggered[k] = true;
                (
                    What::Direct(k),
                    command(k, self.keys[k]),
                    FUNCTION_SECONDS,
                    false,
                    format!(
                        "{} {}",
                        if retry {
                            "Lambda retry of the direct invoke of"
                        } else {
                            "direct invoke of"
                        },
                        key_name(k)
                    ),
                )
            }
        };
        self.next_inv += 1;
        Some(Prepared {
            inv: self.next_inv,
            what,
            event,
            seconds,
            extra_copy,
            label,
        })
    }

    async fn step(&mut self, step: &Step) {
        match step {
            Step::Advance(seconds) => {
                tokio::time::advance(Duration::from_secs(u64::from(*seconds))).await;
                self.trace.push(format!("clock +{seconds}s"));
            }
            Step::Run(trigger, faults) => {
                if let Some(prepared) = self.prepare(*trigger) {
                    let at = self.clock();
                    let ended = invoke(
                        self.world.clone(),
                        self.config.clone(),
                        &prepared,
                        faults.clone(),
                    )
                    .await;
                    self.judge(&prepared, ended, faults, &at);
                }
            }
            Step::Together(a, fa, b, fb) => {
                let pa = self.prepare(*a);
                let pb = self.prepare(*b);
                let at = self.clock();
                match (pa, pb) {
                    (Some(pa), Some(pb)) => {
                        let (ea, eb) = tokio::join!(
                            invoke(self.world.clone(), self.config.clone(), &pa, fa.clone()),
                            invoke(self.world.clone(), self.config.clone(), &pb, fb.clone()),
                        );
                        self.judge(&pa, ea, fa, &format!("{at}, together"));
                        self.judge(&pb, eb, fb, &format!("{at}, together"));
                    }
                    (Some(p), None) => {
                        let e =
                            invoke(self.world.clone(), self.config.clone(), &p, fa.clone()).await;
                        self.judge(&p, e, fa, &at);
                    }
                    (None, Some(p)) => {
                        let e =
                            invoke(self.world.clone(), self.config.clone(), &p, fb.clone()).await;
                        self.judge(&p, e, fb, &at);
                    }
                    (None, None) => {}
                }
            }
        }
        self.check_jobs();
    }

    fn violation(&mut self, what: String) {
        self.trace.push(format!("VIOLATION: {what}"));
        self.violations.push(what);
    }

    /// Checks one invocation's answer, and what its caller does next.
    fn judge(&mut self, prepared: &Prepared, ended: Ended, faults: &Faults, at: &str) {
        let faults_text = describe(faults);
        let summary = match &ended {
            Ended::Crashed => "died".to_owned(),
            Ended::Hung => "HUNG".to_owned(),
            Ended::Answered(Err(error)) => format!("error: {error}"),
            Ended::Answered(Ok(answer)) => summarise(answer),
        };
        self.trace.push(format!(
            "[{at}] #{} {}{faults_text} -> {summary}",
            prepared.inv, prepared.label
        ));
        match (&ended, prepared.what) {
            (Ended::Hung, _) => {
                self.violation(format!("#{} {} hung", prepared.inv, prepared.label));
            }
            (Ended::Crashed, What::Webhook(k)) => self.approver[k] = Approver::Waiting,
            (Ended::Crashed, What::Delivery(_)) => {}
            (Ended::Crashed, What::Direct(k)) => self.retries[k] += 1,
            (Ended::Answered(Err(error)), What::Direct(k)) => {
                if !error.contains("will be retried") {
                    self.violation(format!(
                        "#{}: an error that is not retryable: {error}",
                        prepared.inv
                    ));
                }
                self.retries[k] += 1;
            }
            (Ended::Answered(Err(error)), _) => {
                self.violation(format!(
                    "#{} {}: the handler failed: {error}",
                    prepared.inv, prepared.label
                ));
            }
            (Ended::Answered(Ok(answer)), What::Webhook(k)) => {
                self.judge_webhook(prepared.inv, k, answer)
            }
            (Ended::Answered(Ok(answer)), What::Delivery(m)) => {
                self.judge_delivery(prepared, m, answer)
            }
            (Ended::Answered(Ok(answer)), What::Direct(k)) => {
                let kind = answer["outcome"].as_str().unwrap_or("").to_owned();
                if !matches!(
                    kind.as_str(),
                    "SUBMITTED" | "FAILED" | "UNKNOWN" | "DUPLICATE" | "REJECTED"
                ) {
                    self.violation(format!(
                        "#{}: a direct invoke answered {answer}",
                        prepared.inv
                    ));
                }
                self.check_outcome(prepared.inv, k, answer);
            }
        }
        self.answers.push((prepared.inv, ended));
    }

    fn judge_webhook(&mut self, inv: usize, k: usize, answer: &Value) {
        let status = answer["statusCode"].as_u64().unwrap_or(0);
        let body: Value = answer["body"]
            .as_str()
            .and_then(|b| serde_json::from_str(b).ok())
            .unwrap_or(Value::Null);
        if status == 503 {
            if body["retryable"] != json!(true) {
                self.violation(format!("#{inv}: a 503 that is not retryable: {body}"));
            }
            self.approver[k] = Approver::Waiting;
            return;
        }
        let kind = body["outcome"].as_str().unwrap_or("");
        let expected: &[u64] = match kind {
            "QUEUED" | "SUBMITTED" => &[202],
            "DUPLICATE" => &[200, 409],
            "FAILED" => &[422, 502],
            "UNKNOWN" => &[504],
            "REJECTED" => &[400, 403, 409, 413],
            _ => &[],
        };
        if !expected.contains(&status) {
            self.violation(format!(
                "#{inv}: the webhook answered {status} {kind:?}, not a documented answer: {body}"
            ));
        }
        if kind == "QUEUED" {
            let handed_over = lock(&self.world.log)
                .iter()
                .any(|(by, did)| *by == inv && matches!(did, Did::Sent));
            if !handed_over {
                self.violation(format!("#{inv}: QUEUED, but no message was sent"));
            }
        }
        self.check_outcome(inv, k, &body);
        // A 409 says the first is still running: the approver looks again later.
        self.approver[k] = if status == 409 {
            Approver::Waiting
        } else {
            Approver::Satisfied
        };
    }

    fn judge_delivery(&mut self, prepared: &Prepared, m: usize, answer: &Value) {
        let Some(failures) = answer["batchItemFailures"].as_array() else {
            self.violation(format!(
                "#{}: a delivery answered {answer}, not batchItemFailures",
                prepared.inv
            ));
            return;
        };
        let mut queue = lock(&self.world.queue);
        let id = queue[m].id.clone();
        let retried = failures.iter().any(|f| f["itemIdentifier"] == json!(id));
        if failures.len() > usize::from(retried) {
            drop(queue);
            self.violation(format!(
                "#{}: batchItemFailures names another message: {answer}",
                prepared.inv
            ));
            return;
        }
        if !retried && !prepared.extra_copy {
            queue[m].deleted = true;
        }
    }

    /// An outcome a caller got: its request, and the jobs a SUBMITTED one names are this key's.
    fn check_outcome(&mut self, inv: usize, k: usize, outcome: &Value) {
        if outcome["requestId"] != json!(key_name(k)) {
            self.violation(format!(
                "#{inv}: the outcome is not {}'s: {outcome}",
                key_name(k)
            ));
        }
        let first = &outcome["first"];
        for outcome in [outcome, first] {
            if outcome["outcome"] == "SUBMITTED" {
                self.check_submitted(inv, k, outcome);
            }
        }
    }

    fn check_submitted(&mut self, inv: usize, k: usize, outcome: &Value) {
        let ours: Vec<String> = self
            .world
            .jobs_for(&target(k))
            .into_iter()
            .map(|j| j.id)
            .collect();
        let named: Vec<&str> = outcome["atlas"]["jobs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|j| j["id"].as_str())
            .collect();
        if named.is_empty() || named.iter().any(|id| !ours.iter().any(|o| o == id)) {
            self.violation(format!(
                "#{inv}: SUBMITTED names jobs {named:?}, but {}'s jobs are {ours:?}",
                key_name(k)
            ));
        }
    }

    /// Per key, at most one job Atlas accepted.
    fn check_jobs(&mut self) {
        for k in 0..self.keys.len() {
            let jobs = self.world.jobs_for(&target(k));
            if jobs.len() > 1 && !self.violations.iter().any(|v| v.starts_with("two jobs")) {
                let ids: Vec<String> = jobs.into_iter().map(|j| j.id).collect();
                self.violation(format!(
                    "two jobs Atlas accepted for {}: {ids:?}",
                    key_name(k)
                ));
            }
        }
    }

    /// No outcome published again once its publication was recorded: a repeat only follows a
    /// publisher that did not record it (it died or failed between publishing and recording).
    fn check_publications(&mut self) {
        let log = lock(&self.world.log).clone();
        let mut recorded: HashMap<(String, OutcomeKind), usize> = HashMap::new();
        let mut last_by: HashMap<(usize, String), OutcomeKind> = HashMap::new();
        let mut found = Vec::new();
        for (inv, did) in log {
            match did {
                Did::Published { key, outcome } => {
                    let kind = outcome.outcome;
                    if let Some(by) = recorded.get(&(key.clone(), kind)) {
                        found.push(format!(
                            "#{inv} published {key} {} again, after #{by} published it and recorded that",
                            kind.as_str()
                        ));
                    }
                    last_by.insert((inv, key), kind);
                }
                Did::MarkedPublished { key } => {
                    if let Some(kind) = last_by.get(&(inv, key.clone())) {
                        recorded.insert((key, *kind), inv);
                    }
                }
                Did::Released { key, deleted: true } => {
                    // The key is free: a new request may use it.
                    recorded.retain(|(k, _), _| *k != key);
                }
                Did::Released { .. } | Did::Sent => {}
            }
        }
        for v in found {
            self.violation(v);
        }
    }

    fn publications(&self, key: &str) -> Vec<Outcome> {
        lock(&self.world.log)
            .iter()
            .filter_map(|(_, did)| match did {
                Did::Published { key: k, outcome } if k == key => Some((**outcome).clone()),
                _ => None,
            })
            .collect()
    }

    /// Every fault cleared: the clock passes every lease, the hand-off grace and the queue's
    /// visibility timeout; every caller that got no answer retries (the approver without a 202
    /// or an outcome, Lambda for a failed direct invoke), and every message is delivered.
    async fn settle(&mut self) {
        self.trace.push("-- every fault cleared --".into());
        for _ in 0..8 {
            tokio::time::advance(Duration::from_secs(
                u64::try_from(VISIBILITY_SECONDS).unwrap() + 60,
            ))
            .await;
            self.trace
                .push(format!("clock +{}s", VISIBILITY_SECONDS + 60));
            let mut busy = false;
            for k in 0..self.keys.len() {
                if self.approver[k] == Approver::Waiting {
                    busy = true;
                    self.step(&Step::Run(Trigger::Webhook(k), Faults::none()))
                        .await;
                }
                for _ in 0..self.retries[k] {
                    busy = true;
                    self.step(&Step::Run(Trigger::RetryDirect(k), Faults::none()))
                        .await;
                }
            }
            loop {
                let now = self.now();
                let visible = lock(&self.world.queue)
                    .iter()
                    .any(|m| !m.deleted && m.invisible_until.is_none_or(|t| t <= now));
                if !visible {
                    break;
                }
                busy = true;
                self.step(&Step::Run(Trigger::Deliver(0), Faults::none()))
                    .await;
            }
            if !busy {
                return;
            }
        }
        self.violation("the case never settled: callers or messages still waiting".into());
    }

    /// Each request that was sent ends with an outcome, published.
    fn check_nothing_lost(&mut self) {
        let now = self.now();
        let records = self.world.store.records();
        for k in 0..self.keys.len() {
            if !self.triggered[k] {
                continue;
            }
            let key = key_name(k);
            let published = self.publications(&key);
            let record = records.iter().find(|r| r.key == key && r.is_live(now));
            let lost = match record.map(|r| &r.state) {
                Some(RecordState::InProgress { .. }) => {
                    Some("its record is still IN_PROGRESS, and nothing will run it".to_owned())
                }
                Some(RecordState::Completed { outcome, .. })
                    if outcome.outcome == OutcomeKind::Queued =>
                {
                    Some("its record is still QUEUED, and no message will run it".to_owned())
                }
                Some(RecordState::Completed { outcome, .. }) => {
                    let out = published.iter().any(|p| {
                        p.outcome == outcome.outcome && p.started_at == outcome.started_at
                    });
                    (!out).then(|| {
                        format!(
                            "its {} outcome is stored and was never published",
                            outcome.outcome.as_str()
                        )
                    })
                }
                None => match published.last() {
                    Some(last) if !last.outcome.keeps_key() => None,
                    Some(last) => Some(format!(
                        "no record holds it, and its last publication is {}",
                        last.outcome.as_str()
                    )),
                    None => Some("no record and no publication".to_owned()),
                },
            };
            if let Some(lost) = lost {
                self.violation(format!("{key} was lost: {lost}"));
            }
        }
    }

    fn finish(&mut self) {
        self.check_jobs();
        self.check_publications();
        self.check_nothing_lost();
    }

    fn report(&self) -> String {
        format!(
            "keys {:?}\n{}\nviolations: {:#?}",
            self.keys,
            self.trace.join("\n"),
            self.violations
        )
    }

    fn answer(&self, inv: usize) -> &Ended {
        &self
            .answers
            .iter()
            .find(|(i, _)| *i == inv)
            .unwrap_or_else(|| panic!("no invocation #{inv}\n{}", self.report()))
            .1
    }
}

fn describe(faults: &Faults) -> String {
    let mut parts = Vec::new();
    if let Some(n) = faults.crash_at {
        parts.push(format!("dies at crash point {n}"));
    }
    if faults.crash_after_post {
        parts.push("dies once Atlas accepted".into());
    }
    if let Some(method) = faults.crash_after {
        parts.push(format!("dies once {method} took effect"));
    }
    if let Some(n) = faults.fail_aws_call {
        parts.push(format!("AWS call {n} fails"));
    }
    if let Some(method) = faults.fail_method {
        parts.push(format!("{method} fails"));
    }
    if faults.fail_after_effect {
        parts.push("after taking effect".into());
    }
    if !faults.posts.is_empty() {
        parts.push(format!("Atlas answers {:?}", faults.posts));
    }
    if faults.list_fails {
        parts.push("a listing fails".into());
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

fn summarise(answer: &Value) -> String {
    if let Some(status) = answer["statusCode"].as_u64() {
        let body: Value = answer["body"]
            .as_str()
            .and_then(|b| serde_json::from_str(b).ok())
            .unwrap_or(Value::Null);
        return format!("{status} {}", summarise_outcome(&body));
    }
    if let Some(failures) = answer.get("batchItemFailures") {
        return format!("batchItemFailures {failures}");
    }
    summarise_outcome(answer)
}

fn summarise_outcome(outcome: &Value) -> String {
    let Some(kind) = outcome["outcome"].as_str() else {
        return outcome.to_string();
    };
    let mut text = kind.to_owned();
    if let Some(atlas) = outcome.get("atlas").filter(|a| a.is_object()) {
        let jobs: Vec<&str> = atlas["jobs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|j| j["id"].as_str())
            .collect();
        text.push_str(&format!(
            " jobs {jobs:?} reconciled {}",
            atlas["reconciled"].as_bool().unwrap_or(false)
        ));
    }
    if let Some(first) = outcome["first"]["outcome"].as_str() {
        text.push_str(&format!(" (first {first})"));
    }
    text
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

/// Runs a case to its end and checks every property; the violations, with the interleaving.
fn run_case(case: &Case) -> Result<(), String> {
    runtime().block_on(async {
        let mut sim = Sim::new(case.keys.clone());
        for step in &case.steps {
            sim.step(step).await;
        }
        sim.settle().await;
        sim.finish();
        if sim.violations.is_empty() {
            Ok(())
        } else {
            Err(sim.report())
        }
    })
}

// ---------------------------------------------------------------------------------------------
// The property
// ---------------------------------------------------------------------------------------------

fn post() -> impl Strategy<Value = Post> {
    prop_oneof![
        6 => Just(Post::Accepted),
        2 => Just(Post::AcceptedThen500),
        2 => Just(Post::AcceptedThenTimeout),
        2 => Just(Post::AcceptedThen503),
        2 => Just(Post::Unavailable),
        1 => Just(Post::RateLimitedThenAccepted),
        1 => Just(Post::RateLimitedOut),
        1 => Just(Post::NotSent),
    ]
}

fn faults() -> impl Strategy<Value = Faults> {
    (
        prop_oneof![3 => Just(None), 3 => (0usize..24).prop_map(Some)],
        prop::bool::weighted(0.15),
        prop_oneof![6 => Just(None), 1 => (0usize..8).prop_map(Some)],
        any::<bool>(),
        prop::collection::vec(post(), 0..=2),
        prop::bool::weighted(0.1),
    )
        .prop_map(
            |(crash_at, crash_after_post, fail_aws_call, fail_after_effect, posts, list_fails)| {
                Faults {
                    crash_at,
                    crash_after_post,
                    crash_after: None,
                    fail_aws_call,
                    fail_method: None,
                    fail_after_effect,
                    posts,
                    list_fails,
                }
            },
        )
}

fn trigger() -> impl Strategy<Value = Trigger> {
    prop_oneof![
        3 => (0usize..2).prop_map(Trigger::Webhook),
        4 => (0usize..8).prop_map(Trigger::Deliver),
        1 => (0usize..8).prop_map(Trigger::DeliverAgain),
        1 => (0usize..2).prop_map(Trigger::Direct),
        2 => (0usize..2).prop_map(Trigger::RetryDirect),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (trigger(), faults()).prop_map(|(t, f)| Step::Run(t, f)),
        1 => (trigger(), faults(), trigger(), faults())
            .prop_map(|(a, fa, b, fb)| Step::Together(a, fa, b, fb)),
        3 => prop::sample::select(vec![1u32, 30, 61, 121, 130, 721]).prop_map(Step::Advance),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(
            (any::<bool>(), prop::bool::weighted(0.25))
                .prop_map(|(cloud, latest)| KeySpec { cloud, latest }),
            1..=2,
        ),
        prop::collection::vec(step(), 1..24),
    )
        .prop_map(|(keys, steps)| Case { keys, steps })
}

fn proptest_config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("NEVER_TWICE_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(500),
        // Deterministic: the same cases on every run (set NEVER_TWICE_SEED to explore others).
        rng_seed: RngSeed::Fixed(
            std::env::var("NEVER_TWICE_SEED")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(13),
        ),
        failure_persistence: None,
        max_shrink_iters: 4096,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn never_twice_never_lost(case in case()) {
        if let Err(report) = run_case(&case) {
            prop_assert!(false, "{}", report);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The review's scenario, by hand
// ---------------------------------------------------------------------------------------------

fn run(trigger: Trigger, faults: Faults) -> Step {
    Step::Run(trigger, faults)
}

fn dies_once_atlas_accepted() -> Faults {
    Faults {
        crash_after_post: true,
        ..Faults::none()
    }
}

/// The outcome of invocation `inv`'s answer (a webhook's body, or a direct invoke's answer).
fn outcome_of(sim: &Sim, inv: usize) -> Value {
    match sim.answer(inv) {
        Ended::Answered(Ok(answer)) => match answer["body"].as_str() {
            Some(body) => serde_json::from_str(body).unwrap(),
            None => answer.clone(),
        },
        other => panic!("#{inv} ended {other:?}\n{}", sim.report()),
    }
}

fn stored(sim: &Sim, k: usize) -> Outcome {
    let record = sim
        .world
        .store
        .records()
        .into_iter()
        .find(|r| r.key == key_name(k))
        .unwrap_or_else(|| panic!("a record of {}\n{}", key_name(k), sim.report()));
    match record.state {
        RecordState::Completed { outcome, .. } => *outcome,
        other => panic!("{other:?}\n{}", sim.report()),
    }
}

/// D1 claims K; Atlas creates the job; D1 dies before recording it. After the lease the approver
/// sends the webhook again; the delivery that follows reconciles and adopts the job.
fn a_dead_delivery_s_job_is_adopted_after_the_webhook_is_sent_again(spec: KeySpec) {
    runtime().block_on(async {
        let mut sim = Sim::new(vec![spec]);
        sim.step(&run(Trigger::Webhook(0), Faults::none())).await;
        assert_eq!(outcome_of(&sim, 1)["outcome"], "QUEUED", "{}", sim.report());
        sim.step(&run(Trigger::Deliver(0), dies_once_atlas_accepted()))
            .await;
        assert!(matches!(sim.answer(2), Ended::Crashed), "{}", sim.report());
        assert_eq!(sim.world.jobs_for(&target(0)).len(), 1);

        sim.step(&Step::Advance(u32::try_from(FUNCTION_SECONDS).unwrap() + 1))
            .await;
        sim.step(&run(Trigger::Webhook(0), Faults::none())).await;
        assert_eq!(outcome_of(&sim, 3)["outcome"], "QUEUED", "{}", sim.report());
        // The message the re-sent webhook queued (the first is still invisible to SQS).
        sim.step(&run(Trigger::Deliver(0), Faults::none())).await;
        assert!(
            matches!(sim.answer(4), Ended::Answered(Ok(a)) if a["batchItemFailures"] == json!([])),
            "{}",
            sim.report()
        );
        let outcome = stored(&sim, 0);
        let jobs = sim.world.jobs_for(&target(0));
        assert_eq!(
            jobs.len(),
            1,
            "Atlas holds exactly one job\n{}",
            sim.report()
        );
        assert_eq!(
            outcome.outcome,
            OutcomeKind::Submitted,
            "{outcome:?}\n{}",
            sim.report()
        );
        let atlas = outcome.atlas.clone().unwrap();
        assert!(
            atlas.reconciled,
            "adopted by reconciliation\n{}",
            sim.report()
        );
        assert_eq!(atlas.jobs.len(), 1);
        assert_eq!(atlas.jobs[0].id, jobs[0].id);

        sim.settle().await;
        sim.finish();
        assert!(sim.violations.is_empty(), "{}", sim.report());
        assert_eq!(
            sim.publications(&key_name(0))
                .iter()
                .filter(|p| p.outcome == OutcomeKind::Submitted)
                .count(),
            1,
            "SUBMITTED published once\n{}",
            sim.report()
        );
    });
}

#[test]
fn a_legacy_restore_s_job_is_adopted_after_its_delivery_died_and_the_webhook_came_again() {
    a_dead_delivery_s_job_is_adopted_after_the_webhook_is_sent_again(KeySpec {
        cloud: false,
        latest: false,
    });
}

#[test]
fn a_cloud_restore_s_job_is_adopted_after_its_delivery_died_and_the_webhook_came_again() {
    a_dead_delivery_s_job_is_adopted_after_the_webhook_is_sent_again(KeySpec {
        cloud: true,
        latest: false,
    });
}

#[test]
fn a_latest_snapshot_restore_s_job_is_adopted_after_its_delivery_died_and_the_webhook_came_again() {
    a_dead_delivery_s_job_is_adopted_after_the_webhook_is_sent_again(KeySpec {
        cloud: false,
        latest: true,
    });
}

/// The same death, with no webhook again: SQS delivers the first message again after its
/// visibility timeout, and that delivery takes the record over and adopts the job.
#[test]
fn a_dead_delivery_s_own_message_delivered_again_adopts_its_job() {
    for cloud in [false, true] {
        runtime().block_on(async {
            let mut sim = Sim::new(vec![KeySpec {
                cloud,
                latest: false,
            }]);
            sim.step(&run(Trigger::Webhook(0), Faults::none())).await;
            sim.step(&run(Trigger::Deliver(0), dies_once_atlas_accepted()))
                .await;
            sim.step(&Step::Advance(u32::try_from(VISIBILITY_SECONDS).unwrap()))
                .await;
            sim.step(&run(Trigger::Deliver(0), Faults::none())).await;
            let outcome = stored(&sim, 0);
            assert_eq!(outcome.outcome, OutcomeKind::Submitted, "{}", sim.report());
            assert!(outcome.atlas.unwrap().reconciled, "{}", sim.report());
            sim.settle().await;
            sim.finish();
            assert!(sim.violations.is_empty(), "{}", sim.report());
            assert_eq!(sim.world.jobs_for(&target(0)).len(), 1, "{}", sim.report());
        });
    }
}

/// The properties can fail: a world where Atlas holds two jobs for one key is flagged.
#[test]
fn two_jobs_for_one_key_are_flagged() {
    runtime().block_on(async {
        let mut sim = Sim::new(vec![KeySpec {
            cloud: true,
            latest: false,
        }]);
        sim.step(&run(Trigger::Direct(0), Faults::none())).await;
        let body = command(0, sim.keys[0]);
        let restore = &body["restore"];
        sim.world.create_job(true, restore);
        sim.finish();
        assert!(
            sim.violations.iter().any(|v| v.starts_with("two jobs")),
            "{}",
            sim.report()
        );
    });
}

// ---------------------------------------------------------------------------------------------
// What the property found
// ---------------------------------------------------------------------------------------------

fn dies_after(method: &'static str) -> Faults {
    Faults {
        crash_after: Some(method),
        ..Faults::none()
    }
}

fn failing(method: &'static str) -> Faults {
    Faults {
        fail_method: Some(method),
        ..Faults::none()
    }
}

/// Found by the property: a delivery claims the QUEUED record, then Secrets Manager fails
/// before anything is sent. The runner frees the key (deletes the record) and lists the
/// message for SQS to deliver again, but that redelivery finds no QUEUED record to claim and
/// is dropped: the approver was told 202 QUEUED and the request is never run nor published.
#[test]
fn a_delivery_whose_dependency_fails_before_sending_leaves_the_command_to_its_redelivery() {
    runtime().block_on(async {
        let mut sim = Sim::new(vec![KeySpec {
            cloud: false,
            latest: false,
        }]);
        sim.step(&run(Trigger::Webhook(0), Faults::none())).await;
        assert_eq!(outcome_of(&sim, 1)["outcome"], "QUEUED", "{}", sim.report());
        sim.step(&run(Trigger::Deliver(0), failing("atlas_credentials")))
            .await;
        assert!(
            matches!(sim.answer(2), Ended::Answered(Ok(a)) if a["batchItemFailures"] == json!([{"itemIdentifier": "m-1"}])),
            "the message is retried\n{}",
            sim.report()
        );
        // SQS delivers it again after its visibility timeout.
        sim.step(&Step::Advance(u32::try_from(VISIBILITY_SECONDS).unwrap()))
            .await;
        sim.step(&run(Trigger::Deliver(0), Faults::none())).await;
        sim.finish();
        assert!(sim.violations.is_empty(), "{}", sim.report());
        assert_eq!(stored(&sim, 0).outcome, OutcomeKind::Submitted);
        assert_eq!(sim.world.jobs_for(&target(0)).len(), 1);
    });
}

/// Found by the property: a direct (asynchronous) invoke takes the key, Atlas accepts its POST,
/// and the process dies before the answer. Lambda retries the event a minute later, within the
/// dead attempt's lease (the function's 120 s timeout): the retry is answered DUPLICATE (the
/// first "still running"), which Lambda takes for success, so it never retries again. Nothing
/// else will ever run the request: its record stays IN_PROGRESS with the sending mark, the job
/// runs in Atlas, and no outcome is ever stored or published.
#[test]
fn a_direct_invoke_retried_within_its_dead_attempt_s_lease_is_not_dropped() {
    runtime().block_on(async {
        let mut sim = Sim::new(vec![KeySpec {
            cloud: false,
            latest: false,
        }]);
        sim.step(&run(Trigger::Direct(0), dies_once_atlas_accepted()))
            .await;
        assert!(matches!(sim.answer(1), Ended::Crashed), "{}", sim.report());
        // Lambda's first retry of an asynchronous invoke comes about a minute later.
        sim.step(&Step::Advance(60)).await;
        sim.step(&run(Trigger::RetryDirect(0), Faults::none()))
            .await;
        sim.settle().await;
        sim.finish();
        assert!(sim.violations.is_empty(), "{}", sim.report());
        assert_eq!(stored(&sim, 0).outcome, OutcomeKind::Submitted);
        assert_eq!(sim.world.jobs_for(&target(0)).len(), 1);
    });
}

/// Found by the property: SQS delivers the hand-off message twice (at least once). The first
/// copy's delivery stores SUBMITTED and dies before publishing it; the second copy arrives
/// within the 60 s the dead delivery holds the right to publish, so it cannot publish, answers
/// DUPLICATE, and SQS deletes the message. Nothing is left to publish the stored outcome: the
/// job runs in Atlas and no SUBMITTED is ever published.
#[test]
fn a_second_copy_of_a_message_does_not_end_it_while_the_outcome_is_unpublished() {
    runtime().block_on(async {
        let mut sim = Sim::new(vec![KeySpec {
            cloud: false,
            latest: false,
        }]);
        sim.step(&run(Trigger::Webhook(0), Faults::none())).await;
        sim.step(&run(Trigger::DeliverAgain(0), dies_after("store_outcome")))
            .await;
        assert!(matches!(sim.answer(2), Ended::Crashed), "{}", sim.report());
        assert_eq!(stored(&sim, 0).outcome, OutcomeKind::Submitted);
        sim.step(&run(Trigger::Deliver(0), Faults::none())).await;
        sim.settle().await;
        sim.finish();
        assert!(sim.violations.is_empty(), "{}", sim.report());
        assert_eq!(sim.world.jobs_for(&target(0)).len(), 1);
    });
}

/// The same with a direct invoke: it stores SUBMITTED and dies before publishing it; the same
/// command comes again (a retry by Lambda or a Step Functions retrier, or an operator) while the
/// dead attempt still holds the right to publish (60 s), is answered DUPLICATE (a success:
/// nothing retries it), and the outcome is never published. The same holds for an outcome
/// that releases the key (FAILED): the retry answers it, unpublished, through `Repeat`.
#[test]
fn a_retried_direct_invoke_does_not_end_while_the_outcome_is_unpublished() {
    runtime().block_on(async {
        let mut sim = Sim::new(vec![KeySpec {
            cloud: true,
            latest: false,
        }]);
        sim.step(&run(Trigger::Direct(0), dies_after("store_outcome")))
            .await;
        sim.step(&Step::Advance(30)).await;
        sim.step(&run(Trigger::RetryDirect(0), Faults::none()))
            .await;
        sim.settle().await;
        sim.finish();
        assert!(sim.violations.is_empty(), "{}", sim.report());
    });
}
