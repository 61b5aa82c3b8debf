//! `make demo`: a restore command from `events/` validated, turned into the exact Atlas body,
//! and submitted over HTTP (real Digest challenge) to the Atlas double on 127.0.0.1; then a
//! command full of mistakes, to show how every problem is reported at once.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Duration;

use atlas_restore_runner::atlas::{AtlasClient, AtlasClientConfig, AtlasCredentials, CreateAnswer};
use atlas_restore_runner::command::{RestoreCommand, RestoreSpec};
use atlas_restore_runner::secret::Secret;
use chrono::Utc;
use support::atlas_double::{AtlasDouble, Route};
use tokio::time::Instant;

const GROUP: &str = "5e2211c17a3e5a48f5497de3";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let atlas = AtlasDouble::start().await;
    atlas.add_api_key("demo-public-key", "demo-private-key");
    atlas.add_cluster(GROUP, "orders", "6a0000000000000000000001", 0);
    atlas.add_cluster(GROUP, "orders-drill", "6a0000000000000000000002", 0);
    atlas.add_snapshot(
        GROUP,
        "orders",
        "5f1c6b1e2a9b4f3d8c7e6a5b",
        Utc::now() - chrono::Duration::hours(2),
        true,
    );
    println!("Atlas double listening on {}\n", atlas.base_url());

    let client = AtlasClient::new(
        AtlasClientConfig::new(atlas.base_url().parse()?),
        AtlasCredentials::ApiKey {
            public_key: "demo-public-key".into(),
            private_key: Secret::new("demo-private-key"),
        },
    )?;

    println!("== 1. events/direct-legacy-snapshot.json");
    let command = RestoreCommand::parse(
        include_bytes!("../events/direct-legacy-snapshot.json"),
        Utc::now(),
    )
    .map_err(|problems| format!("the sample command should be valid: {problems:?}"))?;
    let RestoreSpec::Legacy(spec) = &command.restore;
    let job = spec.resolve(Utc::now(), None)?;
    println!("valid; fingerprint sha256:{}", command.fingerprint());
    println!(
        "Atlas body: {}",
        serde_json::to_string_pretty(&job.atlas_body())?
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    match client
        .create_legacy_restore_job(&command.source, &job.atlas_body(), deadline)
        .await
    {
        CreateAnswer::Created { http_status, jobs } => {
            println!(
                "Atlas answered HTTP {http_status}: {} job(s) created",
                jobs.len()
            );
            for job in &jobs {
                println!(
                    "  job {} status {}",
                    job.id,
                    job.status_name.as_deref().unwrap_or("?")
                );
            }
        }
        other => return Err(format!("the demo submission did not succeed: {other:?}").into()),
    }
    let requests = atlas.requests_on(Route::CreateRestoreJob);
    println!(
        "requests to Atlas: {} (one Digest challenge, one authenticated POST)\n",
        requests.len()
    );

    println!("== 2. events/direct-misspelled-fields.json");
    match RestoreCommand::parse(
        include_bytes!("../events/direct-misspelled-fields.json"),
        Utc::now(),
    ) {
        Ok(_) => return Err("the mistaken command must be refused".into()),
        Err(problems) => {
            println!("REJECTED, nothing sent to Atlas. Every problem:");
            for problem in problems {
                println!(
                    "  {:<38} {:<24} {}",
                    problem.field,
                    problem.code.to_string(),
                    problem.message
                );
            }
        }
    }
    println!(
        "\nrestore jobs in the Atlas double: {}",
        atlas.created_jobs()
    );
    Ok(())
}
