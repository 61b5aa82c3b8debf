//! `make invoke EVENT=events/<file>.json`: sends one sample to the function running under
//! `cargo lambda watch` (its Invoke API, `POST /2015-03-31/functions/bootstrap/invocations`),
//! signing webhook bodies and work-queue hand-off messages at send time (a stored signature goes
//! stale in 5 minutes; see `events/README.md`), and prints the answer.
//!
//! ```sh
//! cargo run --example send_event -- events/webhook-approved.json \
//!     [--address 127.0.0.1:9000] [--secret-env WEBHOOK_SIGNING_SECRET] [--show-event]
//! ```
//!
//! The signing secret is read from the environment variable named by `--secret-env`
//! (`WEBHOOK_SIGNING_SECRET` by default); `make demo-serve` prints the one it uses.

mod shared;

use std::process::ExitCode;
use std::time::Duration;

use chrono::Utc;
use serde_json::Value;
use shared::{DEFAULT_ADDRESS, DEFAULT_SECRET_ENV, SampleKind};

const USAGE: &str =
    "usage: send_event <events/FILE.json> [--address HOST:PORT] [--secret-env NAME] [--show-event]";

struct Args {
    file: String,
    address: String,
    secret_env: String,
    show_event: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut file = None;
    let mut address = DEFAULT_ADDRESS.to_owned();
    let mut secret_env = DEFAULT_SECRET_ENV.to_owned();
    let mut show_event = false;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--address" => address = args.next().ok_or("--address needs HOST:PORT")?,
            "--secret-env" => secret_env = args.next().ok_or("--secret-env needs a NAME")?,
            "--show-event" => show_event = true,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other if other.starts_with('-') => {
                return Err(format!("unknown option {other}\n{USAGE}"));
            }
            other if file.is_none() => file = Some(other.to_owned()),
            other => return Err(format!("one sample at a time (also got {other})\n{USAGE}")),
        }
    }
    Ok(Args {
        file: file.ok_or(USAGE)?,
        address: address
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned(),
        secret_env,
        show_event,
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run().await {
        Ok(code) => code,
        Err(message) => {
            eprintln!("send_event: {message}");
            ExitCode::from(2)
        }
    }
}

async fn run() -> Result<ExitCode, String> {
    let args = parse_args()?;
    let text = std::fs::read_to_string(&args.file).map_err(|e| format!("{}: {e}", args.file))?;
    let sample: Value =
        serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", args.file))?;
    let secret = std::env::var(&args.secret_env)
        .ok()
        .filter(|s| !s.is_empty());
    if shared::needs_secret(&sample) && secret.is_none() {
        return Err(format!(
            "{} is signed at send time and {} is not set: export {}=<the webhook signing secret> (make demo-serve prints it)",
            args.file, args.secret_env, args.secret_env
        ));
    }
    let prepared = shared::prepare(&sample, secret.as_deref().map(str::as_bytes), Utc::now())?;
    if args.show_event {
        println!(
            "{}",
            serde_json::to_string_pretty(&prepared.event).unwrap_or_default()
        );
    }
    let kind = match prepared.kind {
        SampleKind::Webhook => "webhook request",
        SampleKind::Queue => "SQS batch",
        SampleKind::Plain => "event",
    };
    println!(
        "sending {} ({kind}) to {}",
        args.file,
        shared::invoke_url(&args.address)
    );
    for filled in &prepared.filled {
        println!("  filled at send time: {filled}");
    }

    let client = reqwest::Client::new();
    // The first invocation under `cargo lambda watch` compiles the function: allow for it.
    let invoked = shared::invoke(
        &client,
        &args.address,
        &prepared.event,
        Duration::from_secs(20 * 60),
    )
    .await
    .map_err(|e| {
        format!(
            "{e}\nis the function running? `make demo-serve` starts it (or `cargo lambda watch`)"
        )
    })?;
    let summary = shared::summarize(&invoked);
    println!();
    println!(
        "answer    {}{}{}  ({} ms)",
        summary.answer,
        summary
            .outcome
            .as_deref()
            .map(|o| format!("  {o}"))
            .unwrap_or_default(),
        summary
            .request_id
            .as_deref()
            .map(|r| format!("  request {r}"))
            .unwrap_or_default(),
        invoked.took.as_millis()
    );
    for (label, line) in shared::detail_lines(&summary) {
        println!("{label:<9} {line}");
    }
    println!();
    if invoked.payload.get("statusCode").is_some() {
        println!("the whole answer (its JSON body shown parsed, not as the string it is):");
    } else {
        println!("the whole answer:");
    }
    println!("{}", pretty_answer(&invoked.payload));
    Ok(if invoked.function_error {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The whole answer, with a webhook response's JSON body shown as JSON rather than a string.
fn pretty_answer(payload: &Value) -> String {
    let mut shown = payload.clone();
    if let Some(body) = payload.get("body").and_then(Value::as_str)
        && let Ok(parsed) = serde_json::from_str::<Value>(body)
    {
        shown["body"] = parsed;
    }
    serde_json::to_string_pretty(&shown).unwrap_or_else(|_| payload.to_string())
}
