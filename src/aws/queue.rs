//! SQS: the work queue of the webhook hand-off.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::DisplayErrorContext;

use crate::ports::{DependencyError, WorkQueue};

pub struct SqsWorkQueue {
    client: Client,
    queue_url: String,
}

impl SqsWorkQueue {
    pub fn new(config: &aws_config::SdkConfig, queue_url: String) -> SqsWorkQueue {
        SqsWorkQueue {
            client: Client::new(config),
            queue_url,
        }
    }
}

impl WorkQueue for SqsWorkQueue {
    async fn send(&self, message: String) -> Result<(), DependencyError> {
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(message)
            .send()
            .await
            .map_err(|error| {
                DependencyError::new(
                    "SQS",
                    format!(
                        "sending to the work queue {} failed: {}",
                        self.queue_url,
                        DisplayErrorContext(&error)
                    ),
                )
            })?;
        Ok(())
    }
}
