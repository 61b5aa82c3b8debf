//! The Atlas Admin API as the core speaks it: the jobs, snapshots and clusters Atlas serves
//! ([`model`]), the credentials it accepts, and the answer classes of CONTRACT section 4
//! ([`CreateAnswer`], [`AtlasError`]). Pure data, no I/O: the [`crate::ports::Atlas`] port is
//! written in these words, and the HTTP adapter ([`crate::atlas`]) translates to and from them.

mod credentials;
pub mod model;

use std::time::Duration;

pub use credentials::AtlasCredentials;
use model::{ApiError, RestoreJob};

use crate::dependency::DependencyError;

/// What came of asking Atlas to create a restore job: the answer classes of CONTRACT section 4.
/// The client has already re-sent where that is safe (429, failures before sending).
#[derive(Clone, Debug, PartialEq)]
pub enum CreateAnswer {
    /// 2xx with a readable page: the job(s) Atlas created (several sharing a `batchId` for a
    /// sharded cluster).
    Created {
        http_status: u16,
        jobs: Vec<RestoreJob>,
    },
    /// Atlas refused the request (4xx other than 401, or 429 until the deadline): no job exists.
    Refused { http_status: u16, error: ApiError },
    /// 401 (or a service account's token refused), after the client fetched the credentials
    /// again once and sent once more (CONTRACT section 4): no job exists.
    Unauthorized { http_status: u16, error: ApiError },
    /// The credentials could not be read from their source (Secrets Manager): nothing was
    /// sent. A dependency failure, not an outcome.
    NoCredentials(DependencyError),
    /// 503: reconcile; if no job exists, wait `retry_after` and send again while time allows.
    Unavailable {
        error: ApiError,
        retry_after: Option<Duration>,
    },
    /// The request may have reached Atlas and no usable answer came back (another 5xx, a
    /// timeout or reset after sending, an unreadable 2xx): reconcile, never send again.
    Ambiguous {
        http_status: Option<u16>,
        reason: String,
        error: Option<ApiError>,
    },
    /// The request never reached Atlas (connection, DNS, TLS or token failures until the
    /// deadline): no job exists.
    NotSent { reason: String },
}

/// A read from Atlas that did not succeed. Reads are retried where that is safe.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum AtlasError {
    #[error("Atlas answered HTTP {status}: {}", .error.summary())]
    Api { status: u16, error: ApiError },
    #[error(
        "Atlas refused the credentials (HTTP {status}): check the API key or service account in ATLAS_SECRET_ID, its Project Owner role, and Atlas's API access list ({})",
        .error.summary()
    )]
    Unauthorized { status: u16, error: ApiError },
    #[error("no usable answer from Atlas before the deadline: {0}")]
    NoAnswer(String),
    #[error("Atlas answered HTTP {status} with a body that could not be read: {reason}")]
    Unreadable { status: u16, reason: String },
    #[error("more than {0} results to read; stopped rather than read an incomplete list")]
    TooManyResults(usize),
    /// The credentials could not be read from their source: nothing was sent. A dependency
    /// failure, not Atlas's answer.
    #[error("the Atlas credentials could not be read: {0}")]
    NoCredentials(DependencyError),
}
