//! A command's bytes through strict parsing and validation; the properties are
//! `check_command` in tests/support/invariants.rs.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/support/invariants.rs"]
mod invariants;

fuzz_target!(|data: &[u8]| {
    invariants::check_command(data);
});
