//! atlas-restore-runner: turns restore commands into MongoDB Atlas restore jobs, safely.
//!
//! Layout: a pure core ([`command`], [`outcome`]) with no I/O, and adapters at the edges
//! ([`atlas`]) so the core is tested without them.

pub mod atlas;
pub mod aws;
pub mod command;
pub mod config;
pub mod handler;
pub mod notify;
pub mod outcome;
pub mod policy;
pub mod ports;
pub mod reconcile;
pub mod runner;
pub mod secret;
pub mod triggers;
