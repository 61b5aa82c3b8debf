//! The Atlas Admin API adapter: authentication (Digest with API keys, or a service account's
//! OAuth token), the legacy and Cloud Backup restore endpoints, and Atlas's answers sorted into
//! the classes the runner acts on (CONTRACT section 4). The words it answers in (the model,
//! the answer classes, the credentials) are the core's, in [`crate::atlas_api`].

mod client;
mod port;

/// The vocabulary the client's methods answer in, defined in the core.
pub use crate::atlas_api::{AtlasCredentials, AtlasError, CreateAnswer};
pub use client::{AtlasClient, AtlasClientConfig};
