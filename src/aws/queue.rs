//! SQS: the work queue of the webhook hand-off.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::DisplayErrorContext;

use std::time::Duration;

use crate::deadline;
use crate::ports::{DependencyError, WorkQueue};

const SERVICE: &str = "SQS";

/// SQS's longest per-message delay.
const MAX_DELAY_SECONDS: u64 = 900;

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
    async fn send(&self, message: String, delay: Duration) -> Result<(), DependencyError> {
        let delay_seconds = i32::try_from(delay.as_secs().min(MAX_DELAY_SECONDS)).unwrap_or(0);
        let mut request = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(message);
        if delay_seconds > 0 {
            request = request.delay_seconds(delay_seconds);
        }
        let send = async {
            request.send().await.map(|_| ()).map_err(|error| {
                DependencyError::new(
                    SERVICE,
                    format!(
                        "sending to the work queue {} failed: {}",
                        self.queue_url,
                        DisplayErrorContext(&error)
                    ),
                )
            })
        };
        deadline::bounded(SERVICE, send).await
    }
}
