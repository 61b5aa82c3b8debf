//! Entry points: each trigger's event becomes a command, and each outcome becomes the trigger's
//! answer (`route` tells them apart). Nothing here decides restores; it only translates.

pub mod direct;
pub mod hand_off;
pub mod queue;
pub mod route;
pub mod scheduled;
pub mod signature;
pub mod webhook;

use serde_json::Value;

use crate::handler::App;
use crate::outcome::{Outcome, OutcomeKind, Problem, Trigger};
use crate::policy::FollowCapacity;
use crate::ports::Ports;

impl<P: Ports> App<P> {
    /// What this deployment offers a request that must be followed.
    pub(crate) fn follow_capacity(&self) -> FollowCapacity {
        FollowCapacity {
            work_queue: self.runner.has_work_queue(),
            drill_table: self.config.drill_table.is_some(),
        }
    }

    /// A `REJECTED` outcome for a command refused before it could run.
    ///
    /// It stays under SNS's 256 KB however large the event (CONTRACT section 3, "Size"): an
    /// outcome that cannot be published fails a non-HTTP invocation, which Lambda retries into
    /// the failure destination. Each raw value echoed from the event (the request id, the ids,
    /// the backup type, the people, the reason, a field name in a problem's pointer) is cut to
    /// 1000 characters, a problem's message to 2000 (the values it quotes are cut shorter where
    /// it is written, `src/command/`), and the problems are listed while they fit in 160 KiB,
    /// policy problems always: the last one listed says how many more were left out.
    pub(crate) fn rejected(
        &self,
        trigger: Trigger,
        value: &Value,
        request_id: Option<String>,
        errors: Vec<Problem>,
    ) -> Outcome {
        /// Characters kept of each raw value echoed from the event.
        const ECHO_MAX_CHARS: usize = 1000;
        /// Characters kept of a problem's message (the function's own words).
        const MESSAGE_MAX_CHARS: usize = 2000;
        /// Serialised bytes of the problems listed before the rest are counted instead. With
        /// seven echoed fields of at most 6 KB each (1000 characters of at most 6 bytes of JSON)
        /// and one problem past the budget (at most 18 KB), the outcome stays near 230 KB.
        const ERRORS_MAX_BYTES: usize = 160 * 1024;

        fn cut(text: &str, max: usize) -> String {
            match text.char_indices().nth(max) {
                None => text.to_owned(),
                Some(_) => {
                    let mut short: String = text.chars().take(max - 1).collect();
                    short.push('…');
                    short
                }
            }
        }

        let total = errors.len();
        let mut listed: Vec<Problem> = Vec::new();
        let mut bytes = 0;
        let mut left_out = 0;
        for mut problem in errors {
            problem.field = cut(&problem.field, ECHO_MAX_CHARS);
            problem.message = cut(&problem.message, MESSAGE_MAX_CHARS);
            let size = serde_json::to_string(&problem).map_or(ERRORS_MAX_BYTES, |t| t.len());
            if bytes < ERRORS_MAX_BYTES || problem.code.is_policy() {
                bytes += size;
                listed.push(problem);
            } else {
                left_out += 1;
            }
        }
        if left_out > 0
            && let Some(last) = listed.last_mut()
        {
            last.message.push_str(&format!(
                " (and {left_out} more of the {total} problems, not listed: an outcome must fit in one SNS message)"
            ));
        }

        let text = |name: &str| {
            value
                .get(name)
                .and_then(Value::as_str)
                .map(|v| cut(v, ECHO_MAX_CHARS))
        };
        let now = self.runner.now();
        Outcome {
            outcome: OutcomeKind::Rejected,
            request_id: request_id.map(|id| cut(&id, ECHO_MAX_CHARS)),
            trigger,
            group_id: text("groupId"),
            cluster_name: text("clusterName"),
            backup_type: text("backupType")
                .or_else(|| value.get("groupId").map(|_| "legacy".to_owned())),
            restore: None,
            atlas: None,
            errors: listed,
            requested_by: text("requestedBy"),
            approved_by: text("approvedBy"),
            reason: text("reason"),
            started_at: now,
            finished_at: now,
            first: None,
            notified: None,
            duration_seconds: None,
            drill: None,
            report_url: None,
        }
    }
}
