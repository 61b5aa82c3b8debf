//! The triggers that hand over a command as is: a direct invocation, an EventBridge "Restore
//! Requested" event and a schedule. The answer is the outcome itself; a dependency failure, or
//! a request another attempt holds, fails the invocation so Lambda retries it.

use serde_json::Value;

use crate::command::{RestoreCommand, TaskToken};
use crate::guardrail::check_protected_target;
use crate::handler::{App, HandlerError, Invocation};
use crate::outcome::{ErrorCode, Problem, Trigger};
use crate::policy::follow_requirements;
use crate::ports::Ports;
use crate::runner::{Publication, Report, RunRequest};
use crate::telemetry::log_outcome;
use crate::triggers::scheduled::KeyFrom;

impl<P: Ports> App<P> {
    /// A schedule, an event or a direct invocation.
    pub(crate) async fn command(
        &self,
        trigger: Trigger,
        value: &Value,
        key_from: KeyFrom<'_>,
        invocation: &Invocation,
    ) -> Result<Value, HandlerError> {
        let now = self.runner.now();
        let mut problems = Vec::new();
        if let KeyFrom::Schedule(_) = key_from
            && value.get("idempotencyKey").is_some_and(|k| !k.is_null())
        {
            problems.push(Problem::new(
                "/idempotencyKey",
                ErrorCode::Conflict,
                "a scheduled command must not carry an idempotencyKey: the schedule's execution id is the key, and a fixed key would make every later drill a duplicate",
            ));
        }
        problems.extend(follow_requirements(value, trigger, self.follow_capacity()));
        let parsed = RestoreCommand::from_value(value, now);
        let command = match parsed {
            Ok(command) if problems.is_empty() => command,
            Ok(_) => return self.reject_non_http(trigger, value, None, problems).await,
            Err(mut found) => {
                problems.append(&mut found);
                return self.reject_non_http(trigger, value, None, problems).await;
            }
        };
        let request_id = match key_from {
            KeyFrom::Schedule(id) => id.to_owned(),
            KeyFrom::Event(id) => match (&command.idempotency_key, id) {
                (Some(key), _) => key.to_string(),
                (None, Some(id)) => id.to_owned(),
                (None, None) => format!("sha256:{}", command.fingerprint()),
            },
            KeyFrom::Direct => match &command.idempotency_key {
                Some(key) => key.to_string(),
                None => format!("sha256:{}", command.fingerprint()),
            },
        };
        let key_field = if command.idempotency_key.is_some() {
            "/idempotencyKey"
        } else {
            ""
        };
        if let Some(problem) = check_protected_target(
            self.runner.atlas(),
            &command,
            &self.config.protected_clusters,
            self.runner.atlas_deadline(invocation.deadline),
        )
        .await?
        {
            return self
                .reject_non_http(trigger, value, Some(request_id), vec![problem])
                .await;
        }
        let request = RunRequest {
            command,
            request_id,
            key_field,
            trigger,
            deadline: invocation.deadline,
            from_queue: false,
        };
        let report = self.runner.run(&request).await?;
        self.answer_non_http(report)
    }

    async fn reject_non_http(
        &self,
        trigger: Trigger,
        value: &Value,
        request_id: Option<String>,
        problems: Vec<Problem>,
    ) -> Result<Value, HandlerError> {
        let request_id = request_id.or_else(|| {
            value
                .get("idempotencyKey")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
        let outcome = self.rejected(trigger, value, request_id, problems);
        let report = self.runner.publish_only(outcome).await;
        // A runbook's task is told at once (CONTRACT section 8); a schedule's token is never
        // used: only a direct invoke or an event can carry one.
        let token = match trigger {
            Trigger::Direct | Trigger::Event => value
                .get("taskToken")
                .and_then(Value::as_str)
                .and_then(TaskToken::parse),
            _ => None,
        };
        if let (Some(token), Publication::Published) = (&token, &report.publication) {
            self.runner
                .report_unrecorded(token, &report.outcome)
                .await?;
        }
        self.answer_non_http(report)
    }

    pub(crate) fn answer_non_http(&self, report: Report) -> Result<Value, HandlerError> {
        log_outcome(&report);
        if let Publication::Failed(error) = report.publication {
            // The outcome is stored (or, for a rejection, costs nothing to repeat): the retry
            // publishes it.
            return Err(HandlerError::Dependency(error));
        }
        if report.in_flight {
            return Err(HandlerError::InFlight {
                request_id: report.outcome.request_id.unwrap_or_default(),
            });
        }
        Ok(serde_json::to_value(&report.outcome).unwrap_or(Value::Null))
    }
}
