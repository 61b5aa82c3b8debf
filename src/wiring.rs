//! The deployed function's wiring: every client built once, from the configuration and the AWS
//! SDK's configuration (the function's start-up, and the tests that run the handler in their
//! own process).

use crate::atlas::{AtlasClient, AtlasClientConfig};
use crate::aws::drill_evidence::DynamoDrillEvidence;
use crate::aws::idempotency::DynamoIdempotencyStore;
use crate::aws::queue::SqsWorkQueue;
use crate::aws::secrets_manager::SecretsManagerSecrets;
use crate::aws::sns::SnsNotifier;
use crate::aws::step_functions::StepFunctionsCallbacks;
use crate::config::Config;
use crate::handler::{App, DeployedApp};
use crate::ports::SystemClock;
use crate::runner::{Runner, RunnerSettings};

impl DeployedApp {
    /// Builds every client once, from the configuration and the AWS SDK's configuration: the
    /// function's start-up, and the tests that run the handler in their own process.
    pub fn from_config(
        config: Config,
        sdk: &aws_config::SdkConfig,
    ) -> Result<DeployedApp, reqwest::Error> {
        // The client reads the Atlas credentials itself (the runner's Secrets reads only the
        // webhook signing secret): each caches what it reads, for the same TTL.
        let atlas = AtlasClient::with_source(
            AtlasClientConfig::new(config.atlas_base_url.clone()),
            SecretsManagerSecrets::new(
                sdk,
                config.atlas_secret_id.clone(),
                None,
                config.secret_cache_ttl,
            ),
        )?;
        let secrets = SecretsManagerSecrets::new(
            sdk,
            config.atlas_secret_id.clone(),
            config.webhook_secret_id.clone(),
            config.secret_cache_ttl,
        );
        let notifier = SnsNotifier::new(sdk, config.notify_topic_arn.clone(), config.notify_format);
        let store = DynamoIdempotencyStore::new(sdk, config.idempotency_table.clone());
        let queue = config
            .work_queue_url
            .clone()
            .map(|url| SqsWorkQueue::new(sdk, url));
        let runner = Runner::new(
            atlas,
            secrets,
            notifier,
            store,
            SystemClock,
            queue,
            RunnerSettings::from_config(&config),
        )
        .with_drills(
            config
                .drill_table
                .clone()
                .map(|table| DynamoDrillEvidence::new(sdk, table)),
        )
        .with_callbacks(StepFunctionsCallbacks::new(sdk));
        Ok(App { runner, config })
    }
}
