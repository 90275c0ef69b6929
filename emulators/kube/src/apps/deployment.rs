//! The Deployment controller: a ReplicaSet per pod template (`<name>-<hash>`, revision
//! annotations), pods moved from the old ReplicaSets to the new one a step at a time, and the
//! `Progressing`/`Available` conditions, progress deadline included.

use super::pods::{PodTrouble, sync_pods};
use super::write::{int, percent_or_int, set_condition, strip_zeros, write_main, write_status};
use super::{Outcome, Sim, annotation, ctx, outcome, template_hash, uid_of};
use crate::ops;
use crate::resources::ResourceInfo;
use crate::store::{Inner, Key};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::sync::Arc;

const REVISION: &str = "deployment.kubernetes.io/revision";
const DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";

/// What a step reads from the Deployment, once.
struct Deployment<'a> {
    obj: &'a Value,
    name: &'a str,
    ns: &'a str,
    uid: &'a str,
    replicas: i64,
    template: Option<&'a Value>,
    hash: String,
    /// The ReplicaSet of the current template.
    rs_name: String,
}

impl<'a> Deployment<'a> {
    fn read(key: &'a Key, obj: &'a Value) -> Self {
        let template = obj.pointer("/spec/template");
        let hash = match template {
            Some(t) => template_hash(t),
            None => template_hash(&json!({})),
        };
        Self {
            obj,
            name: &key.2,
            ns: &key.1,
            uid: uid_of(obj),
            replicas: int(obj, "/spec/replicas", 1),
            template,
            rs_name: format!("{}-{hash}", key.2),
            hash,
        }
    }
}

/// One step of the Deployment at `key`; whether anything was written.
pub fn step(inner: &mut Inner, res: &ResourceInfo, key: &Key, obj: &Value, sim: &mut Sim) -> bool {
    let now = ops::now_string();
    let d = Deployment::read(key, obj);
    let mut conds: Vec<Value> = obj
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let Some(rs_res) = inner.resource("apps", "v1", "replicasets").cloned() else {
        return false;
    };
    if sim.hash != d.hash {
        let Some(created) = new_replica_set(inner, res, &rs_res, key, &d, sim) else {
            return false;
        };
        let (reason, message) = if created {
            (
                "NewReplicaSetCreated",
                format!("Created new replica set \"{}\"", d.rs_name),
            )
        } else {
            (
                "FoundNewReplicaSet",
                format!("Found new replica set \"{}\"", d.rs_name),
            )
        };
        progressing(&mut conds, "True", reason, &message, &now);
    } else if obj.pointer("/spec/paused") == Some(&json!(true)) {
        let already = conds.iter().any(|c| {
            c.get("reason") == Some(&json!("DeploymentPaused"))
                || c.get("reason") == Some(&json!(DEADLINE_EXCEEDED))
        });
        if !already {
            let message = "Deployment is paused";
            progressing(&mut conds, "Unknown", "DeploymentPaused", message, &now);
        }
    } else {
        advance(&d, sim, &mut conds, &now, Utc::now());
    }
    let wrote = sync_replica_sets(inner, &rs_res, &d, sim);
    let status = status(&d, sim, conds, &now);
    write_status(inner, res, key, status) || wrote
}

/// A template not seen before: create its ReplicaSet (or adopt an existing one, a rollback),
/// give it the next revision, and count every other pod as old. `None` when the ReplicaSet
/// cannot be created, else whether it was.
fn new_replica_set(
    inner: &mut Inner,
    res: &ResourceInfo,
    rs_res: &ResourceInfo,
    key: &Key,
    d: &Deployment,
    sim: &mut Sim,
) -> Option<bool> {
    let ns = d.ns;
    let old_pods = sim.created + sim.old;
    let owned: Vec<Arc<Value>> = inner
        .dependents(d.uid)
        .filter(|(k, _)| k.0 == rs_res.storage && k.1 == ns)
        .map(|(_, rs)| rs.clone())
        .collect();
    let max_rev = owned
        .iter()
        .filter_map(|rs| annotation(rs, REVISION).and_then(|r| r.parse::<i64>().ok()))
        .max()
        .unwrap_or(0);
    let existing = owned
        .iter()
        .find(|rs| rs.pointer("/metadata/name").and_then(Value::as_str) == Some(d.rs_name.as_str()))
        .cloned();
    let revision = (max_rev + 1).to_string();
    match &existing {
        None => {
            let r = d.replicas;
            let mut labels = d
                .template
                .and_then(|t| t.pointer("/metadata/labels"))
                .cloned()
                .unwrap_or(json!({}));
            labels["pod-template-hash"] = json!(d.hash);
            let mut selector = d
                .obj
                .pointer("/spec/selector")
                .cloned()
                .unwrap_or(json!({}));
            selector["matchLabels"]["pod-template-hash"] = json!(d.hash);
            let mut rs_tpl = d.template.cloned().unwrap_or(json!({}));
            rs_tpl["metadata"]["labels"] = labels.clone();
            let max_surge = percent_or_int(
                d.obj.pointer("/spec/strategy/rollingUpdate/maxSurge"),
                r,
                true,
                1,
            );
            let rs = json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {
                    "name": d.rs_name, "namespace": ns, "labels": labels,
                    "annotations": {"deployment.kubernetes.io/revision": revision, "deployment.kubernetes.io/desired-replicas": r.to_string(), "deployment.kubernetes.io/max-replicas": (r + max_surge).to_string()},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": d.name, "uid": d.uid, "controller": true, "blockOwnerDeletion": true}],
                },
                "spec": {"replicas": 0, "selector": selector, "template": rs_tpl},
            });
            if let Err(e) = ops::create(inner, rs_res, Some(ns), rs, &ctx()) {
                tracing::warn!(%ns, deployment = %d.name, %e, "cannot create a ReplicaSet");
                return None;
            }
        }
        Some(_) => {
            let rs_key = ops::key(rs_res, Some(ns), &d.rs_name);
            write_main(inner, rs_res, &rs_key, |rs| {
                rs["metadata"]["annotations"][REVISION] = json!(revision)
            });
        }
    }
    let existing_pods = existing
        .as_ref()
        .map(|rs| int(rs, "/status/replicas", 0))
        .unwrap_or(0);
    *sim = Sim {
        hash: d.hash.clone(),
        created: existing_pods,
        ready: existing_pods,
        old: (old_pods - existing_pods).max(0),
        last_progress: Some(Utc::now()),
    };
    write_main(inner, res, key, |dep| {
        dep["metadata"]["annotations"][REVISION] = json!(revision)
    });
    Some(existing.is_none())
}

/// One step of a rollout of the current template, as its outcome annotation plays it, and the
/// `Progressing` condition that tells it. Pure: `at` is the clock.
fn advance(d: &Deployment, sim: &mut Sim, conds: &mut Vec<Value>, now: &str, at: DateTime<Utc>) {
    let r = d.replicas;
    let rs_name = &d.rs_name;
    let progress_deadline = int(d.obj, "/spec/progressDeadlineSeconds", 600);
    let deadline_passed = sim
        .last_progress
        .is_some_and(|t| at.signed_duration_since(t).num_seconds() >= progress_deadline);
    let timed_out = conds
        .iter()
        .any(|c| c.get("reason") == Some(&json!(DEADLINE_EXCEEDED)));
    let done = sim.created == r && sim.ready == r && sim.old == 0;
    let timed_out_message = format!("ReplicaSet \"{rs_name}\" has timed out progressing.");
    let mut progressed = false;
    match outcome(d.obj) {
        _ if done => {}
        _ if timed_out => {}
        Outcome::Success => {
            if sim.ready < sim.created {
                sim.ready += 1;
                sim.old = (sim.old - 1).max(0);
            } else if sim.created < r {
                sim.created += 1;
            } else if sim.old > 0 {
                sim.old -= 1;
            } else if sim.created > r {
                sim.created -= 1;
                sim.ready = sim.ready.min(sim.created);
            }
            progressed = true;
        }
        Outcome::Fail => {
            if sim.created == 0 && r > 0 {
                sim.created = 1;
                progressed = true;
            } else {
                progressing(conds, "False", DEADLINE_EXCEEDED, &timed_out_message, now);
            }
        }
        Outcome::CrashLoop | Outcome::ImagePull if sim.created < r => {
            // Pods are created but never become ready.
            sim.created += 1;
            progressed = true;
        }
        Outcome::Stall | Outcome::CrashLoop | Outcome::ImagePull => {
            if deadline_passed {
                progressing(conds, "False", DEADLINE_EXCEEDED, &timed_out_message, now);
            }
        }
    }
    let available = format!("ReplicaSet \"{rs_name}\" has successfully progressed.");
    if progressed {
        sim.last_progress = Some(at);
        let now_done = sim.created == r && sim.ready == r && sim.old == 0;
        if now_done {
            progressing(conds, "True", "NewReplicaSetAvailable", &available, now);
        } else {
            let msg = format!("ReplicaSet \"{rs_name}\" is progressing.");
            progressing(conds, "True", "ReplicaSetUpdated", &msg, now);
        }
    } else if done && !timed_out {
        progressing(conds, "True", "NewReplicaSetAvailable", &available, now);
    }
}

/// The ReplicaSets and their pods as `sim` counts them: the new one holds `created` (the first
/// `ready` of them Ready), older ones shrink to `old` in total. Whether anything was written.
fn sync_replica_sets(inner: &mut Inner, rs_res: &ResourceInfo, d: &Deployment, sim: &Sim) -> bool {
    let rs_key = ops::key(rs_res, Some(d.ns), &d.rs_name);
    let mut wrote = false;
    wrote |= scale(inner, rs_res, &rs_key, d.replicas);
    let status = replica_set_status(inner, &rs_key, sim.created, sim.ready);
    wrote |= write_status(inner, rs_res, &rs_key, status);
    let failing = match outcome(d.obj) {
        Outcome::CrashLoop => Some(PodTrouble::CrashLoop),
        Outcome::ImagePull => Some(PodTrouble::ImagePull),
        _ => None,
    };
    wrote |= sync_pods(inner, &rs_key, sim.created, sim.ready, failing);
    let mut remaining_old = sim.old;
    let olds: Vec<Key> = inner
        .dependents(d.uid)
        .filter(|(k, _)| k.0 == rs_res.storage && k.1 == d.ns && k.2 != d.rs_name)
        .map(|(k, _)| k.clone())
        .collect();
    for k in olds {
        let n = remaining_old;
        remaining_old = 0;
        wrote |= scale(inner, rs_res, &k, n);
        wrote |= sync_pods(inner, &k, n, n, None);
        let status = replica_set_status(inner, &k, n, n);
        wrote |= write_status(inner, rs_res, &k, status);
    }
    wrote
}

/// Set a ReplicaSet's `spec.replicas`; whether it was written. Read first: an unchanged count
/// (most steps) costs no copy of the ReplicaSet.
fn scale(inner: &mut Inner, rs_res: &ResourceInfo, rs_key: &Key, replicas: i64) -> bool {
    let current = inner
        .get(rs_key)
        .and_then(|rs| rs.pointer("/spec/replicas"))
        .and_then(Value::as_i64);
    current != Some(replicas)
        && write_main(inner, rs_res, rs_key, |rs| {
            rs["spec"]["replicas"] = json!(replicas)
        })
}

/// A ReplicaSet's status with `replicas` pods, `ready` of them Ready (and available).
fn replica_set_status(inner: &Inner, rs_key: &Key, replicas: i64, ready: i64) -> Value {
    let generation = inner
        .get(rs_key)
        .map(|o| int(o, "/metadata/generation", 1))
        .unwrap_or(1);
    strip_zeros(
        json!({"replicas": replicas, "fullyLabeledReplicas": replicas, "readyReplicas": ready, "availableReplicas": ready, "observedGeneration": generation}),
        &["fullyLabeledReplicas", "readyReplicas", "availableReplicas"],
    )
}

/// The Deployment's status: counts from `sim`, `Available` by `maxUnavailable`, then
/// `Progressing` (the real order).
fn status(d: &Deployment, sim: &Sim, mut conds: Vec<Value>, now: &str) -> Value {
    let r = d.replicas;
    let total = sim.created + sim.old;
    let available = sim.ready + sim.old;
    let max_unavailable = percent_or_int(
        d.obj.pointer("/spec/strategy/rollingUpdate/maxUnavailable"),
        r,
        false,
        0,
    );
    if available >= r - max_unavailable {
        let (reason, message) = (
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
        );
        set_condition(&mut conds, "Available", "True", reason, message, now, true);
    } else {
        let (reason, message) = (
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        );
        set_condition(&mut conds, "Available", "False", reason, message, now, true);
    }
    conds.sort_by_key(|c| c.get("type") != Some(&json!("Available")));
    let status = json!({
        "observedGeneration": int(d.obj, "/metadata/generation", 1),
        "replicas": total,
        "updatedReplicas": sim.created,
        "readyReplicas": available,
        "availableReplicas": available,
        "unavailableReplicas": (r - available).max(0),
        "conditions": conds,
    });
    strip_zeros(
        status,
        &[
            "replicas",
            "updatedReplicas",
            "readyReplicas",
            "availableReplicas",
            "unavailableReplicas",
        ],
    )
}

/// Set the `Progressing` condition.
fn progressing(conds: &mut Vec<Value>, status: &str, reason: &str, message: &str, now: &str) {
    set_condition(conds, "Progressing", status, reason, message, now, true);
}

/// A Deployment whose progress deadline can still pass: it is waiting on the clock, not on an
/// outside write, so it is never settled.
pub fn deadline_pending(obj: &Value) -> bool {
    if obj.pointer("/spec/paused") == Some(&json!(true)) {
        return false;
    }
    let waits = matches!(
        outcome(obj),
        Outcome::Stall | Outcome::CrashLoop | Outcome::ImagePull
    );
    let timed_out = obj
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.get("reason") == Some(&json!(DEADLINE_EXCEEDED)))
        });
    waits && !timed_out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(outcome: &str, replicas: i64) -> (Key, Value) {
        let key = ("apps/deployments".into(), "ns".into(), "web".into());
        let obj = json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u1",
                "annotations": {super::super::OUTCOME_ANNOTATION: outcome}},
            "spec": {"replicas": replicas, "progressDeadlineSeconds": 60,
                "template": {"metadata": {"labels": {"app": "web"}}}},
        });
        (key, obj)
    }

    fn reason(conds: &[Value]) -> &str {
        conds
            .iter()
            .find(|c| c["type"] == "Progressing")
            .and_then(|c| c["reason"].as_str())
            .unwrap_or("")
    }

    /// Step `advance` until nothing moves (at most 20 times); the `Progressing` reason then.
    fn run(outcome: &str, replicas: i64, sim: &mut Sim, at: DateTime<Utc>) -> String {
        let (key, obj) = deployment(outcome, replicas);
        let d = Deployment::read(&key, &obj);
        let mut conds = Vec::new();
        for _ in 0..20 {
            let before = sim.clone();
            advance(&d, sim, &mut conds, "t", at);
            if *sim == before {
                break;
            }
        }
        reason(&conds).to_string()
    }

    #[test]
    fn a_successful_rollout_replaces_every_old_pod() {
        let at = Utc::now();
        let mut sim = Sim {
            old: 3,
            last_progress: Some(at),
            ..Sim::default()
        };
        assert_eq!(run("success", 3, &mut sim, at), "NewReplicaSetAvailable");
        assert_eq!((sim.created, sim.ready, sim.old), (3, 3, 0));
    }

    #[test]
    fn a_failing_rollout_times_out_after_its_first_pod() {
        let at = Utc::now();
        let mut sim = Sim::default();
        assert_eq!(run("fail", 3, &mut sim, at), DEADLINE_EXCEEDED);
        assert_eq!((sim.created, sim.ready), (1, 0));
    }

    #[test]
    fn a_crashing_rollout_creates_pods_and_times_out_only_after_the_deadline() {
        let start = Utc::now();
        let mut sim = Sim::default();
        assert_eq!(run("crashloop", 2, &mut sim, start), "ReplicaSetUpdated");
        assert_eq!((sim.created, sim.ready), (2, 0));
        let later = start + chrono::Duration::seconds(61);
        assert_eq!(run("crashloop", 2, &mut sim, later), DEADLINE_EXCEEDED);
    }

    #[test]
    fn a_stalled_rollout_says_nothing_before_its_deadline() {
        let at = Utc::now();
        let mut sim = Sim {
            last_progress: Some(at),
            ..Sim::default()
        };
        assert_eq!(run("stall", 2, &mut sim, at), "");
        assert_eq!(sim.created, 0);
    }

    #[test]
    fn a_deadline_exceeded_rollout_stays_so() {
        let (key, obj) = deployment("success", 2);
        let d = Deployment::read(&key, &obj);
        let mut conds =
            vec![json!({"type": "Progressing", "status": "False", "reason": DEADLINE_EXCEEDED})];
        let mut sim = Sim::default();
        advance(&d, &mut sim, &mut conds, "t", Utc::now());
        assert_eq!(sim, Sim::default());
        assert_eq!(reason(&conds), DEADLINE_EXCEEDED);
    }
}
