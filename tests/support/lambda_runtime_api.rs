//! A Lambda Runtime API (version 2018-06-01) served over real HTTP on `127.0.0.1`, and a wrapper
//! that starts a function binary against it the way Lambda does, so that tests and benchmarks
//! drive the real `bootstrap` binary.
//!
//! What it serves (as AWS documents it in "Using the Lambda runtime API for custom runtimes"):
//! - `GET /2018-06-01/runtime/invocation/next` long-polls until an event is queued by
//!   [`RuntimeApi::invoke`], then answers the event with `Lambda-Runtime-Aws-Request-Id`,
//!   `Lambda-Runtime-Deadline-Ms` (epoch milliseconds, counted from the moment the event is handed
//!   out), `Lambda-Runtime-Invoked-Function-Arn` and `Lambda-Runtime-Trace-Id`;
//! - `POST /2018-06-01/runtime/invocation/{id}/response` and `.../{id}/error`: `202 Accepted`,
//!   `400 InvalidRequestID` for an id never handed out, `403 InvalidStateTransition` for an
//!   invocation already answered;
//! - `POST /2018-06-01/runtime/init/error` (recorded, see [`RuntimeApi::init_error`]);
//! - for SnapStart, `GET /2018-06-01/runtime/restore/next` (answers at once: there is no
//!   snapshot here) and `POST /2018-06-01/runtime/restore/error` (recorded).
//!
//! Behaviour worth knowing:
//! - Events are handed out in the order they were queued, one per `/next`; several pollers
//!   (managed concurrency) are served concurrently.
//! - The deadline is only announced, never enforced: [`RuntimeApi::invoke`]'s own `timeout` is
//!   what bounds a test. An invocation that timed out is forgotten: if it was still queued it is
//!   never handed out, and an answer that arrives later is accepted (`202`) and ignored.
//! - A response body that is not JSON becomes [`Invocation::Response`] of a JSON string
//!   (streaming responses are not decoded).
//! - Every request is recorded ([`RuntimeApi::requests`]), and so is every event handed out
//!   ([`RuntimeApi::deliveries`]).
//! - `lambda_runtime` 1.5 reports to `/init/error` only for SnapStart hooks: an error returned by
//!   `main` before the runtime runs reaches nobody but stderr (see [`FunctionProcess::output`]).
//!
//! [`FunctionProcess`] kills and reaps its child on drop. If the test process itself dies
//! without unwinding, the child still goes away on its own: the Runtime API's socket closes with
//! the test process, `lambda_runtime`'s `/next` fails and its `run` returns the error.

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

/// The function name the harness announces (`AWS_LAMBDA_FUNCTION_NAME` and the invoked ARN).
pub const FUNCTION_NAME: &str = "atlas-restore-runner";
/// The region the harness announces (`AWS_REGION`, `AWS_DEFAULT_REGION` and the invoked ARN).
pub const REGION: &str = "us-east-1";
/// The account of the invoked function's ARN.
pub const ACCOUNT_ID: &str = "123456789012";
/// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` unless overridden (Lambda's default, in MB).
pub const MEMORY_MB: &str = "128";

const PREFIX: &str = "/2018-06-01/runtime";

/// The invoked function's ARN, as sent in `Lambda-Runtime-Invoked-Function-Arn`.
pub fn function_arn() -> String {
    format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{FUNCTION_NAME}")
}

/// A running Runtime API. Dropping it stops the server and closes every connection, which makes a
/// function still attached to it exit.
pub struct RuntimeApi {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// How an invocation ended, as [`RuntimeApi::invoke`] saw it.
#[derive(Debug)]
pub enum Invocation {
    /// The function posted to `/invocation/{id}/response`.
    Response(Value),
    /// The function posted to `/invocation/{id}/error`. `error_type` and `error_message` come from
    /// the body's `errorType` and `errorMessage` (the type falls back to the
    /// `Lambda-Runtime-Function-Error-Type` header, then to `"Unhandled"`).
    Error {
        error_type: String,
        error_message: String,
        body: Value,
    },
    /// No answer within the `timeout` given to [`RuntimeApi::invoke`].
    TimedOut,
}

/// One request as the Runtime API received it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The status answered (`None` while a `/next` is still waiting).
    pub status: Option<u16>,
    pub received_at: Instant,
}

impl RecordedRequest {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// One event handed out on `/next`, with the headers that went with it.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub request_id: String,
    pub event: Value,
    pub deadline_ms: u64,
    pub invoked_function_arn: String,
    pub trace_id: String,
    pub delivered_at: Instant,
}

struct Shared {
    state: Mutex<State>,
    /// Woken whenever an event is queued.
    queued: Notify,
}

struct Queued {
    request_id: String,
    event: Value,
    deadline_in: Duration,
    reply: oneshot::Sender<Invocation>,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Queued>,
    in_flight: HashMap<String, oneshot::Sender<Invocation>>,
    answered: HashSet<String>,
    init_error: Option<Value>,
    restore_error: Option<Value>,
    first_next_at: Option<Instant>,
    /// `/next` requests waiting for an event right now.
    waiting_polls: usize,
    /// Bumped by [`RuntimeApi::retire_pollers`]: a `/next` that arrived under an older
    /// generation never takes an event.
    poller_generation: u64,
    deliveries: Vec<Delivery>,
    requests: Vec<RecordedRequest>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared
        .state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn epoch_ms(at: SystemTime) -> u64 {
    let ms = at
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis();
    u64::try_from(ms).expect("epoch milliseconds fit in u64")
}

/// A request id shaped like Lambda's (a UUID), unique within the test process.
fn new_request_id(port: u16) -> String {
    let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        pid,
        port,
        (n >> 48) & 0xfff,
        (n >> 36) & 0xfff,
        n & 0xffff_ffff_ffff
    )
}

/// An X-Ray trace header like Lambda's: `Root=1-<epoch s hex>-<24 hex>;Parent=<16 hex>;Sampled=0`.
fn new_trace_id(request_id: &str) -> String {
    let seconds = epoch_ms(SystemTime::now()) / 1000;
    let digits: String = request_id.chars().filter(char::is_ascii_hexdigit).collect();
    let root = &digits[digits.len() - 24..];
    let parent = &digits[digits.len() - 16..];
    format!("Root=1-{seconds:08x}-{root};Parent={parent};Sampled=0;Lineage=1:00000000:0")
}

impl RuntimeApi {
    /// Binds `127.0.0.1:0` and starts serving.
    pub async fn start() -> RuntimeApi {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            queued: Notify::new(),
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, shared.clone(), shutdown_rx));
        RuntimeApi {
            shared,
            addr,
            shutdown,
            task,
        }
    }

    /// `127.0.0.1:PORT`: the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:PORT/2018-06-01/runtime`, for talking to the API by hand.
    pub fn base_url(&self) -> String {
        format!("http://{}{PREFIX}", self.addr)
    }

    /// Queues one event, waits for the function's answer (or `timeout`), returns it.
    ///
    /// The function gets `Lambda-Runtime-Deadline-Ms` = the moment it receives the event +
    /// `deadline_in`. Several invocations may be awaited at once (they are handed out in order).
    pub async fn invoke(
        &self,
        event: Value,
        deadline_in: Duration,
        timeout: Duration,
    ) -> Invocation {
        let (reply, answer) = oneshot::channel();
        lock(&self.shared).queue.push_back(Queued {
            request_id: new_request_id(self.addr.port()),
            event,
            deadline_in,
            reply,
        });
        self.shared.queued.notify_waiters();
        // On timeout `answer` is dropped: a queued event is then skipped by `/next`, and a late
        // answer to a delivered one finds its receiver gone.
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(invocation)) => invocation,
            Ok(Err(_)) | Err(_) => Invocation::TimedOut,
        }
    }

    /// What the function posted to `/runtime/init/error` (the last one), if anything.
    pub fn init_error(&self) -> Option<Value> {
        lock(&self.shared).init_error.clone()
    }

    /// What the function posted to `/runtime/restore/error` (SnapStart), if anything.
    pub fn restore_error(&self) -> Option<Value> {
        lock(&self.shared).restore_error.clone()
    }

    /// When the function first asked for an event: the end of its initialisation.
    pub fn first_next_at(&self) -> Option<Instant> {
        lock(&self.shared).first_next_at
    }

    /// Polls until the function first asks for an event, at most `timeout`.
    pub async fn wait_first_next(&self, timeout: Duration) -> Option<Instant> {
        let give_up = Instant::now() + timeout;
        loop {
            if let Some(at) = self.first_next_at() {
                return Some(at);
            }
            if Instant::now() >= give_up {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// How many `/next` requests are waiting for an event right now: 1 when a (sequential)
    /// function is idle between invocations.
    pub fn waiting_polls(&self) -> usize {
        lock(&self.shared).waiting_polls
    }

    /// Every event handed out on `/next`, in order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        lock(&self.shared).deliveries.clone()
    }

    /// Every request received, in order of arrival.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared).requests.clone()
    }

    /// Events queued and not yet handed out (an invocation that timed out no longer counts).
    /// Every `/next` waiting now came from a process that was killed: none of them takes an
    /// event from now on, so the next event goes to the process started after.
    pub fn retire_pollers(&self) {
        lock(&self.shared).poller_generation += 1;
        self.shared.queued.notify_waiters();
    }

    pub fn queued(&self) -> usize {
        lock(&self.shared)
            .queue
            .iter()
            .filter(|queued| !queued.reply.is_closed())
            .count()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        self.task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                let mut shutdown = shutdown.clone();
                connections.spawn(async move {
                    let service = service_fn(move |request| handle(shared.clone(), request));
                    // No timer, hence no header read timeout: `lambda_runtime` keeps pooled
                    // connections idle for as long as the test pauses between invocations.
                    let connection = http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service);
                    tokio::select! {
                        _ = connection => {}
                        _ = shutdown.changed() => {}
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.abort_all();
}

/// The routes of the API.
enum Target {
    Next,
    Response(String),
    Error(String),
    InitError,
    RestoreNext,
    RestoreError,
    NotFound,
    MethodNotAllowed,
}

fn resolve(method: &Method, path: &str) -> Target {
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return Target::NotFound;
    };
    let segments: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    let (target, allowed) = match segments.as_slice() {
        ["invocation", "next"] => (Target::Next, Method::GET),
        ["invocation", id, "response"] if !id.is_empty() => {
            (Target::Response((*id).to_owned()), Method::POST)
        }
        ["invocation", id, "error"] if !id.is_empty() => {
            (Target::Error((*id).to_owned()), Method::POST)
        }
        ["init", "error"] => (Target::InitError, Method::POST),
        ["restore", "next"] => (Target::RestoreNext, Method::GET),
        ["restore", "error"] => (Target::RestoreError, Method::POST),
        _ => return Target::NotFound,
    };
    if *method == allowed {
        target
    } else {
        Target::MethodNotAllowed
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn api_error(status: StatusCode, error_type: &str, message: &str) -> Response<Full<Bytes>> {
    json_response(
        status,
        &json!({ "errorType": error_type, "errorMessage": message }),
    )
}

fn accepted() -> Response<Full<Bytes>> {
    json_response(StatusCode::ACCEPTED, &json!({ "status": "OK" }))
}

fn parse_body(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let received_at = Instant::now();
    let (parts, body) = request.into_parts();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_owned(), value)
        })
        .collect();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes().to_vec(),
        Err(_) => Vec::new(),
    };
    let target = resolve(&parts.method, parts.uri.path());
    let index = {
        let mut state = lock(&shared);
        if matches!(target, Target::Next) && state.first_next_at.is_none() {
            state.first_next_at = Some(received_at);
        }
        state.requests.push(RecordedRequest {
            method: parts.method.as_str().to_owned(),
            path: parts.uri.path().to_owned(),
            headers: headers.clone(),
            body: body.clone(),
            status: None,
            received_at,
        });
        state.requests.len() - 1
    };
    let error_type_header = headers
        .iter()
        .find(|(name, _)| name == "lambda-runtime-function-error-type")
        .map(|(_, value)| value.clone());
    let response = match target {
        Target::Next => next(&shared).await,
        Target::Response(id) => complete(&shared, &id, || Invocation::Response(parse_body(&body))),
        Target::Error(id) => complete(&shared, &id, || {
            let parsed = parse_body(&body);
            let field = |name: &str| parsed.get(name).and_then(Value::as_str).map(str::to_owned);
            Invocation::Error {
                error_type: field("errorType")
                    .or(error_type_header)
                    .unwrap_or_else(|| "Unhandled".to_owned()),
                error_message: field("errorMessage").unwrap_or_default(),
                body: parsed,
            }
        }),
        Target::InitError => {
            lock(&shared).init_error = Some(parse_body(&body));
            accepted()
        }
        Target::RestoreNext => Response::new(Full::new(Bytes::new())),
        Target::RestoreError => {
            lock(&shared).restore_error = Some(parse_body(&body));
            accepted()
        }
        Target::NotFound => api_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            "no such Runtime API resource",
        ),
        Target::MethodNotAllowed => api_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "method not allowed on this Runtime API resource",
        ),
    };
    lock(&shared).requests[index].status = Some(response.status().as_u16());
    Ok(response)
}

/// Counts a waiting `/next` for as long as it lives (hyper drops it when its client goes away).
struct WaitingPoll<'a>(&'a Shared);

impl<'a> WaitingPoll<'a> {
    fn new(shared: &'a Shared) -> Self {
        lock(shared).waiting_polls += 1;
        WaitingPoll(shared)
    }
}

impl Drop for WaitingPoll<'_> {
    fn drop(&mut self) {
        lock(self.0).waiting_polls -= 1;
    }
}

/// `GET /invocation/next`: waits for a live queued event and hands it out.
async fn next(shared: &Shared) -> Response<Full<Bytes>> {
    let _waiting = WaitingPoll::new(shared);
    let generation = lock(shared).poller_generation;
    loop {
        // Registered before looking at the queue, so a notification in between is not lost. If
        // the client goes away meanwhile, hyper drops this future before an event is taken.
        let notified = shared.queued.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let retired = {
            let mut state = lock(shared);
            let retired = state.poller_generation != generation;
            if !retired {
                while let Some(queued) = state.queue.pop_front() {
                    if queued.reply.is_closed() {
                        continue;
                    }
                    return deliver(&mut state, queued);
                }
            }
            retired
        };
        if retired {
            // Its process was killed: hyper may not notice the closed connection before it
            // writes, and an event written to it would be lost.
            return std::future::pending().await;
        }
        notified.await;
    }
}

fn deliver(state: &mut State, queued: Queued) -> Response<Full<Bytes>> {
    let delivered_at = Instant::now();
    let deadline_ms = epoch_ms(SystemTime::now() + queued.deadline_in);
    let arn = function_arn();
    let trace_id = new_trace_id(&queued.request_id);
    let mut response = Response::new(Full::new(Bytes::from(queued.event.to_string())));
    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: &str| {
        headers.insert(
            name,
            HeaderValue::from_str(value).expect("header value is visible ASCII"),
        );
    };
    set("content-type", "application/json");
    set("lambda-runtime-aws-request-id", &queued.request_id);
    set("lambda-runtime-deadline-ms", &deadline_ms.to_string());
    set("lambda-runtime-invoked-function-arn", &arn);
    set("lambda-runtime-trace-id", &trace_id);
    state.deliveries.push(Delivery {
        request_id: queued.request_id.clone(),
        event: queued.event,
        deadline_ms,
        invoked_function_arn: arn,
        trace_id,
        delivered_at,
    });
    state.in_flight.insert(queued.request_id, queued.reply);
    response
}

/// `POST /invocation/{id}/response` and `/error`.
fn complete(
    shared: &Shared,
    request_id: &str,
    outcome: impl FnOnce() -> Invocation,
) -> Response<Full<Bytes>> {
    let mut state = lock(shared);
    if let Some(reply) = state.in_flight.remove(request_id) {
        state.answered.insert(request_id.to_owned());
        // The receiver is gone when the invocation timed out: the answer is accepted and ignored.
        let _ = reply.send(outcome());
        accepted()
    } else if state.answered.contains(request_id) {
        api_error(
            StatusCode::FORBIDDEN,
            "InvalidStateTransition",
            "this invocation was already answered",
        )
    } else {
        api_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestID",
            "no invocation with this request id is in progress",
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The function process.

/// A function binary started against a [`RuntimeApi`]. Dropping it kills and reaps the process
/// (and, when the test is panicking, prints what it printed).
pub struct FunctionProcess {
    child: Child,
    binary: PathBuf,
    output: Arc<Mutex<Vec<u8>>>,
    readers: Vec<thread::JoinHandle<()>>,
    status: Option<ExitStatus>,
}

/// The environment Lambda gives a function on an OS-only runtime (`provided.al2023`), pointed at
/// `api`, with `task_root` as `LAMBDA_TASK_ROOT`. The credentials are dummies: Lambda always sets
/// the execution role's, and without them the AWS SDK would probe the instance metadata service.
pub fn lambda_environment(api: &RuntimeApi, task_root: &Path) -> Vec<(String, String)> {
    let task_root = task_root.display().to_string();
    let log_stream = format!("2025/01/01/[$LATEST]{:032x}", api.addr.port());
    [
        ("AWS_LAMBDA_RUNTIME_API", api.address()),
        ("AWS_LAMBDA_FUNCTION_NAME", FUNCTION_NAME.to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", MEMORY_MB.to_owned()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{FUNCTION_NAME}"),
        ),
        ("AWS_LAMBDA_LOG_STREAM_NAME", log_stream),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
        ("AWS_REGION", REGION.to_owned()),
        ("AWS_DEFAULT_REGION", REGION.to_owned()),
        ("AWS_ACCESS_KEY_ID", "ASIALAMBDAHARNESS0000".to_owned()),
        (
            "AWS_SECRET_ACCESS_KEY",
            "lambda-harness-secret-access-key".to_owned(),
        ),
        (
            "AWS_SESSION_TOKEN",
            "lambda-harness-session-token".to_owned(),
        ),
        ("_HANDLER", "bootstrap".to_owned()),
        ("LAMBDA_TASK_ROOT", task_root.clone()),
        ("LAMBDA_RUNTIME_DIR", task_root),
        ("TZ", ":UTC".to_owned()),
        ("LANG", "en_US.UTF-8".to_owned()),
        ("PATH", "/usr/local/bin:/usr/bin/:/bin:/opt/bin".to_owned()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

impl FunctionProcess {
    /// Starts `binary` with the environment Lambda gives a function ([`lambda_environment`], and
    /// nothing of the test's own environment but `LLVM_PROFILE_FILE` for coverage runs) plus
    /// `env` (which wins), in the binary's directory, capturing stdout and stderr.
    pub fn start(binary: &Path, api: &RuntimeApi, env: &[(&str, &str)]) -> FunctionProcess {
        assert!(
            binary.is_file(),
            "function binary {} does not exist",
            binary.display()
        );
        let task_root = binary
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let mut command = Command::new(binary);
        command
            .env_clear()
            .envs(lambda_environment(api, &task_root))
            .current_dir(&task_root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(profile) = std::env::var_os("LLVM_PROFILE_FILE") {
            command.env("LLVM_PROFILE_FILE", profile);
        }
        command.envs(env.iter().copied());
        let mut child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", binary.display()));
        let output = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let readers = vec![
            spawn_reader(stdout, output.clone()),
            spawn_reader(stderr, output.clone()),
        ];
        FunctionProcess {
            child,
            binary: binary.to_path_buf(),
            output,
            readers,
            status: None,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process printed so far, stdout and stderr interleaved line by line.
    pub fn output(&self) -> String {
        let output = self
            .output
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        String::from_utf8_lossy(&output).into_owned()
    }

    /// Polls until `needle` appears in [`Self::output`], at most `timeout`.
    pub async fn wait_for_output(&self, needle: &str, timeout: Duration) -> bool {
        let give_up = Instant::now() + timeout;
        loop {
            if self.output().contains(needle) {
                return true;
            }
            if Instant::now() >= give_up {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The exit status, if the process has exited (it is reaped then).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("waitpid on the function");
        }
        self.status
    }

    /// Polls until the process exits, at most `timeout`; then waits (at most a second) for its
    /// output to be drained, so [`Self::output`] is complete.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let give_up = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                self.drain_output(Duration::from_secs(1)).await;
                return Some(status);
            }
            if Instant::now() >= give_up {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn drain_output(&self, timeout: Duration) {
        let give_up = Instant::now() + timeout;
        while !self.readers.iter().all(thread::JoinHandle::is_finished) && Instant::now() < give_up
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Peak resident set size in KiB (`VmHWM` of `/proc/<pid>/status`), while the process runs.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    }

    /// Kills the process (if still running) and reaps it.
    pub fn kill(&mut self) -> ExitStatus {
        if let Some(status) = self.exited() {
            return status;
        }
        let _ = self.child.kill();
        let status = self.child.wait().expect("waitpid on the killed function");
        self.status = Some(status);
        status
    }
}

fn spawn_reader(
    stream: impl Read + Send + 'static,
    output: Arc<Mutex<Vec<u8>>>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        // Whole lines at a time, so stdout and stderr interleave by line.
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => output
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .extend_from_slice(&line),
            }
        }
    })
}

impl Drop for FunctionProcess {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() {
            let give_up = Instant::now() + Duration::from_secs(1);
            while !self.readers.iter().all(thread::JoinHandle::is_finished)
                && Instant::now() < give_up
            {
                thread::sleep(Duration::from_millis(5));
            }
            eprintln!(
                "---- output of {} (pid {}) ----\n{}---- end of output ----",
                self.binary.display(),
                self.child.id(),
                self.output()
            );
        }
    }
}
