//! One event through the real handler (routing, webhook verification and hand-off, the work
//! queue, schedules, events, direct invocations, validation, policy, the runner) with fakes of
//! the ports; the properties are `check_event` in tests/support/invariants.rs.
//!
//! Input: one byte of flags, then the data. Flags & 7 chooses how the data is used:
//! 0 the whole event (JSON), 1 a webhook body (signed here), 2 a work-queue message body
//! (signed here), 3 a command inside a Scheduler input, 4 a command inside a "Restore
//! Requested" event. Bits 3-7: base64 body, Slack's header names, signed with the previous
//! secret, a signed status lookup (GET /restore/<data>) instead of a POST, queue hand-off and
//! following on.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

#[path = "../../tests/support/invariants.rs"]
mod invariants;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, data)) = data.split_first() else {
        return;
    };
    let bit = |n: u8| flags & (1 << n) != 0;
    let event = match flags & 7 {
        0 => match serde_json::from_slice::<Value>(data) {
            Ok(event) => event,
            Err(_) => return,
        },
        1 => invariants::webhook_event(
            data,
            bit(3),
            if bit(6) { "GET" } else { "POST" },
            bit(4),
            bit(5),
        ),
        2 => invariants::sqs_event(&String::from_utf8_lossy(data)),
        3 | 4 => match serde_json::from_slice::<Value>(data) {
            Ok(command) if flags & 7 == 3 => invariants::schedule_event(command),
            Ok(command) => invariants::restore_requested_event(command),
            Err(_) => return,
        },
        _ => return,
    };
    let observed = invariants::handle(&event, bit(7));
    invariants::check_event(&event, &observed);
});
