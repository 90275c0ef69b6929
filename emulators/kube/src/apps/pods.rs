//! The ReplicaSet controller and the kubelet, in short: pods owned by a ReplicaSet, created,
//! removed and given a status (Ready, starting, or failing) to match the simulated counts.

use super::uid_of;
use super::write::{ctx, write_status};
use crate::ops;
use crate::store::{Inner, Key};
use serde_json::{Value, json};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PodTrouble {
    CrashLoop,
    ImagePull,
}

/// The ReplicaSet controller and kubelet, in short: keep `total` pods owned by the ReplicaSet
/// at `rs_key`, the first `ready` of them Ready, the rest starting (or failing as `trouble`).
pub fn sync_pods(
    inner: &mut Inner,
    rs_key: &Key,
    total: i64,
    ready: i64,
    trouble: Option<PodTrouble>,
) -> bool {
    let (Some(rs), Some(pod_res)) = (
        inner.get(rs_key).cloned(),
        inner.resource("", "v1", "pods").cloned(),
    ) else {
        return false;
    };
    let ns = rs_key.1.clone();
    let rs_uid = uid_of(&rs).to_string();
    let mut pods: Vec<(Key, Arc<Value>)> = inner
        .dependents(&rs_uid)
        .filter(|(k, p)| {
            k.0 == pod_res.storage
                && k.1 == ns
                && p.pointer("/metadata/deletionTimestamp").is_none()
        })
        .map(|(k, p)| (k.clone(), p.clone()))
        .collect();
    pods.sort_by(|a, b| {
        fn ts(p: &Value) -> &str {
            p.pointer("/metadata/creationTimestamp")
                .and_then(Value::as_str)
                .unwrap_or("")
        }
        ts(&a.1).cmp(ts(&b.1)).then(a.0.cmp(&b.0))
    });
    let mut wrote = false;
    let total = usize::try_from(total.max(0)).unwrap_or(0);
    while pods.len() > total {
        if let Some((k, p)) = pods.pop() {
            wrote |= inner.remove(&k, (*p).clone()).is_some();
        }
    }
    let tpl = rs.pointer("/spec/template").cloned().unwrap_or(json!({}));
    let rs_name = rs_key.2.clone();
    while pods.len() < total {
        let mut meta = tpl.get("metadata").cloned().unwrap_or(json!({}));
        meta["generateName"] = json!(format!("{rs_name}-"));
        meta["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs_name, "uid": rs_uid, "controller": true, "blockOwnerDeletion": true}]);
        let mut spec = tpl.get("spec").cloned().unwrap_or(json!({}));
        spec["nodeName"] = json!("emulator-node");
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec});
        match ops::create(inner, &pod_res, Some(&ns), pod, &ctx()) {
            Ok(w) => {
                let name = w
                    .obj
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                pods.push((ops::key(&pod_res, Some(&ns), &name), w.obj));
                wrote = true;
            }
            Err(e) => {
                tracing::warn!(replicaset = %rs_name, %e, "cannot create a pod");
                break;
            }
        }
    }
    let ready = usize::try_from(ready.max(0)).unwrap_or(0);
    for (i, (k, p)) in pods.iter().enumerate() {
        let state = if i < ready { None } else { Some(trouble) };
        let status = pod_status(p, state);
        wrote |= write_status(inner, &pod_res, k, status);
    }
    wrote
}

/// A stable pod IP from the pod's name.
fn pod_ip(pod: &Value) -> String {
    let name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let h = name
        .bytes()
        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    format!("10.244.{}.{}", (h >> 8) % 250, h % 250 + 2)
}

/// A pod's status: Ready (`None`), starting (`Some(None)`), or failing.
fn pod_status(pod: &Value, state: Option<Option<PodTrouble>>) -> Value {
    let old = pod.get("status").cloned().unwrap_or(json!({}));
    let now = ops::now_string();
    let started = old.get("startTime").cloned().unwrap_or(json!(now));
    let ready = state.is_none();
    let cond = |t: &str, ok: bool| {
        let prev = old
            .get("conditions")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().find(|c| c.get("type") == Some(&json!(t))).cloned());
        let status = if ok { "True" } else { "False" };
        let time = prev
            .filter(|c| c.get("status") == Some(&json!(status)))
            .and_then(|c| c.get("lastTransitionTime").cloned())
            .unwrap_or(json!(now));
        json!({"type": t, "status": status, "lastProbeTime": null, "lastTransitionTime": time})
    };
    let containers: Vec<Value> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let old_statuses: Vec<Value> = old
        .get("containerStatuses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let statuses: Vec<Value> = containers
        .iter()
        .map(|c| {
            let name = c.get("name").cloned().unwrap_or(json!(""));
            let prev = old_statuses.iter().find(|s| s.get("name") == Some(&name)).cloned().unwrap_or(json!({}));
            let restarts = prev.get("restartCount").and_then(Value::as_i64).unwrap_or(0);
            let mut s = json!({"name": name, "image": c.get("image").cloned().unwrap_or(json!("")), "imageID": "", "ready": ready, "started": ready, "restartCount": restarts});
            match state {
                None => {
                    let since = prev.pointer("/state/running/startedAt").cloned().unwrap_or(json!(now));
                    s["state"] = json!({"running": {"startedAt": since}});
                    s["containerID"] = json!(format!("containerd://{}", pod.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("")));
                }
                Some(None) => s["state"] = json!({"waiting": {"reason": "ContainerCreating"}}),
                Some(Some(PodTrouble::CrashLoop)) => {
                    // Real back-off stretches to minutes; stop counting after a few restarts so
                    // a stuck rollout does not write forever.
                    s["restartCount"] = json!((restarts + 1).min(5));
                    s["state"] = json!({"waiting": {"reason": "CrashLoopBackOff", "message": format!("back-off 10s restarting failed container={} pod={}", name.as_str().unwrap_or(""), pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or(""))}});
                    s["lastState"] = json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": now, "finishedAt": now}});
                }
                Some(Some(PodTrouble::ImagePull)) => {
                    s["restartCount"] = json!(0);
                    s["state"] = json!({"waiting": {"reason": "ImagePullBackOff", "message": format!("Back-off pulling image {}", c.get("image").and_then(Value::as_str).unwrap_or(""))}});
                }
            }
            s
        })
        .collect();
    let running = matches!(state, None | Some(Some(PodTrouble::CrashLoop)));
    json!({
        "phase": if running { "Running" } else { "Pending" },
        "conditions": [cond("PodReadyToStartContainers", running), cond("Initialized", true), cond("Ready", ready), cond("ContainersReady", ready), cond("PodScheduled", true)],
        "hostIP": "10.0.0.1",
        "hostIPs": [{"ip": "10.0.0.1"}],
        "podIP": pod_ip(pod),
        "podIPs": [{"ip": pod_ip(pod)}],
        "startTime": started,
        "qosClass": "BestEffort",
        "containerStatuses": statuses,
    })
}
