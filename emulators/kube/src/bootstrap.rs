//! Objects every cluster has: the `default`, `kube-system`, `kube-public` and `kube-node-lease`
//! namespaces with their `default` ServiceAccounts.

use crate::ops::{self, WriteCtx};
use crate::store::Inner;
use serde_json::json;

pub fn seed(inner: &mut Inner) {
    let ctx = WriteCtx {
        now: ops::now_string(),
        manager: "kube-apiserver".into(),
        ..Default::default()
    };
    let ns_res = inner.resource("", "v1", "namespaces").cloned();
    let sa_res = inner.resource("", "v1", "serviceaccounts").cloned();
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        if let Some(r) = &ns_res {
            let _ = ops::create(
                inner,
                r,
                None,
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
                &ctx,
            );
        }
        if let Some(r) = &sa_res {
            let _ = ops::create(
                inner,
                r,
                Some(ns),
                json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}),
                &ctx,
            );
        }
    }
}
