//! Rollout simulator: plays the Deployment/ReplicaSet, StatefulSet and DaemonSet controllers
//! without pods (spec §11, rollout-status.md §1.5.1-1.5.3). Pods are counts that move one step
//! per tick; status writes go through the store like a controller's (RV bump, MODIFIED).
//!
//! Per-object annotations:
//! - `emulator.gitlab-operator.io/rollout-step`: pace (`500ms`, `2s`; default 200 ms).
//! - `emulator.gitlab-operator.io/rollout-outcome`: `success` (default), `fail` (Deployment:
//!   `ProgressDeadlineExceeded` after the first step), `stall` (no progress; a Deployment
//!   times out after `progressDeadlineSeconds`).
//! - `emulator.gitlab-operator.io/nodes`: DaemonSet node count (default 1).
//!
//! One module per workload kind ([`deployment`], [`statefulset`], [`daemonset`]); they share
//! the pods ([`pods`]), the way they write ([`write`]) and the schedule of steps
//! ([`schedule`]).

mod daemonset;
mod deployment;
mod pods;
mod schedule;
mod statefulset;
mod write;

use crate::ops;
use crate::resources::ResourceInfo;
use crate::state::AppState;
use crate::store::{Inner, Key};
use schedule::{Due, RESCAN_EVERY_TICKS, Settled, Workloads};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use write::{ctx, int};

pub const STEP_ANNOTATION: &str = "emulator.gitlab-operator.io/rollout-step";
pub const OUTCOME_ANNOTATION: &str = "emulator.gitlab-operator.io/rollout-outcome";
pub const NODES_ANNOTATION: &str = "emulator.gitlab-operator.io/nodes";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    Success,
    Fail,
    Stall,
    /// New pods start but crash: `CrashLoopBackOff`, restart count rising; times out.
    CrashLoop,
    /// New pods cannot pull their image: `ErrImagePull`/`ImagePullBackOff`; times out.
    ImagePull,
}

/// Pods of one workload, as counts.
#[derive(Debug, Clone, Default, PartialEq)]
struct Sim {
    hash: String,
    /// Pods of the current template, created / ready.
    created: i64,
    ready: i64,
    /// Pods of older templates (all ready).
    old: i64,
    /// When the last progress was made (for the progress deadline).
    last_progress: Option<chrono::DateTime<chrono::Utc>>,
}

fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if let Some(ms) = s.strip_suffix("ms") {
        return ms.trim().parse::<u64>().ok().map(Duration::from_millis);
    }
    if let Some(sec) = s.strip_suffix('s') {
        return sec
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| *f >= 0.0)
            .map(Duration::from_secs_f64);
    }
    if let Some(m) = s.strip_suffix('m') {
        return m
            .trim()
            .parse::<u64>()
            .ok()
            .map(|m| Duration::from_secs(m * 60));
    }
    s.parse::<u64>().ok().map(Duration::from_millis)
}

fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

fn outcome(obj: &Value) -> Outcome {
    match annotation(obj, OUTCOME_ANNOTATION) {
        Some("fail") => Outcome::Fail,
        Some("stall") => Outcome::Stall,
        Some("crashloop") => Outcome::CrashLoop,
        Some("imagepull") => Outcome::ImagePull,
        _ => Outcome::Success,
    }
}

/// A stable 10-character hash of the pod template (pod-template-hash / revision suffix).
pub fn template_hash(template: &Value) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut h: u64 = 0xcbf29ce484222325;
    for b in serde_json::to_vec(template).unwrap_or_default() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    (0..10)
        .map(|i| ALPHABET[((h >> (i * 6)) % ALPHABET.len() as u64) as usize] as char)
        .collect()
}

/// The workload kinds the simulator plays the controllers of, in the order a tick steps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Deployment, Kind::StatefulSet, Kind::DaemonSet];

    fn plural(self) -> &'static str {
        match self {
            Kind::Deployment => "deployments",
            Kind::StatefulSet => "statefulsets",
            Kind::DaemonSet => "daemonsets",
        }
    }

    /// One step of this kind's controller; whether it wrote anything.
    fn step(
        self,
        inner: &mut Inner,
        res: &ResourceInfo,
        key: &Key,
        obj: &Value,
        sim: &mut Sim,
    ) -> bool {
        match self {
            Kind::Deployment => deployment::step(inner, res, key, obj, sim),
            Kind::StatefulSet => statefulset::step(inner, res, key, obj, sim),
            Kind::DaemonSet => daemonset::step(inner, res, key, obj, sim),
        }
    }

    /// Whether the workload waits on the clock rather than on an outside write, so that it is
    /// never settled.
    fn waits_on_clock(self, obj: &Value) -> bool {
        self == Kind::Deployment && deployment::deadline_pending(obj)
    }
}

impl Sim {
    /// A new template of a StatefulSet or DaemonSet: every pod so far is of an older one.
    fn restart(&mut self, hash: String) {
        let pods = self.created + self.old;
        *self = Sim {
            hash,
            created: 0,
            ready: 0,
            old: pods,
            last_progress: None,
        };
    }
}

fn uid_of(obj: &Value) -> &str {
    obj.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn rv_of(obj: &Value) -> &str {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Ensure a ControllerRevision `<name>-<hash>` exists for a StatefulSet/DaemonSet template.
fn ensure_revision(inner: &mut Inner, owner: &Value, kind: &str, ns: &str, hash: &str) -> i64 {
    let Some(cr_res) = inner.resource("apps", "v1", "controllerrevisions").cloned() else {
        return 1;
    };
    let name = owner
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let uid = uid_of(owner).to_string();
    let owned: Vec<Arc<Value>> = inner
        .dependents(&uid)
        .filter(|(k, _)| k.0 == cr_res.storage && k.1 == ns)
        .map(|(_, r)| r.clone())
        .collect();
    let cr_name = format!("{name}-{hash}");
    if let Some(r) = owned
        .iter()
        .find(|r| r.pointer("/metadata/name").and_then(Value::as_str) == Some(cr_name.as_str()))
    {
        return int(r, "/revision", 1);
    }
    let revision = owned
        .iter()
        .map(|r| int(r, "/revision", 0))
        .max()
        .unwrap_or(0)
        + 1;
    let mut labels = owner
        .pointer("/spec/template/metadata/labels")
        .cloned()
        .unwrap_or(json!({}));
    labels["controller-revision-hash"] = json!(hash);
    let cr = json!({
        "apiVersion": "apps/v1", "kind": "ControllerRevision",
        "metadata": {"name": cr_name, "namespace": ns, "labels": labels,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": uid, "controller": true, "blockOwnerDeletion": true}]},
        "data": {"spec": {"template": owner.pointer("/spec/template").cloned().unwrap_or(json!({}))}},
        "revision": revision,
    });
    if let Err(e) = ops::create(inner, &cr_res, Some(ns), cr, &ctx()) {
        tracing::warn!(%ns, owner = %name, %e, "cannot create a ControllerRevision");
    }
    revision
}

/// What the simulator keeps between ticks.
struct Simulator {
    /// The simulated pods of each workload, by uid.
    sims: HashMap<String, Sim>,
    workloads: Workloads,
    rescan_countdown: u32,
}

pub async fn run(state: AppState) {
    let mut simulator = Simulator {
        sims: HashMap::new(),
        workloads: Workloads::new(state.settings().rollout_step),
        rescan_countdown: 0,
    };
    let mut tick = tokio::time::interval(Duration::from_millis(25));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let hooks = state.hooks();
        let advance = hooks.take_advance();
        let paused = hooks.rollouts_paused();
        // A bug in one step must not stop the simulator for good: contain the panic (the store
        // lock does not poison) and carry on with the next tick.
        let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut inner = state.lock();
            let changed = simulator.tick(&mut inner, advance, paused);
            state.observe(&mut inner);
            changed
        }));
        match step {
            Ok(true) => state.written(false),
            Ok(false) => {}
            Err(_) => tracing::error!("rollout simulator step panicked; continuing"),
        }
    }
}

impl Simulator {
    /// Step every due workload (`advance` extra steps each, from the test hook); whether
    /// anything was written.
    fn tick(&mut self, inner: &mut Inner, advance: u64, paused: bool) -> bool {
        self.workloads.kinds = Kind::ALL
            .iter()
            .filter_map(|k| {
                inner
                    .resource("apps", "v1", k.plural())
                    .map(|r| (*k, r.clone()))
            })
            .collect();
        self.workloads.catch_up(inner);
        if self.rescan_countdown == 0 {
            self.rescan_countdown = RESCAN_EVERY_TICKS;
            self.workloads.rescan(inner, false);
            let live: HashSet<&str> = self
                .workloads
                .tracked
                .values()
                .map(|t| t.uid.as_str())
                .collect();
            self.sims.retain(|k, _| live.contains(k.as_str()));
        } else {
            self.rescan_countdown -= 1;
        }
        let now = Instant::now();
        let mut due = self.workloads.due(now, advance, paused);
        // Deployments first, then StatefulSets, then DaemonSets, each in key order.
        due.sort_by_key(|d| d.kind);
        let mut changed = false;
        for (kind, res) in self.workloads.kinds.clone() {
            let mine = due.iter().take_while(|d| d.kind == kind).count();
            for d in due.drain(..mine).collect::<Vec<_>>() {
                changed |= self.step_workload(inner, &res, d, now);
            }
        }
        // Everything written so far, the simulator's own writes included, has been seen.
        self.workloads.seen_rv = inner.rv;
        changed
    }

    /// Up to `due.steps` steps of one workload, until one changes nothing; whether it moved.
    fn step_workload(
        &mut self,
        inner: &mut Inner,
        res: &ResourceInfo,
        due: Due,
        now: Instant,
    ) -> bool {
        let mut moved = false;
        let mut fixed_point: Option<String> = None;
        for _ in 0..due.steps {
            let Some(cur) = inner.get(&due.key).cloned() else {
                break;
            };
            let sim = self.sims.entry(due.uid.clone()).or_default();
            let before = sim.clone();
            if !due.kind.step(inner, res, &due.key, &cur, sim) {
                // Nothing written and nothing moved: the next step would do the same unless
                // something outside (or the clock) changes.
                if *sim == before && !due.kind.waits_on_clock(&cur) {
                    fixed_point = Some(rv_of(&cur).to_string());
                }
                break;
            }
            moved = true;
        }
        if let Some(t) = self.workloads.tracked.get_mut(&due.key) {
            t.settled = fixed_point.map(|rv| Settled { rv, skipped: 0 });
            if moved || due.on_schedule {
                t.last_step = Some(now);
            }
        }
        moved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("x"), None);
    }

    #[test]
    fn template_hash_is_stable_and_sensitive() {
        let a = json!({"spec": {"containers": [{"name": "a", "image": "1"}]}});
        let b = json!({"spec": {"containers": [{"name": "a", "image": "2"}]}});
        assert_eq!(template_hash(&a), template_hash(&a));
        assert_ne!(template_hash(&a), template_hash(&b));
        assert_eq!(template_hash(&a).len(), 10);
    }
}
