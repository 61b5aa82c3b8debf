//! The Lambda Runtime API harness's own tests: the protocol spoken by hand, then a real
//! `lambda_runtime` function (`examples/hello_lambda.rs`) driven through it.
//!
//! The example must be built first: `cargo build --examples` (same target directory).
mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use support::lambda_runtime_api::{
    FUNCTION_NAME, FunctionProcess, Invocation, MEMORY_MB, RuntimeApi, function_arn,
};

const DEADLINE: Duration = Duration::from_secs(30);
const TIMEOUT: Duration = Duration::from_secs(20);
const START: Duration = Duration::from_secs(20);

/// `<target dir>/debug/examples/hello_lambda`, next to the `bootstrap` this test was built with.
fn hello_binary() -> PathBuf {
    let bootstrap = Path::new(env!("CARGO_BIN_EXE_bootstrap"));
    let profile_dir = bootstrap.parent().expect("bootstrap has a directory");
    let hello = profile_dir.join("examples").join("hello_lambda");
    assert!(
        hello.is_file(),
        "{} is missing: run `cargo build --examples` (with the same CARGO_TARGET_DIR) before \
         these tests",
        hello.display()
    );
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello_lambda.rs");
    let modified = |path: &Path| path.metadata().and_then(|meta| meta.modified()).ok();
    if let (Some(binary), Some(source)) = (modified(&hello), modified(&source)) {
        assert!(
            binary >= source,
            "{} is older than examples/hello_lambda.rs: run `cargo build --examples`",
            hello.display()
        );
    }
    hello
}

fn now_ms() -> u64 {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis();
    u64::try_from(ms).expect("fits")
}

async fn started_hello(api: &RuntimeApi, env: &[(&str, &str)]) -> FunctionProcess {
    let mut function = FunctionProcess::start(&hello_binary(), api, env);
    if api.wait_first_next(START).await.is_none() {
        panic!(
            "hello_lambda never asked for an event (exit: {:?}); output:\n{}",
            function.exited(),
            function.output()
        );
    }
    function
}

/// Polls `condition` until it holds, at most `TIMEOUT`.
async fn wait_until(condition: impl Fn() -> bool) -> bool {
    let give_up = Instant::now() + TIMEOUT;
    while !condition() {
        if Instant::now() >= give_up {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    true
}

fn expect_response(invocation: Invocation) -> Value {
    match invocation {
        Invocation::Response(body) => body,
        other => panic!("expected a response, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The protocol, by hand.

/// A `GET /next` sent in the background, as a runtime would.
fn poll_next(client: &Client, api: &RuntimeApi) -> tokio::task::JoinHandle<reqwest::Response> {
    let request = client.get(format!("{}/invocation/next", api.base_url()));
    tokio::spawn(async move { request.send().await.expect("GET /next") })
}

#[tokio::test]
async fn next_long_polls_and_hands_out_the_event_with_lambda_headers() {
    let api = RuntimeApi::start().await;
    let client = Client::new();
    let poller = poll_next(&client, &api);
    let first = api
        .wait_first_next(TIMEOUT)
        .await
        .expect("the poll arrived");
    assert!(!poller.is_finished(), "/next answered with nothing queued");
    let invocation = api.invoke(
        json!({"k": "v"}),
        Duration::from_secs(7),
        Duration::from_millis(500),
    );
    let before = now_ms();
    // Nobody answers: the invocation times out, but the event was handed out to the poller.
    assert!(matches!(invocation.await, Invocation::TimedOut));
    let after = now_ms();
    let next = poller.await.expect("poller task");
    assert_eq!(next.status(), StatusCode::OK);
    let header = |name: &str| {
        next.headers()
            .get(name)
            .unwrap_or_else(|| panic!("header {name} missing"))
            .to_str()
            .expect("ASCII header")
            .to_owned()
    };
    let request_id = header("Lambda-Runtime-Aws-Request-Id");
    assert_eq!(
        request_id.len(),
        36,
        "a UUID-shaped request id: {request_id}"
    );
    let deadline: u64 = header("Lambda-Runtime-Deadline-Ms")
        .parse()
        .expect("epoch ms");
    assert!(
        (before + 7_000..=after + 7_000).contains(&deadline),
        "deadline {deadline} not 7 s after the hand-out ({before}..{after})"
    );
    assert_eq!(
        header("Lambda-Runtime-Invoked-Function-Arn"),
        function_arn()
    );
    assert!(header("Lambda-Runtime-Trace-Id").starts_with("Root=1-"));
    assert_eq!(header("content-type"), "application/json");
    assert_eq!(next.json::<Value>().await.expect("JSON"), json!({"k": "v"}));
    let deliveries = api.deliveries();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].request_id, request_id);
    assert_eq!(deliveries[0].deadline_ms, deadline);
    assert!(deliveries[0].delivered_at >= first);
}

#[tokio::test]
async fn response_and_error_posts_complete_the_invocation_they_name() {
    let api = RuntimeApi::start().await;
    let client = Client::new();

    // A response.
    let poller = poll_next(&client, &api);
    let invocation = api.invoke(json!(1), DEADLINE, TIMEOUT);
    let answer = async {
        let next = poller.await.expect("poller task");
        let id = next.headers()["lambda-runtime-aws-request-id"]
            .to_str()
            .expect("ASCII")
            .to_owned();
        let posted = client
            .post(format!("{}/invocation/{id}/response", api.base_url()))
            .body(r#"{"answer":42}"#)
            .send()
            .await
            .expect("POST response");
        (id, posted)
    };
    let (invocation, (id, posted)) = tokio::join!(invocation, answer);
    assert_eq!(expect_response(invocation), json!({"answer": 42}));
    assert_eq!(posted.status(), StatusCode::ACCEPTED);
    assert_eq!(
        posted.json::<Value>().await.unwrap(),
        json!({"status": "OK"})
    );

    // Answering twice is an invalid state transition; an unknown id is an invalid request id.
    let again = client
        .post(format!("{}/invocation/{id}/response", api.base_url()))
        .body("{}")
        .send()
        .await
        .expect("POST response again");
    assert_eq!(again.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        again.json::<Value>().await.unwrap()["errorType"],
        "InvalidStateTransition"
    );
    let unknown = client
        .post(format!("{}/invocation/not-an-id/error", api.base_url()))
        .body("{}")
        .send()
        .await
        .expect("POST unknown");
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        unknown.json::<Value>().await.unwrap()["errorType"],
        "InvalidRequestID"
    );

    // An error whose type is only in the header, then a non-JSON response body.
    let poller = poll_next(&client, &api);
    let invocation = api.invoke(json!(2), DEADLINE, TIMEOUT);
    let answer = async {
        let next = poller.await.expect("poller task");
        let id = next.headers()["lambda-runtime-aws-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        client
            .post(format!("{}/invocation/{id}/error", api.base_url()))
            .header("Lambda-Runtime-Function-Error-Type", "Runtime.Custom")
            .body(r#"{"errorMessage":"it broke","stackTrace":["a","b"]}"#)
            .send()
            .await
            .expect("POST error")
    };
    let (invocation, posted) = tokio::join!(invocation, answer);
    assert_eq!(posted.status(), StatusCode::ACCEPTED);
    match invocation {
        Invocation::Error {
            error_type,
            error_message,
            body,
        } => {
            assert_eq!(error_type, "Runtime.Custom");
            assert_eq!(error_message, "it broke");
            assert_eq!(body["stackTrace"], json!(["a", "b"]));
        }
        other => panic!("expected an error, got {other:?}"),
    }
    let poller = poll_next(&client, &api);
    let invocation = api.invoke(json!(3), DEADLINE, TIMEOUT);
    let answer = async {
        let next = poller.await.expect("poller task");
        let id = next.headers()["lambda-runtime-aws-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        client
            .post(format!("{}/invocation/{id}/response", api.base_url()))
            .body("plain text")
            .send()
            .await
            .expect("POST response")
    };
    let (invocation, _) = tokio::join!(invocation, answer);
    assert_eq!(expect_response(invocation), json!("plain text"));

    let statuses: Vec<(String, Option<u16>)> = api
        .requests()
        .iter()
        .map(|request| (request.method.clone(), request.status))
        .collect();
    assert_eq!(
        statuses
            .iter()
            .filter(|(_, status)| status.is_none())
            .count(),
        0,
        "every request was answered: {statuses:?}"
    );
}

#[tokio::test]
async fn init_error_unknown_paths_and_wrong_methods() {
    let api = RuntimeApi::start().await;
    let client = Client::new();
    assert_eq!(api.init_error(), None);
    let posted = client
        .post(format!("{}/init/error", api.base_url()))
        .header("Lambda-Runtime-Function-Error-Type", "Runtime.InitError")
        .body(r#"{"errorType":"Boom","errorMessage":"cannot start"}"#)
        .send()
        .await
        .expect("POST init error");
    assert_eq!(posted.status(), StatusCode::ACCEPTED);
    assert_eq!(
        api.init_error(),
        Some(json!({"errorType": "Boom", "errorMessage": "cannot start"}))
    );
    let recorded = api.requests();
    assert_eq!(recorded[0].path, "/2018-06-01/runtime/init/error");
    assert_eq!(
        recorded[0].header("Lambda-Runtime-Function-Error-Type"),
        Some("Runtime.InitError")
    );

    let unknown = client
        .get(format!("{}/invocation/next/more", api.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let outside = client
        .get(format!(
            "http://{}/2019-01-01/runtime/invocation/next",
            api.address()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(outside.status(), StatusCode::NOT_FOUND);
    let wrong = client
        .post(format!("{}/invocation/next", api.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(api.first_next_at(), None, "a POST to /next is not a poll");
}

#[tokio::test]
async fn an_abandoned_poll_does_not_swallow_the_next_event() {
    let api = RuntimeApi::start().await;
    let client = Client::new();
    {
        // A raw connection, so that closing it is certain (a pooled client might keep it).
        use tokio::io::AsyncWriteExt;
        let mut stream = tokio::net::TcpStream::connect(api.address())
            .await
            .expect("connect");
        stream
            .write_all(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .expect("write");
        api.wait_first_next(TIMEOUT)
            .await
            .expect("the poll arrived");
        assert!(wait_until(|| api.waiting_polls() == 1).await);
    }
    // hyper notices the closed connection and drops the waiting /next before any event exists.
    assert!(
        wait_until(|| api.waiting_polls() == 0).await,
        "the abandoned /next is still waiting"
    );
    let poller = poll_next(&client, &api);
    assert!(wait_until(|| api.waiting_polls() == 1).await);
    let invocation = api.invoke(json!("fresh"), DEADLINE, Duration::from_secs(2));
    let (invocation, next) = tokio::join!(invocation, tokio::time::timeout(TIMEOUT, poller));
    assert!(matches!(invocation, Invocation::TimedOut));
    let next = next
        .expect("the live poll got an event")
        .expect("poller task");
    assert_eq!(next.json::<Value>().await.unwrap(), json!("fresh"));
    assert_eq!(api.deliveries().len(), 1);
}

#[tokio::test]
async fn invoke_times_out_when_no_function_is_attached_and_the_event_is_dropped() {
    let api = RuntimeApi::start().await;
    let started = Instant::now();
    let invocation = api
        .invoke(json!({"stale": true}), DEADLINE, Duration::from_millis(300))
        .await;
    let waited = started.elapsed();
    assert!(matches!(invocation, Invocation::TimedOut), "{invocation:?}");
    assert!(
        waited >= Duration::from_millis(300),
        "gave up early: {waited:?}"
    );
    assert!(waited < Duration::from_secs(5), "gave up late: {waited:?}");
    assert_eq!(api.queued(), 0, "the timed-out event is no longer queued");

    // A function attached later never sees the stale event.
    let _function = started_hello(&api, &[]).await;
    let body = expect_response(api.invoke(json!({"fresh": true}), DEADLINE, TIMEOUT).await);
    assert_eq!(body, json!({"hello": {"fresh": true}}));
    let events: Vec<Value> = api.deliveries().into_iter().map(|d| d.event).collect();
    assert_eq!(events, vec![json!({"fresh": true})]);
}

// ---------------------------------------------------------------------------------------------
// A real `lambda_runtime` function.

#[tokio::test]
async fn a_real_function_answers_an_invocation() {
    let api = RuntimeApi::start().await;
    assert_eq!(api.first_next_at(), None);
    let started = Instant::now();
    let mut function = started_hello(&api, &[]).await;
    assert!(api.first_next_at().expect("polled") >= started);

    let invocation = api
        .invoke(json!({"name": "world"}), DEADLINE, TIMEOUT)
        .await;
    assert_eq!(
        expect_response(invocation),
        json!({"hello": {"name": "world"}})
    );
    assert_eq!(function.exited(), None, "the function keeps running");
    let paths: Vec<String> = api.requests().into_iter().map(|r| r.path).collect();
    let id = &api.deliveries()[0].request_id;
    assert_eq!(
        paths[..2],
        [
            "/2018-06-01/runtime/invocation/next".to_owned(),
            format!("/2018-06-01/runtime/invocation/{id}/response"),
        ]
    );
}

#[tokio::test]
async fn one_process_serves_sequential_invocations() {
    let api = RuntimeApi::start().await;
    let mut function = started_hello(&api, &[]).await;
    for n in 1..=3 {
        let body = expect_response(api.invoke(json!({"n": n}), DEADLINE, TIMEOUT).await);
        assert_eq!(body, json!({"hello": {"n": n}}));
    }
    let deliveries = api.deliveries();
    assert_eq!(deliveries.len(), 3);
    assert_ne!(deliveries[0].request_id, deliveries[1].request_id);
    assert_ne!(deliveries[1].request_id, deliveries[2].request_id);
    assert_eq!(function.exited(), None);
}

#[tokio::test]
async fn the_function_sees_the_deadline_and_headers_it_was_given() {
    let api = RuntimeApi::start().await;
    let _function = started_hello(&api, &[]).await;
    let before = now_ms();
    let body = expect_response(
        api.invoke(json!({"context": true}), Duration::from_secs(9), TIMEOUT)
            .await,
    );
    let after = now_ms();
    let delivery = &api.deliveries()[0];
    let context = &body["context"];
    assert_eq!(context["deadline_ms"], json!(delivery.deadline_ms));
    assert!(
        (before + 9_000..=after + 9_000).contains(&delivery.deadline_ms),
        "deadline {} not 9 s after the hand-out ({before}..{after})",
        delivery.deadline_ms
    );
    assert_eq!(context["request_id"], json!(delivery.request_id));
    assert_eq!(context["invoked_function_arn"], json!(function_arn()));
    assert_eq!(context["xray_trace_id"], json!(delivery.trace_id));
    assert_eq!(context["function_name"], FUNCTION_NAME);
    assert_eq!(context["memory"], json!(MEMORY_MB.parse::<i32>().unwrap()));
    assert_eq!(context["version"], "$LATEST");
    assert_eq!(
        context["log_group"],
        json!(format!("/aws/lambda/{FUNCTION_NAME}"))
    );
    assert!(
        context["log_stream"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
}

#[tokio::test]
async fn env_given_to_start_wins_over_lambdas() {
    let api = RuntimeApi::start().await;
    let _function = started_hello(
        &api,
        &[
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1769"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "7"),
        ],
    )
    .await;
    let body = expect_response(
        api.invoke(json!({"context": true}), DEADLINE, TIMEOUT)
            .await,
    );
    assert_eq!(body["context"]["memory"], 1769);
    assert_eq!(body["context"]["version"], "7");
    assert_eq!(body["context"]["function_name"], FUNCTION_NAME);
}

#[tokio::test]
async fn a_handler_error_is_an_error_answer_and_the_function_carries_on() {
    let api = RuntimeApi::start().await;
    let mut function = started_hello(&api, &[]).await;
    match api.invoke(json!({"fail": true}), DEADLINE, TIMEOUT).await {
        Invocation::Error {
            error_type,
            error_message,
            body,
        } => {
            assert!(!error_type.is_empty());
            assert_eq!(error_message, "hello_lambda was asked to fail");
            assert_eq!(body["errorType"], json!(error_type));
            assert_eq!(body["errorMessage"], json!(error_message));
        }
        other => panic!("expected an error, got {other:?}"),
    }
    let posted = api
        .requests()
        .into_iter()
        .find(|request| request.path.ends_with("/error"))
        .expect("an /error post");
    assert_eq!(
        posted.header("Lambda-Runtime-Function-Error-Type"),
        Some("unhandled")
    );
    assert_eq!(posted.status, Some(202));

    // A panic is caught by the runtime and reported the same way.
    match api.invoke(json!({"panic": true}), DEADLINE, TIMEOUT).await {
        Invocation::Error { error_message, .. } => assert!(
            error_message.contains("hello_lambda was asked to panic"),
            "{error_message}"
        ),
        other => panic!("expected an error, got {other:?}"),
    }

    let body = expect_response(api.invoke(json!("after"), DEADLINE, TIMEOUT).await);
    assert_eq!(body, json!({"hello": "after"}));
    assert_eq!(function.exited(), None);
}

#[tokio::test]
async fn a_late_answer_to_a_timed_out_invocation_is_ignored() {
    let api = RuntimeApi::start().await;
    let _function = started_hello(&api, &[]).await;
    let slow = api
        .invoke(
            json!({"sleep_ms": 1500}),
            DEADLINE,
            Duration::from_millis(200),
        )
        .await;
    assert!(matches!(slow, Invocation::TimedOut), "{slow:?}");
    // The next invocation waits behind the slow one and gets its own answer, not the late one.
    let body = expect_response(api.invoke(json!({"n": 2}), DEADLINE, TIMEOUT).await);
    assert_eq!(body, json!({"hello": {"n": 2}}));
    let responses: Vec<Option<u16>> = api
        .requests()
        .into_iter()
        .filter(|request| request.path.ends_with("/response"))
        .map(|request| request.status)
        .collect();
    assert_eq!(responses, vec![Some(202), Some(202)]);
}

#[tokio::test]
async fn an_error_returned_by_main_is_not_posted_but_printed() {
    let api = RuntimeApi::start().await;
    let mut function = FunctionProcess::start(&hello_binary(), &api, &[("HELLO_FAIL_INIT", "1")]);
    let status = function.wait_exit(START).await.expect("the function exits");
    assert!(!status.success(), "{status:?}");
    assert!(
        function.output().contains("HELLO_FAIL_INIT is set"),
        "output: {}",
        function.output()
    );
    // lambda_runtime 1.5 does not report errors from before `run` to /init/error.
    assert_eq!(api.init_error(), None);
    assert_eq!(api.first_next_at(), None);
    assert!(api.requests().is_empty());
}

#[tokio::test]
async fn a_snapstart_hook_failure_is_posted_to_init_error() {
    let api = RuntimeApi::start().await;
    let mut function = FunctionProcess::start(
        &hello_binary(),
        &api,
        &[
            ("HELLO_FAIL_SNAPSHOT", "1"),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "snap-start"),
        ],
    );
    let status = function.wait_exit(START).await.expect("the function exits");
    assert!(!status.success(), "{status:?}");
    let init_error = api.init_error().unwrap_or_else(|| {
        panic!(
            "nothing posted to /init/error; output:\n{}",
            function.output()
        )
    });
    assert_eq!(
        init_error["errorMessage"],
        "hello_lambda: HELLO_FAIL_SNAPSHOT is set, snapshot refused"
    );
    assert!(
        init_error["errorType"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    let posted = api
        .requests()
        .into_iter()
        .find(|request| request.path.ends_with("/init/error"))
        .expect("recorded");
    assert_eq!(
        posted.header("Lambda-Runtime-Function-Error-Type"),
        Some("Runtime.InitError")
    );
    assert_eq!(api.first_next_at(), None);
}

#[tokio::test]
async fn peak_rss_is_read_while_the_function_runs() {
    let api = RuntimeApi::start().await;
    let mut function = started_hello(&api, &[]).await;
    let rss = function.peak_rss_kib().expect("VmHWM of a live process");
    assert!(rss > 0);
    function.kill();
    assert_eq!(function.peak_rss_kib(), None, "no VmHWM once reaped");
}

#[tokio::test]
async fn dropping_the_process_kills_it() {
    let api = RuntimeApi::start().await;
    let function = started_hello(&api, &[]).await;
    let proc_dir = PathBuf::from(format!("/proc/{}", function.pid()));
    assert!(proc_dir.exists());
    drop(function);
    assert!(!proc_dir.exists(), "{} still exists", proc_dir.display());
}

#[tokio::test]
async fn a_function_whose_runtime_api_goes_away_exits_by_itself() {
    let api = RuntimeApi::start().await;
    let mut function = started_hello(&api, &[]).await;
    drop(api);
    let status = function
        .wait_exit(Duration::from_secs(10))
        .await
        .unwrap_or_else(|| panic!("still running; output:\n{}", function.output()));
    assert!(!status.success(), "{status:?}");
}
