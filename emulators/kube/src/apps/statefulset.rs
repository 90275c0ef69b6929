//! The StatefulSet controller: pods replaced one at a time, highest ordinal first, down to the
//! `partition`; `currentRevision` follows `updateRevision` once no old pod is left.

use super::write::{int, strip_zeros, write_status};
use super::{Outcome, Sim, ensure_revision, outcome, template_hash};
use crate::resources::ResourceInfo;
use crate::store::{Inner, Key};
use serde_json::{Value, json};

/// One step of the StatefulSet at `key`; whether anything was written.
pub fn step(inner: &mut Inner, res: &ResourceInfo, key: &Key, obj: &Value, sim: &mut Sim) -> bool {
    let ns = key.1.clone();
    let name = key.2.clone();
    let r = int(obj, "/spec/replicas", 1);
    let partition = int(obj, "/spec/updateStrategy/rollingUpdate/partition", 0).max(0);
    let template = obj.pointer("/spec/template").cloned().unwrap_or(json!({}));
    let hash = template_hash(&template);
    let update_rev = format!("{name}-{hash}");
    let mut status = obj.get("status").cloned().unwrap_or(json!({}));
    let first = status.get("currentRevision").is_none();
    if sim.hash != hash {
        ensure_revision(inner, obj, "StatefulSet", &ns, &hash);
        sim.restart(hash);
        if first {
            // Initial rollout: every pod is created at the update revision.
            sim.old = 0;
            status["currentRevision"] = json!(update_rev);
        }
        status["updateRevision"] = json!(update_rev);
    } else if outcome(obj) == Outcome::Success {
        let target_updated = (r - partition).max(0);
        let total = sim.created + sim.old;
        let ready_total = sim.ready + sim.old;
        if ready_total < total {
            sim.ready += 1;
        } else if total < r {
            sim.created += 1;
        } else if total > r {
            if sim.old > 0 {
                sim.old -= 1;
            } else {
                sim.created -= 1;
                sim.ready = sim.ready.min(sim.created);
            }
        } else if sim.created < target_updated && sim.old > 0 {
            // Replace one old pod (highest ordinal first): it goes down, comes back updated.
            sim.old -= 1;
            sim.created += 1;
        } else if sim.old == 0 && status.get("currentRevision") != Some(&json!(update_rev)) {
            status["currentRevision"] = json!(update_rev);
        }
    }
    let current_is_update = status.get("currentRevision") == status.get("updateRevision");
    let total = sim.created + sim.old;
    let ready = sim.ready + sim.old;
    status["observedGeneration"] = json!(int(obj, "/metadata/generation", 1));
    status["replicas"] = json!(total);
    status["readyReplicas"] = json!(ready);
    status["availableReplicas"] = json!(ready);
    status["updatedReplicas"] = json!(sim.created);
    status["currentReplicas"] = json!(if current_is_update {
        sim.created
    } else {
        sim.old
    });
    status["collisionCount"] = json!(0);
    let status = strip_zeros(
        status,
        &[
            "readyReplicas",
            "availableReplicas",
            "updatedReplicas",
            "currentReplicas",
        ],
    );
    let mut status = status;
    if status.get("availableReplicas").is_none() {
        status["availableReplicas"] = json!(0);
    }
    write_status(inner, res, key, status)
}
