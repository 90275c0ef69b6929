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

use crate::ops::{self, WriteCtx};
use crate::resources::ResourceInfo;
use crate::state::AppState;
use crate::store::{Inner, Key};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const STEP_ANNOTATION: &str = "emulator.gitlab-operator.io/rollout-step";
pub const OUTCOME_ANNOTATION: &str = "emulator.gitlab-operator.io/rollout-outcome";
pub const NODES_ANNOTATION: &str = "emulator.gitlab-operator.io/nodes";
const MANAGER: &str = "kube-controller-manager";

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

/// Ticks between two full passes over the workloads (about 5 s): they re-read every workload
/// (a safety net behind the history-driven updates) and drop the state of deleted ones. A
/// pass over every object on every tick was most of the simulator's cost at thousands of
/// workloads (the bench's profile).
const RESCAN_EVERY_TICKS: u32 = 200;

/// A settled workload is still fully stepped every this many of its steps, as a safety net
/// behind the owned-object change tracking (at the default 200 ms step: every 4 s).
const RECHECK_EVERY_STEPS: u32 = 20;

/// A workload whose last full step was a no-op at a fixed point (rollout complete, timed out,
/// paused): nothing about it can change until its object, an owned object or the hooks do.
/// Its due steps are skipped while `rv` is its resourceVersion.
#[derive(Debug)]
struct Settled {
    rv: String,
    skipped: u32,
}

/// What the simulator keeps about one workload between ticks, so that a tick looks only at
/// the workloads that are due instead of reading every object. Kept current from the store's
/// history; the simulator's own writes never change these fields.
#[derive(Debug)]
struct Tracked {
    /// Index in [`PLURALS`].
    kind: usize,
    uid: String,
    step: Duration,
    deleting: bool,
    last_step: Option<Instant>,
    settled: Option<Settled>,
}

impl Tracked {
    /// From the current object; a previous entry for the same uid keeps its schedule, and
    /// stays settled only while the object is unchanged.
    fn new(kind: usize, obj: &Value, default_step: Duration, prev: Option<Tracked>) -> Self {
        let uid = uid_of(obj);
        let (last_step, settled) = match prev {
            Some(p) if p.uid == uid => (p.last_step, p.settled.filter(|s| s.rv == rv_of(obj))),
            _ => (None, None),
        };
        Self {
            kind,
            uid: uid.to_string(),
            step: annotation(obj, STEP_ANNOTATION)
                .and_then(parse_duration)
                .unwrap_or(default_step),
            deleting: obj.pointer("/metadata/deletionTimestamp").is_some(),
            last_step,
            settled,
        }
    }
}

/// Whether `owner_uid` is among `obj`'s ownerReferences (no allocation, unlike
/// [`ops::owner_uids`]).
fn owned_by(obj: &Value, owner_uid: &str) -> bool {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r.get("uid").and_then(Value::as_str) == Some(owner_uid))
        })
}

/// `(kind, name)` of each ownerReference.
fn owner_refs(obj: &Value) -> impl Iterator<Item = (&str, &str)> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|r| {
            let f = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("");
            (f("kind"), f("name"))
        })
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

/// A Deployment whose progress deadline can still pass: it is waiting on the clock, not on an
/// outside write, so it is never settled.
fn deadline_pending(plural: &str, obj: &Value) -> bool {
    if plural != "deployments" || obj.pointer("/spec/paused") == Some(&json!(true)) {
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
                .any(|c| c.get("reason") == Some(&json!("ProgressDeadlineExceeded")))
        });
    waits && !timed_out
}

/// The workload kinds the simulator plays the controllers of.
const PLURALS: [&str; 3] = ["deployments", "statefulsets", "daemonsets"];

/// The simulator's view of the workloads, kept in step with the store.
struct Workloads {
    /// `(index in PLURALS, resource)` of the workload kinds served.
    kinds: Vec<(usize, ResourceInfo)>,
    tracked: BTreeMap<Key, Tracked>,
    /// Every change up to this resourceVersion has been looked at (or was the simulator's).
    seen_rv: u64,
    default_step: Duration,
}

impl Workloads {
    fn refresh(&mut self, inner: &Inner, key: &Key) {
        let prev = self.tracked.remove(key);
        let kind = self.kinds.iter().find(|(_, r)| r.storage == key.0);
        if let (Some(obj), Some((kind, _))) = (inner.get(key), kind) {
            let t = Tracked::new(*kind, obj, self.default_step, prev);
            self.tracked.insert(key.clone(), t);
        }
    }

    /// Re-read every workload from the store. `forget_settled`: changes to owned objects may
    /// have been missed, so every workload gets a full step again.
    fn rescan(&mut self, inner: &Inner, forget_settled: bool) {
        let mut fresh = BTreeMap::new();
        for (kind, res) in &self.kinds {
            for (key, obj) in inner.range(&res.storage, None) {
                let prev = self.tracked.remove(key);
                let mut t = Tracked::new(*kind, obj, self.default_step, prev);
                if forget_settled {
                    t.settled = None;
                }
                fresh.insert(key.clone(), t);
            }
        }
        self.tracked = fresh;
    }

    /// Apply the changes others made since the last tick: workloads created, edited or
    /// deleted, and owned objects (ReplicaSets, their pods, ControllerRevisions) written by
    /// someone else (e.g. `kubectl delete pod`), whose owner then gets a full step that
    /// repairs them. When the history no longer reaches back, everything is re-read.
    fn catch_up(&mut self, inner: &Inner) {
        if inner.rv <= self.seen_rv {
            return;
        }
        if inner.compacted > self.seen_rv {
            self.rescan(inner, true);
            return;
        }
        let storage = |group: &str, plural: &str| {
            inner
                .resource(group, "v1", plural)
                .map(|r| r.storage.clone())
                .unwrap_or_default()
        };
        let rs_storage = storage("apps", "replicasets");
        let cr_storage = storage("apps", "controllerrevisions");
        let pod_storage = storage("", "pods");
        let owner_key = |ns: &str, kind: &str, name: &str| {
            self.kinds
                .iter()
                .find(|(_, r)| r.kind == kind)
                .map(|(_, r)| (r.storage.clone(), ns.to_string(), name.to_string()))
        };
        let mut edited: Vec<Key> = Vec::new();
        let mut touched: Vec<Key> = Vec::new();
        for ev in inner
            .history
            .iter()
            .rev()
            .take_while(|e| e.rv > self.seen_rv)
        {
            let (storage, ns) = (ev.key.0.as_str(), ev.key.1.as_str());
            if self.kinds.iter().any(|(_, r)| r.storage == storage) {
                edited.push(ev.key.clone());
            } else if storage == rs_storage || storage == cr_storage {
                touched.extend(owner_refs(&ev.obj).filter_map(|(k, n)| owner_key(ns, k, n)));
            } else if storage == pod_storage {
                // Pod -> its ReplicaSet (by name, in the pod's namespace) -> the workload.
                for (_, rs_name) in owner_refs(&ev.obj) {
                    let rs_key = (rs_storage.clone(), ns.to_string(), rs_name.to_string());
                    if let Some(rs) = inner.get(&rs_key) {
                        touched.extend(owner_refs(rs).filter_map(|(k, n)| owner_key(ns, k, n)));
                    }
                }
            }
        }
        for key in edited {
            self.refresh(inner, &key);
        }
        for key in touched {
            if let Some(t) = self.tracked.get_mut(&key) {
                t.settled = None;
            }
        }
    }
}

pub async fn run(state: AppState) {
    let mut sims: HashMap<String, Sim> = HashMap::new();
    let mut workloads = Workloads {
        kinds: Vec::new(),
        tracked: BTreeMap::new(),
        seen_rv: 0,
        default_step: state.settings().rollout_step,
    };
    let mut tick = tokio::time::interval(Duration::from_millis(25));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut rescan_countdown = 0u32;
    loop {
        tick.tick().await;
        let hooks = state.hooks();
        let advance = hooks.take_advance();
        let paused = hooks.rollouts_paused();
        let mut changed = false;
        // A bug in one step must not stop the simulator for good: contain the panic (the store
        // lock recovers from poisoning) and carry on with the next tick.
        let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut inner = state.lock();
            workloads.kinds = PLURALS
                .iter()
                .enumerate()
                .filter_map(|(i, p)| inner.resource("apps", "v1", p).map(|r| (i, r.clone())))
                .collect();
            if rescan_countdown == 0 {
                rescan_countdown = RESCAN_EVERY_TICKS;
                workloads.catch_up(&inner);
                workloads.rescan(&inner, false);
                let live: std::collections::HashSet<&str> =
                    workloads.tracked.values().map(|t| t.uid.as_str()).collect();
                sims.retain(|k, _| live.contains(k.as_str()));
            } else {
                rescan_countdown -= 1;
                workloads.catch_up(&inner);
            }
            // Only the due workloads are stepped; settled ones (unchanged since, see
            // `Tracked::new`) are skipped cheaply, but not more than RECHECK_EVERY_STEPS times
            // in a row. One pass without string compares or store reads: it visits every
            // workload on every tick.
            let now = Instant::now();
            let mut due_list: Vec<(usize, Key, String, u64, bool)> = workloads
                .tracked
                .iter_mut()
                .filter(|(_, t)| !t.deleting)
                .filter_map(|(key, t)| {
                    let due =
                        !paused && t.last_step.is_none_or(|l| now.duration_since(l) >= t.step);
                    if due
                        && advance == 0
                        && let Some(s) = t.settled.as_mut()
                        && s.skipped < RECHECK_EVERY_STEPS
                    {
                        s.skipped += 1;
                        t.last_step = Some(now);
                        return None;
                    }
                    let steps = u64::from(due) + advance;
                    (steps > 0).then(|| (t.kind, key.clone(), t.uid.clone(), steps, due))
                })
                .collect();
            // Deployments first, then StatefulSets, then DaemonSets, each in key order.
            due_list.sort_by_key(|(kind, ..)| *kind);
            for (kind, res) in workloads.kinds.clone() {
                let plural = PLURALS[kind];
                let mine = due_list.iter().take_while(|d| d.0 == kind).count();
                let due_here: Vec<_> = due_list.drain(..mine).collect();
                for (_, key, uid, steps, due) in due_here {
                    let mut moved = false;
                    let mut fixed_point: Option<String> = None;
                    for _ in 0..steps {
                        let Some(cur) = inner.get(&key).cloned() else {
                            break;
                        };
                        let sim = sims.entry(uid.clone()).or_default();
                        let before = sim.clone();
                        let did = match plural {
                            "deployments" => step_deployment(&mut inner, &res, &key, &cur, sim),
                            "statefulsets" => step_statefulset(&mut inner, &res, &key, &cur, sim),
                            _ => step_daemonset(&mut inner, &res, &key, &cur, sim),
                        };
                        if !did {
                            // Nothing written and nothing moved: the next step would do the
                            // same unless something outside (or the clock) changes.
                            if *sim == before && !deadline_pending(plural, &cur) {
                                fixed_point = Some(rv_of(&cur).to_string());
                            }
                            break;
                        }
                        moved = true;
                    }
                    changed |= moved;
                    if let Some(t) = workloads.tracked.get_mut(&key) {
                        t.settled = fixed_point.map(|rv| Settled { rv, skipped: 0 });
                        if moved || due {
                            t.last_step = Some(now);
                        }
                    }
                }
            }
            // Everything written so far, the simulator's own writes included, has been seen.
            workloads.seen_rv = inner.rv;
        }));
        if step.is_err() {
            tracing::error!("rollout simulator step panicked; continuing");
        }
        if changed {
            state.written(false);
        }
    }
}

fn ctx() -> WriteCtx {
    WriteCtx {
        now: ops::now_string(),
        manager: MANAGER.into(),
        ..Default::default()
    }
}

/// Write `status` through the status subresource (no-op writes are skipped by the store).
fn write_status(inner: &mut Inner, res: &ResourceInfo, key: &Key, status: Value) -> bool {
    let Some(old) = inner.get(key).cloned() else {
        return false;
    };
    if old.get("status") == Some(&status) {
        return false;
    }
    let mut cand = (*old).clone();
    cand["status"] = status;
    let before = inner.rv;
    let _ = ops::finish_update(
        inner,
        res,
        key.clone(),
        old,
        cand,
        Some("status"),
        &ctx(),
        None,
    );
    inner.rv != before
}

fn write_main(
    inner: &mut Inner,
    res: &ResourceInfo,
    key: &Key,
    edit: impl FnOnce(&mut Value),
) -> bool {
    let Some(old) = inner.get(key).cloned() else {
        return false;
    };
    let mut cand = (*old).clone();
    edit(&mut cand);
    if cand == *old {
        return false;
    }
    let before = inner.rv;
    let _ = ops::finish_update(inner, res, key.clone(), old, cand, None, &ctx(), None);
    inner.rv != before
}

/// Set a condition; `lastTransitionTime` moves only when `status` changes.
fn set_condition(
    conds: &mut Vec<Value>,
    ty: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: &str,
    with_update_time: bool,
) {
    let existing = conds.iter_mut().find(|c| c.get("type") == Some(&json!(ty)));
    let mut c = json!({"type": ty, "status": status, "reason": reason, "message": message, "lastTransitionTime": now});
    if with_update_time {
        c["lastUpdateTime"] = json!(now);
    }
    match existing {
        Some(e) => {
            if e.get("status") == Some(&json!(status)) {
                c["lastTransitionTime"] =
                    e.get("lastTransitionTime").cloned().unwrap_or(json!(now));
                if e.get("reason") == Some(&json!(reason))
                    && e.get("message") == Some(&json!(message))
                    && with_update_time
                {
                    c["lastUpdateTime"] = e.get("lastUpdateTime").cloned().unwrap_or(json!(now));
                }
            }
            *e = c;
        }
        None => conds.push(c),
    }
}

fn int(obj: &Value, ptr: &str, default: i64) -> i64 {
    obj.pointer(ptr).and_then(Value::as_i64).unwrap_or(default)
}

fn percent_or_int(v: Option<&Value>, total: i64, round_up: bool, default: i64) -> i64 {
    match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(default),
        Some(Value::String(s)) => match s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
            Some(p) if round_up => (p * total + 99) / 100,
            Some(p) => p * total / 100,
            None => default,
        },
        _ => default,
    }
}

fn step_deployment(
    inner: &mut Inner,
    res: &ResourceInfo,
    key: &Key,
    obj: &Value,
    sim: &mut Sim,
) -> bool {
    let now = ops::now_string();
    let name = key.2.clone();
    let ns = key.1.clone();
    let generation = int(obj, "/metadata/generation", 1);
    let r = int(obj, "/spec/replicas", 1);
    let no_template = json!({});
    let template = obj.pointer("/spec/template").unwrap_or(&no_template);
    let hash = template_hash(template);
    let rs_name = format!("{name}-{hash}");
    let mut status = obj.get("status").cloned().unwrap_or(json!({}));
    let mut conds: Vec<Value> = status
        .get("conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let Some(rs_res) = inner.resource("apps", "v1", "replicasets").cloned() else {
        return false;
    };
    let uid = uid_of(obj).to_string();
    let progress_deadline = int(obj, "/spec/progressDeadlineSeconds", 600);
    // Observe a new template: create (or adopt) its ReplicaSet, old pods become "old".
    if sim.hash != hash {
        let old_pods = sim.created + sim.old;
        let owned: Vec<Arc<Value>> = inner
            .range(&rs_res.storage, Some(&ns))
            .filter(|(_, rs)| owned_by(rs, &uid))
            .map(|(_, rs)| rs.clone())
            .collect();
        let max_rev = owned
            .iter()
            .filter_map(|rs| {
                annotation(rs, "deployment.kubernetes.io/revision")
                    .and_then(|r| r.parse::<i64>().ok())
            })
            .max()
            .unwrap_or(0);
        let existing = owned
            .iter()
            .find(|rs| {
                rs.pointer("/metadata/name").and_then(Value::as_str) == Some(rs_name.as_str())
            })
            .cloned();
        let revision = max_rev + 1;
        let created_new = existing.is_none();
        let mut labels = template
            .pointer("/metadata/labels")
            .cloned()
            .unwrap_or(json!({}));
        labels["pod-template-hash"] = json!(hash);
        let mut selector = obj.pointer("/spec/selector").cloned().unwrap_or(json!({}));
        selector["matchLabels"]["pod-template-hash"] = json!(hash);
        let mut rs_tpl = template.clone();
        rs_tpl["metadata"]["labels"] = labels.clone();
        let rs_key = ops::key(&rs_res, Some(&ns), &rs_name);
        if created_new {
            let rs = json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {
                    "name": rs_name, "namespace": ns, "labels": labels,
                    "annotations": {"deployment.kubernetes.io/revision": revision.to_string(), "deployment.kubernetes.io/desired-replicas": r.to_string(), "deployment.kubernetes.io/max-replicas": (r + percent_or_int(obj.pointer("/spec/strategy/rollingUpdate/maxSurge"), r, true, 1)).to_string()},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name, "uid": uid, "controller": true, "blockOwnerDeletion": true}],
                },
                "spec": {"replicas": 0, "selector": selector, "template": rs_tpl},
            });
            if ops::create(inner, &rs_res, Some(&ns), rs, &ctx()).is_err() {
                return false;
            }
        } else {
            write_main(inner, &rs_res, &rs_key, |rs| {
                rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] =
                    json!(revision.to_string());
            });
        }
        let existing_pods = existing
            .as_ref()
            .map(|rs| int(rs, "/status/replicas", 0))
            .unwrap_or(0);
        *sim = Sim {
            hash: hash.clone(),
            created: existing_pods,
            ready: existing_pods,
            old: (old_pods - existing_pods).max(0),
            last_progress: Some(chrono::Utc::now()),
        };
        write_main(inner, res, key, |d| {
            d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] =
                json!(revision.to_string());
        });
        let reason = if created_new {
            "NewReplicaSetCreated"
        } else {
            "FoundNewReplicaSet"
        };
        let message = if created_new {
            format!("Created new replica set \"{rs_name}\"")
        } else {
            format!("Found new replica set \"{rs_name}\"")
        };
        set_condition(
            &mut conds,
            "Progressing",
            "True",
            reason,
            &message,
            &now,
            true,
        );
    } else if obj.pointer("/spec/paused") == Some(&json!(true)) {
        let already = conds.iter().any(|c| {
            c.get("reason") == Some(&json!("DeploymentPaused"))
                || c.get("reason") == Some(&json!("ProgressDeadlineExceeded"))
        });
        if !already {
            set_condition(
                &mut conds,
                "Progressing",
                "Unknown",
                "DeploymentPaused",
                "Deployment is paused",
                &now,
                true,
            );
        }
    } else {
        let deadline_passed = sim.last_progress.is_some_and(|t| {
            chrono::Utc::now().signed_duration_since(t).num_seconds() >= progress_deadline
        });
        let timed_out = conds
            .iter()
            .any(|c| c.get("reason") == Some(&json!("ProgressDeadlineExceeded")));
        let done = sim.created == r && sim.ready == r && sim.old == 0;
        let mut progressed = false;
        match outcome(obj) {
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
                    set_condition(
                        &mut conds,
                        "Progressing",
                        "False",
                        "ProgressDeadlineExceeded",
                        &format!("ReplicaSet \"{rs_name}\" has timed out progressing."),
                        &now,
                        true,
                    );
                }
            }
            Outcome::CrashLoop | Outcome::ImagePull if sim.created < r => {
                // Pods are created but never become ready.
                sim.created += 1;
                progressed = true;
            }
            Outcome::Stall | Outcome::CrashLoop | Outcome::ImagePull => {
                if deadline_passed {
                    set_condition(
                        &mut conds,
                        "Progressing",
                        "False",
                        "ProgressDeadlineExceeded",
                        &format!("ReplicaSet \"{rs_name}\" has timed out progressing."),
                        &now,
                        true,
                    );
                }
            }
        }
        if progressed {
            sim.last_progress = Some(chrono::Utc::now());
            let now_done = sim.created == r && sim.ready == r && sim.old == 0;
            if now_done {
                set_condition(
                    &mut conds,
                    "Progressing",
                    "True",
                    "NewReplicaSetAvailable",
                    &format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
                    &now,
                    true,
                );
            } else {
                set_condition(
                    &mut conds,
                    "Progressing",
                    "True",
                    "ReplicaSetUpdated",
                    &format!("ReplicaSet \"{rs_name}\" is progressing."),
                    &now,
                    true,
                );
            }
        } else if done && !timed_out {
            set_condition(
                &mut conds,
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                &format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
                &now,
                true,
            );
        }
    }
    // ReplicaSets: the new one holds `created`, older ones shrink to `old` in total.
    let rs_key = ops::key(&rs_res, Some(&ns), &rs_name);
    let mut wrote = false;
    wrote |= write_main(inner, &rs_res, &rs_key, |rs| {
        rs["spec"]["replicas"] = json!(r)
    });
    let rs_status = json!({"replicas": sim.created, "fullyLabeledReplicas": sim.created, "readyReplicas": sim.ready, "availableReplicas": sim.ready, "observedGeneration": inner.get(&rs_key).map(|o| int(o, "/metadata/generation", 1)).unwrap_or(1)});
    wrote |= write_status(
        inner,
        &rs_res,
        &rs_key,
        strip_zeros(
            rs_status,
            &["fullyLabeledReplicas", "readyReplicas", "availableReplicas"],
        ),
    );
    let failing = match outcome(obj) {
        Outcome::CrashLoop => Some(PodTrouble::CrashLoop),
        Outcome::ImagePull => Some(PodTrouble::ImagePull),
        _ => None,
    };
    wrote |= sync_pods(inner, &rs_key, sim.created, sim.ready, failing);
    let mut remaining_old = sim.old;
    let olds: Vec<Key> = inner
        .range(&rs_res.storage, Some(&ns))
        .filter(|(k, v)| k.2 != rs_name && owned_by(v, &uid))
        .map(|(k, _)| k.clone())
        .collect();
    for k in olds {
        let n = remaining_old;
        remaining_old = 0;
        wrote |= write_main(inner, &rs_res, &k, |rs| rs["spec"]["replicas"] = json!(n));
        wrote |= sync_pods(inner, &k, n, n, None);
        let gen_rs = inner
            .get(&k)
            .map(|o| int(o, "/metadata/generation", 1))
            .unwrap_or(1);
        wrote |= write_status(
            inner,
            &rs_res,
            &k,
            strip_zeros(
                json!({"replicas": n, "fullyLabeledReplicas": n, "readyReplicas": n, "availableReplicas": n, "observedGeneration": gen_rs}),
                &["fullyLabeledReplicas", "readyReplicas", "availableReplicas"],
            ),
        );
    }
    let total = sim.created + sim.old;
    let available = sim.ready + sim.old;
    let max_unavailable = percent_or_int(
        obj.pointer("/spec/strategy/rollingUpdate/maxUnavailable"),
        r,
        false,
        0,
    );
    if available >= r - max_unavailable {
        set_condition(
            &mut conds,
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
            &now,
            true,
        );
    } else {
        set_condition(
            &mut conds,
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
            &now,
            true,
        );
    }
    // Real order: Available first, then Progressing.
    conds.sort_by_key(|c| c.get("type") != Some(&json!("Available")));
    status = json!({
        "observedGeneration": generation,
        "replicas": total,
        "updatedReplicas": sim.created,
        "readyReplicas": available,
        "availableReplicas": available,
        "unavailableReplicas": (r - available).max(0),
        "conditions": conds,
    });
    let status = strip_zeros(
        status,
        &[
            "replicas",
            "updatedReplicas",
            "readyReplicas",
            "availableReplicas",
            "unavailableReplicas",
        ],
    );
    wrote |= write_status(inner, res, key, status);
    wrote
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum PodTrouble {
    CrashLoop,
    ImagePull,
}

/// The ReplicaSet controller and kubelet, in short: keep `total` pods owned by the ReplicaSet
/// at `rs_key`, the first `ready` of them Ready, the rest starting (or failing as `trouble`).
fn sync_pods(
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
        .range(&pod_res.storage, Some(&ns))
        .filter(|(_, p)| owned_by(p, &rs_uid) && p.pointer("/metadata/deletionTimestamp").is_none())
        .map(|(k, p)| (k.clone(), p.clone()))
        .collect();
    pods.sort_by(|a, b| {
        let ts = |p: &Value| {
            p.pointer("/metadata/creationTimestamp")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        ts(&a.1).cmp(&ts(&b.1)).then(a.0.cmp(&b.0))
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
                pods.push((ops::key(&pod_res, Some(&ns), &name), Arc::new(w.obj)));
                wrote = true;
            }
            Err(_) => break,
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

/// Omit zero counters, as the real controllers' `omitempty` fields do.
fn strip_zeros(mut v: Value, fields: &[&str]) -> Value {
    if let Some(m) = v.as_object_mut() {
        for f in fields {
            if m.get(*f) == Some(&json!(0)) {
                m.remove(*f);
            }
        }
    }
    v
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
        .range(&cr_res.storage, Some(ns))
        .filter(|(_, r)| owned_by(r, &uid))
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
    let _ = ops::create(inner, &cr_res, Some(ns), cr, &ctx());
    revision
}

fn step_statefulset(
    inner: &mut Inner,
    res: &ResourceInfo,
    key: &Key,
    obj: &Value,
    sim: &mut Sim,
) -> bool {
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
        let pods = sim.created + sim.old;
        let pods = if first && pods == 0 {
            int(&status, "/replicas", 0)
        } else {
            pods
        };
        *sim = Sim {
            hash: hash.clone(),
            created: 0,
            ready: 0,
            old: pods,
            last_progress: None,
        };
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

fn step_daemonset(
    inner: &mut Inner,
    res: &ResourceInfo,
    key: &Key,
    obj: &Value,
    sim: &mut Sim,
) -> bool {
    let ns = key.1.clone();
    let desired = annotation(obj, NODES_ANNOTATION)
        .and_then(|n| n.parse::<i64>().ok())
        .unwrap_or(1);
    let template = obj.pointer("/spec/template").cloned().unwrap_or(json!({}));
    let hash = template_hash(&template);
    if sim.hash != hash {
        ensure_revision(inner, obj, "DaemonSet", &ns, &hash);
        let pods = sim.created + sim.old;
        *sim = Sim {
            hash,
            created: 0,
            ready: 0,
            old: pods,
            last_progress: None,
        };
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
