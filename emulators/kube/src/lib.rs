//! kube-emulator: a Kubernetes API server for tests, demos and kubectl.
//!
//! Held to `shared/spec/kube-api-emulation.md`. The server (store, HTTP, watch, apps
//! controllers) and the pure schema/table/OpenAPI modules are separate so each can be tested
//! on its own.

pub mod openapi;
pub mod schema;
pub mod table;
