//! A recording proxy for Step Functions on 127.0.0.1, between the function and moto
//! (`AWS_ENDPOINT_URL_SFN` points the function's Step Functions client at it). moto accepts
//! `SendTaskSuccess`, `SendTaskFailure` and `SendTaskHeartbeat` for any token without checking
//! them (moto 5.2.5's backend methods are `pass`), so the proxy records each call (its action,
//! from `X-Amz-Target: AWSStepFunctions.<Action>`, its JSON body, and the status answered) and
//! can answer in Step Functions' place with the errors the real service gives: a final
//! refusal (`TaskTimedOut`, 400), throttling (400) or a 5xx.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One request the function made to Step Functions.
#[derive(Clone, Debug, PartialEq)]
pub struct SfnCall {
    /// `SendTaskSuccess`, `SendTaskFailure`, `SendTaskHeartbeat`, ...
    pub action: String,
    pub body: Value,
    /// What the function was answered: moto's status, or the injected fault's.
    pub status: u16,
}

impl SfnCall {
    pub fn token(&self) -> &str {
        self.body["taskToken"].as_str().unwrap_or("")
    }
}

/// An answer the proxy gives in Step Functions' place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SfnFault {
    /// 400 `TaskTimedOut`: the task ended; final, never to be retried.
    TaskTimedOut,
    /// 400 `ThrottlingException`: retried.
    Throttled,
    /// 500 `ServiceUnavailable`: retried.
    Unavailable,
}

impl SfnFault {
    fn answer(self) -> (u16, Value) {
        match self {
            SfnFault::TaskTimedOut => (
                400,
                json!({"__type": "TaskTimedOut", "message": "Task Timed Out: 'Provided task does not exist anymore'"}),
            ),
            SfnFault::Throttled => (
                400,
                json!({"__type": "ThrottlingException", "message": "Rate exceeded"}),
            ),
            SfnFault::Unavailable => (
                500,
                json!({"__type": "ServiceUnavailable", "message": "Service is unavailable"}),
            ),
        }
    }
}

#[derive(Default)]
struct State {
    calls: Vec<SfnCall>,
    /// Faults for the next calls of an action (`None`: any action), in order.
    planned: VecDeque<(Option<String>, SfnFault)>,
    /// A fault for every call until healed.
    down: Option<SfnFault>,
    /// Where calls are forwarded (moto); `None`: answered 502.
    upstream: Option<String>,
}

pub struct StepFunctionsProxy {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl StepFunctionsProxy {
    /// Listens on a new port of 127.0.0.1; calls are forwarded once [`Self::forward_to`] names
    /// where (so the function can be started with the proxy's address before moto is known).
    pub async fn start() -> StepFunctionsProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local address");
        let state = Arc::new(Mutex::new(State::default()));
        let client = reqwest::Client::new();
        let task = {
            let state = state.clone();
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let state = state.clone();
                    let client = client.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |request| {
                            handle(state.clone(), client.clone(), request)
                        });
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            })
        };
        StepFunctionsProxy { addr, state, task }
    }

    /// Forwards what it does not fault to `upstream` (moto's `http://127.0.0.1:<port>`).
    pub fn forward_to(&self, upstream: &str) {
        lock(&self.state).upstream = Some(upstream.trim_end_matches('/').to_owned());
    }

    /// `http://127.0.0.1:<port>`, for `AWS_ENDPOINT_URL_SFN`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every call so far, faulted ones included, in order.
    pub fn calls(&self) -> Vec<SfnCall> {
        lock(&self.state).calls.clone()
    }

    /// The calls that Step Functions (moto) accepted, in order.
    pub fn accepted(&self) -> Vec<SfnCall> {
        self.calls()
            .into_iter()
            .filter(|c| c.status == 200)
            .collect()
    }

    /// The actions Step Functions accepted, in order.
    pub fn accepted_actions(&self) -> Vec<String> {
        self.accepted().into_iter().map(|c| c.action).collect()
    }

    /// Answers the next call of `action` (`None`: of any action) with `fault`.
    pub fn fail_next(&self, action: Option<&str>, fault: SfnFault) {
        lock(&self.state)
            .planned
            .push_back((action.map(str::to_owned), fault));
    }

    /// Answers every call with `fault` until [`StepFunctionsProxy::heal`].
    pub fn fail_all(&self, fault: SfnFault) {
        lock(&self.state).down = Some(fault);
    }

    pub fn heal(&self) {
        let mut state = lock(&self.state);
        state.down = None;
        state.planned.clear();
    }
}

impl Drop for StepFunctionsProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The fault planned for a call of `action`, taken from the plan.
fn fault_for(state: &mut State, action: &str) -> Option<SfnFault> {
    if let Some(fault) = state.down {
        return Some(fault);
    }
    let at = state
        .planned
        .iter()
        .position(|(planned, _)| planned.as_deref().is_none_or(|p| p == action))?;
    state.planned.remove(at).map(|(_, fault)| fault)
}

async fn handle(
    state: Arc<Mutex<State>>,
    client: reqwest::Client,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let action = target
        .strip_prefix("AWSStepFunctions.")
        .unwrap_or(&target)
        .to_owned();
    let (fault, upstream) = {
        let mut state = lock(&state);
        (fault_for(&mut state, &action), state.upstream.clone())
    };
    let (status, answer, content_type) = match fault {
        Some(fault) => {
            let (status, body) = fault.answer();
            (
                status,
                Bytes::from(body.to_string()),
                "application/x-amz-json-1.0".to_owned(),
            )
        }
        None => match upstream {
            Some(upstream) => forward(&client, &upstream, &parts, body.clone()).await,
            None => (502, Bytes::from("no upstream yet"), "text/plain".to_owned()),
        },
    };
    lock(&state).calls.push(SfnCall {
        action,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        status,
    });
    Ok(Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(answer))
        .expect("a response"))
}

/// Sends the request on to moto as it came; an unreachable moto answers 502.
async fn forward(
    client: &reqwest::Client,
    upstream: &str,
    parts: &hyper::http::request::Parts,
    body: Bytes,
) -> (u16, Bytes, String) {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = client.post(format!("{upstream}{path}")).body(body);
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            request = request.header(name.as_str(), value.as_bytes());
        }
    }
    match request.send().await {
        Ok(answer) => {
            let status = answer.status().as_u16();
            let content_type = answer
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/x-amz-json-1.0")
                .to_owned();
            let body = answer.bytes().await.unwrap_or_default();
            (status, body, content_type)
        }
        Err(error) => (502, Bytes::from(error.to_string()), "text/plain".to_owned()),
    }
}
