//! The DaemonSet controller: one pod per node (the `nodes` annotation), updated a node at a
//! time.

use super::write::{int, strip_zeros, write_status};
use super::{NODES_ANNOTATION, Outcome, Sim, annotation, ensure_revision, outcome, template_hash};
use crate::resources::ResourceInfo;
use crate::store::{Inner, Key};
use serde_json::{Value, json};

/// One step of the DaemonSet at `key`; whether anything was written.
pub fn step(inner: &mut Inner, res: &ResourceInfo, key: &Key, obj: &Value, sim: &mut Sim) -> bool {
    let ns = key.1.clone();
    let desired = annotation(obj, NODES_ANNOTATION)
        .and_then(|n| n.parse::<i64>().ok())
        .unwrap_or(1);
    let template = obj.pointer("/spec/template").cloned().unwrap_or(json!({}));
    let hash = template_hash(&template);
    if sim.hash != hash {
        ensure_revision(inner, obj, "DaemonSet", &ns, &hash);
        sim.restart(hash);
    } else if outcome(obj) == Outcome::Success {
        if sim.ready < sim.created {
            sim.ready += 1;
        } else if sim.created < desired {
            // One node at a time: its old pod goes, the updated one comes.
            sim.old = (sim.old - 1).max(0);
            sim.created += 1;
        } else if sim.old > 0 {
            sim.old -= 1;
        }
    }
    let scheduled = (sim.created + sim.old).min(desired);
    let ready = (sim.ready + sim.old).min(desired);
    let status = json!({
        "observedGeneration": int(obj, "/metadata/generation", 1),
        "desiredNumberScheduled": desired,
        "currentNumberScheduled": scheduled,
        "numberMisscheduled": 0,
        "numberReady": ready,
        "updatedNumberScheduled": sim.created,
        "numberAvailable": ready,
        "numberUnavailable": (desired - ready).max(0),
    });
    let status = strip_zeros(
        status,
        &[
            "updatedNumberScheduled",
            "numberAvailable",
            "numberUnavailable",
        ],
    );
    write_status(inner, res, key, status)
}
