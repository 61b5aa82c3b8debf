//! Criterion benchmarks of the pure core: parsing + validation of a restore command, and webhook
//! signature checking. `make bench` runs them before `benches/lambda.rs`, which copies their
//! medians (from `target/criterion/*/new/estimates.json`) into docs/PERFORMANCE.md.

use std::hint::black_box;
use std::time::Duration;

use atlas_restore_runner::command::RestoreCommand;
use atlas_restore_runner::ports::SigningSecrets;
use atlas_restore_runner::redacted::Secret;
use atlas_restore_runner::triggers::signature::{SignatureHeaders, sign, verify};
use chrono::Utc;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;

const GROUP: &str = "5e2211c17a3e5a48f5497de3";
const SECRET: &str = "bench-signing-secret-4b1d";

/// The command of the warm-path benchmark: a legacy automated restore of a snapshot.
fn command_bytes() -> Vec<u8> {
    json!({
        "groupId": GROUP,
        "clusterName": "orders",
        "restore": {
            "snapshotId": "5f1c6b1e2a9b4f3d8c7e6a5b",
            "delivery": {
                "methodName": "AUTOMATED_RESTORE",
                "targetGroupId": GROUP,
                "targetClusterName": "orders-drill"
            }
        },
        "requestedBy": "U024BE7LH",
        "approvedBy": "U0G9QF9C6",
        "reason": "INC-4211 drop of orders.items",
        "idempotencyKey": "approval-7f3a"
    })
    .to_string()
    .into_bytes()
}

fn parse_and_validate(c: &mut Criterion) {
    let bytes = command_bytes();
    let now = Utc::now();
    RestoreCommand::parse(&bytes, now).expect("the benchmark command is valid");
    c.bench_function("command_parse_validate", |b| {
        b.iter(|| RestoreCommand::parse(black_box(&bytes), black_box(now)))
    });
    c.bench_function("command_parse_validate_fingerprint", |b| {
        b.iter(|| {
            RestoreCommand::parse(black_box(&bytes), black_box(now))
                .map(|command| command.fingerprint())
        })
    });
}

fn signature(c: &mut Criterion) {
    let body = command_bytes();
    let now = Utc::now();
    let timestamp = now.timestamp();
    let headers = SignatureHeaders {
        timestamp: Some(timestamp.to_string()),
        signature: Some(sign(SECRET.as_bytes(), timestamp, &body)),
    };
    let current = SigningSecrets {
        current: Secret::new(SECRET),
        previous: None,
    };
    // During a rotation the current secret is tried first: the worst case is the previous one.
    let rotating = SigningSecrets {
        current: Secret::new("bench-new-signing-secret"),
        previous: Some(Secret::new(SECRET)),
    };
    verify(&headers, &body, &current, now, true).expect("the benchmark signature verifies");
    c.bench_function("signature_verify", |b| {
        b.iter(|| verify(black_box(&headers), black_box(&body), &current, now, true))
    });
    c.bench_function("signature_verify_previous_secret", |b| {
        b.iter(|| verify(black_box(&headers), black_box(&body), &rotating, now, true))
    });
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = core;
    config = config();
    targets = parse_and_validate, signature
}
criterion_main!(core);
