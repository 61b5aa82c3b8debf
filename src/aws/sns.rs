//! SNS: publishes outcomes to the topic (CONTRACT section 3, "Publishing"). What is published is
//! rendered by [`crate::notify::render`]; this adapter only sends it.

use aws_sdk_sns::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sns::types::MessageAttributeValue;

use crate::deadline;
use crate::notify::NotifyFormat;
use crate::notify::render;
use crate::outcome::Outcome;
use crate::ports::{DependencyError, Notifier};

const SERVICE: &str = "SNS";

/// The outcome topic, through the AWS SDK.
#[derive(Clone, Debug)]
pub struct SnsNotifier {
    client: aws_sdk_sns::Client,
    topic_arn: String,
    format: NotifyFormat,
}

impl SnsNotifier {
    /// A notifier for `topic_arn`; a topic whose ARN ends in `.fifo` gets the FIFO ids.
    pub fn new(
        config: &aws_config::SdkConfig,
        topic_arn: String,
        format: NotifyFormat,
    ) -> SnsNotifier {
        SnsNotifier {
            client: aws_sdk_sns::Client::new(config),
            topic_arn,
            format,
        }
    }

    /// Whether the topic is a FIFO topic (its name ends in `.fifo`).
    pub fn is_fifo(&self) -> bool {
        self.topic_arn.ends_with(".fifo")
    }

    pub fn topic_arn(&self) -> &str {
        &self.topic_arn
    }
}

impl Notifier for SnsNotifier {
    async fn publish(&self, outcome: &Outcome) -> Result<(), DependencyError> {
        let notification = render(outcome, self.format, self.is_fifo());
        let mut request = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(notification.subject)
            .message(notification.message)
            .set_message_group_id(notification.message_group_id)
            .set_message_deduplication_id(notification.deduplication_id);
        for (name, value) in notification.attributes {
            let attribute = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|error| {
                    DependencyError::new(
                        SERVICE,
                        format!(
                            "publishing to topic {} failed: attribute {name} could not be built: {error}",
                            self.topic_arn
                        ),
                    )
                })?;
            request = request.message_attributes(name, attribute);
        }
        let send = async {
            request.send().await.map(|_| ()).map_err(|error| {
                DependencyError::new(SERVICE, describe_failure(&self.topic_arn, &error))
            })
        };
        deadline::bounded(SERVICE, send).await
    }
}

/// `publishing to topic <arn> failed (<code>): <the SDK's cause chain>`. The SDK's errors hold
/// no credentials (requests are signed, never echoed back), so the cause can be shown.
fn describe_failure<E, R>(topic_arn: &str, error: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let code = match error {
        SdkError::ServiceError(_) => error.code().unwrap_or("unknown service error").to_owned(),
        SdkError::TimeoutError(_) => "timeout".to_owned(),
        SdkError::DispatchFailure(_) => "dispatch failure, no response".to_owned(),
        SdkError::ResponseError(_) => "unreadable response".to_owned(),
        SdkError::ConstructionFailure(_) => "request not built".to_owned(),
        _ => "unknown error".to_owned(),
    };
    // For a service error, what SNS said; the whole `SdkError` would add the raw response
    // (headers and body) to every log line. Otherwise the chain of causes.
    let cause = match error.as_service_error() {
        Some(service_error) => {
            let message = service_error.message().unwrap_or("no message");
            match service_error.meta().extra("aws_request_id") {
                Some(request_id) => format!("{message} (request id {request_id})"),
                None => message.to_owned(),
            }
        }
        None => DisplayErrorContext(error).to_string(),
    };
    format!("publishing to topic {topic_arn} failed ({code}): {cause}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sns::config::{BehaviorVersion, Credentials, Region};

    fn config() -> aws_config::SdkConfig {
        aws_config::SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sns::config::SharedCredentialsProvider::new(
                Credentials::new("AKIDEXAMPLE", "not-a-real-secret", None, None, "test"),
            ))
            .build()
    }

    #[test]
    fn fifo_is_told_by_the_topic_name() {
        let standard = SnsNotifier::new(
            &config(),
            "arn:aws:sns:us-east-1:123456789012:outcomes".into(),
            NotifyFormat::Json,
        );
        let fifo = SnsNotifier::new(
            &config(),
            "arn:aws:sns:us-east-1:123456789012:outcomes.fifo".into(),
            NotifyFormat::Json,
        );
        assert!(!standard.is_fifo());
        assert!(fifo.is_fifo());
    }

    #[test]
    fn the_publisher_is_send_and_sync_and_so_is_its_future() {
        fn send_sync<T: Send + Sync>(_: &T) {}
        fn send<T: Send>(_: T) {}
        let notifier = SnsNotifier::new(
            &config(),
            "arn:aws:sns:us-east-1:123456789012:outcomes".into(),
            NotifyFormat::Json,
        );
        send_sync(&notifier);
        let outcome: Outcome = serde_json::from_value(serde_json::json!({
            "outcome": "DRY_RUN", "requestId": null, "trigger": "direct", "groupId": null,
            "clusterName": null, "backupType": null, "restore": null, "atlas": null, "errors": [],
            "requestedBy": null, "approvedBy": null, "reason": null,
            "startedAt": "2026-11-28T17:06:15.120Z", "finishedAt": "2026-11-28T17:06:15.910Z"
        }))
        .unwrap();
        send(notifier.publish(&outcome));
    }
}
