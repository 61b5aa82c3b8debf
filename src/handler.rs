//! The one handler: the invocation, the answer to Lambda, and the app built once per instance.
//! Each event is routed by its shape (`triggers::route`) to its trigger's module, which turns
//! it into a command for the runner and the outcome into the trigger's answer.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::time::Instant;

use crate::atlas::AtlasClient;
use crate::aws::drill_evidence::DynamoDrillEvidence;
use crate::aws::idempotency::DynamoIdempotencyStore;
use crate::aws::queue::SqsWorkQueue;
use crate::aws::secrets_manager::SecretsManagerSecrets;
use crate::aws::sns::SnsNotifier;
use crate::aws::step_functions::StepFunctionsCallbacks;
use crate::config::Config;
use crate::deadline;
use crate::ports::{Adapters, DependencyError, Ports, SystemClock};
use crate::runner::Runner;

/// Kept back from an event's deadline to answer: every Atlas or AWS call ends this long before
/// it (CONTRACT section 4, "Deadlines").
pub const ANSWER_MARGIN: Duration = Duration::from_secs(1);

/// The invocation, as far as the handler needs it.
#[derive(Clone, Debug)]
pub struct Invocation {
    pub request_id: String,
    pub deadline: DateTime<Utc>,
}

impl Invocation {
    /// The invocation's deadline from `Lambda-Runtime-Deadline-Ms`. Lambda sends epoch
    /// milliseconds; `cargo lambda watch` sends the time budget instead (600000, ten minutes),
    /// which read as epoch milliseconds is 1970. A value too small to be a date after 2001 is
    /// therefore read as a budget from `now`.
    pub fn deadline_from_header(deadline_ms: u64, now: DateTime<Utc>) -> DateTime<Utc> {
        const EARLIEST_EPOCH_DEADLINE_MS: u64 = 1_000_000_000_000;
        let as_epoch = i64::try_from(deadline_ms)
            .ok()
            .and_then(DateTime::<Utc>::from_timestamp_millis);
        match as_epoch {
            Some(deadline) if deadline_ms >= EARLIEST_EPOCH_DEADLINE_MS => deadline,
            _ => {
                now + chrono::Duration::milliseconds(
                    i64::try_from(deadline_ms.min(EARLIEST_EPOCH_DEADLINE_MS)).unwrap_or(0),
                )
            }
        }
    }
}

/// A dependency failed: the invocation fails so Lambda retries it (and, after the retries,
/// the event reaches the dead-letter destination).
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("{0}; the event will be retried")]
    Dependency(#[from] DependencyError),
    /// Another attempt holds the request (it is working on it, or publishing its outcome) and
    /// may have died: answering success would end the event with nothing recorded, so it is
    /// retried until the request has its outcome.
    #[error(
        "request {request_id:?} is being worked on by another attempt, which may have died; the event will be retried (look it up with GET /restore/{request_id} before anything else)"
    )]
    InFlight { request_id: String },
}

/// Everything the handler needs, built once per Lambda instance.
pub struct App<P: Ports> {
    pub runner: Runner<P>,
    pub config: Config,
}

/// The adapters as deployed.
pub type Deployed = Adapters<
    AtlasClient,
    SecretsManagerSecrets,
    SnsNotifier,
    DynamoIdempotencyStore,
    SystemClock,
    SqsWorkQueue,
    DynamoDrillEvidence,
    StepFunctionsCallbacks,
>;

/// The handler as deployed: the real adapters.
pub type DeployedApp = App<Deployed>;

impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(error: HandlerError) -> lambda_runtime::Diagnostic {
        let error_type = match &error {
            HandlerError::Dependency(_) => "DependencyFailure",
            HandlerError::InFlight { .. } => "RequestInFlight",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.into(),
            error_message: error.to_string(),
        }
    }
}

impl<P: Ports> App<P> {
    /// Answers one event. `Err` only for a dependency failure on a non-HTTP trigger.
    pub async fn handle(
        &self,
        event: &Value,
        invocation: &Invocation,
    ) -> Result<Value, HandlerError> {
        let calls_end = calls_end(invocation.deadline, self.runner.now());
        // Boxed: the work is a large future, and each move of it in a debug build takes its
        // size of stack again (fifty of them polled on one task overflowed the test thread).
        let work = Box::pin(self.handle_shape(event, invocation));
        deadline::scope(calls_end, work).await
    }
}

/// The instant by which every dependency call of an event due by `deadline` ends: the deadline
/// less [`ANSWER_MARGIN`], on the clock the calls are timed with.
pub(crate) fn calls_end(deadline: DateTime<Utc>, now: DateTime<Utc>) -> Instant {
    let left = (deadline - now).to_std().unwrap_or(Duration::ZERO);
    Instant::now() + left.saturating_sub(ANSWER_MARGIN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    #[test]
    fn a_deadline_is_epoch_milliseconds_or_a_budget_from_cargo_lambda_watch() {
        let now: DateTime<Utc> = "2026-11-28T17:06:15Z".parse().unwrap();
        let epoch = now.timestamp_millis() as u64 + 30_000;
        assert_eq!(
            Invocation::deadline_from_header(epoch, now),
            now + chrono::Duration::seconds(30)
        );
        assert_eq!(
            Invocation::deadline_from_header(600_000, now),
            now + chrono::Duration::minutes(10)
        );
        assert_eq!(Invocation::deadline_from_header(0, now), now);
    }

    #[tokio::test(start_paused = true)]
    async fn calls_end_a_margin_before_the_deadline_and_never_before_now() {
        let now: DateTime<Utc> = "2026-11-28T17:06:15Z".parse().unwrap();
        let start = Instant::now();
        assert_eq!(
            calls_end(now + TimeDelta::seconds(25), now) - start,
            Duration::from_secs(24)
        );
        assert_eq!(calls_end(now - TimeDelta::seconds(3), now), start);
    }
}
