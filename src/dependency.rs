//! A failed dependency (Secrets Manager, DynamoDB, SNS, SQS), kept apart from the ports so the
//! core's vocabulary ([`crate::atlas_api`]) can carry one without depending on the ports.

/// A dependency (Secrets Manager, DynamoDB, SNS, SQS) failed: not an outcome. The invocation
/// fails so that Lambda or SQS retries it; the webhook answers 503.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{service} failed: {message}")]
pub struct DependencyError {
    pub service: &'static str,
    pub message: String,
}

impl DependencyError {
    pub fn new(service: &'static str, message: impl Into<String>) -> DependencyError {
        DependencyError {
            service,
            message: message.into(),
        }
    }
}
