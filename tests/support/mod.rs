//! Test support shared by the integration tests. Each test crate uses a different part.
#![allow(dead_code)]

pub mod atlas_double;
pub mod clock;
pub mod drills;
pub mod e2e;
pub mod events;
pub mod fault_proxy;
pub mod lambda_runtime_api;
pub mod moto;
pub mod python_server;
pub mod sample;
pub mod schema;
pub mod sfn_proxy;
pub mod stack;
