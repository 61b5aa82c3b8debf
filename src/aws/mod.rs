//! AWS adapters, each behind a trait of `crate::ports`.

pub mod http_client;
pub mod idempotency;
pub mod queue;
pub mod secrets_manager;
pub mod sns;
pub mod step_functions;
