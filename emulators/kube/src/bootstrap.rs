//! Objects every cluster has: the `default`, `kube-system`, `kube-public` and `kube-node-lease`
//! namespaces (their `default` ServiceAccounts come from the controllers, as on a cluster) and
//! `service/kubernetes`.

use crate::controllers::Controllers;
use crate::ops::{self, WriteCtx};
use crate::resources::ResourceInfo;
use crate::store::Inner;
use serde_json::{Value, json};

pub fn seed(inner: &mut Inner, controllers: &mut Controllers) {
    let ctx = WriteCtx {
        now: ops::now_string(),
        manager: "kube-apiserver".into(),
        ..Default::default()
    };
    let ns_res = inner.resource("", "v1", "namespaces").cloned();
    let svc_res = inner.resource("", "v1", "services").cloned();
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        if let Some(r) = &ns_res {
            let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            create(inner, r, None, body, &ctx);
            controllers.observe(inner);
        }
    }
    // `service/kubernetes` in `default`, as every cluster has (shows in `kubectl get all`).
    if let Some(r) = &svc_res {
        let svc = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]}});
        create(inner, r, Some("default"), svc, &ctx);
    }
}

/// A seed object that cannot be created is a bug in the seed; the emulator still serves.
fn create(inner: &mut Inner, res: &ResourceInfo, ns: Option<&str>, body: Value, ctx: &WriteCtx) {
    if let Err(e) = ops::create(inner, res, ns, body, ctx) {
        tracing::error!(kind = %res.kind, ?ns, %e, "cannot seed an object");
    }
}
