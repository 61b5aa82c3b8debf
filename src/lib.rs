//! atlas-restore-runner: turns restore commands into MongoDB Atlas restore jobs, safely.
//!
//! Layout: a pure core ([`atlas_api`], [`command`], [`outcome`], [`policy`], [`reconcile`],
//! [`follow`], [`notify`]'s rendering) with no I/O; [`runner`] orders the work against the traits of
//! [`ports`]; adapters at the edges ([`atlas`], [`aws`]); [`handler`] turns events into
//! commands and outcomes into answers.

pub mod atlas;
pub mod atlas_api;
pub mod aws;
pub mod callback;
pub mod command;
pub mod config;
pub mod deadline;
pub mod dependency;
pub mod drill;
pub mod follow;
pub mod guardrail;
pub mod handler;
pub mod ledger;
pub mod notify;
pub mod outcome;
pub mod policy;
pub mod ports;
pub mod reconcile;
pub mod redacted;
pub mod runner;
pub mod telemetry;
pub mod triggers;
pub mod wiring;
