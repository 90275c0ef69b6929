//! The service-account controller, the part clients see: every active namespace has a
//! `default` ServiceAccount, created when the namespace is written.

use super::{ctx, deleting};
use crate::ops;
use crate::store::{Event, Inner};
use serde_json::json;

const NAMESPACES: &str = "namespaces";

#[derive(Debug)]
pub struct ServiceAccounts;

impl ServiceAccounts {
    pub fn observe(&mut self, inner: &mut Inner, ev: &Event, now: &str) {
        if ev.key.0 != NAMESPACES {
            return;
        }
        let ns = ev.key.2.as_str();
        if inner.get(&ev.key).is_none_or(|n| deleting(n)) {
            return;
        }
        let Some(sa) = inner.resource("", "v1", "serviceaccounts").cloned() else {
            return;
        };
        if inner.get(&ops::key(&sa, Some(ns), "default")).is_some() {
            return;
        }
        let body =
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}});
        if let Err(e) = ops::create(inner, &sa, Some(ns), body, &ctx(now)) {
            tracing::warn!(namespace = %ns, %e, "cannot create the default ServiceAccount");
        }
    }
}
