//! kube-emulator: a Kubernetes API server for tests, demos and kubectl.
//!
//! Held to `shared/spec/kube-api-emulation.md`. The server (store, HTTP, watch, apps
//! controllers) and the pure schema/table/OpenAPI modules are separate so each can be tested
//! on its own.

pub mod openapi;
pub mod schema;
pub mod table;

mod admin;
mod admit;
pub mod apps;
mod b64;
mod bootstrap;
mod controllers;
mod crdval;
mod discovery;
mod emulator;
pub mod error;
pub mod fields;
pub mod hooks;
mod openapi_routes;
pub mod ops;
pub mod patch;
mod persist;
mod print;
mod protobuf;
pub mod resources;
pub mod selectors;
pub mod server;
pub mod state;
pub mod store;
pub mod tls;
mod views;
mod watch;

pub use emulator::{DEFAULT_TOKEN, KubeEmulator, KubeEmulatorOptions, kubeconfig_yaml, spawn_all};
pub use hooks::{Hooks, RequestRecord};
pub use server::{router, serve};
pub use state::{AppState, Settings};
