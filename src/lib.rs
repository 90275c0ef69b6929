//! gitlab-deployment-operator: reports Kubernetes workload rollouts to GitLab's Deployments API.
//!
//! The library holds everything; `main.rs` only parses the command line and dispatches, so the
//! end-to-end tests in `tests/` drive the same code the binary runs.
#![forbid(unsafe_code)]

pub mod admin;
pub mod api;
pub mod cli;
pub mod controller;
pub mod gate;
pub mod gitlab;
pub mod metrics;
pub mod rollout;
pub mod telemetry;
pub mod webhook;
