//! The `bootstrap` binary that AWS Lambda runs: reads the configuration once, builds the AWS
//! and Atlas clients once per instance, and answers every event with the one handler.

use std::time::Duration;

use atlas_restore_runner::aws::http_client::deferred_tls_client;
use atlas_restore_runner::config::Config;
use atlas_restore_runner::handler::{DeployedApp, Invocation};
use aws_config::BehaviorVersion;
use aws_config::timeout::TimeoutConfig;
use chrono::Utc;
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let config = Config::from_env()
        .inspect_err(|error| tracing::error!(%error, "the configuration is not usable"))?;

    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .http_client(deferred_tls_client())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(5))
                .operation_timeout(Duration::from_secs(15))
                .build(),
        )
        .load()
        .await;
    let app = DeployedApp::from_config(config, &sdk)?;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        "atlas-restore-runner ready"
    );

    let app = &app;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let (payload, context) = event.into_parts();
        let deadline = Invocation::deadline_from_header(context.deadline, Utc::now());
        let invocation = Invocation {
            request_id: context.request_id,
            deadline,
        };
        app.handle(&payload, &invocation).await
    }))
    .await
}

/// JSON log lines (text with `AWS_LAMBDA_LOG_FORMAT=Text`), at `AWS_LAMBDA_LOG_LEVEL`, else
/// `RUST_LOG`, else INFO.
fn init_logging() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .ok()
        .map(|level| {
            if level.eq_ignore_ascii_case("fatal") {
                "error".to_owned()
            } else {
                level.to_ascii_lowercase()
            }
        })
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info".to_owned());
    let filter = tracing_subscriber::EnvFilter::try_new(&level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let text = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("text"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .without_time()
        .with_target(false);
    if text {
        builder.init();
    } else {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init();
    }
}
