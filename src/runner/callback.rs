//! Reporting to a Step Functions task (CONTRACT section 8): when the runner tells a waiting
//! task its request's end, and a heartbeat on each follow-up check. What is sent is
//! [`crate::callback`]'s. Always after the outcome is stored (and published), so a callback
//! that fails never makes anything be sent to Atlas again: its retry finds the stored outcome.
//!
//! The token reported to is read from the record each time: a retried state's new token
//! (recorded by its `DUPLICATE`) replaces the old one even while another attempt reports.

use crate::callback::{TaskEnd, task_end};
use crate::command::TaskToken;
use crate::outcome::Outcome;
use crate::ports::{
    CallbackError, CallbackSettled, Clock, DependencyError, IdempotencyRecord, IdempotencyStore,
    Ports, TaskCallbacks,
};

use super::*;

/// How often [`Runner::report_end`] reports again when a new token replaced the one it
/// reported to meanwhile.
const REPORT_ROUNDS: usize = 3;

impl<P: Ports> Runner<P> {
    /// Records the request's task token with its record (a new one replaces the old).
    pub(super) async fn take_task_token(
        &self,
        key: &str,
        token: Option<&TaskToken>,
    ) -> Result<(), DependencyError> {
        match token {
            Some(token) => self.store.set_task_token(key, token).await,
            None => Ok(()),
        }
    }

    /// Reports the request's end, as stored with its record, to the recorded task token if it
    /// is still waiting, and records that it was reported (or refused for good). `Err` is a
    /// failure to retry: nothing is recorded, so the retry reports it.
    pub(super) async fn report_end(&self, key: &str) -> Result<(), DependencyError> {
        for _ in 0..REPORT_ROUNDS {
            let Some(record) = self.store.read(key).await? else {
                return Ok(());
            };
            let (Some(token), Some(end)) = (
                record.pending_task_token(),
                record.known_end().and_then(task_end),
            ) else {
                return Ok(());
            };
            let settled = self.send_end(key, token, &end).await?;
            if self
                .store
                .settle_task_callback(key, token, &settled)
                .await?
            {
                return Ok(());
            }
            // A new token replaced this one while it was reported to (or another attempt
            // settled it): read again and report to the new one.
        }
        tracing::warn!(request_id = %key, "the task token kept changing while the end was reported; the next arrival reports it");
        Ok(())
    }

    /// Sends `end` to `token`: how it settled, or `Err` for a failure to retry.
    async fn send_end(
        &self,
        key: &str,
        token: &TaskToken,
        end: &TaskEnd,
    ) -> Result<CallbackSettled, DependencyError> {
        let sent = match end {
            TaskEnd::Success { output } => self.callbacks.success(token, output).await,
            TaskEnd::Failure { error, cause } => self.callbacks.failure(token, error, cause).await,
        };
        let at = self.clock.now();
        match sent {
            Ok(()) => {
                tracing::info!(request_id = %key, task_token = %token, action = end.action(), "the request's end was reported to its Step Functions task");
                Ok(CallbackSettled::Reported { at })
            }
            Err(CallbackError::Refused { code, message }) => {
                tracing::warn!(request_id = %key, task_token = %token, action = end.action(), code, message, "Step Functions refused the task token for good; nothing more is sent to it");
                Ok(CallbackSettled::Refused { code, at })
            }
            Err(CallbackError::Dependency(error)) => Err(error),
        }
    }

    /// A heartbeat for a followed request whose task waits. A heartbeat that fails is no
    /// reason to stop following (the next check sends one again: `HeartbeatSeconds` is twice
    /// the interval); one refused for good is recorded, and the token is not called again.
    pub(super) async fn heartbeat(&self, key: &str, record: &IdempotencyRecord) {
        let Some(token) = record.pending_task_token() else {
            return;
        };
        match self.callbacks.heartbeat(token).await {
            Ok(()) => {}
            Err(CallbackError::Refused { code, message }) => {
                tracing::warn!(request_id = %key, task_token = %token, code, message, "Step Functions refused the heartbeat for good; nothing more is sent to this task token");
                let settled = CallbackSettled::Refused {
                    code,
                    at: self.clock.now(),
                };
                if let Err(error) = self.store.settle_task_callback(key, token, &settled).await {
                    tracing::warn!(request_id = %key, %error, "could not record the refused task token; the next check tries it again");
                }
            }
            Err(CallbackError::Dependency(error)) => {
                tracing::warn!(request_id = %key, task_token = %token, %error, "the heartbeat failed; the next check sends one again");
            }
        }
    }

    /// Reports an outcome that has no record (a command refused before it held a key) to the
    /// token it carried. `Err` is a failure to retry: the retry is refused again and reports.
    pub async fn report_unrecorded(
        &self,
        token: &TaskToken,
        outcome: &Outcome,
    ) -> Result<(), DependencyError> {
        let Some(end) = task_end(outcome) else {
            return Ok(());
        };
        let key = outcome.request_id.as_deref().unwrap_or("-");
        self.send_end(key, token, &end).await.map(|_| ())
    }

    /// A follow-up message that may not run a check: if its request's final outcome is
    /// published but its task was not yet told (the report failed after publishing), tell it.
    pub(super) async fn report_pending_end(&self, key: &str) -> Result<(), DependencyError> {
        let Some(record) = self.store.read(key).await? else {
            return Ok(());
        };
        let final_published = record.final_outcome.as_ref().is_some_and(|f| f.published);
        if final_published && record.pending_task_token().is_some() {
            self.report_end(key).await?;
        }
        Ok(())
    }
}
