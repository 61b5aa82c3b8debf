//! The Lambda benchmarks of `make bench` (never part of `make test`): package size, start-up
//! (init and first answer) and peak RSS of the real `bootstrap` beside a hello-world
//! `lambda_runtime` function, and the warm path (latency, CPU time and the requests each
//! invocation makes to Atlas and AWS), all through the Lambda Runtime API harness of
//! `tests/support`, against moto and the Atlas double.
//!
//! It builds nothing: `make bench` builds the binaries and passes their paths.
//! - `BENCH_BOOTSTRAP`, `BENCH_HELLO`: the release `bootstrap` and `examples/hello_lambda`
//!   (without them the harness says so and exits 0, so a bare `cargo bench` does not fail);
//! - `BENCH_ARM64_BINARY`, `BENCH_ARM64_ZIP`: the arm64 package of `cargo lambda build`, when built;
//! - `BENCH_DIRECT_MOTO=1`: the function talks to moto directly instead of through the
//!   keep-alive proxy of `benches/support/keep_alive_proxy.rs` (a new connection per AWS call);
//! - `BENCH_STARTS` (30) fresh processes of each function, `BENCH_WARM` (1000) warm invocations;
//! - `BENCH_CRITERION_DIR`: where `benches/core.rs` left its estimates (copied into the report);
//! - `BENCH_OUTPUT` (`docs/PERFORMANCE.md`): the report; only the part between the
//!   `<!-- bench:begin -->` and `<!-- bench:end -->` markers is replaced, the rest is left alone.

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "support/keep_alive_proxy.rs"]
mod keep_alive_proxy;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use keep_alive_proxy::KeepAliveProxy;
use serde_json::{Value, json};
use support::lambda_runtime_api::{FunctionProcess, Invocation, RuntimeApi};
use support::sample::command;
use support::stack::Stack;

const BEGIN: &str = "<!-- bench:begin -->";
const END: &str = "<!-- bench:end -->";
const DEADLINE: Duration = Duration::from_secs(30);
const TIMEOUT: Duration = Duration::from_secs(60);

struct Settings {
    bootstrap: PathBuf,
    hello: PathBuf,
    arm64_binary: Option<PathBuf>,
    arm64_zip: Option<PathBuf>,
    starts: usize,
    warm: usize,
    criterion_dir: PathBuf,
    output: PathBuf,
    command: String,
    direct_moto: bool,
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn settings() -> Option<Settings> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    Some(Settings {
        bootstrap: env_path("BENCH_BOOTSTRAP")?,
        hello: env_path("BENCH_HELLO")?,
        arm64_binary: env_path("BENCH_ARM64_BINARY"),
        arm64_zip: env_path("BENCH_ARM64_ZIP"),
        starts: env_number("BENCH_STARTS", 30),
        warm: env_number("BENCH_WARM", 1000),
        criterion_dir: env_path("BENCH_CRITERION_DIR")
            .unwrap_or_else(|| manifest.join("target/criterion")),
        output: env_path("BENCH_OUTPUT").unwrap_or_else(|| manifest.join("docs/PERFORMANCE.md")),
        command: std::env::var("BENCH_COMMAND").unwrap_or_else(|_| "make bench".to_owned()),
        direct_moto: std::env::var("BENCH_DIRECT_MOTO").is_ok_and(|v| v == "1"),
    })
}

fn main() {
    let Some(settings) = settings() else {
        eprintln!(
            "benches/lambda.rs: BENCH_BOOTSTRAP and BENCH_HELLO are not set; run `make bench`, which builds the binaries and sets them. Skipped."
        );
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let report = runtime.block_on(run(&settings));
    println!("{report}");
    write_report(&settings.output, &report);
    println!("written to {}", settings.output.display());
}

fn answer_ok(invocation: &Invocation, expect_outcome: Option<&str>) -> Result<(), String> {
    match (invocation, expect_outcome) {
        (Invocation::Response(value), Some(outcome)) if value["outcome"] == outcome => Ok(()),
        (Invocation::Response(_), None) => Ok(()),
        (other, _) => Err(format!("{other:?}")),
    }
}

struct Cold {
    init: Duration,
    first_answer: Duration,
    rss_kib: u64,
}

/// One fresh process against a fresh Runtime API: the event is queued as soon as the process is
/// spawned, so the first answer is process start → the answer posted, without polling slack.
async fn cold_start(
    binary: &Path,
    env: &[(&str, &str)],
    event: Value,
    outcome: Option<&str>,
) -> Cold {
    let api = RuntimeApi::start().await;
    let started = Instant::now();
    let function = FunctionProcess::start(binary, &api, env);
    let invocation = api.invoke(event, DEADLINE, TIMEOUT).await;
    let answered = Instant::now();
    if let Err(error) = answer_ok(&invocation, outcome) {
        panic!(
            "{}: unexpected first answer {error}\n--- output ---\n{}",
            binary.display(),
            function.output()
        );
    }
    let init = api.first_next_at().expect("a /next before the answer") - started;
    let rss_kib = function
        .peak_rss_kib()
        .expect("VmHWM of the running function");
    Cold {
        init,
        first_answer: answered - started,
        rss_kib,
    }
}

/// utime + stime of the whole process (every thread), in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/<pid>/stat");
    let after_name = &stat[stat.rfind(')').expect("(comm)") + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // fields[0] is field 3 (state): utime is field 14, stime field 15.
    let utime: u64 = fields[11].parse().expect("utime");
    let stime: u64 = fields[12].parse().expect("stime");
    utime + stime
}

fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100)
}

struct Warm {
    latencies_ms: Vec<f64>,
    cpu_ms_per_invocation: f64,
    cpu_ticks: u64,
    ticks_per_second: u64,
    rss_kib: u64,
    /// (service, request) → count over the warm invocations.
    requests: BTreeMap<(String, String), u64>,
}

async fn warm_path(stack: &Stack, binary: &Path, env: &[(&str, &str)], count: usize) -> Warm {
    let api = RuntimeApi::start().await;
    let function = FunctionProcess::start(binary, &api, env);
    // A direct command (the simplest trigger); a distinct key makes each one a real submission.
    let invoke = |key: String| api.invoke(command(Some(&key)), DEADLINE, TIMEOUT);
    // The cold invocation (secrets fetched, connections opened) is not counted.
    let first = invoke("bench-warm-first".to_owned()).await;
    answer_ok(&first, Some("SUBMITTED"))
        .unwrap_or_else(|error| panic!("warm-up: {error}\n--- output ---\n{}", function.output()));
    let moto_before = stack.moto.counts();
    let atlas_before = stack.atlas.requests().len();
    let ticks_before = cpu_ticks(function.pid());
    let mut latencies_ms = Vec::with_capacity(count);
    for i in 0..count {
        let sent = Instant::now();
        let invocation = invoke(format!("bench-warm-{i}")).await;
        latencies_ms.push(sent.elapsed().as_secs_f64() * 1e3);
        answer_ok(&invocation, Some("SUBMITTED")).unwrap_or_else(|error| {
            panic!(
                "warm invocation {i}: {error}\n--- output ---\n{}",
                function.output()
            )
        });
    }
    let ticks = cpu_ticks(function.pid()) - ticks_before;
    let rss_kib = function.peak_rss_kib().expect("VmHWM");
    let moto_after = stack.moto.counts();
    let mut requests = BTreeMap::new();
    for request in &stack.atlas.requests()[atlas_before..] {
        let status = request
            .status
            .map_or_else(|| "dropped".to_owned(), |s| s.to_string());
        let auth = match &request.auth {
            support::atlas_double::RecordedAuth::None => "no auth",
            support::atlas_double::RecordedAuth::Digest { .. } => "Digest",
            support::atlas_double::RecordedAuth::Bearer { .. } => "Bearer",
            support::atlas_double::RecordedAuth::Basic { .. } => "Basic",
            support::atlas_double::RecordedAuth::Malformed => "malformed auth",
        };
        let route = request
            .route
            .map_or_else(|| request.path.clone(), |route| format!("{route:?}"));
        let key = (
            "Atlas".to_owned(),
            format!("{} {route} ({auth}) → {status}", request.method),
        );
        *requests.entry(key).or_insert(0) += 1;
    }
    if let Some(after) = moto_after.as_object() {
        for (action, total) in after {
            let before = moto_before.get(action).and_then(Value::as_u64).unwrap_or(0);
            let delta = total.as_u64().unwrap_or(0).saturating_sub(before);
            if delta > 0 {
                *requests
                    .entry((service_of(action).to_owned(), action.clone()))
                    .or_insert(0) += delta;
            }
        }
    }
    let ticks_per_second = clock_ticks_per_second();
    Warm {
        cpu_ms_per_invocation: ticks as f64 * 1e3 / ticks_per_second as f64 / count as f64,
        cpu_ticks: ticks,
        ticks_per_second,
        latencies_ms,
        rss_kib,
        requests,
    }
}

/// CPU time per invocation of the hello-world function over `count` sequential invocations
/// (after one uncounted warm-up): what `lambda_runtime` itself costs per event.
async fn hello_warm_cpu_ms(binary: &Path, count: usize) -> f64 {
    let api = RuntimeApi::start().await;
    let function = FunctionProcess::start(binary, &api, &[]);
    let first = api.invoke(json!({"warm": "up"}), DEADLINE, TIMEOUT).await;
    answer_ok(&first, None).expect("the hello-world function answers");
    let before = cpu_ticks(function.pid());
    for i in 0..count {
        let invocation = api.invoke(json!({ "warm": i }), DEADLINE, TIMEOUT).await;
        answer_ok(&invocation, None).expect("the hello-world function answers");
    }
    let ticks = cpu_ticks(function.pid()) - before;
    ticks as f64 * 1e3 / clock_ticks_per_second() as f64 / count as f64
}

fn service_of(action: &str) -> &'static str {
    if action.starts_with("secretsmanager.") {
        "Secrets Manager"
    } else if action.starts_with("DynamoDB_") {
        "DynamoDB"
    } else if action.starts_with("AmazonSQS.") {
        "SQS"
    } else {
        "SNS (query protocol)"
    }
}

/// (min, median, p99, max) of `values`.
fn summary(values: &[f64]) -> (f64, f64, f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let rank = (q * (sorted.len() - 1) as f64).round() as usize;
        sorted[rank]
    };
    (sorted[0], at(0.5), at(0.99), sorted[sorted.len() - 1])
}

fn file_mib(path: &Option<PathBuf>) -> Option<f64> {
    let size = std::fs::metadata(path.as_ref()?).ok()?.len();
    Some(size as f64 / (1024.0 * 1024.0))
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|text| text.trim().to_owned())
        .unwrap_or_default();
    let rustc = Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .map(|text| text.trim().to_owned())
        .unwrap_or_default();
    format!("{cpus} CPUs (nproc), {model}, Linux {kernel}, {rustc}")
}

/// The medians criterion left in `<dir>/<name>/new/estimates.json`, in ns: (low, point, high)
/// of the 95% confidence interval.
fn criterion_median(dir: &Path, name: &str) -> Option<(f64, f64, f64)> {
    let text = std::fs::read_to_string(dir.join(name).join("new/estimates.json")).ok()?;
    let estimates: Value = serde_json::from_str(&text).ok()?;
    let median = &estimates["median"];
    Some((
        median["confidence_interval"]["lower_bound"].as_f64()?,
        median["point_estimate"].as_f64()?,
        median["confidence_interval"]["upper_bound"].as_f64()?,
    ))
}

fn verdict(met: bool) -> &'static str {
    if met { "**met**" } else { "**missed**" }
}

async fn run(settings: &Settings) -> String {
    let stack = Stack::start().await;
    let mut function_env = stack.function_env();
    // moto closes every connection; AWS does not (benches/support/keep_alive_proxy.rs).
    // `BENCH_DIRECT_MOTO=1` measures without the proxy, as runs before it did.
    let _proxy = if settings.direct_moto {
        None
    } else {
        let proxy = KeepAliveProxy::start(stack.moto.endpoint()).await;
        function_env.retain(|(name, _)| name != "AWS_ENDPOINT_URL");
        function_env.push(("AWS_ENDPOINT_URL".to_owned(), proxy.endpoint()));
        Some(proxy)
    };
    // As deployed (infra/template.yaml: ApplicationLogLevel INFO), not the tests' debug.
    function_env.retain(|(name, _)| name != "AWS_LAMBDA_LOG_LEVEL");
    function_env.push(("AWS_LAMBDA_LOG_LEVEL".to_owned(), "INFO".to_owned()));
    let env: Vec<(&str, &str)> = function_env
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();

    eprintln!(
        "start-up: {} fresh processes of each function",
        settings.starts
    );
    let (mut hello, mut bootstrap) = (Vec::new(), Vec::new());
    for i in 0..settings.starts {
        // Interleaved, so drift on the machine affects both alike.
        hello.push(cold_start(&settings.hello, &[], json!({"bench": i}), None).await);
        let key = format!("bench-cold-{i}-{}", std::process::id());
        bootstrap.push(
            cold_start(
                &settings.bootstrap,
                &env,
                command(Some(&key)),
                Some("SUBMITTED"),
            )
            .await,
        );
    }

    eprintln!("warm path: {} sequential invocations", settings.warm);
    let warm = warm_path(&stack, &settings.bootstrap, &env, settings.warm).await;
    let hello_cpu_ms = hello_warm_cpu_ms(&settings.hello, settings.warm).await;

    let ms = |colds: &[Cold], pick: fn(&Cold) -> Duration| -> Vec<f64> {
        colds
            .iter()
            .map(|cold| pick(cold).as_secs_f64() * 1e3)
            .collect()
    };
    let mib = |colds: &[Cold]| -> Vec<f64> {
        colds
            .iter()
            .map(|cold| cold.rss_kib as f64 / 1024.0)
            .collect()
    };
    let hello_init = ms(&hello, |c| c.init);
    let boot_init = ms(&bootstrap, |c| c.init);
    let hello_first = ms(&hello, |c| c.first_answer);
    let boot_first = ms(&bootstrap, |c| c.first_answer);
    let hello_rss = mib(&hello);
    let boot_rss = mib(&bootstrap);

    let mut out = String::new();
    let _ = writeln!(out, "{BEGIN}");
    let _ = writeln!(out, "## Latest run\n");
    let _ = writeln!(
        out,
        "- date: {}\n- machine: {}\n- command: `{}`\n- start-ups: {} fresh processes of each function, interleaved; warm path: {} sequential invocations (after one uncounted warm-up)\n- AWS calls: {}\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC"),
        machine(),
        settings.command,
        settings.starts,
        settings.warm,
        if settings.direct_moto {
            "straight to moto, which closes every connection (`BENCH_DIRECT_MOTO=1`)"
        } else {
            "through a keep-alive proxy in front of moto, so connections are reused as with AWS"
        },
    );
    let _ = writeln!(
        out,
        "| metric | n | min | median | p99 | max | target | result |\n|---|---:|---:|---:|---:|---:|---|---|"
    );
    let mut row = |name: &str, values: &[f64], unit: &str, target: &str, result: &str| {
        if values.is_empty() {
            let _ = writeln!(out, "| {name} | 0 | — | — | — | — | {target} | {result} |");
            return;
        }
        let (min, median, p99, max) = summary(values);
        let p99 = if values.len() >= 100 {
            format!("{p99:.2} {unit}")
        } else {
            "—".to_owned()
        };
        let _ = writeln!(
            out,
            "| {name} | {} | {min:.2} {unit} | {median:.2} {unit} | {p99} | {max:.2} {unit} | {target} | {result} |",
            values.len()
        );
    };

    // Package size.
    let arm64_zip = file_mib(&settings.arm64_zip);
    let arm64_binary = file_mib(&settings.arm64_binary);
    let x86_binary = file_mib(&Some(settings.bootstrap.clone()));
    match arm64_binary {
        Some(size) => row(
            "arm64 `bootstrap` (cargo lambda, release)",
            &[size],
            "MiB",
            "",
            "",
        ),
        None => row("arm64 `bootstrap` (not built)", &[], "", "", ""),
    }
    match arm64_zip {
        Some(size) => row(
            "arm64 `bootstrap.zip`",
            &[size],
            "MiB",
            "≤ 8 MB",
            verdict(size * 1024.0 * 1024.0 <= 8e6),
        ),
        None => row(
            "arm64 `bootstrap.zip` (not built)",
            &[],
            "",
            "≤ 8 MB",
            "not measured",
        ),
    }
    if let Some(size) = x86_binary {
        row("x86_64 release `bootstrap`", &[size], "MiB", "", "");
    }

    // Start-up.
    let init_ratio = summary(&boot_init).1 / summary(&hello_init).1;
    let rss_ratio = summary(&boot_rss).1 / summary(&hello_rss).1;
    row("init, hello-world", &hello_init, "ms", "", "");
    row(
        "init, `bootstrap`",
        &boot_init,
        "ms",
        "≤ 2× hello (medians)",
        &format!("{init_ratio:.2}× {}", verdict(init_ratio <= 2.0)),
    );
    row("first answer, hello-world", &hello_first, "ms", "", "");
    row(
        "first answer, `bootstrap` (a real submission)",
        &boot_first,
        "ms",
        "",
        &format!(
            "{:.2}× hello",
            summary(&boot_first).1 / summary(&hello_first).1
        ),
    );
    row("peak RSS, hello-world", &hello_rss, "MiB", "", "");
    row(
        "peak RSS, `bootstrap` after its first answer",
        &boot_rss,
        "MiB",
        "≤ 5× hello (medians)",
        &format!("{rss_ratio:.2}× {}", verdict(rss_ratio <= 5.0)),
    );
    let warm_rss = warm.rss_kib as f64 / 1024.0;
    let warm_rss_ratio = warm_rss / summary(&hello_rss).1;
    row(
        &format!(
            "peak RSS, `bootstrap` after {} warm invocations",
            settings.warm
        ),
        &[warm_rss],
        "MiB",
        "≤ 5× hello",
        &format!("{warm_rss_ratio:.2}× {}", verdict(warm_rss_ratio <= 5.0)),
    );

    // Warm path.
    row(
        "warm latency (event queued → answer posted)",
        &warm.latencies_ms,
        "ms",
        "",
        "",
    );
    row(
        "warm CPU time per invocation (utime+stime)",
        &[warm.cpu_ms_per_invocation],
        "ms",
        "≤ 1 ms",
        verdict(warm.cpu_ms_per_invocation <= 1.0),
    );
    row(
        "warm CPU time per invocation, hello-world (the runtime's share)",
        &[hello_cpu_ms],
        "ms",
        "",
        "",
    );

    // Core (criterion).
    let mut core_missing = Vec::new();
    for name in [
        "command_parse_validate",
        "command_parse_validate_fingerprint",
        "signature_verify",
        "signature_verify_previous_secret",
    ] {
        match criterion_median(&settings.criterion_dir, name) {
            Some((low, point, high)) => {
                let _ = writeln!(
                    out,
                    "| criterion `{name}` (median, 95% CI) | — | {:.2} µs | {:.2} µs | — | {:.2} µs | | |",
                    low / 1e3,
                    point / 1e3,
                    high / 1e3
                );
            }
            None => core_missing.push(name),
        }
    }
    let _ = writeln!(
        out,
        "\nWarm CPU: {} ticks at {} ticks/s over {} invocations (`/proc/<pid>/stat` utime+stime of every thread, so waits are excluded).",
        warm.cpu_ticks, warm.ticks_per_second, settings.warm
    );
    if !core_missing.is_empty() {
        let _ = writeln!(
            out,
            "\nNo criterion estimates found in {} for: {}.",
            settings.criterion_dir.display(),
            core_missing.join(", ")
        );
    }

    let _ = writeln!(
        out,
        "\n### Requests per warm invocation ({} invocations)\n\n| service | request | total | per invocation |\n|---|---|---:|---:|",
        settings.warm
    );
    for ((service, request), total) in &warm.requests {
        let _ = writeln!(
            out,
            "| {service} | {request} | {total} | {:.3} |",
            *total as f64 / settings.warm as f64
        );
    }
    let _ = writeln!(out, "{END}");
    out
}

fn write_report(path: &Path, section: &str) {
    let existing = std::fs::read_to_string(path).unwrap_or_default();
    let updated = match (existing.find(BEGIN), existing.find(END)) {
        (Some(begin), Some(end)) if begin < end => {
            let after = &existing[end + END.len()..];
            let after = after.strip_prefix('\n').unwrap_or(after);
            format!("{}{section}{after}", &existing[..begin])
        }
        _ if existing.is_empty() => format!("# Performance\n\n{section}"),
        _ => format!("{existing}\n{section}"),
    };
    std::fs::write(path, updated)
        .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
}
