//! atlas-restore-runner: turns restore commands into MongoDB Atlas restore jobs, safely.
//!
//! Layout: a pure core ([`command`], [`outcome`]) with no I/O, and adapters at the edges
//! ([`atlas`]) so the core is tested without them.

pub mod atlas;
pub mod command;
pub mod outcome;
pub mod secret;
