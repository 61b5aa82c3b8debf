//! Webhook signature headers and verification; the properties are `check_signature` in
//! tests/support/invariants.rs.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[path = "../../tests/support/invariants.rs"]
mod invariants;

#[derive(Arbitrary, Debug)]
struct Input {
    current: String,
    previous: Option<String>,
    /// Header pairs as a request may carry them, names and values free.
    pairs: Vec<(String, String)>,
    /// When set, a signature header of this body at this timestamp (seconds) is added first,
    /// made with the current (false) or previous (true) secret: the accepting path.
    signed_at: Option<(i64, bool)>,
    body: Vec<u8>,
    now: i64,
    check_age: bool,
}

fuzz_target!(|input: Input| {
    let mut pairs = Vec::new();
    if let Some((at, previous)) = input.signed_at {
        let secret = match (&input.previous, previous) {
            (Some(old), true) => old.as_str(),
            _ => input.current.as_str(),
        };
        let signature =
            atlas_restore_runner::triggers::signature::sign(secret.as_bytes(), at, &input.body);
        pairs.push(("X-Signature-Timestamp".to_owned(), at.to_string()));
        pairs.push(("X-Signature".to_owned(), signature));
    }
    pairs.extend(input.pairs);
    invariants::check_signature(
        &input.current,
        input.previous.as_deref(),
        &pairs,
        &input.body,
        input.now,
        input.check_age,
    );
});
