//! Following a submitted request to its end (CONTRACT section 6): the follow-up checks.

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use crate::atlas_api::AtlasError;
use crate::atlas_api::model::RestoreJob;
use crate::command::{BackupType, SourceCluster};
use crate::follow::{self, FollowUpMessage};
use crate::outcome::{Outcome, OutcomeKind};
use crate::ports::{
    Atlas, Clock, DependencyError, IdempotencyRecord, IdempotencyStore, Ports, RecordState,
    WorkQueue,
};

use super::*;

impl<P: Ports> Runner<P> {
    /// Starts following a `SUBMITTED` request (the caller knows it must be followed: see
    /// [`crate::command::RestoreCommand::must_follow`]): the first check is queued, then recorded. Queued first, so a failure leaves nothing recorded and the retry (a
    /// `DUPLICATE`) starts it again; a second message for check 1 is then dropped as stale.
    pub(super) async fn start_following(
        &self,
        key: &str,
        submitted: &Outcome,
    ) -> Result<(), DependencyError> {
        let follow = &self.settings.follow;
        let Some(queue) = &self.queue else {
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
        let follow = &self.settings.follow;
        let Some(queue) = &self.queue else {
            return Ok(CheckReport::Skipped(
                "no work queue (WORK_QUEUE_URL) to follow with",
            ));
        };
        let key = &message.request_id;
        let now = self.clock.now();
        let Some(record) = self
            .store
            .claim_check(key, message.check, now, deadline)
            .await?
        else {
            // The end may be published but not yet reported (the report failed): report it.
            self.report_pending_end(key).await?;
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

    pub(super) async fn run_check(
        &self,
        follow: &FollowSettings,
        queue: &P::Queue,
        message: &FollowUpMessage,
        record: IdempotencyRecord,
        deadline: DateTime<Utc>,
    ) -> Result<CheckReport, DependencyError> {
        let key = &message.request_id;
        if record.final_outcome.is_none() {
            // The task waiting on the request is told it is still followed.
            self.heartbeat(key, &record).await;
        }
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
        let (verdict, jobs, read_error) = standing(read, backup_type);
        let stalls_at = follow::submitted_at(&submitted)
            + chrono::Duration::from_std(follow.max).unwrap_or(chrono::Duration::hours(48));
        let (kind, note) = match verdict {
            Some(kind) => (kind, None),
            None if now >= stalls_at => (
                OutcomeKind::Stalled,
                Some(stalled_note(follow, read_error.as_deref())),
            ),
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
        let outcome = self.with_drill_figures(outcome, now).await?;
        let expires_at = record.expires_at.max(self.expiry_after(now));
        self.store
            .store_final(key, message.check, &outcome, expires_at)
            .await?;
        Ok(CheckReport::Final(Box::new(
            self.publish_final(key, outcome).await?,
        )))
    }

    /// Publishes a stored final outcome and marks it published. A failure to do either fails
    /// the check, so the redelivery publishes it (a second notification rather than none).
    pub(super) async fn publish_final(
        &self,
        key: &str,
        outcome: Outcome,
    ) -> Result<Report, DependencyError> {
        self.keep_evidence(&outcome).await?;
        if let Publication::Failed(error) = self.publish(&outcome).await {
            return Err(error);
        }
        self.store.mark_final_published(key).await?;
        // After the publication is recorded: a failed report fails the check, and its
        // redelivery (no longer a check to run) reports it without publishing again.
        self.report_end(key).await?;
        Ok(Report {
            outcome,
            publication: Publication::Published,
            in_flight: false,
        })
    }

    /// Reads each job of a followed request; `Err` inside `Ok` is Atlas's answer, not a
    /// dependency failure.
    pub(super) async fn read_jobs(
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

    pub(super) async fn get_jobs(
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
}

/// Where the jobs stand: the final kind once every job ended, each job's last status, and
/// why they could not be read. Atlas not answering is no reason to stop following: the next
/// check reads again.
fn standing(
    read: Result<Vec<RestoreJob>, AtlasError>,
    backup_type: BackupType,
) -> (Option<OutcomeKind>, Vec<JobSummary>, Option<String>) {
    match read {
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
        Err(error) => (None, Vec::new(), Some(error.to_string())),
    }
}

/// Why a request is `STALLED`.
fn stalled_note(follow: &FollowSettings, read_error: Option<&str>) -> String {
    let mut note = format!(
        "not every job ended within {} hours of the submission (FOLLOW_MAX_HOURS)",
        follow.max.as_secs_f64() / 3600.0
    );
    if let Some(error) = read_error {
        note.push_str(&format!("; the last read of the jobs failed: {error}"));
    }
    note
}
