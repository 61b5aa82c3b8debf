//! AWS adapters, each behind a trait of `crate::ports`.

pub mod sns;
