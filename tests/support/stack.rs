//! A whole local stack for end-to-end tests and the demo: moto with the secrets, topic,
//! queues and table the function needs, and the Atlas double seeded with a project.

use atlas_restore_runner::config::Config;
use atlas_restore_runner::handler::DeployedApp;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use chrono::Utc;
use serde_json::json;

use super::atlas_double::AtlasDouble;
use super::moto::{MotoLease, moto, sqs_subscribed_queue};

pub const GROUP: &str = "5e2211c17a3e5a48f5497de3";
pub const SNAPSHOT: &str = "5f1c6b1e2a9b4f3d8c7e6a5b";
pub const NEWER_SNAPSHOT: &str = "5f1c6b1e2a9b4f3d8c7e6a5c";
pub const PROTECTED_ID: &str = "6a0000000000000000000009";
pub const PUBLIC_KEY: &str = "e2e-public-key";
pub const PRIVATE_KEY: &str = "e2e-private-key-SECRET-77aa";
pub const SIGNING_SECRET: &str = "e2e-signing-secret-SECRET-4b1d";
pub const ATLAS_SECRET: &str = "atlas-restore-runner/atlas";
pub const WEBHOOK_SECRET: &str = "atlas-restore-runner/webhook";
pub const TABLE: &str = "atlas-restore-runner-idempotency";
pub const APPROVER: &str = "U0G9QF9C6";
pub const REQUESTER: &str = "U024BE7LH";

pub struct Stack {
    pub atlas: AtlasDouble,
    pub moto: MotoLease,
    pub sdk: SdkConfig,
    pub topic_arn: String,
    /// Subscribed to the topic with raw delivery: what was published arrives here.
    pub outcomes_queue: String,
    /// The webhook hand-off queue.
    pub work_queue: String,
}

impl Stack {
    pub async fn start() -> Stack {
        let atlas = AtlasDouble::start().await;
        atlas.add_api_key(PUBLIC_KEY, PRIVATE_KEY);
        atlas.add_cluster(GROUP, "orders", "6a0000000000000000000001", 0);
        atlas.add_cluster(GROUP, "orders-drill", "6a0000000000000000000002", 0);
        atlas.add_cluster(GROUP, "orders-live", PROTECTED_ID, 0);
        atlas.add_snapshot(
            GROUP,
            "orders",
            SNAPSHOT,
            Utc::now() - chrono::Duration::hours(6),
            true,
        );
        atlas.add_snapshot(
            GROUP,
            "orders",
            NEWER_SNAPSHOT,
            Utc::now() - chrono::Duration::hours(1),
            true,
        );

        atlas.add_cloud_snapshot(
            GROUP,
            "orders",
            SNAPSHOT,
            Utc::now() - chrono::Duration::hours(6),
            "completed",
        );
        atlas.add_cloud_snapshot(
            GROUP,
            "orders",
            NEWER_SNAPSHOT,
            Utc::now() - chrono::Duration::hours(1),
            "completed",
        );

        let moto = moto();
        let sdk = moto.sdk_config().await;
        let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
        secrets
            .create_secret()
            .name(ATLAS_SECRET)
            .secret_string(json!({"publicKey": PUBLIC_KEY, "privateKey": PRIVATE_KEY}).to_string())
            .send()
            .await
            .expect("create the Atlas secret");
        secrets
            .create_secret()
            .name(WEBHOOK_SECRET)
            .secret_string(SIGNING_SECRET)
            .send()
            .await
            .expect("create the webhook secret");
        aws_sdk_dynamodb::Client::new(&sdk)
            .create_table()
            .table_name(TABLE)
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("id")
                    .key_type(KeyType::Hash)
                    .build()
                    .expect("key schema"),
            )
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("id")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .expect("attribute"),
            )
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .expect("create the table");
        let topic_arn = aws_sdk_sns::Client::new(&sdk)
            .create_topic()
            .name("restore-outcomes")
            .send()
            .await
            .expect("create the topic")
            .topic_arn
            .expect("topic arn");
        let outcomes_queue = sqs_subscribed_queue(&sdk, &topic_arn, false).await;
        let work_queue = aws_sdk_sqs::Client::new(&sdk)
            .create_queue()
            .queue_name("restore-work")
            .send()
            .await
            .expect("create the work queue")
            .queue_url
            .expect("queue url");
        Stack {
            atlas,
            moto,
            sdk,
            topic_arn,
            outcomes_queue,
            work_queue,
        }
    }

    /// The handler in this process with the real adapters, configured as the function would be
    /// by [`Stack::function_env`] with `overrides` (a name given an empty value is unset).
    pub fn app(&self, overrides: &[(&str, &str)]) -> DeployedApp {
        let mut env = self.function_env();
        for (name, value) in overrides {
            env.retain(|(n, _)| n != name);
            env.push((name.to_string(), value.to_string()));
        }
        let config = Config::from_vars(&env.into_iter().collect()).expect("the configuration");
        DeployedApp::from_config(config, &self.sdk).expect("the clients")
    }

    /// The function's environment (CONTRACT section 5) pointing at this stack.
    pub fn function_env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.moto.endpoint()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
            ("AWS_SESSION_TOKEN", "testing".to_owned()),
            ("ATLAS_BASE_URL", self.atlas.base_url()),
            ("ATLAS_SECRET_ID", ATLAS_SECRET.to_owned()),
            ("WEBHOOK_SECRET_ID", WEBHOOK_SECRET.to_owned()),
            ("NOTIFY_TOPIC_ARN", self.topic_arn.clone()),
            ("IDEMPOTENCY_TABLE", TABLE.to_owned()),
            ("APPROVERS", format!("{APPROVER},U0OTHERAPPROVER")),
            ("PROTECTED_CLUSTERS", "orders-live".to_owned()),
            ("AWS_LAMBDA_LOG_LEVEL", "debug".to_owned()),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
    }
}
