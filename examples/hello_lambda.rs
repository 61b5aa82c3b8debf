//! A hello-world Lambda function on `lambda_runtime`: it answers `{"hello": <event>}`.
//!
//! It is the baseline of the benchmarks (the cost of the runtime alone) and the function the
//! Lambda Runtime API harness (`tests/support/lambda_runtime_api.rs`) tests itself with, so it
//! has a few rules to misbehave on demand:
//!
//! - event `{"fail": true}`: the handler returns an error (posted to `/invocation/{id}/error`);
//! - event `{"panic": true}`: the handler panics (the runtime turns it into an error);
//! - event `{"sleep_ms": N}`: the handler sleeps N milliseconds before answering;
//! - event `{"context": true}`: the answer also carries what the function saw of its invocation
//!   (`context`: request id, deadline, ARN, trace id and the function's configuration);
//! - env `HELLO_FAIL_INIT`: `main` fails before the runtime starts (nothing reaches the API);
//! - env `HELLO_FAIL_SNAPSHOT` with `AWS_LAMBDA_INITIALIZATION_TYPE=snap-start`: a SnapStart
//!   hook fails, which `lambda_runtime` reports to `/runtime/init/error`.
//!
//! Outside Lambda it needs the Runtime API: `cargo run --example hello_lambda` alone panics
//! for want of `AWS_LAMBDA_FUNCTION_NAME` and friends.

use std::sync::Arc;
use std::time::Duration;

use lambda_runtime::{BoxFuture, Error, LambdaEvent, Runtime, SnapStartResource, service_fn};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Error> {
    if std::env::var_os("HELLO_FAIL_INIT").is_some() {
        return Err("hello_lambda: HELLO_FAIL_INIT is set, refusing to start".into());
    }
    if std::env::var_os("HELLO_FAIL_SNAPSHOT").is_some() {
        return Runtime::new(service_fn(hello))
            .register_snapstart_resource(Arc::new(FailingSnapshot))
            .run()
            .await;
    }
    lambda_runtime::run(service_fn(hello)).await
}

async fn hello(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let (payload, context) = event.into_parts();
    if payload.get("fail") == Some(&Value::Bool(true)) {
        return Err("hello_lambda was asked to fail".into());
    }
    if payload.get("panic") == Some(&Value::Bool(true)) {
        panic!("hello_lambda was asked to panic");
    }
    if let Some(ms) = payload.get("sleep_ms").and_then(Value::as_u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if payload.get("context") == Some(&Value::Bool(true)) {
        let config = &context.env_config;
        return Ok(json!({
            "hello": payload,
            "context": {
                "request_id": context.request_id,
                "deadline_ms": context.deadline,
                "invoked_function_arn": context.invoked_function_arn,
                "xray_trace_id": context.xray_trace_id,
                "function_name": config.function_name,
                "memory": config.memory,
                "version": config.version,
                "log_group": config.log_group,
                "log_stream": config.log_stream,
            },
        }));
    }
    Ok(json!({ "hello": payload }))
}

/// A SnapStart resource that cannot be snapshotted.
struct FailingSnapshot;

impl SnapStartResource for FailingSnapshot {
    fn before_snapshot(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async { Err("hello_lambda: HELLO_FAIL_SNAPSHOT is set, snapshot refused".into()) })
    }
}
