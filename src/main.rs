//! The `bootstrap` binary that AWS Lambda runs.
//!
//! The event handler (triggers, idempotency, notifications) is not wired yet: until it is,
//! this binary refuses to start rather than accept restore commands it cannot honour.

fn main() -> std::process::ExitCode {
    eprintln!(
        "atlas-restore-runner {}: the Lambda handler is not built in this version; the library \
         (command validation and the Atlas client) is. Nothing was submitted.",
        env!("CARGO_PKG_VERSION")
    );
    std::process::ExitCode::FAILURE
}
