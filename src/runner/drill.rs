//! Drills (CONTRACT section 7): the figures and the report link of a drill's final outcome,
//! the evidence kept before an outcome that ends a drill is published, and the history read
//! back.

use chrono::{DateTime, Utc};

use crate::drill::{self, EvidenceRecord, link};
use crate::outcome::Outcome;
use crate::ports::{DependencyError, DrillEvidence, MAX_DRILL_PAGE, Ports, Secrets};

use super::*;

impl<P: Ports> Runner<P> {
    /// A drill's final outcome with its figures and verdict, and, with `PUBLIC_BASE_URL`, the
    /// link to its report (valid 30 days). Any other outcome as it is.
    pub(super) async fn with_drill_figures(
        &self,
        mut outcome: Outcome,
        now: DateTime<Utc>,
    ) -> Result<Outcome, DependencyError> {
        let Some(figures) = drill::measure(&outcome) else {
            return Ok(outcome);
        };
        if let Some(base) = &self.settings.public_base_url {
            let signing = self.secrets.webhook_signing_secrets().await?;
            outcome.report_url = Some(link::report_url(
                base,
                signing.current.expose().as_bytes(),
                &figures.name,
                now,
            ));
        }
        outcome.drill = Some(figures);
        Ok(outcome)
    }

    /// Keeps the evidence of a drill that `outcome` ended, before it is published: `Err` when
    /// it could not be written, so the outcome is not published and the retry writes it
    /// (written once: a second write of the same drill's record changes nothing).
    pub(super) async fn keep_evidence(&self, outcome: &Outcome) -> Result<(), DependencyError> {
        let Some(record) = EvidenceRecord::of(outcome) else {
            return Ok(());
        };
        let Some(drills) = &self.drills else {
            tracing::error!(drill = %record.drill, request_id = ?record.request_id, "a drill ended but DRILL_TABLE is no longer set: its evidence is only in the outcome");
            return Ok(());
        };
        if drills.put(&record).await? {
            tracing::info!(drill = %record.drill, started_at = %record.started_at, verdict = %record.verdict, "drill evidence kept");
        } else {
            tracing::error!(drill = %record.drill, started_at = %record.started_at, request_id = ?record.request_id, "another request's drill evidence holds this drill's key (same name, same start to the microsecond); this drill's evidence is only in its outcome");
        }
        Ok(())
    }

    /// A drill's evidence, newest first (at most 100; before the sort key `before` when
    /// given); `None` without `DRILL_TABLE`.
    pub async fn drill_history(
        &self,
        name: &str,
        before: Option<&str>,
    ) -> Result<Option<Vec<EvidenceRecord>>, DependencyError> {
        match &self.drills {
            Some(drills) => Ok(Some(drills.list(name, before, MAX_DRILL_PAGE).await?)),
            None => Ok(None),
        }
    }
}
