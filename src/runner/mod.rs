//! The one place that orders the work of a command (CONTRACT sections 3 and 4):
//! key -> resolve -> submit -> reconcile -> store -> publish, written against `crate::ports`.

mod callback;
mod drill;
mod follow_up;
mod held;
mod outcomes;
mod submit;

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::command::RestoreCommand;
use crate::ledger::{self, Acquired, Arrival, Ask, Decision};
use crate::outcome::{AtlasSummary, JobSummary, Outcome, OutcomeKind, Problem, Trigger};
use crate::ports::{Adapters, DrillEvidence, NoCallbacks, Secrets, TaskCallbacks};
use crate::ports::{
    Atlas, Clock, DependencyError, IdempotencyRecord, IdempotencyStore, Notifier, Ports, WorkQueue,
};
use held::PUBLISH_CLAIM;
use submit::Attempt;

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
    /// How requests are followed to their end (CONTRACT section 6).
    pub follow: FollowSettings,
    /// `FOLLOW_JOBS=true`: follow every `SUBMITTED` request; otherwise only drills and requests
    /// with a task token (CONTRACT sections 7 and 8).
    pub follow_all: bool,
    /// `PUBLIC_BASE_URL`: a drill's final outcome links to its report under it.
    pub public_base_url: Option<String>,
}

impl RunnerSettings {
    /// The settings the configuration gives (the safety margins stay at their defaults).
    pub fn from_config(config: &crate::config::Config) -> RunnerSettings {
        RunnerSettings {
            idempotency_ttl: config.idempotency_ttl,
            dry_run: config.dry_run,
            follow: FollowSettings {
                interval: config.follow_interval,
                max: config.follow_max,
            },
            follow_all: config.follow_jobs,
            public_base_url: config.public_base_url.as_ref().map(ToString::to_string),
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

impl Default for FollowSettings {
    /// The contract's defaults: a check every 5 minutes, `STALLED` after 48 hours.
    fn default() -> FollowSettings {
        FollowSettings {
            interval: Duration::from_secs(300),
            max: Duration::from_secs(48 * 3600),
        }
    }
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
            follow: FollowSettings::default(),
            follow_all: false,
            public_base_url: None,
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
    /// `DRILL_TABLE`: where drills leave their evidence (CONTRACT section 7).
    drills: Option<P::Drills>,
    settings: RunnerSettings,
    /// Step Functions' task callbacks (CONTRACT section 8).
    callbacks: P::Callbacks,
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
            drills: None,
            settings,
            callbacks: NoCallbacks,
        }
    }
}

impl<A, S, N, I, C, Q, D, K> Runner<Adapters<A, S, N, I, C, Q, D, K>>
where
    A: Atlas,
    S: Secrets,
    N: Notifier,
    I: IdempotencyStore,
    C: Clock,
    Q: WorkQueue,
    D: DrillEvidence,
    K: TaskCallbacks,
{
    /// The same runner, reporting to Step Functions tasks through `callbacks`.
    #[allow(clippy::type_complexity)] // the eight adapter types, swapping one
    pub fn with_callbacks<K2: TaskCallbacks>(
        self,
        callbacks: K2,
    ) -> Runner<Adapters<A, S, N, I, C, Q, D, K2>> {
        Runner {
            atlas: self.atlas,
            secrets: self.secrets,
            notifier: self.notifier,
            store: self.store,
            clock: self.clock,
            queue: self.queue,
            drills: self.drills,
            settings: self.settings,
            callbacks,
        }
    }

    /// The same runner with the drill evidence store (`DRILL_TABLE`), when there is one.
    #[allow(clippy::type_complexity)] // the eight adapter types, swapping one
    pub fn with_drills<D2: DrillEvidence>(
        self,
        drills: Option<D2>,
    ) -> Runner<Adapters<A, S, N, I, C, Q, D2, K>> {
        Runner {
            atlas: self.atlas,
            secrets: self.secrets,
            notifier: self.notifier,
            store: self.store,
            clock: self.clock,
            queue: self.queue,
            drills,
            settings: self.settings,
            callbacks: self.callbacks,
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
                    self.finish(key, attempt, outcome, false, false).await?,
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
}
