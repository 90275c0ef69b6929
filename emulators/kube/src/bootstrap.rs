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
    let svc_res = inner.resource("", "v1", "services").cloned();
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
    // `service/kubernetes` in `default`, as every cluster has (shows in `kubectl get all`).
    if let Some(r) = &svc_res {
        let svc = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]}});
        let _ = ops::create(inner, r, Some("default"), svc, &ctx);
    }
}
