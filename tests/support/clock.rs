//! The pinned clock of the tests that judge time windows: 2026-11-28T17:06:15Z, the moment the
//! samples in events/ were written for (their `requestContext.timeEpoch`).
//!
//! tests/support/invariants.rs includes this file by path, and the fuzz targets include that
//! one (fuzz/fuzz_targets/*.rs), so it uses chrono and nothing else.
#![allow(dead_code)]

use chrono::{DateTime, Duration, Utc};

/// The pinned moment in Unix seconds.
pub const NOW_SECONDS: i64 = 1_795_885_575;

/// The pinned moment, on the second.
pub fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(NOW_SECONDS, 0).unwrap_or_default()
}

/// The pinned moment 120 ms past the second, for the rules that count milliseconds: a
/// millisecond field is then not a whole second.
pub fn now_with_millis() -> DateTime<Utc> {
    now() + Duration::milliseconds(120)
}
