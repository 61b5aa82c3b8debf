//! The work queue's deliveries (an SQS batch): the webhook's hand-off messages, verified again
//! and run only by claiming the record their webhook queued, and the follow-up checks. Only
//! dependency failures and a delivery that finds another running are retried
//! (`batchItemFailures`).

use serde_json::{Value, json};

use crate::command::json as strict_json;
use crate::follow::FollowUpMessage;
use crate::handler::{App, Invocation};
use crate::outcome::Trigger;
use crate::ports::{DependencyError, Ports, Secrets};
use crate::runner::{CheckReport, Delivered, Publication};
use crate::telemetry::log_outcome;
use crate::triggers::hand_off::HandOffMessage;
use crate::triggers::signature::verify;
use crate::triggers::webhook::webhook_request;

/// Why a work-queue message is handed back to SQS to be delivered again.
#[derive(Debug, thiserror::Error)]
enum Retry {
    #[error("{0}")]
    Dependency(#[from] DependencyError),
    #[error(
        "another delivery is running this command now; it is tried again after the visibility timeout"
    )]
    Busy,
}

impl<P: Ports> App<P> {
    /// The work queue's deliveries: verified again (signature, not its age), checked against
    /// validation and policy again, and run only by claiming the record their webhook queued.
    /// Only dependency failures and a delivery that finds another running are retried.
    pub(crate) async fn queue_batch(&self, records: &[Value], invocation: &Invocation) -> Value {
        let mut failures = Vec::new();
        for record in records {
            let message_id = record
                .get("messageId")
                .and_then(Value::as_str)
                .unwrap_or("");
            if let Err(retry) = self.queue_record(record, invocation).await {
                tracing::error!(message_id, %retry, "work queue: the message will be retried");
                failures.push(json!({"itemIdentifier": message_id}));
            }
        }
        json!({"batchItemFailures": failures})
    }

    async fn queue_record(&self, record: &Value, invocation: &Invocation) -> Result<(), Retry> {
        let message_id = record
            .get("messageId")
            .and_then(Value::as_str)
            .unwrap_or("");
        let message: Value = record
            .get("body")
            .and_then(Value::as_str)
            .and_then(|b| serde_json::from_str(b).ok())
            .unwrap_or(Value::Null);
        match FollowUpMessage::from_value(&message) {
            Some(Ok(follow_up)) => return Ok(self.follow_up(&follow_up, invocation).await?),
            Some(Err(problem)) => {
                tracing::warn!(message_id, %problem, "work queue: a malformed follow-up message was dropped");
                return Ok(());
            }
            None => {}
        }
        let Some(hand_off) = HandOffMessage::from_value(&message) else {
            tracing::warn!(
                message_id,
                "work queue: a message that is neither a hand-off nor a follow-up was dropped"
            );
            return Ok(());
        };
        let signing = self.runner.secrets().webhook_signing_secrets().await?;
        let now = self.runner.now();
        if let Err(reason) = verify(&hand_off.headers, &hand_off.body, &signing, now, false) {
            tracing::warn!(message_id, %reason, "work queue: a message without a valid webhook signature was dropped");
            return Ok(());
        }
        let value = strict_json::parse_strict(&hand_off.body).unwrap_or(Value::Null);
        let (command, problems) = self.webhook_command(&value, now);
        let delivered = match command {
            Some(command) => {
                let request = webhook_request(command, invocation, true);
                self.runner.deliver(&request, problems).await?
            }
            // It no longer validates: only the record this very body queued is rejected.
            None => {
                let key = value.get("idempotencyKey").and_then(Value::as_str);
                let outcome =
                    self.rejected(Trigger::Webhook, &value, key.map(str::to_owned), problems);
                match key {
                    Some(key) => {
                        self.runner
                            .reject_delivery(key, &hand_off.digest(), outcome, invocation.deadline)
                            .await?
                    }
                    None => Delivered::Dropped("the command names no idempotency key"),
                }
            }
        };
        match delivered {
            Delivered::Ran(report) => {
                log_outcome(&report);
                match report.publication {
                    Publication::Failed(error) => Err(Retry::Dependency(error)),
                    // Another attempt holds the request and may have died: come back later.
                    _ if report.in_flight => Err(Retry::Busy),
                    _ => Ok(()),
                }
            }
            Delivered::Dropped(why) => {
                tracing::warn!(
                    message_id,
                    why,
                    "work queue: a hand-off message was dropped; nothing was sent to Atlas"
                );
                Ok(())
            }
            Delivered::Busy => Err(Retry::Busy),
        }
    }

    /// One follow-up check from the work queue. Only dependency failures are retried.
    async fn follow_up(
        &self,
        message: &FollowUpMessage,
        invocation: &Invocation,
    ) -> Result<(), DependencyError> {
        let request_id = message.request_id.as_str();
        match self.runner.check(message, invocation.deadline).await? {
            CheckReport::Skipped(why) => {
                tracing::info!(
                    request_id,
                    check = message.check,
                    why,
                    "follow-up check skipped"
                );
                Ok(())
            }
            CheckReport::Rescheduled { next, jobs } => {
                let statuses: Vec<String> = jobs
                    .iter()
                    .map(|j| format!("{} {}", j.id, j.status_name.as_deref().unwrap_or("?")))
                    .collect();
                tracing::info!(request_id, check = message.check, next, jobs = ?statuses, "jobs still running; next check queued");
                Ok(())
            }
            CheckReport::Final(report) => {
                log_outcome(&report);
                Ok(())
            }
        }
    }
}
