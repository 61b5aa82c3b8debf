//! The Atlas Admin API adapter: authentication (Digest with API keys, or a service account's
//! OAuth token), the legacy restore endpoints, and Atlas's answers sorted into the classes
//! the runner acts on (CONTRACT section 4).

mod client;
mod credentials;
pub mod model;

pub use client::{AtlasClient, AtlasClientConfig, AtlasError, CreateAnswer};
pub use credentials::AtlasCredentials;
