//! AWS adapters, each behind a trait of `crate::ports`.

pub mod drill_evidence;
pub mod http_client;
pub mod idempotency;
pub mod queue;
pub mod secrets_manager;
pub mod sns;
pub mod step_functions;

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::dependency::DependencyError;

/// A failed DynamoDB call on `table` (named by the variable `variable`), with a hint for the
/// two errors an operator fixes in the configuration.
pub(crate) fn table_error<E, R>(
    table: &str,
    variable: &str,
    doing: &str,
    error: &SdkError<E, R>,
) -> DependencyError
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    let hint = match error.code() {
        Some("ResourceNotFoundException") => format!(": no such table; check {variable}"),
        Some("AccessDeniedException") => ": the function's role may not use the table".to_owned(),
        _ => String::new(),
    };
    DependencyError::new(
        "DynamoDB",
        format!(
            "{doing} in table {table} failed{hint}: {}",
            DisplayErrorContext(error)
        ),
    )
}
