//! One deadline for a whole chain of dependency calls (CONTRACT section 4, "Deadlines").
//!
//! The handler runs each event inside [`scope`] with the time by which it must have answered
//! (the invocation's deadline, or the webhook's 25 s budget, less a margin to answer). Every
//! AWS call the adapters make is awaited through [`bounded`], so no chain of calls, retries
//! included, outlives it; the Atlas client takes the same instant explicitly. A task-local
//! keeps the port traits free of a deadline parameter that every AWS call would only pass on.

use std::future::Future;

use tokio::time::Instant;

use crate::ports::DependencyError;

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Runs `work` with `deadline` as the limit of every [`bounded`] call made inside it. An inner
/// scope can only shorten the limit, never extend it.
pub async fn scope<F: Future>(deadline: Instant, work: F) -> F::Output {
    let deadline = current().map_or(deadline, |outer| outer.min(deadline));
    DEADLINE.scope(deadline, work).await
}

/// The deadline in force, if the caller runs inside a [`scope`].
pub fn current() -> Option<Instant> {
    DEADLINE.try_with(|deadline| *deadline).ok()
}

/// Awaits one dependency call (with its own retries), cut at the deadline in force: a call
/// still running then fails as a dependency failure that says so. Outside a scope the call
/// is bounded only by the SDK's own timeouts.
pub async fn bounded<T, F>(service: &'static str, call: F) -> Result<T, DependencyError>
where
    F: Future<Output = Result<T, DependencyError>>,
{
    match current() {
        Some(deadline) => tokio::time::timeout_at(deadline, call)
            .await
            .unwrap_or_else(|_| {
                Err(DependencyError::new(
                    service,
                    "no answer before the request's deadline (the invocation's, or a webhook's 25 s budget); the call was abandoned",
                ))
            }),
        None => call.await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_call_is_cut_at_the_deadline_of_its_scope() {
        let deadline = Instant::now() + Duration::from_secs(2);
        let hanging = std::future::pending::<Result<(), DependencyError>>();
        let started = Instant::now();
        let result = scope(deadline, bounded("SNS", hanging)).await;
        let error = result.expect_err("a hanging call must be cut");
        assert_eq!(error.service, "SNS");
        assert!(error.message.contains("deadline"), "{error}");
        assert_eq!(Instant::now() - started, Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn an_inner_scope_never_extends_the_outer_one() {
        let outer = Instant::now() + Duration::from_secs(1);
        let inner = Instant::now() + Duration::from_secs(60);
        let seen = scope(outer, scope(inner, async { current() })).await;
        assert_eq!(seen, Some(outer));
        assert_eq!(current(), None);
    }

    #[tokio::test]
    async fn outside_a_scope_a_call_runs_to_its_own_end() {
        let answer = bounded("DynamoDB", async { Ok::<_, DependencyError>(7) }).await;
        assert_eq!(answer, Ok(7));
    }
}
