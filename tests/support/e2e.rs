//! The end-to-end harness: the real `bootstrap` binary under a Lambda Runtime API served by
//! the test, against moto and the Atlas double ([`Stack`]). The events it is sent are in
//! tests/support/events.rs and tests/support/sample.rs.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::lambda_runtime_api::{FunctionProcess, Invocation, RuntimeApi};
use super::moto::receive_all;
use super::stack::*;

/// The real `bootstrap` under a Runtime API of the tests' own, against a whole [`Stack`].
pub struct E2e {
    pub stack: Stack,
    pub api: RuntimeApi,
    pub function: FunctionProcess,
    /// The function's environment, for [`E2e::restart`].
    env: Vec<(String, String)>,
}

impl E2e {
    pub async fn start(extra_env: &[(&str, &str)]) -> E2e {
        E2e::start_with(extra_env, false).await
    }

    /// With the work queue (`WORK_QUEUE_URL`): the webhook hand-off and the follow-up checks.
    pub async fn start_with_work_queue(extra_env: &[(&str, &str)]) -> E2e {
        E2e::start_with(extra_env, true).await
    }

    async fn start_with(extra_env: &[(&str, &str)], work_queue: bool) -> E2e {
        let stack = Stack::start().await;
        let api = RuntimeApi::start().await;
        let mut env = stack.function_env();
        if work_queue {
            env.push(("WORK_QUEUE_URL".into(), stack.work_queue.clone()));
        }
        for (name, value) in extra_env {
            env.retain(|(n, _)| n != name);
            env.push((name.to_string(), value.to_string()));
        }
        env.retain(|(_, v)| !v.is_empty());
        let function = start_function(&api, &env);
        E2e {
            stack,
            api,
            function,
            env,
        }
    }

    /// The function instance dies (killed, wherever it is) and a new one starts, with
    /// `changed_env` over the environment it had (an empty value removes a variable).
    pub fn restart(&mut self, changed_env: &[(&str, &str)]) {
        self.function.kill();
        self.api.retire_pollers();
        for (name, value) in changed_env {
            self.env.retain(|(n, _)| n != name);
            if !value.is_empty() {
                self.env.push((name.to_string(), value.to_string()));
            }
        }
        self.function = start_function(&self.api, &self.env);
    }

    pub async fn invoke(&self, event: Value) -> Invocation {
        self.api
            .invoke(event, Duration::from_secs(30), Duration::from_secs(60))
            .await
    }

    /// Runs `command` directly and returns its outcome, which must be `SUBMITTED`.
    pub async fn submit(&self, command: Value) -> Value {
        let outcome = self.answer(command).await;
        assert_eq!(
            outcome["outcome"],
            "SUBMITTED",
            "{outcome}\n{}",
            self.function.output()
        );
        outcome
    }

    /// The function's answer; panics (with the function's output) on anything else.
    pub async fn answer(&self, event: Value) -> Value {
        match self.invoke(event).await {
            Invocation::Response(value) => value,
            other => panic!(
                "expected an answer, got {other:?}\n--- function output ---\n{}",
                self.function.output()
            ),
        }
    }

    /// A webhook's status and parsed body.
    pub async fn http(&self, event: Value) -> (u16, Value) {
        let answer = self.answer(event).await;
        let status = answer["statusCode"].as_u64().expect("a statusCode") as u16;
        let body =
            serde_json::from_str(answer["body"].as_str().expect("a body")).expect("a JSON body");
        (status, body)
    }

    pub async fn published(&self, expected: usize) -> Vec<Value> {
        receive_all(&self.stack.sdk, &self.stack.outcomes_queue, expected)
            .await
            .iter()
            .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
            .collect()
    }

    pub fn jobs(&self) -> usize {
        self.stack.atlas.created_jobs()
    }

    pub async fn records(&self) -> usize {
        aws_sdk_dynamodb::Client::new(&self.stack.sdk)
            .scan()
            .table_name(TABLE)
            .send()
            .await
            .unwrap()
            .count() as usize
    }
}

fn start_function(api: &RuntimeApi, env: &[(String, String)]) -> FunctionProcess {
    let env: Vec<(&str, &str)> = env.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    // Cargo names the binary for integration tests and benchmarks only, not examples.
    let Some(bootstrap) = option_env!("CARGO_BIN_EXE_bootstrap") else {
        panic!("only integration tests and benchmarks know the bootstrap binary");
    };
    FunctionProcess::start(Path::new(bootstrap), api, &env)
}
