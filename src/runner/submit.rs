//! Working a command: resolve it, look for an earlier attempt's job when one may have been sent,
//! write the sending mark, send it, act on Atlas's answer class, and finish with its outcome
//! (CONTRACT section 4).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::time::Instant;

use crate::atlas_api::model::{ApiError, RestoreJob};
use crate::atlas_api::{AtlasError, CreateAnswer};
use crate::command::{BackupType, ObjectId, ResolvedRestore, RestoreCommand};
use crate::drill::RestorePoint;
use crate::outcome::{Outcome, OutcomeKind, Problem};
use crate::ports::{Atlas, Clock, DependencyError, IdempotencyStore, Ports, SendingMark};
use crate::reconcile::{Adoption, find_adoptable, find_adoptable_cloud};

use super::*;

/// A listed snapshot: (created, increment, id, the time of its data).
pub(super) type ListedSnapshot = (
    Option<DateTime<chrono::FixedOffset>>,
    i64,
    ObjectId,
    Option<DateTime<Utc>>,
);

/// The attempt holding the key.
pub(super) struct Attempt {
    pub(super) number: u64,
    /// When the record's first attempt started: a point chosen at run time is chosen as of
    /// then, so every attempt means the same restore, and it is the outcome's `startedAt`.
    pub(super) started_at: DateTime<Utc>,
    /// An earlier attempt may have sent the restore since then: look for its job first.
    pub(super) earlier_sending: Option<SendingMark>,
    /// This attempt wrote its own sending mark: from then on the key is never released.
    pub(super) marked_sending: AtomicBool,
}

impl Attempt {
    pub(super) fn holding(acquired: (u64, DateTime<Utc>, Option<SendingMark>)) -> Attempt {
        let (number, started_at, earlier_sending) = acquired;
        Attempt {
            number,
            started_at,
            earlier_sending,
            marked_sending: AtomicBool::new(false),
        }
    }

    /// Whether the record says a restore may have been sent under its key.
    pub(super) fn may_have_sent(&self) -> bool {
        self.earlier_sending.is_some() || self.marked_sending.load(Ordering::SeqCst)
    }
}

/// One restore on its way to Atlas.
pub(super) struct Submission<'a> {
    pub(super) request: &'a RunRequest,
    pub(super) attempt: &'a Attempt,
    pub(super) job: ResolvedRestore,
    pub(super) body: Value,
    /// The snapshot `latestSnapshot` resolved to, recorded with the sending mark.
    pub(super) chosen_snapshot: Option<String>,
    /// A drill's restore point time (CONTRACT section 7), when known.
    pub(super) restore_point_time: Option<DateTime<Utc>>,
    pub(super) submit_deadline: Instant,
    pub(super) reconcile_deadline: Instant,
}

pub(super) enum Reconciled {
    Adopted(Vec<RestoreJob>),
    NoneFound,
    /// Jobs that could be this request's, none shown to be: never adopted, never sent again.
    Ambiguous(Vec<String>),
    ListFailed(AtlasError),
}

/// The reason of an `UNKNOWN` outcome when reconciliation could not tell which job is ours.
pub(super) fn ambiguous_reason(candidates: &[String]) -> String {
    format!(
        "{} listed job(s) could be this request's and none can be shown to be ({}); nothing was adopted or sent again: a person must check",
        candidates.len(),
        candidates.join(", ")
    )
}

impl<P: Ports> Runner<P> {
    /// Works the command and finishes with its outcome. On a dependency failure the key is
    /// freed when nothing can have been sent under it; otherwise its lease is ended, so the
    /// retry takes it over at once and reconciles before sending anything.
    pub(super) async fn work_and_finish(
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
        let follow = request.command.must_follow(self.settings.follow_all);
        let reports = request.command.task_token.is_some();
        self.finish(
            &request.request_id,
            attempt.number,
            outcome,
            follow,
            reports,
        )
        .await
    }

    /// Resolves the restore, looks for an earlier attempt's job when one may have been
    /// sent, and submits. `problems`: a delivered command that no longer passes is `REJECTED`
    /// (after the look for an earlier job: a record that may have sent is never freed blind).
    pub(super) async fn work(
        &self,
        request: &RunRequest,
        attempt: &Attempt,
        problems: Vec<Problem>,
    ) -> Result<Outcome, DependencyError> {
        let rejected = |problems| {
            self.outcome(request, OutcomeKind::Rejected, attempt.started_at)
                .with_errors(problems)
        };
        // Recorded before anything is sent, so the end is reported to it whoever reports it.
        self.take_task_token(&request.request_id, request.command.task_token.as_ref())
            .await?;
        if !problems.is_empty() && attempt.earlier_sending.is_none() {
            return Ok(rejected(problems));
        }
        let submission = match self.resolve(request, attempt).await? {
            Ok(submission) => submission,
            Err(refused) => return Ok(refused),
        };
        if self.is_dry_run(&request.command) {
            return Ok(self
                .outcome(request, OutcomeKind::DryRun, attempt.started_at)
                .with_restore(&submission.body));
        }
        if let Some(mark) = &attempt.earlier_sending {
            let reconciled = self.reconcile(&submission, mark.since).await;
            let context = "an earlier attempt may have sent this restore";
            if let Some(outcome) = self.settle(&submission, reconciled, None, context, None) {
                return Ok(outcome);
            }
        }
        if !problems.is_empty() {
            return Ok(rejected(problems));
        }
        self.submit(&submission).await
    }

    /// Fixes the restore point and the Atlas body. `Err` inside `Ok` is the outcome of a
    /// command that cannot be resolved (no completed snapshot, or Atlas refused the listing).
    async fn resolve<'a>(
        &self,
        request: &'a RunRequest,
        attempt: &'a Attempt,
    ) -> Result<Result<Submission<'a>, Outcome>, DependencyError> {
        let command = &request.command;
        let spec = &command.restore;
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
        if !self.is_dry_run(command) || needs_listing {
            self.atlas.load_credentials().await?;
        }
        let (latest, listed_time) = match chosen_earlier {
            Some(id) => (Some(id), None),
            None if needs_listing => match self.latest_snapshot(command, submit_deadline).await? {
                Ok(Some((id, time))) => (Some(id), time),
                Ok(None) => return Ok(Err(self.no_snapshot(request, attempt))),
                Err(error) => {
                    let doing = "listing snapshots";
                    let failed = self.failed_read(request, attempt.started_at, doing, error);
                    return Ok(Err(failed));
                }
            },
            None => (None, None),
        };
        // A point chosen at run time is chosen as of the first attempt, so a retry means the same.
        let Some(job) = spec.resolve(attempt.started_at, latest.as_ref()) else {
            return Ok(Err(self.no_snapshot(request, attempt)));
        };
        let restore_point_time = match command.drill.is_some() && !self.is_dry_run(command) {
            true => {
                self.restore_point_time(command, &job, listed_time, submit_deadline)
                    .await?
            }
            false => None,
        };
        Ok(Ok(Submission {
            restore_point_time,
            request,
            attempt,
            body: job.atlas_body(),
            job,
            chosen_snapshot: latest
                .filter(|_| spec.needs_latest_snapshot())
                .map(|id| id.to_string()),
            submit_deadline,
            reconcile_deadline: self.deadline(request.deadline, self.settings.reserve),
        }))
    }

    /// Sends the restore, and acts on Atlas's answer class (CONTRACT section 4).
    /// The record says, before the first POST, that this attempt may send from now on: a
    /// crash anywhere after this line leaves the mark for the next attempt to reconcile.
    pub(super) async fn submit(
        &self,
        submission: &Submission<'_>,
    ) -> Result<Outcome, DependencyError> {
        let since = self.write_sending_mark(submission).await?;
        loop {
            let answer = self.send(submission).await;
            return Ok(match answer {
                CreateAnswer::Created { http_status, jobs } => {
                    self.submitted(submission, Some(http_status), jobs, false)
                }
                // A 401 too: the client already fetched the secret again once and sent again.
                CreateAnswer::Refused { http_status, error }
                | CreateAnswer::Unauthorized { http_status, error } => {
                    self.failed(submission, Some(http_status), error)
                }
                CreateAnswer::NotSent { reason } => {
                    let error = ApiError {
                        reason: Some(format!("the request never reached Atlas: {reason}")),
                        ..ApiError::default()
                    };
                    self.failed(submission, None, error)
                }
                CreateAnswer::NoCredentials(error) => return Err(error),
                CreateAnswer::Unavailable { error, retry_after } => {
                    match self
                        .after_unavailable(submission, since, error, retry_after)
                        .await
                    {
                        Some(outcome) => outcome,
                        None => continue,
                    }
                }
                CreateAnswer::Ambiguous {
                    http_status,
                    reason,
                    error,
                } => {
                    let reconciled = self.reconcile(submission, since).await;
                    self.settle(submission, reconciled, http_status, &reason, error.clone())
                        .unwrap_or_else(|| self.unknown(submission, http_status, reason, error))
                }
            });
        }
    }

    /// Writes the sending mark ahead of the first POST; the time from which this request's
    /// jobs were created (the earliest mark the record keeps).
    async fn write_sending_mark(
        &self,
        submission: &Submission<'_>,
    ) -> Result<DateTime<Utc>, DependencyError> {
        let attempt = submission.attempt;
        let mark = SendingMark {
            since: self.clock.now(),
            snapshot_id: submission.chosen_snapshot.clone(),
        };
        self.store
            .mark_sending(&submission.request.request_id, attempt.number, &mark)
            .await?;
        attempt.marked_sending.store(true, Ordering::SeqCst);
        Ok(attempt
            .earlier_sending
            .as_ref()
            .map_or(mark.since, |earlier| earlier.since.min(mark.since)))
    }

    /// One POST of the restore.
    async fn send(&self, submission: &Submission<'_>) -> CreateAnswer {
        let source = &submission.request.command.source;
        let (body, deadline) = (&submission.body, submission.submit_deadline);
        match &submission.job {
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
        }
    }

    /// After a 503: the job if one was created, else `None` once the wait before sending
    /// again is over (`UNKNOWN` when the deadline leaves no time to send again).
    async fn after_unavailable(
        &self,
        submission: &Submission<'_>,
        since: DateTime<Utc>,
        error: ApiError,
        retry_after: Option<Duration>,
    ) -> Option<Outcome> {
        let reconciled = self.reconcile(submission, since).await;
        let context = "Atlas answered 503";
        if let Some(outcome) = self.settle(
            submission,
            reconciled,
            Some(503),
            context,
            Some(error.clone()),
        ) {
            return Some(outcome);
        }
        let wait = retry_after.unwrap_or(self.settings.unavailable_backoff);
        if Instant::now() + wait + Duration::from_secs(1) >= submission.submit_deadline {
            let reason = "Atlas answered 503 and no job was found; no time was left to send again";
            return Some(self.unknown(submission, Some(503), reason.to_owned(), Some(error)));
        }
        tokio::time::sleep(wait).await;
        None
    }

    /// What reconciliation came to, as an outcome: the adopted job(s), or `UNKNOWN` when the
    /// jobs could not be listed or several could be ours; `None` when none was found.
    /// `context` says what led to it.
    fn settle(
        &self,
        submission: &Submission<'_>,
        reconciled: Reconciled,
        http_status: Option<u16>,
        context: &str,
        error: Option<ApiError>,
    ) -> Option<Outcome> {
        let reason = match reconciled {
            Reconciled::NoneFound => return None,
            Reconciled::Adopted(jobs) => {
                return Some(self.submitted(submission, http_status, jobs, true));
            }
            Reconciled::ListFailed(list_error) => {
                format!("{context}; listing the cluster's jobs to check also failed: {list_error}")
            }
            Reconciled::Ambiguous(candidates) => {
                format!("{context}; {}", ambiguous_reason(&candidates))
            }
        };
        Some(self.unknown(submission, http_status, reason, error))
    }

    /// Stores the outcome, then publishes it, then marks it published (or frees the key);
    /// starts following a `SUBMITTED` outcome when `follow`. With `reports` (the command
    /// carries a task token), an outcome that ends the request is reported to the task before
    /// a key that the outcome frees is released: a retry after a failed report finds the
    /// outcome and reports it, and never sends the restore again.
    pub(super) async fn finish(
        &self,
        key: &str,
        attempt: u64,
        outcome: Outcome,
        follow: bool,
        reports: bool,
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
            // retried; a retry reconciles with Atlas and never sends twice. A drill's evidence
            // first, as far as it can be kept.
            if let Err(evidence_error) = self.keep_evidence(&outcome).await {
                tracing::warn!(request_id = %key, error = %evidence_error, "the drill's evidence could not be kept either");
            }
            let _ = self.publish(&outcome).await;
            if !outcome.outcome.keeps_key() {
                let _ = self.store.release(key, attempt).await;
            }
            return Err(error);
        }
        let publication = self.publish_stored(key, attempt, &outcome, reports).await;
        if reports && matches!(publication, Publication::Published) {
            self.report_and_release(key, attempt, &outcome).await?;
        }
        if follow && outcome.outcome == OutcomeKind::Submitted {
            self.start_following(key, &outcome).await?;
        }
        Ok(Report {
            outcome,
            publication,
            in_flight: false,
        })
    }

    /// The newest completed snapshot and the time of its data (a drill's restore point time);
    /// `Err` inside `Ok` is Atlas's refusal, an outcome.
    pub(super) async fn latest_snapshot(
        &self,
        command: &RestoreCommand,
        deadline: Instant,
    ) -> Result<Result<Option<(ObjectId, Option<DateTime<Utc>>)>, AtlasError>, DependencyError>
    {
        let listed = match self.completed_snapshots(command, deadline).await {
            Err(AtlasError::NoCredentials(error)) => return Err(error),
            listed => listed,
        };
        Ok(listed.map(|snapshots| {
            snapshots
                .into_iter()
                .max_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)))
                .map(|(_, _, id, time)| (id, time))
        }))
    }

    /// A drill's restore point time: the body's own, the listed snapshot's, or one read of the
    /// snapshot or checkpoint it names (CONTRACT section 7). A read Atlas refuses leaves it
    /// unknown (logged): the restore still runs, and the drill shows no RPO.
    async fn restore_point_time(
        &self,
        command: &RestoreCommand,
        job: &ResolvedRestore,
        listed: Option<DateTime<Utc>>,
        deadline: Instant,
    ) -> Result<Option<DateTime<Utc>>, DependencyError> {
        let point = RestorePoint::of(job);
        if let Some(time) = point.known().or(listed) {
            return Ok(Some(time));
        }
        let read = self
            .atlas
            .get_restore_point(&command.source, &point, deadline)
            .await;
        match read {
            Ok(read) => {
                let time = point.time_from(&read);
                if time.is_none() {
                    tracing::warn!(
                        ?point,
                        "the restore point read from Atlas has no time; the drill's RPO is unknown"
                    );
                }
                Ok(time)
            }
            Err(AtlasError::NoCredentials(error)) => Err(error),
            Err(error) => {
                tracing::warn!(?point, %error, "the restore point could not be read; the drill's RPO is unknown");
                Ok(None)
            }
        }
    }

    /// The source cluster's completed snapshots of its backup type, as (created, increment, id,
    /// the time of its data).
    pub(super) async fn completed_snapshots(
        &self,
        command: &RestoreCommand,
        deadline: Instant,
    ) -> Result<Vec<ListedSnapshot>, AtlasError> {
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
                    let id = ObjectId::parse(&s.id)?;
                    let time = serde_json::to_value(&s)
                        .ok()
                        .and_then(|v| RestorePoint::LegacySnapshot(id.clone()).time_from(&v));
                    Some((
                        parse(created.and_then(|c| c.date.as_deref())),
                        created.and_then(|c| c.increment).unwrap_or(0),
                        id,
                        time,
                    ))
                })
                .collect(),
            BackupType::Cloud => self
                .atlas
                .list_cloud_snapshots(&command.source, deadline)
                .await?
                .into_iter()
                .filter(|s| s.status.as_deref() == Some("completed"))
                .filter_map(|s| {
                    let created = parse(s.created_at.as_deref());
                    let time = created.map(|c| c.with_timezone(&Utc));
                    Some((created, 0, ObjectId::parse(&s.id)?, time))
                })
                .collect(),
        })
    }

    /// Looks for the job(s) an unanswered request created: only jobs created at or after
    /// `since` (the first attempt's start) less the clock-skew margin can be adopted.
    pub(super) async fn reconcile(
        &self,
        submission: &Submission<'_>,
        since: DateTime<Utc>,
    ) -> Reconciled {
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

    /// The instant by which Atlas calls made for an event due by `invocation_deadline` end,
    /// keeping back the time to store and publish its outcome.
    pub fn atlas_deadline(&self, invocation_deadline: DateTime<Utc>) -> Instant {
        self.deadline(invocation_deadline, self.settings.reserve)
    }

    pub(super) fn deadline(
        &self,
        invocation_deadline: DateTime<Utc>,
        keep_back: Duration,
    ) -> Instant {
        let left = (invocation_deadline - self.clock.now())
            .to_std()
            .unwrap_or(Duration::ZERO);
        Instant::now() + left.saturating_sub(keep_back)
    }
}
