//! Routing: tells the triggers apart by the event's shape (CONTRACT section 2) and hands each
//! to its module. An event of no known shape is `REJECTED` (`UNKNOWN_EVENT`).

use serde_json::Value;

use crate::command::COMMAND_FIELDS;
use crate::handler::{App, HandlerError, Invocation};
use crate::outcome::{ErrorCode, Problem, Trigger};
use crate::ports::Ports;
use crate::triggers::scheduled::KeyFrom;

const ACCEPTED_SHAPES: &str = "accepted events: an API Gateway HTTP API (payload 2.0) or Function URL request; an EventBridge Scheduler input {\"schedule\": {\"executionId\", \"scheduledTime\"}, \"command\"}; a scheduled rule event (\"detail-type\": \"Scheduled Event\"); an EventBridge \"Restore Requested\" event; an SQS batch from the work queue; or a bare restore command";

/// The shapes of event the function accepts.
enum Shape<'a> {
    Http,
    Sqs(&'a [Value]),
    Scheduler {
        execution_id: &'a str,
        command: &'a Value,
    },
    ScheduledRule {
        id: &'a str,
        detail: &'a Value,
    },
    RestoreRequested {
        id: Option<&'a str>,
        detail: &'a Value,
    },
    Direct,
    Unknown,
}

fn shape(event: &Value) -> Shape<'_> {
    let text = |pointer: &str| event.pointer(pointer).and_then(Value::as_str);
    if event
        .pointer("/requestContext/http")
        .is_some_and(Value::is_object)
    {
        return Shape::Http;
    }
    if let Some(records) = event.get("Records").and_then(Value::as_array)
        && !records.is_empty()
        && records
            .iter()
            .all(|r| r.get("eventSource").and_then(Value::as_str) == Some("aws:sqs"))
    {
        return Shape::Sqs(records);
    }
    if let (Some(execution_id), Some(command)) =
        (text("/schedule/executionId"), event.get("command"))
    {
        return Shape::Scheduler {
            execution_id,
            command,
        };
    }
    match (text("/detail-type"), event.get("detail")) {
        (Some("Scheduled Event"), Some(detail)) if text("/source") == Some("aws.events") => {
            return match text("/id") {
                Some(id) => Shape::ScheduledRule { id, detail },
                None => Shape::Unknown,
            };
        }
        (Some("Restore Requested"), Some(detail)) => {
            return Shape::RestoreRequested {
                id: text("/id"),
                detail,
            };
        }
        (Some(_), _) => return Shape::Unknown,
        _ => {}
    }
    match event.as_object() {
        Some(object)
            if COMMAND_FIELDS
                .iter()
                .any(|field| object.contains_key(*field)) =>
        {
            Shape::Direct
        }
        _ => Shape::Unknown,
    }
}

impl<P: Ports> App<P> {
    /// [`App::handle`]'s work, inside the deadline's scope.
    pub(crate) async fn handle_shape(
        &self,
        event: &Value,
        invocation: &Invocation,
    ) -> Result<Value, HandlerError> {
        match shape(event) {
            Shape::Http => Ok(self.webhook(event, invocation).await),
            Shape::Sqs(records) => Ok(self.queue_batch(records, invocation).await),
            Shape::Scheduler {
                execution_id,
                command,
            } => {
                self.command(
                    Trigger::Schedule,
                    command,
                    KeyFrom::Schedule(execution_id),
                    invocation,
                )
                .await
            }
            Shape::ScheduledRule { id, detail } => {
                self.command(Trigger::Schedule, detail, KeyFrom::Schedule(id), invocation)
                    .await
            }
            Shape::RestoreRequested { id, detail } => {
                self.command(Trigger::Event, detail, KeyFrom::Event(id), invocation)
                    .await
            }
            Shape::Direct => {
                self.command(Trigger::Direct, event, KeyFrom::Direct, invocation)
                    .await
            }
            Shape::Unknown => {
                let problem = Problem::new(
                    "",
                    ErrorCode::UnknownEvent,
                    format!("the event has no known shape; {ACCEPTED_SHAPES}"),
                );
                let outcome = self.rejected(Trigger::Direct, event, None, vec![problem]);
                let report = self.runner.publish_only(outcome).await;
                self.answer_non_http(report)
            }
        }
    }
}
