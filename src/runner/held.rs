//! Answering a key this attempt does not hold ([`ledger::decide`]), and publishing outcomes
//! under the right to publish.

use crate::ledger::Decision;
use crate::outcome::{ErrorCode, Outcome, OutcomeKind, Problem};
use crate::ports::{
    Clock, DependencyError, IdempotencyRecord, IdempotencyStore, Notifier, Ports, RecordState,
};

use super::*;

/// How long the attempt that stores an outcome holds the right to publish it, before a
/// duplicate may (the attempt died between storing and publishing).
pub(super) const PUBLISH_CLAIM: chrono::Duration = chrono::Duration::seconds(60);

impl<P: Ports> Runner<P> {
    /// `DUPLICATE` of an attempt that is still working on the command.
    pub(super) fn in_flight(&self, request: &RunRequest) -> Report {
        Report {
            outcome: self.outcome(request, OutcomeKind::Duplicate, self.clock.now()),
            publication: Publication::NotPublished,
            in_flight: true,
        }
    }

    pub(super) fn not_published(&self, outcome: Outcome) -> Report {
        Report {
            outcome,
            publication: Publication::NotPublished,
            in_flight: false,
        }
    }

    /// The answer of a key this attempt does not hold, as [`ledger::decide`] said.
    pub(super) async fn answer_held(
        &self,
        request: &RunRequest,
        record: IdempotencyRecord,
        decision: &Decision,
    ) -> Result<Report, DependencyError> {
        // A retried state's new token: the one the end is reported to from now on. Never the
        // token of another command, or of a dry run of a real one (or the reverse).
        if *decision != Decision::KeyReused && record.dry_run == self.is_dry_run(&request.command) {
            self.take_task_token(&request.request_id, request.command.task_token.as_ref())
                .await?;
        }
        match decision {
            Decision::KeyReused => self.key_reused(request, &record).await,
            Decision::Repeat => self.repeat(request, record).await,
            Decision::Duplicate { in_flight: false } => self.duplicate(request, record).await,
            // Another attempt works on it (or the record changed under the decision): the
            // first may still finish.
            _ => Ok(self.in_flight(request)),
        }
    }

    /// Another command holds the key: `REJECTED` / `KEY_REUSED`, published.
    async fn key_reused(
        &self,
        request: &RunRequest,
        record: &IdempotencyRecord,
    ) -> Result<Report, DependencyError> {
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
            .outcome(request, OutcomeKind::Rejected, self.clock.now())
            .with_errors(vec![problem]);
        let report = self.publish_only(outcome).await;
        // Its own token, never the record's: that task belongs to the other command.
        if let (Some(token), Publication::Published) =
            (&request.command.task_token, &report.publication)
        {
            self.report_unrecorded(token, &report.outcome).await?;
        }
        Ok(report)
    }

    /// The same command again after an outcome that frees its key: that outcome, published
    /// now if it never was, and the key freed as that outcome says.
    async fn repeat(
        &self,
        request: &RunRequest,
        record: IdempotencyRecord,
    ) -> Result<Report, DependencyError> {
        let key = &request.request_id;
        let reports = request.command.task_token.is_some() || record.pending_task_token().is_some();
        let RecordState::Completed {
            outcome: stored,
            published,
        } = record.state
        else {
            return Ok(self.in_flight(request));
        };
        if published {
            if reports {
                self.report_end(key).await?;
            }
            self.store.release(key, record.attempt).await?;
            return Ok(self.not_published(*stored));
        }
        let now = self.clock.now();
        let claimed = self
            .store
            .claim_publication(key, now, now + PUBLISH_CLAIM)
            .await?;
        let publication = match claimed {
            true => {
                self.publish_stored(key, record.attempt, &stored, reports)
                    .await
            }
            false => Publication::NotPublished,
        };
        if reports && matches!(publication, Publication::Published) {
            self.report_and_release(key, record.attempt, &stored)
                .await?;
        }
        Ok(Report {
            publication,
            outcome: *stored,
            // Another attempt holds the right to publish it, and may have died.
            in_flight: !claimed,
        })
    }

    /// Reports the stored first outcome to the request's task when it ends the request, then
    /// releases the key if the outcome frees it (held until now so a failed report is retried
    /// from the stored outcome, never by running the command again).
    pub(super) async fn report_and_release(
        &self,
        key: &str,
        attempt: u64,
        outcome: &Outcome,
    ) -> Result<(), DependencyError> {
        self.report_end(key).await?;
        if !outcome.outcome.keeps_key() {
            self.store.release(key, attempt).await?;
        }
        Ok(())
    }

    /// `DUPLICATE` with the first outcome. The first attempt stored it but may not have
    /// published it: this one publishes it, unless that attempt (or another duplicate) holds
    /// the right to; it may have died holding it, so this one is not done until it is
    /// published. The attempt that submitted may not have queued the follow-up: this one does.
    async fn duplicate(
        &self,
        request: &RunRequest,
        record: IdempotencyRecord,
    ) -> Result<Report, DependencyError> {
        let key = &request.request_id;
        let now = self.clock.now();
        let reports = request.command.task_token.is_some() || record.pending_task_token().is_some();
        let RecordState::Completed {
            outcome: first,
            published,
        } = record.state
        else {
            return Ok(self.in_flight(request));
        };
        let mut publication = Publication::NotPublished;
        let mut in_flight = false;
        if !published && first.outcome.is_published() {
            if self
                .store
                .claim_publication(key, now, now + PUBLISH_CLAIM)
                .await?
            {
                publication = self
                    .publish_stored(key, record.attempt, &first, false)
                    .await;
            } else {
                in_flight = true;
            }
        }
        // The end, once published, is reported to a waiting token (a retried state's new one
        // at once); an end not yet published is reported by whoever publishes it.
        let end_published = match &record.final_outcome {
            Some(stored) => stored.published,
            None => published || matches!(publication, Publication::Published),
        };
        if reports && end_published {
            self.report_end(key).await?;
        }
        if first.outcome == OutcomeKind::Submitted
            && record.follow_up.is_none()
            && request.command.must_follow(self.settings.follow_all)
        {
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

    /// Publishes a stored outcome whose publication this attempt holds, then marks it published
    /// (or frees the key), or gives the right to publish back when publishing failed.
    /// With `hold_key`, an outcome that frees its key is only marked published: the caller
    /// reports it to the request's task first, then releases the key.
    pub(super) async fn publish_stored(
        &self,
        key: &str,
        attempt: u64,
        outcome: &Outcome,
        hold_key: bool,
    ) -> Publication {
        // A drill's evidence before its outcome: never an outcome without its evidence.
        if let Err(error) = self.keep_evidence(outcome).await {
            if let Err(release) = self.store.release_publication_claim(key).await {
                tracing::warn!(request_id = %key, error = %release, "could not give the right to publish back");
            }
            tracing::warn!(request_id = %key, %error, "the drill's evidence could not be kept; the outcome is not published yet");
            return Publication::Failed(error);
        }
        let publication = self.publish(outcome).await;
        let settled = match &publication {
            Publication::Published if outcome.outcome.keeps_key() || hold_key => {
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

    pub(super) async fn publish(&self, outcome: &Outcome) -> Publication {
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

    /// Publishes an outcome that involves no key (a command refused before it could run).
    pub async fn publish_only(&self, outcome: Outcome) -> Report {
        let publication = self.publish(&outcome).await;
        Report {
            outcome,
            publication,
            in_flight: false,
        }
    }
}
