//! `make demo`: the function end to end on this machine, every trigger at once.
//!
//! Starts the Atlas double (in this process) and moto (the AWS APIs) on 127.0.0.1, creates what
//! the function needs there (the Atlas API key and webhook signing secrets, the outcome topic
//! with a queue subscribed to it, the work queue, the idempotency table), runs the function
//! under `cargo lambda watch`, sends it every sample in `events/` (webhook ones signed now),
//! and prints each answer and the notification that reached the topic. It plays the SQS event
//! source mapping too: what the function hands to the work queue is delivered back to it.
//! Last, three DR drills under one name (examples/drills_demo): one passes, one misses its RTO
//! target, one breaks; their summary, and the report written to target/demo/drill-report.html.
//! Everything it started is stopped at the end, on Ctrl-C and on SIGTERM.
//!
//! `--serve` (`make demo-serve`): after the samples, stays up for `make invoke` until Ctrl-C,
//! on 127.0.0.1:9000 when that port is free.

#[path = "../tests/support/mod.rs"]
mod support;

mod drills_demo;
mod shared;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use chrono::Utc;
use serde_json::{Value, json};
use support::atlas_double::AtlasDouble;
use support::moto::{MotoLease, MotoPool, receive_all, sqs_subscribed_queue};
use support::sfn_proxy::StepFunctionsProxy;
use tokio::process::{Child, ChildStdin, Command};

const GROUP: &str = "5e2211c17a3e5a48f5497de3";
const SNAPSHOT: &str = "5f1c6b1e2a9b4f3d8c7e6a5b";
const NEWER_SNAPSHOT: &str = "5f1c6b1e2a9b4f3d8c7e6a5c";
const PUBLIC_KEY: &str = "demo-public-key";
const PRIVATE_KEY: &str = "demo-private-key";
const ATLAS_SECRET: &str = "atlas-restore-runner/atlas";
const WEBHOOK_SECRET: &str = "atlas-restore-runner/webhook";
/// The signing secret the demo stores, unless `WEBHOOK_SIGNING_SECRET` says otherwise (the
/// Makefile sets the same default, so `make invoke` signs with it).
const DEFAULT_SIGNING_SECRET: &str = "local-demo-signing-secret";
const TABLE: &str = "atlas-restore-runner-idempotency";
const TOPIC: &str = "atlas-restore-outcomes";
const WORK_QUEUE: &str = "atlas-restore-runner-work";
const APPROVERS: &str = "U0G9QF9C6,U0H1RS2T3";
const PROTECTED_CLUSTERS: &str = "orders";
const REGION: &str = "us-east-1";

/// Sent once the function is up, to see it answer (the first invocation compiles it).
const WARM_UP: &str = "warm-up";
/// `FOLLOW_INTERVAL_SECONDS` of the demo: short, so the follow-up shows in seconds.
const FOLLOW_INTERVAL_SECONDS: u64 = 2;

/// The sample sent a second time at the end, to show a duplicate.
const SENT_AGAIN: &str = "direct-snapshot-restore.json";

/// What each sample should come to: the outcome kind, or the answer when there is none.
const EXPECTED: [(&str, &str); 18] = [
    ("cloud-direct-automated.json", "SUBMITTED"),
    ("cloud-direct-download.json", "SUBMITTED"),
    ("cloud-schedule-point-in-time.json", "SUBMITTED"),
    ("direct-dry-run.json", "DRY_RUN"),
    ("direct-http-download.json", "SUBMITTED"),
    ("direct-invalid-command.json", "REJECTED"),
    ("direct-protected-target.json", "REJECTED"),
    ("direct-snapshot-restore.json", "SUBMITTED"),
    ("direct-unknown-snapshot.json", "FAILED"),
    ("event-restore-requested.json", "SUBMITTED"),
    ("schedule-latest-snapshot.json", "SUBMITTED"),
    ("schedule-minutes-ago.json", "SUBMITTED"),
    ("scheduled-rule-event.json", "SUBMITTED"),
    // No QUEUED record for its key: dropped, nothing sent (webhook-approved.json queues one).
    ("sqs-handoff.json", "batch ok"),
    ("unknown-event.json", "REJECTED"),
    ("webhook-approved.json", "QUEUED"),
    ("webhook-bad-signature.json", "HTTP 401"),
    ("webhook-self-approved.json", "REJECTED"),
];

struct Options {
    serve: bool,
}

fn main() -> ExitCode {
    let mut serve = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--serve" => serve = true,
            other => {
                eprintln!("demo: unknown argument {other} (usage: demo [--serve])");
                return ExitCode::from(2);
            }
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("demo: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async {
        let mut started = Started::default();
        let options = Options { serve };
        let result = tokio::select! {
            result = run(&mut started, &options) => result,
            signal = shutdown_signal() => match started.serving {
                // Serving ends with Ctrl-C: the samples' verdict stands.
                Some(all_expected) => {
                    println!("\n{signal}: stopping");
                    Ok(all_expected)
                }
                None => Err(format!("{signal}: stopping")),
            },
        };
        if let Err(message) = &result {
            eprintln!("\n{message}");
        }
        started.stop().await;
        match result {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) | Err(_) => ExitCode::FAILURE,
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(5));
    code
}

async fn shutdown_signal() -> &'static str {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "Ctrl-C",
        _ = async {
            match terminate.as_mut() {
                Some(signal) => { signal.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => "SIGTERM",
    }
}

/// Everything the demo starts, stopped in reverse order by [`Started::stop`].
#[derive(Default)]
struct Started {
    atlas: Option<AtlasDouble>,
    pool: Option<Arc<MotoPool>>,
    moto: Option<MotoLease>,
    function: Option<FunctionProcess>,
    /// Set once `--serve` serves: whether every sample came out as expected.
    serving: Option<bool>,
}

impl Started {
    async fn stop(&mut self) {
        let mut stopped = Vec::new();
        if let Some(function) = self.function.take() {
            stopped.push(function.stop().await);
        }
        if let Some(moto) = self.moto.take() {
            // Dropping the lease resets the server and returns it to the pool; dropping the pool
            // then stops it.
            let pool = self.pool.take();
            let _ = tokio::task::spawn_blocking(move || {
                drop(moto);
                drop(pool);
            })
            .await;
            stopped.push("moto".to_owned());
        }
        if let Some(atlas) = self.atlas.take() {
            drop(atlas);
            stopped.push("the Atlas double".to_owned());
        }
        if !stopped.is_empty() {
            println!("\nstopped {}", stopped.join(", "));
        }
    }
}

/// `cargo lambda watch`, started through a small `sh` watchdog in a process group of its own:
/// the watchdog holds the read end of a pipe from this process and stops `cargo lambda` (which
/// stops the function) when that pipe closes, so nothing outlives the demo even if it is killed.
struct FunctionProcess {
    watchdog: Child,
    stdin: Option<ChildStdin>,
    address: String,
    log: PathBuf,
}

const WATCHDOG: &str = r#"exec 3<&0
"$0" "$@" </dev/null &
pid=$!
{ read _ <&3; kill -TERM "$pid" 2>/dev/null; } &
watcher=$!
wait "$pid"
status=$?
kill "$watcher" 2>/dev/null
exit "$status""#;

impl FunctionProcess {
    fn start(
        cargo_lambda: &Path,
        port: u16,
        env_file: &Path,
        log: &Path,
        hot_reload: bool,
    ) -> Result<FunctionProcess, String> {
        let output = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let errors = output
            .try_clone()
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(WATCHDOG)
            .arg(cargo_lambda)
            .args(["lambda", "watch", "--invoke-address", "127.0.0.1"])
            .args(["--invoke-port", &port.to_string()])
            .args(["--bin", shared::FUNCTION_NAME])
            .arg("--env-file")
            .arg(env_file);
        if !hot_reload {
            command.arg("--ignore-changes");
        }
        command
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::piped())
            .stdout(output)
            .stderr(errors)
            .process_group(0)
            .kill_on_drop(true);
        let mut watchdog = command
            .spawn()
            .map_err(|e| format!("starting {}: {e}", cargo_lambda.display()))?;
        let stdin = watchdog.stdin.take();
        Ok(FunctionProcess {
            watchdog,
            stdin,
            address: format!("127.0.0.1:{port}"),
            log: log.to_owned(),
        })
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.watchdog.try_wait().ok().flatten()
    }

    /// Closes the watchdog's pipe (it stops `cargo lambda`, which stops the function) and waits;
    /// after 15 s, kills the whole process group.
    async fn stop(mut self) -> String {
        drop(self.stdin.take());
        match tokio::time::timeout(Duration::from_secs(15), self.watchdog.wait()).await {
            Ok(_) => "cargo lambda watch and the function".to_owned(),
            Err(_) => {
                if let Some(pid) = self.watchdog.id() {
                    let _ = std::process::Command::new("kill")
                        .args(["-KILL", "--", &format!("-{pid}")])
                        .status();
                }
                let _ = self.watchdog.wait().await;
                "cargo lambda watch (killed after 15 s)".to_owned()
            }
        }
    }

    /// The last line of cargo's own output in the log (`Compiling ...`, `Finished ...`).
    fn last_build_line(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .rev()
            .map(str::trim)
            .find(|line| {
                [
                    "Compiling",
                    "Finished",
                    "Running",
                    "Blocking",
                    "error",
                    "warning",
                ]
                .iter()
                .any(|word| line.starts_with(word))
            })
            .unwrap_or("")
            .to_owned()
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// The AWS side of the demo, on moto.
struct Aws {
    sdk: SdkConfig,
    endpoint: String,
    topic_arn: String,
    outcomes_queue: String,
    work_queue: String,
    work_queue_arn: String,
}

async fn run(started: &mut Started, options: &Options) -> Result<bool, String> {
    let signing_secret = std::env::var(shared::DEFAULT_SECRET_ENV)
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| DEFAULT_SIGNING_SECRET.to_owned());
    let cargo_lambda = cargo_lambda()?;
    let samples = samples()?;
    let logs = target_dir().join("demo");
    std::fs::create_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;

    println!(
        "atlas-restore-runner demo: every sample in events/ sent to the function, on 127.0.0.1\n"
    );

    let atlas = AtlasDouble::start().await;
    atlas.add_api_key(PUBLIC_KEY, PRIVATE_KEY);
    atlas.add_cluster(GROUP, "orders", "6a0000000000000000000001", 0);
    atlas.add_cluster(GROUP, "orders-drill", "6a0000000000000000000002", 0);
    atlas.add_cluster(GROUP, "orders-copy", "6a0000000000000000000003", 0);
    for (id, hours) in [(SNAPSHOT, 6), (NEWER_SNAPSHOT, 1)] {
        let created = Utc::now() - chrono::Duration::hours(hours);
        atlas.add_snapshot(GROUP, "orders", id, created, true);
        // The same ids as Cloud Backup snapshots, for the backupType "cloud" samples.
        atlas.add_cloud_snapshot(GROUP, "orders", id, created, "completed");
    }
    let atlas_url = atlas.base_url();
    started.atlas = Some(atlas);
    line(
        "Atlas double",
        &format!(
            "{atlas_url}  project {GROUP}: orders (2 legacy and 2 cloud snapshots), orders-drill, orders-copy"
        ),
    );

    let pool = Arc::new(MotoPool::new());
    started.pool = Some(pool.clone());
    let moto = tokio::task::spawn_blocking(move || pool.lease())
        .await
        .map_err(|e| format!("starting moto: {e}"))?;
    let aws = create_aws(&moto, &signing_secret).await?;
    drills_demo::create_table(&aws.sdk).await?;
    // moto accepts SendTask* without keeping them: the tests' recording proxy in front of it
    // shows what the function sent to Step Functions (AWS_ENDPOINT_URL_SFN).
    let sfn = StepFunctionsProxy::start().await;
    sfn.forward_to(&aws.endpoint);
    started.moto = Some(moto);
    line(
        "moto (AWS)",
        &format!(
            "{}  secrets {ATLAS_SECRET} and {WEBHOOK_SECRET}; table {TABLE}",
            aws.endpoint
        ),
    );
    line(
        "",
        &format!(
            "topic {TOPIC} -> queue {} (raw); work queue {WORK_QUEUE}",
            queue_name(&aws.outcomes_queue)
        ),
    );

    let port = if options.serve && port_is_free(9000) {
        9000
    } else {
        free_port()?
    };
    let env_file = logs.join("function.env");
    let mut env = function_env(&aws, &atlas_url);
    env.push(("AWS_ENDPOINT_URL_SFN", sfn.endpoint()));
    let mut text = String::new();
    for (name, value) in &env {
        let _ = writeln!(text, "{name}={value}");
    }
    std::fs::write(&env_file, text).map_err(|e| format!("{}: {e}", env_file.display()))?;
    let log = logs.join("cargo-lambda.log");
    started.function = Some(FunctionProcess::start(
        &cargo_lambda,
        port,
        &env_file,
        &log,
        options.serve,
    )?);
    let function = started
        .function
        .as_mut()
        .ok_or("the function is not running")?;
    line(
        "function",
        &format!(
            "cargo lambda watch -A 127.0.0.1 -P {port}  (Invoke API: POST {})",
            shared::invoke_url(&function.address).trim_start_matches("http://")
        ),
    );
    line("", &format!("log {}", log.display()));
    line(
        "policy",
        &format!(
            "APPROVERS={APPROVERS}  PROTECTED_CLUSTERS={PROTECTED_CLUSTERS}  WORK_QUEUE_URL set (hand-off)  FOLLOW_JOBS=true (every {FOLLOW_INTERVAL_SECONDS} s)"
        ),
    );

    let client = reqwest::Client::new();
    warm_up(function, &client, &aws).await?;
    let address = function.address.clone();

    println!();
    println!(
        "{:<31} {:<9} {:<9} {:<10} REQUEST ID",
        "SAMPLE (events/)", "TRIGGER", "ANSWER", "OUTCOME"
    );
    let expected: HashMap<&str, &str> = EXPECTED.into_iter().collect();
    let mut surprises = Vec::new();
    let mut published = 0;
    let mut submitted = 0;
    let mut follow_ups: Vec<String> = Vec::new();
    let mut sends: Vec<(String, PathBuf, bool)> = samples
        .iter()
        .map(|path| (file_name(path), path.clone(), false))
        .collect();
    if let Some(again) = samples.iter().find(|p| file_name(p) == SENT_AGAIN) {
        sends.push((SENT_AGAIN.to_owned(), again.clone(), true));
    }
    for (label, path, again) in &sends {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let sample: Value = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
        let prepared = shared::prepare(&sample, Some(signing_secret.as_bytes()), Utc::now())?;
        let invoked = shared::invoke(&client, &address, &prepared.event, Duration::from_secs(120))
            .await
            .map_err(|e| format!("{label}: {e}\n{}", function_tail(started)))?;
        let summary = shared::summarize(&invoked);
        let notes = notifications(&aws, moto_of(started)?, expected_notifications(&summary)).await;
        published += notes.len();
        submitted += count_submitted(&summary, &notes);
        let seen = observed(&summary, &notes);
        let want = if *again {
            Some("DUPLICATE")
        } else {
            expected.get(label.as_str()).copied()
        };
        let surprise = want.filter(|w| *w != seen);
        if *again {
            println!("{:<31} (the same event a second time)", "again:");
        }
        print_row(label, &summary, &notes, surprise);
        if let Some(want) = surprise {
            surprises.push(format!("{label}: expected {want}, got {seen}"));
        }
        for (summary, notes) in
            relay_work_queue(&client, &address, &aws, started, Some(&mut follow_ups)).await?
        {
            published += notes.len();
            submitted += count_submitted(&summary, &notes);
            let seen = observed(&summary, &notes);
            let surprise = (seen != "SUBMITTED").then_some("SUBMITTED");
            print_row(" \u{21b3} work queue delivery", &summary, &notes, surprise);
            if surprise.is_some() {
                surprises.push(format!(
                    "{label} via the work queue: expected SUBMITTED, got {seen}"
                ));
            }
        }
    }

    // A legacy restore of a sharded cluster is one job per shard; the samples use replica sets.
    let jobs = started
        .atlas
        .as_ref()
        .map_or(0, |atlas| atlas.created_jobs() + atlas.created_cloud_jobs());
    println!();
    println!(
        "{} samples sent; {published} outcomes reached the topic; the Atlas double holds {jobs} restore job(s) for {submitted} SUBMITTED outcome(s).",
        sends.len()
    );
    if jobs != submitted {
        surprises.push(format!(
            "{jobs} jobs in the Atlas double, {submitted} SUBMITTED"
        ));
    }
    surprises.extend(
        follow_to_the_end(
            &client,
            &address,
            &aws,
            started,
            follow_ups,
            submitted,
            &signing_secret,
        )
        .await?,
    );
    surprises.extend(
        drills_demo::run(&drills_demo::DrillStack {
            client: &client,
            address: &address,
            sdk: &aws.sdk,
            work_queue: &aws.work_queue,
            work_queue_arn: &aws.work_queue_arn,
            outcomes_queue: &aws.outcomes_queue,
            atlas: started
                .atlas
                .as_ref()
                .ok_or("the Atlas double is not running")?,
            signing_secret: &signing_secret,
            group: GROUP,
            report_dir: &logs,
        })
        .await?,
    );
    surprises.extend(runbook_with_token(&client, &address, &aws, started, &sfn).await?);
    if surprises.is_empty() {
        println!("Every sample came out as expected.");
    } else {
        println!("Unexpected:");
        for surprise in &surprises {
            println!("  {surprise}");
        }
    }

    if options.serve {
        started.serving = Some(surprises.is_empty());
        serve(&client, &address, &aws, started, &signing_secret).await?;
    }
    Ok(surprises.is_empty())
}

/// Stays up for `make invoke`: delivers the work queue and prints what reaches the topic.
async fn serve(
    client: &reqwest::Client,
    address: &str,
    aws: &Aws,
    started: &mut Started,
    secret: &str,
) -> Result<(), String> {
    println!();
    println!("Serving until Ctrl-C. In another terminal:");
    println!(
        "  WEBHOOK_SIGNING_SECRET={secret} make invoke EVENT=events/webhook-approved.json ADDRESS={address}"
    );
    println!("Hot reload is on: edit src/ and the next invocation runs the new build.");
    println!(
        "What the function hands to the work queue is delivered back to it; what reaches the topic shows here:"
    );
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        for (summary, notes) in relay_work_queue(client, address, aws, started, None).await? {
            print_row(" \u{21b3} work queue delivery", &summary, &notes, None);
        }
        let notes = notifications(aws, moto_of(started)?, 0).await;
        for note in &notes {
            println!(
                "{:<31} {:<9} {:<9} {:<10} {}",
                "(published)", note.trigger, "", note.outcome, note.request_id
            );
            println!("    {:<10} {}", "topic", note.subject);
        }
        if let Some(function) = started.function.as_mut()
            && let Some(status) = function.exited()
        {
            return Err(format!(
                "cargo lambda watch ended ({status}):\n{}",
                function.log_tail(20)
            ));
        }
    }
}

fn line(label: &str, text: &str) {
    println!("  {label:<14} {text}");
}

fn moto_of(started: &Started) -> Result<&MotoLease, String> {
    started
        .moto
        .as_ref()
        .ok_or_else(|| "moto is not running".to_owned())
}

fn function_tail(started: &Started) -> String {
    started
        .function
        .as_ref()
        .map(|f| format!("last lines of {}:\n{}", f.log.display(), f.log_tail(15)))
        .unwrap_or_default()
}

/// `.venv/bin/cargo-lambda` (installed by `make demo` from requirements-demo.txt), next to
/// the interpreter the Makefile names; or `$CARGO_LAMBDA`.
fn cargo_lambda() -> Result<PathBuf, String> {
    let path = match std::env::var_os("CARGO_LAMBDA") {
        Some(path) => PathBuf::from(path),
        None => std::env::var_os("ATLAS_RUNNER_PYTHON")
            .map(PathBuf::from)
            .and_then(|python| python.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin"))
            .join("cargo-lambda"),
    };
    let version = std::process::Command::new(&path)
        .args(["lambda", "--version"])
        .output()
        .map_err(|e| {
            format!(
                "{}: {e}\nrun `make demo` (it installs cargo-lambda into .venv from requirements-demo.txt) or set CARGO_LAMBDA",
                path.display()
            )
        })?;
    if !version.status.success() {
        return Err(format!(
            "{} lambda --version failed: {}",
            path.display(),
            String::from_utf8_lossy(&version.stderr)
        ));
    }
    Ok(path)
}

/// The samples, by name.
fn samples() -> Result<Vec<PathBuf>, String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("events");
    let mut samples: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    samples.sort();
    Ok(samples)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `$CARGO_TARGET_DIR`, else `target/` of the project.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port on 127.0.0.1: {e}"))
}

fn port_is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

fn queue_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

/// The secrets, the table, the topic with its subscribed queue, and the work queue.
async fn create_aws(moto: &MotoLease, signing_secret: &str) -> Result<Aws, String> {
    let sdk = moto.sdk_config().await;
    let fail = |what: &'static str| move |e: String| format!("creating {what} on moto: {e}");
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    secrets
        .create_secret()
        .name(ATLAS_SECRET)
        .secret_string(json!({"publicKey": PUBLIC_KEY, "privateKey": PRIVATE_KEY}).to_string())
        .send()
        .await
        .map_err(|e| e.to_string())
        .map_err(fail("the Atlas secret"))?;
    secrets
        .create_secret()
        .name(WEBHOOK_SECRET)
        .secret_string(signing_secret)
        .send()
        .await
        .map_err(|e| e.to_string())
        .map_err(fail("the webhook secret"))?;
    let key = KeySchemaElement::builder()
        .attribute_name("id")
        .key_type(KeyType::Hash)
        .build()
        .map_err(|e| e.to_string())?;
    let attribute = AttributeDefinition::builder()
        .attribute_name("id")
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(|e| e.to_string())?;
    aws_sdk_dynamodb::Client::new(&sdk)
        .create_table()
        .table_name(TABLE)
        .key_schema(key)
        .attribute_definitions(attribute)
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .map_err(|e| e.to_string())
        .map_err(fail("the idempotency table"))?;
    let topic_arn = aws_sdk_sns::Client::new(&sdk)
        .create_topic()
        .name(TOPIC)
        .send()
        .await
        .map_err(|e| e.to_string())
        .map_err(fail("the topic"))?
        .topic_arn
        .ok_or("CreateTopic answered no ARN")?;
    let outcomes_queue = sqs_subscribed_queue(&sdk, &topic_arn, false).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let work_queue = sqs
        .create_queue()
        .queue_name(WORK_QUEUE)
        .send()
        .await
        .map_err(|e| e.to_string())
        .map_err(fail("the work queue"))?
        .queue_url
        .ok_or("CreateQueue answered no URL")?;
    let work_queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&work_queue)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| e.to_string())
        .map_err(fail("the work queue's ARN"))?
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .ok_or("the work queue has no ARN")?;
    Ok(Aws {
        sdk,
        endpoint: moto.endpoint(),
        topic_arn,
        outcomes_queue,
        work_queue,
        work_queue_arn,
    })
}

/// The function's environment (CONTRACT section 5), pointing at moto and the Atlas double.
fn function_env(aws: &Aws, atlas_url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", aws.endpoint.clone()),
        ("AWS_REGION", REGION.to_owned()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ("ATLAS_BASE_URL", atlas_url.to_owned()),
        ("ATLAS_SECRET_ID", ATLAS_SECRET.to_owned()),
        ("WEBHOOK_SECRET_ID", WEBHOOK_SECRET.to_owned()),
        ("NOTIFY_TOPIC_ARN", aws.topic_arn.clone()),
        ("IDEMPOTENCY_TABLE", TABLE.to_owned()),
        ("APPROVERS", APPROVERS.to_owned()),
        ("PROTECTED_CLUSTERS", PROTECTED_CLUSTERS.to_owned()),
        ("WORK_QUEUE_URL", aws.work_queue.clone()),
        ("FOLLOW_JOBS", "true".to_owned()),
        (
            "FOLLOW_INTERVAL_SECONDS",
            FOLLOW_INTERVAL_SECONDS.to_string(),
        ),
        ("FOLLOW_MAX_HOURS", "1".to_owned()),
        ("DRILL_TABLE", drills_demo::DRILL_TABLE.to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ]
}

/// Waits until `cargo lambda watch` listens, then until the function answers a first event
/// (that first invocation builds it).
async fn warm_up(
    function: &mut FunctionProcess,
    client: &reqwest::Client,
    aws: &Aws,
) -> Result<(), String> {
    let started = Instant::now();
    loop {
        if tokio::net::TcpStream::connect(&function.address)
            .await
            .is_ok()
        {
            break;
        }
        if let Some(status) = function.exited() {
            return Err(format!(
                "cargo lambda watch ended ({status}):\n{}",
                function.log_tail(20)
            ));
        }
        if started.elapsed() > Duration::from_secs(60) {
            return Err(format!(
                "cargo lambda watch did not listen on {} within 60 s:\n{}",
                function.address,
                function.log_tail(20)
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "\nbuilding and starting the function (its first invocation builds it; the first build takes minutes)"
    );
    let event = json!({"demo": WARM_UP});
    let address = function.address.clone();
    let invocation = shared::invoke(client, &address, &event, Duration::from_secs(30 * 60));
    tokio::pin!(invocation);
    let mut ticks = tokio::time::interval(Duration::from_secs(20));
    ticks.tick().await;
    let invoked = loop {
        tokio::select! {
            invoked = &mut invocation => break invoked,
            _ = ticks.tick() => {
                if let Some(status) = function.exited() {
                    return Err(format!("cargo lambda watch ended ({status}):\n{}", function.log_tail(20)));
                }
                let tail = function.last_build_line();
                println!("  ... {:>4} s  {}", started.elapsed().as_secs(), shared::shorten(tail.trim(), 90));
            }
        }
    };
    let invoked = invoked.map_err(|e| format!("{e}\n{}", function.log_tail(20)))?;
    if invoked.function_error || invoked.payload.get("outcome").is_none() {
        return Err(format!(
            "the function's first answer was not an outcome: {}\n{}",
            invoked.payload,
            function.log_tail(20)
        ));
    }
    // The warm-up event is of no known shape: its REJECTED outcome was published; take it off.
    receive_all(&aws.sdk, &aws.outcomes_queue, 1).await;
    println!("function ready after {} s", started.elapsed().as_secs());
    Ok(())
}

/// A notification that reached the topic (read from the subscribed queue).
struct Notification {
    outcome: String,
    trigger: String,
    request_id: String,
    subject: String,
}

/// How many notifications an answer should have published: one per outcome, except
/// `DUPLICATE`, `QUEUED` and an unverified request; one for an SQS delivery.
fn expected_notifications(summary: &shared::Summary) -> usize {
    match summary.outcome.as_deref() {
        Some("DUPLICATE" | "QUEUED") => 0,
        Some(_) => 1,
        None if summary.answer.starts_with("batch") => 1,
        None => 0,
    }
}

/// What reached the topic: the messages on the subscribed queue, with their `Subject` (raw
/// delivery leaves it out, so it is looked up in moto's record of the topic).
async fn notifications(aws: &Aws, moto: &MotoLease, expected: usize) -> Vec<Notification> {
    let messages = receive_all(&aws.sdk, &aws.outcomes_queue, expected).await;
    if messages.is_empty() {
        return Vec::new();
    }
    let data = tokio::task::block_in_place(|| moto.data());
    let sent: Vec<&Value> = data
        .pointer("/sns/Topic")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|topic| topic.get("sent_notifications").and_then(Value::as_array))
        .flatten()
        .collect();
    messages
        .iter()
        .map(|message| {
            let body = message.body().unwrap_or_default();
            let outcome: Value = serde_json::from_str(body).unwrap_or(Value::Null);
            let attribute = |name: &str| {
                message
                    .message_attributes()
                    .and_then(|a| a.get(name))
                    .and_then(|v| v.string_value())
                    .map(str::to_owned)
            };
            let subject = sent
                .iter()
                .find(|n| n.get(1).and_then(Value::as_str) == Some(body))
                .and_then(|n| n.get(2).and_then(Value::as_str))
                .map_or("(no subject)".to_owned(), |s| format!("\"{s}\""));
            Notification {
                outcome: attribute("outcome")
                    .or_else(|| outcome["outcome"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| "?".to_owned()),
                trigger: attribute("trigger").unwrap_or_else(|| "?".to_owned()),
                request_id: outcome["requestId"].as_str().unwrap_or("-").to_owned(),
                subject,
            }
        })
        .collect()
}

/// Plays the SQS event source mapping: delivers what is on the work queue to the function,
/// and deletes each message the function did not list as failed. With `set_aside`, follow-up
/// checks are taken off the queue and kept there instead, to be delivered later
/// ([`follow_to_the_end`]).
async fn relay_work_queue(
    client: &reqwest::Client,
    address: &str,
    aws: &Aws,
    started: &Started,
    mut set_aside: Option<&mut Vec<String>>,
) -> Result<Vec<(shared::Summary, Vec<Notification>)>, String> {
    let sqs = aws_sdk_sqs::Client::new(&aws.sdk);
    let received = sqs
        .receive_message()
        .queue_url(&aws.work_queue)
        .max_number_of_messages(10)
        .wait_time_seconds(0)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .map_err(|e| format!("reading the work queue: {e}"))?;
    let mut delivered = Vec::new();
    for message in received.messages.unwrap_or_default() {
        let body = message.body().unwrap_or_default();
        if let Some(kept) = set_aside.as_deref_mut()
            && body.contains("\"followUp\"")
        {
            kept.push(body.to_owned());
            if let Some(handle) = message.receipt_handle() {
                sqs.delete_message()
                    .queue_url(&aws.work_queue)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .map_err(|e| format!("deleting a follow-up message: {e}"))?;
            }
            continue;
        }
        let attributes: serde_json::Map<String, Value> = message
            .attributes()
            .into_iter()
            .flatten()
            .map(|(name, value)| (name.as_str().to_owned(), json!(value)))
            .collect();
        let event = json!({"Records": [{
            "messageId": message.message_id(),
            "receiptHandle": message.receipt_handle(),
            "body": message.body(),
            "attributes": attributes,
            "messageAttributes": {},
            "md5OfBody": message.md5_of_body(),
            "eventSource": "aws:sqs",
            "eventSourceARN": aws.work_queue_arn,
            "awsRegion": REGION,
        }]});
        let invoked = shared::invoke(client, address, &event, Duration::from_secs(120))
            .await
            .map_err(|e| format!("delivering the work queue: {e}"))?;
        let summary = shared::summarize(&invoked);
        let failed = invoked.function_error
            || invoked.payload["batchItemFailures"]
                .as_array()
                .is_some_and(|f| !f.is_empty());
        if !failed && let Some(handle) = message.receipt_handle() {
            sqs.delete_message()
                .queue_url(&aws.work_queue)
                .receipt_handle(handle)
                .send()
                .await
                .map_err(|e| format!("deleting a delivered message: {e}"))?;
        }
        let notes = notifications(aws, moto_of(started)?, expected_notifications(&summary)).await;
        delivered.push((summary, notes));
    }
    Ok(delivered)
}

/// `FOLLOW_JOBS=true`: every SUBMITTED request was followed. The first check of each finds its
/// jobs still running and queues the next; then the Atlas double ends every job (as Atlas
/// would, minutes or hours later) and the second checks publish FINISHED with the measured
/// duration. Last, the signed status lookup of the scheduled drill. Returns what went wrong.
async fn follow_to_the_end(
    client: &reqwest::Client,
    address: &str,
    aws: &Aws,
    started: &Started,
    mut checks: Vec<String>,
    submitted: usize,
    signing_secret: &str,
) -> Result<Vec<String>, String> {
    let mut surprises = Vec::new();
    println!();
    println!(
        "Following every submitted restore to its end (FOLLOW_JOBS=true, a check every {FOLLOW_INTERVAL_SECONDS} s):"
    );
    let atlas = started
        .atlas
        .as_ref()
        .ok_or("the Atlas double is not running")?;
    // The last checks of the samples may still be in their delay.
    let wait_until = Instant::now() + Duration::from_secs(FOLLOW_INTERVAL_SECONDS + 3);
    while checks.len() < submitted && Instant::now() < wait_until {
        tokio::time::sleep(Duration::from_millis(250)).await;
        relay_work_queue(client, address, aws, started, Some(&mut checks)).await?;
    }
    let first_round = checks.len();
    for body in std::mem::take(&mut checks) {
        deliver_check(client, address, aws, &body).await?;
    }
    let still_running = notifications(aws, moto_of(started)?, 0).await;
    println!(
        "  check 1 of {first_round} request(s): jobs still running, {} final outcome(s); the next checks are queued",
        still_running.len()
    );
    if first_round != submitted || !still_running.is_empty() {
        surprises.push(format!(
            "{first_round} first checks (expected {submitted}), {} published early",
            still_running.len()
        ));
    }

    let (legacy, cloud) = (atlas.jobs(), atlas.cloud_jobs());
    for job in &legacy {
        atlas.set_job_status(job["id"].as_str().unwrap_or(""), "FINISHED", None);
    }
    for job in &cloud {
        let download = job["deliveryType"] == "download";
        atlas.set_cloud_job_state(
            job["id"].as_str().unwrap_or(""),
            support::atlas_double::CloudJobState {
                finished_at: Some(Utc::now()),
                delivery_url: download
                    .then(|| vec!["https://restore.example/snapshot.tar.gz".to_owned()]),
                ..Default::default()
            },
        );
    }
    println!(
        "  the Atlas double ends every job now: {} legacy FINISHED, {} cloud finishedAt set",
        legacy.len(),
        cloud.len()
    );

    let wait_until = Instant::now() + Duration::from_secs(FOLLOW_INTERVAL_SECONDS + 5);
    while checks.len() < first_round && Instant::now() < wait_until {
        tokio::time::sleep(Duration::from_millis(250)).await;
        relay_work_queue(client, address, aws, started, Some(&mut checks)).await?;
    }
    let mut finished = 0;
    println!(
        "  {:<40} {:<9} durationSeconds (from the submission to the end seen)",
        "REQUEST ID", "OUTCOME"
    );
    for body in std::mem::take(&mut checks) {
        deliver_check(client, address, aws, &body).await?;
        let messages = receive_all(&aws.sdk, &aws.outcomes_queue, 1).await;
        for message in &messages {
            let outcome: Value =
                serde_json::from_str(message.body().unwrap_or_default()).unwrap_or(Value::Null);
            let kind = outcome["outcome"].as_str().unwrap_or("?");
            finished += usize::from(kind == "FINISHED");
            println!(
                "  {:<40} {:<9} {}",
                shared::shorten(outcome["requestId"].as_str().unwrap_or("-"), 40),
                kind,
                outcome["durationSeconds"]
                    .as_u64()
                    .map_or("?".to_owned(), |s| s.to_string()),
            );
        }
    }
    if finished != submitted {
        surprises.push(format!("{finished} FINISHED for {submitted} SUBMITTED"));
    }

    // The status lookup, as a chat bot would ask "is it done?".
    // events/schedule-latest-snapshot.json: the scheduled drill, by its execution id.
    let request_id = "c0f1e2d3-4b5a-4978-8a1b-2c3d4e5f6a70";
    let path = format!("/restore/{request_id}");
    let timestamp = Utc::now().timestamp();
    let signed = format!("GET {path}");
    let event = json!({
        "version": "2.0", "routeKey": "GET /restore/{requestId}", "rawPath": path, "rawQueryString": "",
        "headers": {
            "x-signature-timestamp": timestamp.to_string(),
            "x-signature": atlas_restore_runner::triggers::signature::sign(signing_secret.as_bytes(), timestamp, signed.as_bytes()),
        },
        "requestContext": {"http": {"method": "GET", "path": path}},
        "isBase64Encoded": false
    });
    let invoked = shared::invoke(client, address, &event, Duration::from_secs(60)).await?;
    let status = invoked.payload["statusCode"].as_u64().unwrap_or(0);
    let body: Value = invoked.payload["body"]
        .as_str()
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    println!(
        "  signed GET {path}: HTTP {status}, outcome {}, durationSeconds {}, history {}",
        body["outcome"].as_str().unwrap_or("-"),
        body["durationSeconds"],
        body["history"]
    );
    if status != 200 || body["outcome"] != "FINISHED" {
        surprises.push(format!(
            "the status lookup of {request_id}: HTTP {status} {body}"
        ));
    }
    Ok(surprises)
}

/// A runbook step as Step Functions runs it (`lambda:invoke.waitForTaskToken`, CONTRACT
/// section 8): the command carries the task's token; the function answers at once, follows the
/// restore, sends a heartbeat on each check and reports the end to the token. What is printed
/// is what the recording proxy in front of moto saw the function send. Returns what went wrong.
async fn runbook_with_token(
    client: &reqwest::Client,
    address: &str,
    aws: &Aws,
    started: &Started,
    sfn: &StepFunctionsProxy,
) -> Result<Vec<String>, String> {
    const TOKEN: &str = "AQCkAAAAKgAAAAMAAAAAAAAAAdemoTaskTokenOfTheRunbookStepRestoreAndWait==";
    let fingerprint = atlas_restore_runner::command::TaskToken::parse(TOKEN)
        .map(|t| t.fingerprint())
        .unwrap_or_default();
    println!();
    println!(
        "A Step Functions runbook step (examples/runbook.asl.json): a direct invoke whose command carries \"taskToken\" ({fingerprint}):"
    );
    let mut command: Value = serde_json::from_str(
        &std::fs::read_to_string("events/direct-snapshot-restore.json")
            .map_err(|e| format!("events/direct-snapshot-restore.json: {e}"))?,
    )
    .map_err(|e| e.to_string())?;
    command["idempotencyKey"] = json!("runbook-sfn-demo");
    command["taskToken"] = json!(TOKEN);
    let invoked = shared::invoke(client, address, &command, Duration::from_secs(120)).await?;
    let job = invoked.payload["atlas"]["jobs"][0]["id"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    println!(
        "  answered at once: {} (job {job}); Step Functions calls so far: {}",
        invoked.payload["outcome"].as_str().unwrap_or("-"),
        sfn.calls().len()
    );
    for round in 1..=2 {
        if round == 2 {
            if let Some(atlas) = started.atlas.as_ref() {
                atlas.set_job_status(&job, "FINISHED", None);
            }
            println!("  the Atlas double ends the job: FINISHED");
        }
        let mut checks = Vec::new();
        let wait_until = Instant::now() + Duration::from_secs(FOLLOW_INTERVAL_SECONDS + 5);
        while checks.is_empty() && Instant::now() < wait_until {
            tokio::time::sleep(Duration::from_millis(250)).await;
            relay_work_queue(client, address, aws, started, Some(&mut checks)).await?;
        }
        for body in checks {
            deliver_check(client, address, aws, &body).await?;
        }
        println!(
            "  follow-up check {round} delivered; Step Functions calls so far: {}",
            sfn.calls().len()
        );
    }
    let _ = notifications(aws, moto_of(started)?, 2).await;
    println!("  what the function sent to Step Functions, in order:");
    let calls = sfn.calls();
    for call in &calls {
        let detail = match call.action.as_str() {
            "SendTaskSuccess" => {
                let output: Value =
                    serde_json::from_str(call.body["output"].as_str().unwrap_or("null"))
                        .unwrap_or(Value::Null);
                format!(
                    "  output: the final outcome ({} bytes): {} {}, durationSeconds {}, job {} {}",
                    call.body["output"].as_str().map_or(0, str::len),
                    output["outcome"].as_str().unwrap_or("-"),
                    output["requestId"].as_str().unwrap_or("-"),
                    output["durationSeconds"],
                    output["atlas"]["jobs"][0]["id"].as_str().unwrap_or("-"),
                    output["atlas"]["jobs"][0]["statusName"]
                        .as_str()
                        .unwrap_or("-"),
                )
            }
            "SendTaskFailure" => format!("  error {}", call.body["error"]),
            _ => String::new(),
        };
        println!(
            "    {:<18} HTTP {}  token {fingerprint}{detail}",
            call.action, call.status
        );
    }
    let actions: Vec<&str> = calls.iter().map(|c| c.action.as_str()).collect();
    if actions != ["SendTaskHeartbeat", "SendTaskHeartbeat", "SendTaskSuccess"] {
        return Ok(vec![format!(
            "the runbook's Step Functions calls: {actions:?}"
        )]);
    }
    Ok(Vec::new())
}

/// Delivers one follow-up message as the SQS event source mapping would.
async fn deliver_check(
    client: &reqwest::Client,
    address: &str,
    aws: &Aws,
    body: &str,
) -> Result<(), String> {
    let event = json!({"Records": [{
        "messageId": format!("follow-{}", Utc::now().timestamp_nanos_opt().unwrap_or(0)),
        "receiptHandle": "demo", "body": body, "attributes": {}, "messageAttributes": {},
        "md5OfBody": "", "eventSource": "aws:sqs", "eventSourceARN": aws.work_queue_arn,
        "awsRegion": REGION,
    }]});
    let invoked = shared::invoke(client, address, &event, Duration::from_secs(120)).await?;
    if invoked.payload != json!({"batchItemFailures": []}) {
        return Err(format!("a follow-up check failed: {}", invoked.payload));
    }
    Ok(())
}

fn count_submitted(summary: &shared::Summary, notes: &[Notification]) -> usize {
    if summary.outcome.is_some() {
        usize::from(summary.outcome.as_deref() == Some("SUBMITTED"))
    } else {
        notes.iter().filter(|n| n.outcome == "SUBMITTED").count()
    }
}

/// The outcome kind an answer came to: its own, else the one published, else the answer.
fn observed(summary: &shared::Summary, notes: &[Notification]) -> String {
    summary
        .outcome
        .clone()
        .or_else(|| notes.first().map(|n| n.outcome.clone()))
        .unwrap_or_else(|| summary.answer.clone())
}

fn print_row(
    label: &str,
    summary: &shared::Summary,
    notes: &[Notification],
    surprise: Option<&str>,
) {
    let trigger = summary
        .trigger
        .clone()
        .or_else(|| notes.first().map(|n| n.trigger.clone()))
        .unwrap_or_else(|| "-".to_owned());
    let outcome = summary.outcome.clone().unwrap_or_else(|| "-".to_owned());
    let request = summary
        .request_id
        .clone()
        .or_else(|| notes.first().map(|n| n.request_id.clone()))
        .unwrap_or_else(|| "-".to_owned());
    let mut row = format!(
        "{:<31} {:<9} {:<9} {:<10} {}",
        label,
        trigger,
        summary.answer,
        outcome,
        shared::shorten(&request, 40)
    );
    if let Some(want) = surprise {
        let _ = write!(row, "   <-- expected {want}");
    }
    println!("{row}");
    for (what, text) in shared::detail_lines(summary) {
        println!("    {what:<10} {text}");
    }
    if notes.is_empty() {
        println!("    {:<10} (nothing published)", "topic");
    }
    for note in notes {
        println!("    {:<10} {}", "topic", note.subject);
    }
}
