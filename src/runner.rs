//! The one place that orders the work of a command (CONTRACT sections 3 and 4):
//! key -> resolve -> submit -> reconcile -> store -> publish, written against `crate::ports`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::time::Instant;

use crate::atlas_api::model::{ApiError, RestoreJob};
use crate::atlas_api::{AtlasError, CreateAnswer};
use crate::command::{BackupType, ObjectId, ResolvedRestore, RestoreCommand, SourceCluster};
use crate::follow::{self, FollowUpMessage};
use crate::ledger::{self, Acquired, Arrival, Ask, Decision};
use crate::outcome::{AtlasSummary, ErrorCode, JobSummary, Outcome, OutcomeKind, Problem, Trigger};
use crate::ports::{
    Adapters, Atlas, Clock, DependencyError, IdempotencyRecord, IdempotencyStore, Notifier, Ports,
    RecordState, Secrets, SendingMark, WorkQueue,
};
use crate::reconcile::{Adoption, find_adoptable, find_adoptable_cloud};

/// Tunables of the runner (the contract's configuration plus safety margins).
#[derive(Clone, Debug)]
pub struct RunnerSettings {
    /// How long a kept key stays held (`IDEMPOTENCY_TTL_SECONDS`).
    pub idempotency_ttl: Duration,
    /// `DRY_RUN=true`: every command is a dry run.
    pub dry_run: bool,
    /// Kept back from the invocation's deadline to store and publish the outcome.
    pub reserve: Duration,
    /// Kept back from the submission for reconciling an ambiguous answer.
    pub reconcile_budget: Duration,
    /// Reconciliation looks this much further back than the attempt's start (clock skew).
    pub reconcile_margin: Duration,
    /// Wait before sending again after a 503 without `Retry-After`.
    pub unavailable_backoff: Duration,
    /// `FOLLOW_JOBS=true`: follow every `SUBMITTED` request to its end (CONTRACT section 6).
    pub follow: Option<FollowSettings>,
}

impl RunnerSettings {
    /// The settings the configuration gives (the safety margins stay at their defaults).
    pub fn from_config(config: &crate::config::Config) -> RunnerSettings {
        RunnerSettings {
            idempotency_ttl: config.idempotency_ttl,
            dry_run: config.dry_run,
            follow: config.follow_jobs.then_some(FollowSettings {
                interval: config.follow_interval,
                max: config.follow_max,
            }),
            ..RunnerSettings::default()
        }
    }
}

/// How submitted requests are followed (`FOLLOW_INTERVAL_SECONDS`, `FOLLOW_MAX_HOURS`).
#[derive(Clone, Debug)]
pub struct FollowSettings {
    /// Between two checks of a request's jobs (SQS allows at most 15 minutes).
    pub interval: Duration,
    /// After this long since the submission, a request whose jobs have not all ended is
    /// `STALLED`.
    pub max: Duration,
}

impl Default for RunnerSettings {
    fn default() -> RunnerSettings {
        RunnerSettings {
            idempotency_ttl: Duration::from_secs(86_400),
            dry_run: false,
            reserve: Duration::from_secs(3),
            reconcile_budget: Duration::from_secs(5),
            reconcile_margin: Duration::from_secs(120),
            unavailable_backoff: Duration::from_secs(1),
            follow: None,
        }
    }
}

/// One command to run, as a trigger hands it over.
#[derive(Clone, Debug)]
pub struct RunRequest {
    pub command: RestoreCommand,
    /// The idempotency key, which is also the outcome's `requestId`.
    pub request_id: String,
    /// Where the key came from, for a `KEY_REUSED` problem: `/idempotencyKey`, or `` when the
    /// trigger supplied it (a schedule's execution id, an event's id, the fingerprint).
    pub key_field: &'static str,
    pub trigger: Trigger,
    /// The invocation's deadline.
    pub deadline: DateTime<Utc>,
    /// The command comes from the work queue, where the webhook handed it over (`QUEUED`).
    pub from_queue: bool,
}

/// Whether the outcome reached the topic.
#[derive(Debug)]
pub enum Publication {
    Published,
    /// Publishing failed; the outcome is stored, and a later delivery of the same command
    /// publishes it. A non-HTTP trigger fails the invocation so that happens.
    Failed(DependencyError),
    /// This kind of outcome is not published (`DUPLICATE`, `QUEUED`).
    NotPublished,
}

/// What running a command produced.
#[derive(Debug)]
pub struct Report {
    pub outcome: Outcome,
    pub publication: Publication,
    /// `DUPLICATE` of an attempt still within its lease: the first may still finish (webhook
    /// 409). A queue or retrying trigger should try again later rather than drop the event.
    pub in_flight: bool,
}

/// What a follow-up check came to.
#[derive(Debug)]
pub enum CheckReport {
    /// Not this delivery's to run: a stale or duplicate message, an unknown or ended request,
    /// or following is off. The message is done with.
    Skipped(&'static str),
    /// Some job is still running: check `next` is queued.
    Rescheduled { next: u64, jobs: Vec<JobSummary> },
    /// Every job ended, or the request stalled: the final outcome.
    Final(Box<Report>),
}

/// Runs commands against Atlas with the idempotency store, secrets and notifier it is given,
/// and the work queue when there is one (the webhook hand-off and the follow-up checks).
pub struct Runner<P: Ports> {
    atlas: P::Atlas,
    secrets: P::Secrets,
    notifier: P::Notifier,
    store: P::Store,
    clock: P::Clock,
    queue: Option<P::Queue>,
    settings: RunnerSettings,
}

/// The attempt holding the key.
struct Attempt {
    number: u64,
    /// When the record's first attempt started: a point chosen at run time is chosen as of
    /// then, so every attempt means the same restore, and it is the outcome's `startedAt`.
    started_at: DateTime<Utc>,
    /// An earlier attempt may have sent the restore since then: look for its job first.
    earlier_sending: Option<SendingMark>,
    /// This attempt wrote its own sending mark: from then on the key is never released.
    marked_sending: AtomicBool,
}

impl Attempt {
    fn holding(acquired: (u64, DateTime<Utc>, Option<SendingMark>)) -> Attempt {
        let (number, started_at, earlier_sending) = acquired;
        Attempt {
            number,
            started_at,
            earlier_sending,
            marked_sending: AtomicBool::new(false),
        }
    }

    /// Whether the record says a restore may have been sent under its key.
    fn may_have_sent(&self) -> bool {
        self.earlier_sending.is_some() || self.marked_sending.load(Ordering::SeqCst)
    }
}

/// What a delivery from the work queue came to.
#[derive(Debug)]
pub enum Delivered {
    /// The command ran (or its stored outcome was answered): the message is done.
    Ran(Box<Report>),
    /// Nothing this delivery may run (CONTRACT section 2, the queue hand-off): no Atlas call,
    /// the message is done.
    Dropped(&'static str),
    /// Another delivery is running the command now: try the message again later.
    Busy,
}

/// How long the attempt that stores an outcome holds the right to publish it, before a
/// duplicate may (the attempt died between storing and publishing).
const PUBLISH_CLAIM: chrono::Duration = chrono::Duration::seconds(60);

/// One restore on its way to Atlas.
struct Submission<'a> {
    request: &'a RunRequest,
    attempt: &'a Attempt,
    job: ResolvedRestore,
    body: Value,
    /// The snapshot `latestSnapshot` resolved to, recorded with the sending mark.
    chosen_snapshot: Option<String>,
    submit_deadline: Instant,
    reconcile_deadline: Instant,
}

enum Reconciled {
    Adopted(Vec<RestoreJob>),
    NoneFound,
    /// Jobs that could be this request's, none shown to be: never adopted, never sent again.
    Ambiguous(Vec<String>),
    ListFailed(AtlasError),
}

/// The reason of an `UNKNOWN` outcome when reconciliation could not tell which job is ours.
fn ambiguous_reason(candidates: &[String]) -> String {
    format!(
        "{} listed job(s) could be this request's and none can be shown to be ({}); nothing was adopted or sent again: a person must check",
        candidates.len(),
        candidates.join(", ")
    )
}

impl<A, S, N, I, C, Q> Runner<Adapters<A, S, N, I, C, Q>>
where
    A: Atlas,
    S: Secrets,
    N: Notifier,
    I: IdempotencyStore,
    C: Clock,
    Q: WorkQueue,
{
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        atlas: A,
        secrets: S,
        notifier: N,
        store: I,
        clock: C,
        queue: Option<Q>,
        settings: RunnerSettings,
    ) -> Self {
        Runner {
            atlas,
            secrets,
            notifier,
            store,
            clock,
            queue,
            settings,
        }
    }
}

impl<P: Ports> Runner<P> {
    pub fn atlas(&self) -> &P::Atlas {
        &self.atlas
    }

    pub fn secrets(&self) -> &P::Secrets {
        &self.secrets
    }

    pub fn store(&self) -> &P::Store {
        &self.store
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Whether webhook commands are handed to the work queue (`WORK_QUEUE_URL`).
    pub fn has_work_queue(&self) -> bool {
        self.queue.is_some()
    }

    /// The record of a request, for the status lookup: `None` once it expired (DynamoDB
    /// deletes expired items lazily, up to days later).
    pub async fn lookup(&self, key: &str) -> Result<Option<IdempotencyRecord>, DependencyError> {
        let now = self.clock.now();
        Ok(self.store.read(key).await?.filter(|r| r.is_live(now)))
    }

    fn is_dry_run(&self, command: &RestoreCommand) -> bool {
        command.dry_run || self.settings.dry_run
    }

    /// How long a key is held after an outcome stored at `now` (`IDEMPOTENCY_TTL_SECONDS`).
    fn expiry_after(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + chrono::Duration::from_std(self.settings.idempotency_ttl)
            .unwrap_or(chrono::Duration::days(1))
    }

    /// Asks for the request's key as `arrival` (CONTRACT section 4; [`ledger::decide`]).
    async fn acquire(
        &self,
        request: &RunRequest,
        fingerprint: &str,
        arrival: Arrival,
    ) -> Result<Acquired, DependencyError> {
        let now = self.clock.now();
        let ask = Ask {
            key: &request.request_id,
            fingerprint,
            dry_run: self.is_dry_run(&request.command),
            arrival,
            now,
        };
        ledger::acquire(&self.store, &ask, request.deadline, self.expiry_after(now)).await
    }

    /// Runs one valid command to its outcome (a schedule, an event, a direct invoke, or a
    /// webhook without a work queue). `Err` is a dependency failure: nothing was sent to Atlas
    /// by this attempt, or what was sent is recorded for the retry to find.
    pub async fn run(&self, request: &RunRequest) -> Result<Report, DependencyError> {
        let fingerprint = request.command.fingerprint();
        match self.acquire(request, &fingerprint, Arrival::Run).await? {
            Acquired::Holds {
                attempt,
                first_started_at,
                sending,
                ..
            } => {
                let attempt = Attempt::holding((attempt, first_started_at, sending));
                self.work_and_finish(request, attempt, Vec::new()).await
            }
            Acquired::Held { record, decision } => {
                self.answer_held(request, *record, &decision).await
            }
            // Only a delivery is ever dropped.
            Acquired::Dropped(_) => Ok(self.in_flight(request)),
        }
    }

    /// Runs a command the work queue delivered, only by claiming the `QUEUED` record its
    /// webhook created (CONTRACT section 2). `problems`: what the command fails of the
    /// validation and policy now; such a command is `REJECTED`, published, and its key freed.
    pub async fn deliver(
        &self,
        request: &RunRequest,
        problems: Vec<Problem>,
    ) -> Result<Delivered, DependencyError> {
        let fingerprint = request.command.fingerprint();
        match self
            .acquire(request, &fingerprint, Arrival::Delivery)
            .await?
        {
            Acquired::Holds {
                attempt,
                first_started_at,
                sending,
                claimed_from_queue,
            } => {
                if !claimed_from_queue {
                    tracing::warn!(request_id = %request.request_id, attempt, "a delivery took over a queued command whose earlier delivery died");
                }
                let attempt = Attempt::holding((attempt, first_started_at, sending));
                Ok(Delivered::Ran(Box::new(
                    self.work_and_finish(request, attempt, problems).await?,
                )))
            }
            Acquired::Held {
                decision: Decision::Busy,
                ..
            } => Ok(Delivered::Busy),
            Acquired::Held { record, decision } => Ok(Delivered::Ran(Box::new(
                self.answer_held(request, *record, &decision).await?,
            ))),
            Acquired::Dropped(why) => Ok(Delivered::Dropped(why)),
        }
    }

    /// A delivered command that no longer validates (`rejected` says why): `REJECTED`, published
    /// and its key freed, but only when `digest` shows it is the very body its key's `QUEUED`
    /// record was made for; any other message is dropped. When an earlier attempt may have
    /// sent it, its job cannot be looked for without a valid command: `UNKNOWN`, key kept.
    pub async fn reject_delivery(
        &self,
        key: &str,
        digest: &str,
        rejected: Outcome,
        deadline: DateTime<Utc>,
    ) -> Result<Delivered, DependencyError> {
        let now = self.clock.now();
        let Some(record) = self.store.read(key).await?.filter(|r| r.is_live(now)) else {
            return Ok(Delivered::Dropped("no queued record for its key"));
        };
        if record.hand_off_digest.as_deref() != Some(digest) {
            return Ok(Delivered::Dropped(
                "its key's record was not queued for this body",
            ));
        }
        let ask = Ask {
            key,
            fingerprint: &record.fingerprint,
            dry_run: record.dry_run,
            arrival: Arrival::Delivery,
            now,
        };
        match ledger::acquire(&self.store, &ask, deadline, self.expiry_after(now)).await? {
            Acquired::Holds {
                attempt, sending, ..
            } => {
                let outcome = match sending {
                    None => rejected,
                    Some(mark) => {
                        let mut unknown = rejected;
                        unknown.outcome = OutcomeKind::Unknown;
                        unknown.atlas = Some(AtlasSummary {
                            reason: Some(format!(
                                "an earlier attempt may have sent this restore since {}, and the command no longer validates, so its job cannot be looked for: check Atlas before anything is sent again",
                                mark.since.to_rfc3339()
                            )),
                            ..AtlasSummary::default()
                        });
                        unknown
                    }
                };
                Ok(Delivered::Ran(Box::new(
                    self.finish(key, attempt, outcome).await?,
                )))
            }
            Acquired::Held {
                decision: Decision::Busy,
                ..
            } => Ok(Delivered::Busy),
            Acquired::Held { .. } => Ok(Delivered::Dropped("its key's record is no longer queued")),
            Acquired::Dropped(why) => Ok(Delivered::Dropped(why)),
        }
    }

    /// Hands a webhook command to the work queue as `message` under its key: `QUEUED`, or the
    /// answer of a key already held. `digest`: SHA-256 (hex) of the exact signed body.
    pub async fn hand_off(
        &self,
        request: &RunRequest,
        message: String,
        digest: &str,
    ) -> Result<Report, DependencyError> {
        let Some(queue) = &self.queue else {
            return Err(DependencyError::new(
                "SQS",
                "no work queue is configured (WORK_QUEUE_URL) to hand the command to",
            ));
        };
        let fingerprint = request.command.fingerprint();
        let (attempt, first_started_at, sending) = match self
            .acquire(request, &fingerprint, Arrival::HandOff)
            .await?
        {
            Acquired::Holds {
                attempt,
                first_started_at,
                sending,
                ..
            } => (attempt, first_started_at, sending),
            Acquired::Held {
                decision: Decision::HandOffAgain,
                ..
            } => {
                // The webhook that queued it may have died before sending: send it again. Two
                // messages are harmless: only one delivery can claim the QUEUED record.
                tracing::warn!(request_id = %request.request_id, "still QUEUED after the hand-off grace: sending the command to the work queue again");
                queue.send(message, Duration::ZERO).await?;
                let now = self.clock.now();
                return Ok(self.not_published(self.outcome(request, OutcomeKind::Queued, now)));
            }
            Acquired::Held { record, decision } => {
                return self.answer_held(request, *record, &decision).await;
            }
            Acquired::Dropped(_) => return Ok(self.in_flight(request)),
        };
        if let Some(mark) = &sending {
            tracing::warn!(request_id = %request.request_id, attempt, "an earlier attempt may have sent this restore and died; the delivery will look for its job before sending");
            // Kept with the record (the earliest mark stays), so the delivery reconciles.
            self.store
                .mark_sending(&request.request_id, attempt, mark)
                .await?;
        }
        let now = self.clock.now();
        let queued = self.outcome(request, OutcomeKind::Queued, first_started_at);
        // Recorded before it is sent, so the queue's delivery finds it and claims it.
        self.store
            .store_outcome(
                &request.request_id,
                attempt,
                &queued,
                now,
                self.expiry_after(now),
                Some(digest),
            )
            .await?;
        if let Err(error) = queue.send(message, Duration::ZERO).await {
            // A record that may have sent is never freed: the retried webhook sends it again
            // after the hand-off grace, and its delivery reconciles first.
            if sending.is_none()
                && let Err(release_error) = self.store.release(&request.request_id, attempt).await
            {
                tracing::warn!(request_id = %request.request_id, error = %release_error, "could not release the key after the queue failed");
            }
            return Err(error);
        }
        Ok(self.not_published(queued))
    }

    /// Works the command and finishes with its outcome. On a dependency failure the key is
    /// freed when nothing can have been sent under it; otherwise its lease is ended, so the
    /// retry takes it over at once and reconciles before sending anything.
    async fn work_and_finish(
        &self,
        request: &RunRequest,
        attempt: Attempt,
        problems: Vec<Problem>,
    ) -> Result<Report, DependencyError> {
        let outcome = match self.work(request, &attempt, problems).await {
            Ok(outcome) => outcome,
            Err(error) => {
                let key = &request.request_id;
                // A delivery's record must stay for SQS's redelivery to claim.
                let settled = if attempt.may_have_sent() || request.from_queue {
                    self.store.end_lease(key, attempt.number).await
                } else {
                    self.store.release(key, attempt.number).await
                };
                if let Err(settle_error) = settled {
                    tracing::warn!(request_id = %key, error = %settle_error, "could not give the key back; the retry waits for the lease to end");
                }
                return Err(error);
            }
        };
        self.finish(&request.request_id, attempt.number, outcome)
            .await
    }

    /// The guardrail of CONTRACT section 2: a destructive restore onto a protected cluster is
    /// accepted only from an approved webhook. A target given by id is named through Atlas first.
    pub async fn protected_target_problem(
        &self,
        command: &RestoreCommand,
        approved_webhook: bool,
        protected: &[crate::config::ProtectedCluster],
        deadline: DateTime<Utc>,
    ) -> Result<Option<Problem>, DependencyError> {
        use crate::policy::{
            TargetName, destructive_target, is_protected, protected_target_problem,
            unresolved_target_problem,
        };
        if approved_webhook || protected.is_empty() {
            return Ok(None);
        }
        let Some((group_id, cluster)) = destructive_target(command) else {
            return Ok(None);
        };
        let name = match cluster {
            TargetName::Name(name) => name.to_owned(),
            TargetName::Id(id) => {
                self.atlas.load_credentials().await?;
                let group =
                    ObjectId::parse(group_id).unwrap_or_else(|| command.source.group_id.clone());
                let atlas_deadline = self.deadline(deadline, self.settings.reserve);
                match self.atlas.list_clusters(&group, atlas_deadline).await {
                    Err(AtlasError::NoCredentials(error)) => return Err(error),
                    Ok(clusters) => {
                        match clusters.into_iter().find(|c| c.id.eq_ignore_ascii_case(id)) {
                            Some(found) => found.name,
                            None => {
                                return Ok(Some(unresolved_target_problem(
                                    group_id,
                                    id,
                                    "no such cluster in the project",
                                )));
                            }
                        }
                    }
                    Err(error) => {
                        return Ok(Some(unresolved_target_problem(
                            group_id,
                            id,
                            &error.to_string(),
                        )));
                    }
                }
            }
        };
        Ok(is_protected(protected, group_id, &name)
            .then(|| protected_target_problem(group_id, &name)))
    }

    /// Publishes an outcome that involves no key (a command refused before it could run).
    pub async fn publish_only(&self, outcome: Outcome) -> Report {
        let publication = self.publish(&outcome).await;
        Report {
            outcome,
            publication,
            in_flight: false,
        }
    }

    /// Resolves the restore, looks for an earlier attempt's job when one may have been
    /// sent, and submits. `problems`: a delivered command that no longer passes is `REJECTED`
    /// (after the look for an earlier job: a record that may have sent is never freed blind).
    async fn work(
        &self,
        request: &RunRequest,
        attempt: &Attempt,
        problems: Vec<Problem>,
    ) -> Result<Outcome, DependencyError> {
        let command = &request.command;
        let spec = &command.restore;
        let dry_run = self.is_dry_run(command);
        if !problems.is_empty() && attempt.earlier_sending.is_none() {
            return Ok(self
                .outcome(request, OutcomeKind::Rejected, attempt.started_at)
                .with_errors(problems));
        }
        let submit_deadline = self.deadline(
            request.deadline,
            self.settings.reserve + self.settings.reconcile_budget,
        );
        // The snapshot an earlier attempt chose, so a retry restores (and looks for) the same.
        let chosen_earlier = attempt
            .earlier_sending
            .as_ref()
            .and_then(|mark| mark.snapshot_id.as_deref())
            .and_then(ObjectId::parse);
        let needs_listing = spec.needs_latest_snapshot() && chosen_earlier.is_none();
        if !dry_run || needs_listing {
            self.atlas.load_credentials().await?;
        }
        let latest = if let Some(id) = chosen_earlier {
            Some(id)
        } else if needs_listing {
            match self.latest_snapshot(command, submit_deadline).await? {
                Ok(Some(id)) => Some(id),
                Ok(None) => return Ok(self.no_snapshot(request, attempt)),
                Err(error) => {
                    return Ok(self.failed_read(
                        request,
                        attempt.started_at,
                        "listing snapshots",
                        error,
                    ));
                }
            }
        } else {
            None
        };
        // A point chosen at run time is chosen as of the first attempt, so a retry means the same.
        let Some(job) = spec.resolve(attempt.started_at, latest.as_ref()) else {
            return Ok(self.no_snapshot(request, attempt));
        };
        let submission = Submission {
            request,
            attempt,
            body: job.atlas_body(),
            job,
            chosen_snapshot: latest
                .filter(|_| spec.needs_latest_snapshot())
                .map(|id| id.to_string()),
            submit_deadline,
            reconcile_deadline: self.deadline(request.deadline, self.settings.reserve),
        };
        if dry_run {
            return Ok(self
                .outcome(request, OutcomeKind::DryRun, attempt.started_at)
                .with_restore(&submission.body));
        }
        if let Some(mark) = &attempt.earlier_sending {
            match self.reconcile(&submission, mark.since).await {
                Reconciled::Adopted(jobs) => {
                    return Ok(self.submitted(&submission, None, jobs, true));
                }
                Reconciled::ListFailed(error) => {
                    let reason = format!(
                        "an earlier attempt may have sent this restore and its jobs could not be listed: {error}"
                    );
                    return Ok(self.unknown(&submission, None, reason, None));
                }
                Reconciled::Ambiguous(candidates) => {
                    let reason = format!(
                        "an earlier attempt may have sent this restore; {}",
                        ambiguous_reason(&candidates)
                    );
                    return Ok(self.unknown(&submission, None, reason, None));
                }
                Reconciled::NoneFound => {}
            }
        }
        if !problems.is_empty() {
            return Ok(self
                .outcome(request, OutcomeKind::Rejected, attempt.started_at)
                .with_errors(problems));
        }
        self.submit(&submission).await
    }

    /// Sends the restore, and acts on Atlas's answer class (CONTRACT section 4).
    /// The record says, before the first POST, that this attempt may send from now on: a
    /// crash anywhere after this line leaves the mark for the next attempt to reconcile.
    async fn submit(&self, submission: &Submission<'_>) -> Result<Outcome, DependencyError> {
        let source = &submission.request.command.source;
        let attempt = submission.attempt;
        let mark = SendingMark {
            since: self.clock.now(),
            snapshot_id: submission.chosen_snapshot.clone(),
        };
        self.store
            .mark_sending(&submission.request.request_id, attempt.number, &mark)
            .await?;
        attempt.marked_sending.store(true, Ordering::SeqCst);
        // Jobs of this request were created after the earliest mark (the record keeps it).
        let since = attempt
            .earlier_sending
            .as_ref()
            .map_or(mark.since, |earlier| earlier.since.min(mark.since));
        loop {
            let (body, deadline) = (&submission.body, submission.submit_deadline);
            let answer = match &submission.job {
                ResolvedRestore::Legacy(_) => {
                    self.atlas
                        .create_legacy_restore_job(source, body, deadline)
                        .await
                }
                ResolvedRestore::Cloud(_) => {
                    self.atlas
                        .create_cloud_restore_job(source, body, deadline)
                        .await
                }
            };
            match answer {
                CreateAnswer::Created { http_status, jobs } => {
                    return Ok(self.submitted(submission, Some(http_status), jobs, false));
                }
                CreateAnswer::Refused { http_status, error } => {
                    return Ok(self.failed(submission, Some(http_status), error));
                }
                CreateAnswer::NotSent { reason } => {
                    let error = ApiError {
                        reason: Some(format!("the request never reached Atlas: {reason}")),
                        ..ApiError::default()
                    };
                    return Ok(self.failed(submission, None, error));
                }
                CreateAnswer::NoCredentials(error) => return Err(error),
                // The client already fetched the secret again once and sent once more.
                CreateAnswer::Unauthorized { http_status, error } => {
                    return Ok(self.failed(submission, Some(http_status), error));
                }
                CreateAnswer::Unavailable { error, retry_after } => {
                    match self.reconcile(submission, since).await {
                        Reconciled::Adopted(jobs) => {
                            return Ok(self.submitted(submission, Some(503), jobs, true));
                        }
                        Reconciled::ListFailed(list_error) => {
                            let reason = format!(
                                "Atlas answered 503 and its jobs could not be listed: {list_error}"
                            );
                            return Ok(self.unknown(submission, Some(503), reason, Some(error)));
                        }
                        Reconciled::Ambiguous(candidates) => {
                            let reason =
                                format!("Atlas answered 503; {}", ambiguous_reason(&candidates));
                            return Ok(self.unknown(submission, Some(503), reason, Some(error)));
                        }
                        Reconciled::NoneFound => {
                            let wait = retry_after.unwrap_or(self.settings.unavailable_backoff);
                            if Instant::now() + wait + Duration::from_secs(1)
                                >= submission.submit_deadline
                            {
                                let reason =
                                    "Atlas answered 503 and no job was found; no time was left to send again".to_owned();
                                return Ok(self.unknown(
                                    submission,
                                    Some(503),
                                    reason,
                                    Some(error),
                                ));
                            }
                            tokio::time::sleep(wait).await;
                        }
                    }
                }
                CreateAnswer::Ambiguous {
                    http_status,
                    reason,
                    error,
                } => {
                    return Ok(match self.reconcile(submission, since).await {
                        Reconciled::Adopted(jobs) => {
                            self.submitted(submission, http_status, jobs, true)
                        }
                        Reconciled::NoneFound => {
                            self.unknown(submission, http_status, reason, error)
                        }
                        Reconciled::Ambiguous(candidates) => {
                            let reason = format!("{reason}; {}", ambiguous_reason(&candidates));
                            self.unknown(submission, http_status, reason, error)
                        }
                        Reconciled::ListFailed(list_error) => {
                            let reason = format!(
                                "{reason}; listing the cluster's jobs to check also failed: {list_error}"
                            );
                            self.unknown(submission, http_status, reason, error)
                        }
                    });
                }
            }
        }
    }

    /// Stores the outcome, then publishes it, then marks it published (or frees the key).
    async fn finish(
        &self,
        key: &str,
        attempt: u64,
        outcome: Outcome,
    ) -> Result<Report, DependencyError> {
        let now = self.clock.now();
        if let Err(error) = self
            .store
            .store_outcome(
                key,
                attempt,
                &outcome,
                now + PUBLISH_CLAIM,
                self.expiry_after(now),
                None,
            )
            .await
        {
            // Not recorded: publish it anyway so no outcome is lost, then fail so the event is
            // retried; a retry reconciles with Atlas and never sends twice.
            let _ = self.publish(&outcome).await;
            if !outcome.outcome.keeps_key() {
                let _ = self.store.release(key, attempt).await;
            }
            return Err(error);
        }
        let publication = self.publish_stored(key, attempt, &outcome).await;
        if outcome.outcome == OutcomeKind::Submitted {
            self.start_following(key, &outcome).await?;
        }
        Ok(Report {
            outcome,
            publication,
            in_flight: false,
        })
    }

    /// `DUPLICATE` of an attempt that is still working on the command.
    fn in_flight(&self, request: &RunRequest) -> Report {
        Report {
            outcome: self.outcome(request, OutcomeKind::Duplicate, self.clock.now()),
            publication: Publication::NotPublished,
            in_flight: true,
        }
    }

    fn not_published(&self, outcome: Outcome) -> Report {
        Report {
            outcome,
            publication: Publication::NotPublished,
            in_flight: false,
        }
    }

    /// The answer of a key this attempt does not hold, as [`ledger::decide`] said.
    async fn answer_held(
        &self,
        request: &RunRequest,
        record: IdempotencyRecord,
        decision: &Decision,
    ) -> Result<Report, DependencyError> {
        let now = self.clock.now();
        let key = &request.request_id;
        match decision {
            Decision::KeyReused => {
                let problem = Problem::new(
                    request.key_field,
                    ErrorCode::KeyReused,
                    format!(
                        "idempotency key {:?} is held until {} by a different command; use a new key for a new restore",
                        request.request_id,
                        record.expires_at.to_rfc3339()
                    ),
                );
                let outcome = self
                    .outcome(request, OutcomeKind::Rejected, now)
                    .with_errors(vec![problem]);
                Ok(self.publish_only(outcome).await)
            }
            Decision::Repeat => {
                let RecordState::Completed {
                    outcome: stored,
                    published,
                } = record.state
                else {
                    return Ok(self.in_flight(request));
                };
                // The same command again: its outcome, published now if it never was, and the
                // key freed as that outcome says.
                if published {
                    self.store.release(key, record.attempt).await?;
                    return Ok(self.not_published(*stored));
                }
                let claimed = self
                    .store
                    .claim_publication(key, now, now + PUBLISH_CLAIM)
                    .await?;
                Ok(Report {
                    publication: match claimed {
                        true => self.publish_stored(key, record.attempt, &stored).await,
                        false => Publication::NotPublished,
                    },
                    outcome: *stored,
                    // Another attempt holds the right to publish it, and may have died.
                    in_flight: !claimed,
                })
            }
            Decision::Duplicate { in_flight: false } => {
                let RecordState::Completed {
                    outcome: first,
                    published,
                } = record.state
                else {
                    return Ok(self.in_flight(request));
                };
                let mut publication = Publication::NotPublished;
                let mut in_flight = false;
                // The first attempt stored its outcome but has not published it: publish it now,
                // unless that attempt (or another duplicate) holds the right to. It may have
                // died holding it, so this one is not done until it is published.
                if !published && first.outcome.is_published() {
                    if self
                        .store
                        .claim_publication(key, now, now + PUBLISH_CLAIM)
                        .await?
                    {
                        publication = self.publish_stored(key, record.attempt, &first).await;
                    } else {
                        in_flight = true;
                    }
                }
                // The attempt that submitted could not queue the follow-up: this one does.
                if first.outcome == OutcomeKind::Submitted && record.follow_up.is_none() {
                    self.start_following(key, &first).await?;
                }
                let mut duplicate = self.outcome(request, OutcomeKind::Duplicate, now);
                duplicate.restore = first.restore.clone();
                duplicate.first = Some(first);
                Ok(Report {
                    outcome: duplicate,
                    publication,
                    in_flight,
                })
            }
            // Another attempt works on it (or the record changed under the decision): the
            // first may still finish.
            _ => Ok(self.in_flight(request)),
        }
    }

    /// Starts following a `SUBMITTED` request when following is on: the first check is queued,
    /// then recorded. Queued first, so a failure leaves nothing recorded and the retry (a
    /// `DUPLICATE`) starts it again; a second message for check 1 is then dropped as stale.
    async fn start_following(&self, key: &str, submitted: &Outcome) -> Result<(), DependencyError> {
        let (Some(follow), Some(queue)) = (&self.settings.follow, &self.queue) else {
            return Ok(());
        };
        if submitted.atlas.as_ref().is_none_or(|a| a.jobs.is_empty()) {
            tracing::warn!(request_id = %key, "submitted without a job to follow");
            return Ok(());
        }
        let message = FollowUpMessage {
            request_id: key.to_owned(),
            check: 1,
        };
        queue.send(message.to_json(), follow.interval).await?;
        // Kept until the request would stall, and an idempotency TTL after that.
        let keep = follow.max + follow.interval * 2 + self.settings.idempotency_ttl;
        let expires_at = follow::submitted_at(submitted)
            + chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::days(30));
        self.store.start_follow_up(key, expires_at).await?;
        tracing::info!(request_id = %key, interval_seconds = follow.interval.as_secs(), "following the restore to its end");
        Ok(())
    }

    /// Runs one follow-up check (CONTRACT section 6): reads the jobs, then queues the next
    /// check or stores and publishes the final outcome. `Err` is a dependency failure: the
    /// check is given back so the message's redelivery runs it again.
    pub async fn check(
        &self,
        message: &FollowUpMessage,
        deadline: DateTime<Utc>,
    ) -> Result<CheckReport, DependencyError> {
        let (Some(follow), Some(queue)) = (&self.settings.follow, &self.queue) else {
            return Ok(CheckReport::Skipped("following jobs is off (FOLLOW_JOBS)"));
        };
        let key = &message.request_id;
        let now = self.clock.now();
        let Some(record) = self
            .store
            .claim_check(key, message.check, now, deadline)
            .await?
        else {
            return Ok(CheckReport::Skipped(
                "not due: a later check is due, another delivery is running it, or the request is unknown or has ended",
            ));
        };
        let result = self
            .run_check(follow, queue, message, record, deadline)
            .await;
        if result.is_err()
            && let Err(error) = self.store.release_check(key, message.check).await
        {
            tracing::warn!(request_id = %key, %error, "could not give the follow-up check back; its redelivery waits for the lease to end");
        }
        result
    }

    async fn run_check(
        &self,
        follow: &FollowSettings,
        queue: &P::Queue,
        message: &FollowUpMessage,
        record: IdempotencyRecord,
        deadline: DateTime<Utc>,
    ) -> Result<CheckReport, DependencyError> {
        let key = &message.request_id;
        if let Some(stored) = record.final_outcome {
            // Stored by an earlier delivery that could not publish it.
            return Ok(CheckReport::Final(Box::new(
                self.publish_final(key, *stored.outcome).await?,
            )));
        }
        let RecordState::Completed {
            outcome: submitted, ..
        } = record.state
        else {
            return Ok(CheckReport::Skipped("the request has no stored outcome"));
        };
        let job_ids: Vec<String> = submitted
            .atlas
            .iter()
            .flat_map(|a| a.jobs.iter().map(|j| j.id.clone()))
            .collect();
        let Some(source) = follow::source_of(&submitted).filter(|_| !job_ids.is_empty()) else {
            return Ok(CheckReport::Skipped(
                "the stored outcome names no cluster or job to follow",
            ));
        };
        let backup_type = follow::backup_type_of(&submitted);
        let atlas_deadline = self.deadline(deadline, self.settings.reserve);
        let read = self
            .read_jobs(&source, backup_type, &job_ids, atlas_deadline)
            .await?;
        let now = self.clock.now();
        let (verdict, jobs, read_error) = match read {
            Ok(jobs) => {
                let ends: Vec<_> = jobs
                    .iter()
                    .map(|job| follow::job_end(job, backup_type))
                    .collect();
                let statuses = jobs
                    .iter()
                    .map(|job| follow::job_status(job, backup_type))
                    .collect();
                (follow::verdict(&ends), statuses, None)
            }
            // Atlas not answering is no reason to stop following: the next check reads again.
            Err(error) => (None, Vec::new(), Some(error.to_string())),
        };
        let stalls_at = follow::submitted_at(&submitted)
            + chrono::Duration::from_std(follow.max).unwrap_or(chrono::Duration::hours(48));
        let (kind, note) = match verdict {
            Some(kind) => (kind, None),
            None if now >= stalls_at => {
                let mut note = format!(
                    "not every job ended within {} hours of the submission (FOLLOW_MAX_HOURS)",
                    follow.max.as_secs_f64() / 3600.0
                );
                if let Some(error) = &read_error {
                    note.push_str(&format!("; the last read of the jobs failed: {error}"));
                }
                (OutcomeKind::Stalled, Some(note))
            }
            None => {
                if let Some(error) = &read_error {
                    tracing::warn!(request_id = %key, check = message.check, %error, "the jobs could not be read; checking again later");
                }
                let next = FollowUpMessage {
                    request_id: key.clone(),
                    check: message.check + 1,
                };
                queue.send(next.to_json(), follow.interval).await?;
                self.store.next_check(key, message.check).await?;
                return Ok(CheckReport::Rescheduled {
                    next: next.check,
                    jobs,
                });
            }
        };
        let outcome = follow::final_outcome(&submitted, kind, jobs, now, note);
        let ttl = chrono::Duration::from_std(self.settings.idempotency_ttl)
            .unwrap_or(chrono::Duration::days(1));
        let expires_at = record.expires_at.max(now + ttl);
        self.store
            .store_final(key, message.check, &outcome, expires_at)
            .await?;
        Ok(CheckReport::Final(Box::new(
            self.publish_final(key, outcome).await?,
        )))
    }

    /// Publishes a stored final outcome and marks it published. A failure to do either fails
    /// the check, so the redelivery publishes it (a second notification rather than none).
    async fn publish_final(&self, key: &str, outcome: Outcome) -> Result<Report, DependencyError> {
        if let Publication::Failed(error) = self.publish(&outcome).await {
            return Err(error);
        }
        self.store.mark_final_published(key).await?;
        Ok(Report {
            outcome,
            publication: Publication::Published,
            in_flight: false,
        })
    }

    /// Reads each job of a followed request; `Err` inside `Ok` is Atlas's answer, not a
    /// dependency failure.
    async fn read_jobs(
        &self,
        source: &SourceCluster,
        backup_type: BackupType,
        job_ids: &[String],
        deadline: Instant,
    ) -> Result<Result<Vec<RestoreJob>, AtlasError>, DependencyError> {
        self.atlas.load_credentials().await?;
        match self.get_jobs(source, backup_type, job_ids, deadline).await {
            Err(AtlasError::NoCredentials(error)) => Err(error),
            read => Ok(read),
        }
    }

    async fn get_jobs(
        &self,
        source: &SourceCluster,
        backup_type: BackupType,
        job_ids: &[String],
        deadline: Instant,
    ) -> Result<Vec<RestoreJob>, AtlasError> {
        let mut jobs = Vec::with_capacity(job_ids.len());
        for id in job_ids {
            jobs.push(match backup_type {
                BackupType::Legacy => self.atlas.get_restore_job(source, id, deadline).await?,
                BackupType::Cloud => {
                    self.atlas
                        .get_cloud_restore_job(source, id, deadline)
                        .await?
                }
            });
        }
        Ok(jobs)
    }

    /// Publishes a stored outcome whose publication this attempt holds, then marks it published
    /// (or frees the key), or gives the right to publish back when publishing failed.
    async fn publish_stored(&self, key: &str, attempt: u64, outcome: &Outcome) -> Publication {
        let publication = self.publish(outcome).await;
        let settled = match &publication {
            Publication::Published if outcome.outcome.keeps_key() => {
                self.store.mark_published(key).await
            }
            Publication::Published => self.store.release(key, attempt).await,
            Publication::Failed(_) => self.store.release_publication_claim(key).await,
            Publication::NotPublished => Ok(()),
        };
        if let Err(error) = settled {
            tracing::warn!(request_id = %key, %error, "the record could not be updated after publishing; a duplicate may publish again");
        }
        publication
    }

    async fn publish(&self, outcome: &Outcome) -> Publication {
        if !outcome.outcome.is_published() {
            return Publication::NotPublished;
        }
        match self.notifier.publish(outcome).await {
            Ok(()) => Publication::Published,
            Err(error) => {
                tracing::warn!(request_id = ?outcome.request_id, %error, "publishing the outcome failed");
                Publication::Failed(error)
            }
        }
    }

    /// The newest completed snapshot; `Err` inside `Ok` is Atlas's refusal, an outcome.
    async fn latest_snapshot(
        &self,
        command: &RestoreCommand,
        deadline: Instant,
    ) -> Result<Result<Option<ObjectId>, AtlasError>, DependencyError> {
        let listed = match self.completed_snapshots(command, deadline).await {
            Err(AtlasError::NoCredentials(error)) => return Err(error),
            listed => listed,
        };
        Ok(listed.map(|snapshots| {
            snapshots
                .into_iter()
                .max_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)))
                .map(|(_, _, id)| id)
        }))
    }

    /// The source cluster's completed snapshots of its backup type, as (created, increment, id).
    async fn completed_snapshots(
        &self,
        command: &RestoreCommand,
        deadline: Instant,
    ) -> Result<Vec<(Option<DateTime<chrono::FixedOffset>>, i64, ObjectId)>, AtlasError> {
        let parse = |date: Option<&str>| date.and_then(|d| DateTime::parse_from_rfc3339(d).ok());
        Ok(match command.restore.backup_type() {
            BackupType::Legacy => self
                .atlas
                .list_completed_snapshots(&command.source, deadline)
                .await?
                .into_iter()
                .filter(|s| s.complete != Some(false))
                .filter_map(|s| {
                    let created = s.created.as_ref();
                    Some((
                        parse(created.and_then(|c| c.date.as_deref())),
                        created.and_then(|c| c.increment).unwrap_or(0),
                        ObjectId::parse(&s.id)?,
                    ))
                })
                .collect(),
            BackupType::Cloud => self
                .atlas
                .list_cloud_snapshots(&command.source, deadline)
                .await?
                .into_iter()
                .filter(|s| s.status.as_deref() == Some("completed"))
                .filter_map(|s| Some((parse(s.created_at.as_deref()), 0, ObjectId::parse(&s.id)?)))
                .collect(),
        })
    }

    /// Looks for the job(s) an unanswered request created: only jobs created at or after
    /// `since` (the first attempt's start) less the clock-skew margin can be adopted.
    async fn reconcile(&self, submission: &Submission<'_>, since: DateTime<Utc>) -> Reconciled {
        let margin = chrono::Duration::from_std(self.settings.reconcile_margin)
            .unwrap_or(chrono::Duration::minutes(2));
        let not_before = since - margin;
        let source = &submission.request.command.source;
        let deadline = submission.reconcile_deadline;
        // Every attempt resolves the same point (the first attempt's time, the recorded
        // snapshot), so the point is always compared.
        let run_time = false;
        let adopted = match &submission.job {
            ResolvedRestore::Legacy(job) => self
                .atlas
                .list_restore_jobs(source, Some(not_before), deadline)
                .await
                .map(|jobs| find_adoptable(&jobs, job, run_time, not_before)),
            ResolvedRestore::Cloud(job) => self
                .atlas
                .list_cloud_restore_jobs(source, deadline)
                .await
                .map(|jobs| find_adoptable_cloud(&jobs, job, run_time, not_before)),
        };
        match adopted {
            Err(error) => Reconciled::ListFailed(error),
            Ok(Adoption::NotFound) => Reconciled::NoneFound,
            Ok(Adoption::Found(jobs)) => Reconciled::Adopted(jobs),
            Ok(Adoption::Ambiguous(candidates)) => Reconciled::Ambiguous(candidates),
        }
    }

    fn deadline(&self, invocation_deadline: DateTime<Utc>, keep_back: Duration) -> Instant {
        let left = (invocation_deadline - self.clock.now())
            .to_std()
            .unwrap_or(Duration::ZERO);
        Instant::now() + left.saturating_sub(keep_back)
    }

    fn outcome(
        &self,
        request: &RunRequest,
        kind: OutcomeKind,
        started_at: DateTime<Utc>,
    ) -> Outcome {
        let command = &request.command;
        Outcome {
            outcome: kind,
            request_id: Some(request.request_id.clone()),
            trigger: request.trigger,
            group_id: Some(command.source.group_id.to_string()),
            cluster_name: Some(command.source.cluster_name.to_string()),
            backup_type: Some(command.restore.backup_type().as_str().to_owned()),
            restore: None,
            atlas: None,
            errors: Vec::new(),
            requested_by: command.requested_by.clone(),
            approved_by: command.approved_by.clone(),
            reason: command.reason.clone(),
            started_at,
            finished_at: self.clock.now(),
            first: None,
            notified: None,
            duration_seconds: None,
        }
    }

    fn submitted(
        &self,
        submission: &Submission<'_>,
        http_status: Option<u16>,
        jobs: Vec<RestoreJob>,
        reconciled: bool,
    ) -> Outcome {
        let summary = AtlasSummary {
            http_status,
            jobs: jobs.iter().map(JobSummary::from_job).collect(),
            reconciled,
            ..AtlasSummary::default()
        };
        self.sent_outcome(submission, OutcomeKind::Submitted, summary)
    }

    fn failed(
        &self,
        submission: &Submission<'_>,
        http_status: Option<u16>,
        error: ApiError,
    ) -> Outcome {
        let summary = AtlasSummary {
            http_status,
            error_code: error.error_code,
            detail: error.detail,
            reason: error.reason,
            ..AtlasSummary::default()
        };
        self.sent_outcome(submission, OutcomeKind::Failed, summary)
    }

    fn unknown(
        &self,
        submission: &Submission<'_>,
        http_status: Option<u16>,
        reason: String,
        error: Option<ApiError>,
    ) -> Outcome {
        let error = error.unwrap_or_default();
        let summary = AtlasSummary {
            http_status,
            error_code: error.error_code,
            detail: error.detail.or(error.reason),
            reason: Some(reason),
            ..AtlasSummary::default()
        };
        self.sent_outcome(submission, OutcomeKind::Unknown, summary)
    }

    /// The outcome of a restore that was (or may have been) sent: the body and what Atlas said.
    fn sent_outcome(
        &self,
        submission: &Submission<'_>,
        kind: OutcomeKind,
        atlas: AtlasSummary,
    ) -> Outcome {
        self.outcome(submission.request, kind, submission.attempt.started_at)
            .with_restore(&submission.body)
            .with_atlas(atlas)
    }

    fn no_snapshot(&self, request: &RunRequest, attempt: &Attempt) -> Outcome {
        let problem = Problem::new(
            "/restorePoint",
            ErrorCode::SnapshotNotFound,
            format!(
                "{} has no completed legacy snapshot to restore from",
                request.command.source.cluster_name
            ),
        );
        self.outcome(request, OutcomeKind::Rejected, attempt.started_at)
            .with_errors(vec![problem])
    }

    fn failed_read(
        &self,
        request: &RunRequest,
        started_at: DateTime<Utc>,
        doing: &str,
        error: AtlasError,
    ) -> Outcome {
        let (http_status, api_error) = match &error {
            AtlasError::Api { status, error } | AtlasError::Unauthorized { status, error } => {
                (Some(*status), error.clone())
            }
            _ => (None, ApiError::default()),
        };
        let summary = AtlasSummary {
            http_status,
            error_code: api_error.error_code,
            detail: api_error.detail,
            reason: Some(format!("{doing} failed: {error}")),
            ..AtlasSummary::default()
        };
        self.outcome(request, OutcomeKind::Failed, started_at)
            .with_atlas(summary)
    }
}

impl Outcome {
    fn with_errors(mut self, errors: Vec<Problem>) -> Outcome {
        self.errors = errors;
        self
    }

    fn with_restore(mut self, body: &Value) -> Outcome {
        self.restore = Some(body.clone());
        self
    }

    fn with_atlas(mut self, atlas: AtlasSummary) -> Outcome {
        self.atlas = Some(atlas);
        self
    }
}
