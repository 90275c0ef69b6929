//! How the simulated controllers write: through the verbs, as `kube-controller-manager`, and
//! only when something changes; the status helpers every workload kind shares.

use crate::ops::{self, WriteCtx};
use crate::resources::ResourceInfo;
use crate::store::{Inner, Key};
use serde_json::{Value, json};

const MANAGER: &str = "kube-controller-manager";

pub fn ctx() -> WriteCtx {
    WriteCtx {
        now: ops::now_string(),
        manager: MANAGER.into(),
        ..Default::default()
    }
}

/// Write `status` through the status subresource; whether anything was written.
/// Only the status is compared and handed on (the status subresource takes nothing else from
/// the candidate): most of the simulator's status writes are no-ops, and a copy of the whole
/// object for each was a visible part of its CPU.
pub fn write_status(inner: &mut Inner, res: &ResourceInfo, key: &Key, status: Value) -> bool {
    let Some(old) = inner.get(key).cloned() else {
        return false;
    };
    if old.get("status") == Some(&status) {
        return false;
    }
    commit(
        inner,
        res,
        key,
        Some("status"),
        old,
        json!({"status": status}),
    )
}

/// Edit the object at `key` (not its status); whether anything was written. An edit is
/// skipped when it changes nothing.
pub fn write_main(
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
    commit(inner, res, key, None, old, cand)
}

/// Send a changed candidate through the update path; whether it was stored. A rejected one is
/// logged: the simulator's writes are its own, so a rejection is a bug in it, not in the
/// client under test.
fn commit(
    inner: &mut Inner,
    res: &ResourceInfo,
    key: &Key,
    subresource: Option<&str>,
    old: std::sync::Arc<Value>,
    cand: Value,
) -> bool {
    let before = inner.rv;
    let written = ops::finish_update(
        inner,
        res,
        key.clone(),
        old,
        cand,
        subresource,
        &ctx(),
        None,
    );
    if let Err(e) = written {
        let (_, ns, name) = key;
        tracing::warn!(kind = %res.kind, %ns, %name, ?subresource, %e, "simulated controller write rejected");
    }
    inner.rv != before
}

/// Set a condition; `lastTransitionTime` moves only when `status` changes.
pub fn set_condition(
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

pub fn int(obj: &Value, ptr: &str, default: i64) -> i64 {
    obj.pointer(ptr).and_then(Value::as_i64).unwrap_or(default)
}

/// An `intstr` (`3` or `"25%"` of `total`).
pub fn percent_or_int(v: Option<&Value>, total: i64, round_up: bool, default: i64) -> i64 {
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

/// Omit zero counters, as the real controllers' `omitempty` fields do.
pub fn strip_zeros(mut v: Value, fields: &[&str]) -> Value {
    if let Some(m) = v.as_object_mut() {
        for f in fields {
            if m.get(*f) == Some(&json!(0)) {
                m.remove(*f);
            }
        }
    }
    v
}
