//! The Digest client proven against a server nobody here wrote: Python httpbin's
//! `/digest-auth/auth/{user}/{passwd}/MD5`, served on 127.0.0.1 from the project's .venv.
mod support;

use std::time::Duration;

use atlas_restore_runner::atlas::{AtlasClient, AtlasClientConfig, AtlasCredentials, AtlasError};
use atlas_restore_runner::redacted::Secret;
use serde_json::json;
use support::python_server::PythonServer;
use tokio::time::Instant;

fn client(base_url: &str, password: &str) -> AtlasClient {
    let mut config = AtlasClientConfig::new(base_url.parse().unwrap());
    config.backoff_base = Duration::from_millis(10);
    AtlasClient::new(
        config,
        AtlasCredentials::ApiKey {
            public_key: "operator".into(),
            private_key: Secret::new(password),
        },
    )
    .unwrap()
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(20)
}

#[tokio::test]
async fn httpbin_accepts_the_right_password_and_refuses_a_wrong_one() {
    let httpbin = PythonServer::start("httpbin:app", &[]);
    let path = ["digest-auth", "auth", "operator", "pa55-word", "MD5"];

    let good = client(&httpbin.base_url(), "pa55-word");
    let answer = good
        .get_value(&path, deadline())
        .await
        .expect("the right password is accepted");
    assert_eq!(answer, json!({"authenticated": true, "user": "operator"}));

    let bad = client(&httpbin.base_url(), "wrong-password");
    match bad.get_value(&path, deadline()).await {
        Err(AtlasError::Unauthorized { status: 401, .. }) => {}
        other => panic!("a wrong password must be refused with 401, got {other:?}"),
    }
}
