//! Field ownership (`metadata.managedFields`, FieldsV1) and server-side apply (spec §6.4).
//!
//! A simplified field-set implementation: a set is a `BTreeSet` of paths whose elements are
//! FieldsV1 keys (`f:spec`, `k:{"name":"a"}`, `v:"x"`, `.`). Leaves are scalars, empty maps and
//! atomic lists; keyed lists are owned per element.

use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

pub type FieldPath = Vec<String>;
pub type FieldSet = BTreeSet<FieldPath>;

/// How a list is merged and owned.
#[derive(Debug, Clone, PartialEq)]
pub enum ListType {
    Atomic,
    Set,
    Map(Vec<String>),
}

/// Resolves the list type of a field, given the field names from the root (array levels skipped).
pub trait ListTypes {
    fn list_type(&self, names: &[String]) -> ListType;
}

/// Built-in kinds: patchMergeKeys by field name.
pub struct BuiltinListTypes;
impl ListTypes for BuiltinListTypes {
    fn list_type(&self, names: &[String]) -> ListType {
        let last = names.last().map(String::as_str).unwrap_or("");
        if last == "finalizers" {
            return ListType::Set;
        }
        match crate::patch::builtin_list_key(last) {
            Some(k) => ListType::Map(vec![k.to_string()]),
            None => ListType::Atomic,
        }
    }
}

/// Custom resources: `x-kubernetes-list-type` markers of the CRD schema; metadata like built-ins.
pub struct SchemaListTypes<'a>(pub Option<&'a Value>);
impl ListTypes for SchemaListTypes<'_> {
    fn list_type(&self, names: &[String]) -> ListType {
        if names.first().map(String::as_str) == Some("metadata") {
            return BuiltinListTypes.list_type(names);
        }
        let Some(mut node) = self.0 else {
            return ListType::Atomic;
        };
        for (i, n) in names.iter().enumerate() {
            let Some(next) = node.get("properties").and_then(|p| p.get(n)) else {
                return ListType::Atomic;
            };
            node = next;
            if i + 1 < names.len() && node.get("type").and_then(Value::as_str) == Some("array") {
                match node.get("items") {
                    Some(items) => node = items,
                    None => return ListType::Atomic,
                }
            }
        }
        match node.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("map") => ListType::Map(
                node.get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|k| k.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            Some("set") => ListType::Set,
            _ => ListType::Atomic,
        }
    }
}

/// Which part of the object a write may own.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scope {
    /// Everything but `.status` (main resource of a kind with a status subresource).
    MainWithoutStatus,
    /// Everything (main resource of a kind without a status subresource).
    All,
    /// `.status` only (the status subresource).
    Status,
}

impl Scope {
    /// Whether a write in this scope may own the top-level field `k`.
    fn owns(self, k: &str) -> bool {
        match k {
            "apiVersion" | "kind" => false,
            "status" => self != Scope::MainWithoutStatus,
            _ => self != Scope::Status,
        }
    }
}

/// The metadata fields that have owners (the rest is the server's).
const OWNED_METADATA: [&str; 4] = ["labels", "annotations", "finalizers", "ownerReferences"];

fn key_of(elem: &Value, keys: &[String]) -> Option<String> {
    let mut m = Map::new();
    for k in keys {
        m.insert(k.clone(), elem.get(k)?.clone());
    }
    Some(format!("k:{}", Value::Object(m)))
}

/// The fields set in `obj`.
pub fn fields_of(obj: &Value, scope: Scope, lt: &dyn ListTypes) -> FieldSet {
    let mut out = FieldSet::new();
    let Some(m) = obj.as_object() else { return out };
    for (k, v) in m {
        if !scope.owns(k) {
            continue;
        }
        if k == "metadata" {
            for mk in OWNED_METADATA {
                if let Some(mv) = v.get(mk) {
                    let mut path = vec!["f:metadata".to_string(), format!("f:{mk}")];
                    let mut names = vec!["metadata".to_string(), mk.to_string()];
                    walk(mv, &mut path, &mut names, lt, &mut out);
                }
            }
            continue;
        }
        let mut path = vec![format!("f:{k}")];
        let mut names = vec![k.clone()];
        walk(v, &mut path, &mut names, lt, &mut out);
    }
    out
}

fn walk(
    v: &Value,
    path: &mut FieldPath,
    names: &mut Vec<String>,
    lt: &dyn ListTypes,
    out: &mut FieldSet,
) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, c) in m {
                path.push(format!("f:{k}"));
                names.push(k.clone());
                walk(c, path, names, lt, out);
                names.pop();
                path.pop();
            }
        }
        Value::Array(a) if !a.is_empty() => match lt.list_type(names) {
            ListType::Map(keys)
                if !keys.is_empty() && a.iter().all(|e| key_of(e, &keys).is_some()) =>
            {
                for e in a {
                    let Some(k) = key_of(e, &keys) else { continue };
                    path.push(k);
                    path.push(".".into());
                    out.insert(path.clone());
                    path.pop();
                    if let Value::Object(em) = e {
                        for (ek, ev) in em {
                            path.push(format!("f:{ek}"));
                            names.push(ek.clone());
                            walk(ev, path, names, lt, out);
                            names.pop();
                            path.pop();
                        }
                    }
                    path.pop();
                }
            }
            ListType::Set => {
                for e in a {
                    path.push(format!("v:{e}"));
                    out.insert(path.clone());
                    path.pop();
                }
            }
            _ => {
                out.insert(path.clone());
            }
        },
        _ => {
            out.insert(path.clone());
        }
    }
}

/// The value at a field path, if present.
pub fn get_at<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = obj;
    for seg in path {
        cur = step(cur, seg)?;
    }
    Some(cur)
}

fn step<'a>(cur: &'a Value, seg: &str) -> Option<&'a Value> {
    if seg == "." {
        return Some(cur);
    }
    if let Some(f) = seg.strip_prefix("f:") {
        return cur.get(f);
    }
    if let Some(k) = seg.strip_prefix("k:") {
        let want: Map<String, Value> = serde_json::from_str(k).ok()?;
        return cur
            .as_array()?
            .iter()
            .find(|e| want.iter().all(|(wk, wv)| e.get(wk) == Some(wv)));
    }
    if let Some(v) = seg.strip_prefix("v:") {
        let want: Value = serde_json::from_str(v).ok()?;
        return cur.as_array()?.iter().find(|e| **e == want);
    }
    None
}

/// Remove the field at `path` (for `.`, the keyed element; for `v:`, the set member).
pub fn remove_at(obj: &mut Value, path: &[String]) {
    let (path, elem) = match path.last().map(String::as_str) {
        Some(".") => (&path[..path.len() - 1], true),
        _ => (path, false),
    };
    let _ = elem;
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for seg in parent_path {
        let next = if let Some(f) = seg.strip_prefix("f:") {
            cur.get_mut(f)
        } else if let Some(k) = seg.strip_prefix("k:") {
            let Ok(want) = serde_json::from_str::<Map<String, Value>>(k) else {
                return;
            };
            cur.as_array_mut().and_then(|a| {
                a.iter_mut()
                    .find(|e| want.iter().all(|(wk, wv)| e.get(wk) == Some(wv)))
            })
        } else {
            None
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Some(f) = last.strip_prefix("f:") {
        if let Some(m) = cur.as_object_mut() {
            m.remove(f);
        }
    } else if let Some(k) = last.strip_prefix("k:") {
        if let (Ok(want), Some(a)) = (
            serde_json::from_str::<Map<String, Value>>(k),
            cur.as_array_mut(),
        ) {
            a.retain(|e| !want.iter().all(|(wk, wv)| e.get(wk) == Some(wv)));
        }
    } else if let Some(v) = last.strip_prefix("v:")
        && let (Ok(want), Some(a)) = (serde_json::from_str::<Value>(v), cur.as_array_mut())
    {
        a.retain(|e| *e != want);
    }
}

/// FieldsV1 JSON of a set.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut cur = &mut root;
        for seg in path {
            let entry = cur
                .entry(seg.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            match entry {
                Value::Object(m) => cur = m,
                _ => break,
            }
        }
    }
    Value::Object(root)
}

/// Parse FieldsV1 JSON into a set.
pub fn from_fields_v1(v: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    let mut path = Vec::new();
    parse_v1(v, &mut path, &mut out);
    out
}

fn parse_v1(v: &Value, path: &mut FieldPath, out: &mut FieldSet) {
    match v.as_object() {
        Some(m) if !m.is_empty() => {
            for (k, c) in m {
                path.push(k.clone());
                parse_v1(c, path, out);
                path.pop();
            }
        }
        _ => {
            if !path.is_empty() {
                out.insert(path.clone());
            }
        }
    }
}

/// Merge an applied configuration into the live object (maps recursively, keyed lists per
/// element, set lists by value, everything else replaced).
pub fn merge_applied(
    live: &mut Value,
    applied: &Value,
    names: &mut Vec<String>,
    lt: &dyn ListTypes,
) {
    match (live.as_object_mut(), applied) {
        (Some(l), Value::Object(a)) => {
            for (k, av) in a {
                names.push(k.clone());
                match l.get_mut(k) {
                    Some(lv) => merge_applied(lv, av, names, lt),
                    None => {
                        l.insert(k.clone(), av.clone());
                    }
                }
                names.pop();
            }
        }
        _ => match (live.as_array_mut(), applied, lt.list_type(names)) {
            (Some(l), Value::Array(a), ListType::Map(keys)) if !keys.is_empty() => {
                for ae in a {
                    let Some(k) = key_of(ae, &keys) else {
                        l.push(ae.clone());
                        continue;
                    };
                    match l
                        .iter_mut()
                        .find(|le| key_of(le, &keys).as_deref() == Some(k.as_str()))
                    {
                        Some(le) => merge_applied(le, ae, names, lt),
                        None => l.push(ae.clone()),
                    }
                }
            }
            (Some(l), Value::Array(a), ListType::Set) => {
                for ae in a {
                    if !l.contains(ae) {
                        l.push(ae.clone());
                    }
                }
            }
            _ => *live = applied.clone(),
        },
    }
}

/// One `managedFields` entry, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: Option<String>,
    pub set: FieldSet,
}

pub fn parse_entries(obj: &Value) -> Vec<Entry> {
    let Some(a) = obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return vec![];
    };
    a.iter()
        .filter_map(|e| {
            Some(Entry {
                manager: e.get("manager")?.as_str()?.to_string(),
                operation: e
                    .get("operation")
                    .and_then(Value::as_str)
                    .unwrap_or("Update")
                    .to_string(),
                api_version: e
                    .get("apiVersion")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                time: e
                    .get("time")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                subresource: e
                    .get("subresource")
                    .and_then(Value::as_str)
                    .map(String::from),
                set: e.get("fieldsV1").map(from_fields_v1).unwrap_or_default(),
            })
        })
        .collect()
}

pub fn render_entries(entries: &[Entry]) -> Value {
    Value::Array(
        entries
            .iter()
            .filter(|e| !e.set.is_empty())
            .map(|e| {
                let mut v = json!({
                    "manager": e.manager, "operation": e.operation, "apiVersion": e.api_version,
                    "time": e.time, "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(&e.set),
                });
                if let Some(s) = &e.subresource {
                    v["subresource"] = json!(s);
                }
                v
            })
            .collect(),
    )
}

/// A write's identity for ownership: manager, operation, subresource.
pub struct Writer<'a> {
    pub manager: &'a str,
    pub api_version: &'a str,
    pub subresource: Option<&'a str>,
    pub now: &'a str,
}

fn upsert<'a>(entries: &'a mut Vec<Entry>, w: &Writer, op: &str) -> &'a mut Entry {
    let idx = entries.iter().position(|e| {
        e.manager == w.manager && e.operation == op && e.subresource.as_deref() == w.subresource
    });
    match idx {
        Some(i) => &mut entries[i],
        None => {
            entries.push(Entry {
                manager: w.manager.to_string(),
                operation: op.to_string(),
                api_version: w.api_version.to_string(),
                time: w.now.to_string(),
                subresource: w.subresource.map(String::from),
                set: FieldSet::new(),
            });
            let last = entries.len() - 1;
            &mut entries[last]
        }
    }
}

/// The fields an update changes: those `new` sets to another value than `old` (a keyed list
/// element only when it is new), and those only `old` sets. The same as comparing
/// [`fields_of`] of both path by path, but a subtree equal in both is not walked: a status
/// write of a workload otherwise walks the whole status twice, and the rollout simulator
/// makes thousands a second.
fn changed_fields(
    old: &Value,
    new: &Value,
    scope: Scope,
    lt: &dyn ListTypes,
) -> (FieldSet, FieldSet) {
    let mut diff = Diff {
        old,
        new,
        lt,
        changed: FieldSet::new(),
        removed: FieldSet::new(),
    };
    let keys: BTreeSet<&String> = [old, new]
        .iter()
        .filter_map(|v| v.as_object())
        .flat_map(|m| m.keys())
        .collect();
    for k in keys {
        if !scope.owns(k) {
            continue;
        }
        if k == "metadata" {
            for mk in OWNED_METADATA {
                let o = old.get("metadata").and_then(|m| m.get(mk));
                let n = new.get("metadata").and_then(|m| m.get(mk));
                let mut path = vec!["f:metadata".to_string(), format!("f:{mk}")];
                let mut names = vec!["metadata".to_string(), mk.to_string()];
                diff.at(o, n, &mut path, &mut names);
            }
            continue;
        }
        let mut path = vec![format!("f:{k}")];
        let mut names = vec![k.clone()];
        diff.at(old.get(k), new.get(k), &mut path, &mut names);
    }
    (diff.changed, diff.removed)
}

/// The walk of [`changed_fields`].
struct Diff<'a> {
    old: &'a Value,
    new: &'a Value,
    lt: &'a dyn ListTypes,
    changed: FieldSet,
    removed: FieldSet,
}

impl Diff<'_> {
    /// The subtree at `path`, `o` in the old object and `n` in the new one.
    fn at(
        &mut self,
        o: Option<&Value>,
        n: Option<&Value>,
        path: &mut FieldPath,
        names: &mut Vec<String>,
    ) {
        if o == n {
            return;
        }
        match (o, n) {
            // Both maps with fields: a map's fields are its members' (see `walk`).
            (Some(Value::Object(om)), Some(Value::Object(nm)))
                if !om.is_empty() && !nm.is_empty() =>
            {
                let keys: BTreeSet<&String> = om.keys().chain(nm.keys()).collect();
                for k in keys {
                    path.push(format!("f:{k}"));
                    names.push(k.clone());
                    self.at(om.get(k), nm.get(k), path, names);
                    names.pop();
                    path.pop();
                }
            }
            _ => {
                let mut old_set = FieldSet::new();
                let mut new_set = FieldSet::new();
                if let Some(o) = o {
                    walk(
                        o,
                        &mut path.clone(),
                        &mut names.clone(),
                        self.lt,
                        &mut old_set,
                    );
                }
                if let Some(n) = n {
                    walk(
                        n,
                        &mut path.clone(),
                        &mut names.clone(),
                        self.lt,
                        &mut new_set,
                    );
                }
                let (old, new) = (self.old, self.new);
                self.changed.extend(
                    new_set
                        .iter()
                        .filter(|p| {
                            p.last().map(String::as_str) != Some(".") || !old_set.contains(*p)
                        })
                        .filter(|p| get_at(old, p) != get_at(new, p))
                        .cloned(),
                );
                self.removed.extend(old_set.difference(&new_set).cloned());
            }
        }
    }
}

/// Record an `Update` operation (create/update/patch): the writer takes the fields it changed;
/// other managers lose them; removed fields leave every set.
pub fn record_update(
    old: &Value,
    new: &Value,
    scope: Scope,
    lt: &dyn ListTypes,
    w: &Writer,
    entries: &mut Vec<Entry>,
) {
    let (changed, removed) = changed_fields(old, new, scope, lt);
    if changed.is_empty() && removed.is_empty() {
        return;
    }
    for e in entries.iter_mut() {
        e.set
            .retain(|p| !changed.contains(p) && !removed.contains(p));
    }
    let e = upsert(entries, w, "Update");
    e.set.extend(changed);
    e.time = w.now.to_string();
    e.api_version = w.api_version.to_string();
    entries.retain(|e| !e.set.is_empty());
}

/// One SSA conflict: the other manager and the field (dotted, e.g. `.spec.replicas`).
#[derive(Debug, Clone)]
pub struct Conflict {
    pub manager: String,
    /// `Apply` or `Update`: the message names the version and time of an `Update` only.
    pub operation: String,
    pub time: String,
    pub api_version: String,
    pub subresource: Option<String>,
    pub field: String,
    pub path: FieldPath,
}

/// Render a field path the way the apply conflict message does (`.spec.replicas`,
/// `.spec.containers[name="a"].image`).
pub fn dotted(path: &[String]) -> String {
    let mut s = String::new();
    for seg in path {
        if let Some(f) = seg.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = seg.strip_prefix("k:") {
            if let Ok(m) = serde_json::from_str::<Map<String, Value>>(k) {
                let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
                s.push_str(&format!("[{}]", parts.join(",")));
            }
        } else if let Some(v) = seg.strip_prefix("v:") {
            s.push_str(&format!("[{v}]"));
        }
    }
    s
}

/// Server-side apply of `applied` onto `live`. Returns the merged object and entries, or the
/// conflicts when `force` is false.
pub fn apply(
    live: &Value,
    applied: &Value,
    scope: Scope,
    lt: &dyn ListTypes,
    w: &Writer,
    force: bool,
    mut entries: Vec<Entry>,
) -> Result<(Value, Vec<Entry>), Vec<Conflict>> {
    let applied_set = fields_of(applied, scope, lt);
    let mut conflicts = Vec::new();
    for e in entries.iter_mut() {
        if e.manager == w.manager
            && e.operation == "Apply"
            && e.subresource.as_deref() == w.subresource
        {
            continue;
        }
        if e.manager == w.manager {
            // The applier's own Update entry: ownership moves silently.
            e.set.retain(|p| !applied_set.contains(p));
            continue;
        }
        let overlapping: Vec<FieldPath> = e
            .set
            .iter()
            .filter(|p| applied_set.contains(*p) && p.last().map(String::as_str) != Some("."))
            .filter(|p| get_at(live, p) != get_at(applied, p))
            .cloned()
            .collect();
        if force {
            e.set.retain(|p| !overlapping.contains(p));
        } else {
            conflicts.extend(overlapping.iter().map(|p| Conflict {
                manager: e.manager.clone(),
                operation: e.operation.clone(),
                time: e.time.clone(),
                api_version: e.api_version.clone(),
                subresource: e.subresource.clone(),
                field: dotted(p),
                path: p.clone(),
            }));
        }
    }
    if !conflicts.is_empty() {
        return Err(conflicts);
    }
    let previous: FieldSet = entries
        .iter()
        .find(|e| {
            e.manager == w.manager
                && e.operation == "Apply"
                && e.subresource.as_deref() == w.subresource
        })
        .map(|e| e.set.clone())
        .unwrap_or_default();
    let others: FieldSet = entries
        .iter()
        .filter(|e| {
            !(e.manager == w.manager
                && e.operation == "Apply"
                && e.subresource.as_deref() == w.subresource)
        })
        .flat_map(|e| e.set.iter().cloned())
        .collect();
    let mut result = live.clone();
    // Fields this manager applied before but no longer: removed unless someone else owns them.
    for p in previous.difference(&applied_set) {
        if !others.contains(p) {
            remove_at(&mut result, p);
        }
    }
    let mut applied_body = applied.clone();
    if let Some(m) = applied_body.as_object_mut() {
        match scope {
            Scope::Status => m.retain(|k, _| k == "status"),
            Scope::MainWithoutStatus => {
                m.remove("status");
            }
            Scope::All => {}
        }
        if let Some(md) = m.get_mut("metadata").and_then(Value::as_object_mut) {
            md.retain(|k, _| {
                matches!(
                    k.as_str(),
                    "labels" | "annotations" | "finalizers" | "ownerReferences"
                )
            });
        }
    }
    merge_applied(&mut result, &applied_body, &mut Vec::new(), lt);
    let changed_set = previous != applied_set;
    let e = upsert(&mut entries, w, "Apply");
    if changed_set || e.set.is_empty() {
        e.time = w.now.to_string();
    }
    e.set = applied_set;
    e.api_version = w.api_version.to_string();
    entries.retain(|e| !e.set.is_empty());
    Ok((result, entries))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// `changed_fields` against its definition: every field of both objects compared path by
    /// path.
    #[test]
    fn changed_fields_walks_only_what_differs_and_finds_the_same() {
        let base = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "a", "labels": {"app": "a"}, "finalizers": ["x"],
                "annotations": {"k": "v"}, "resourceVersion": "1"},
            "spec": {"replicas": 1, "template": {"metadata": {"labels": {"app": "a"}},
                "spec": {"containers": [{"name": "app", "image": "1", "ports": [{"containerPort": 80}]}]}},
                "empty": {}},
            "status": {"replicas": 1, "conditions": [{"type": "Available", "status": "True"}]},
        });
        let edit = |f: &dyn Fn(&mut Value)| {
            let mut v = base.clone();
            f(&mut v);
            v
        };
        let cases: Vec<(&str, Value)> = vec![
            ("nothing", base.clone()),
            (
                "a status counter",
                edit(&|v| v["status"]["replicas"] = json!(2)),
            ),
            (
                "a condition",
                edit(&|v| v["status"]["conditions"][0]["status"] = json!("False")),
            ),
            (
                "status gone",
                edit(&|v| {
                    v.as_object_mut().unwrap().remove("status");
                }),
            ),
            (
                "an image in a keyed list",
                edit(&|v| v["spec"]["template"]["spec"]["containers"][0]["image"] = json!("2")),
            ),
            (
                "a container added",
                edit(&|v| {
                    v["spec"]["template"]["spec"]["containers"]
                        .as_array_mut()
                        .unwrap()
                        .push(json!({"name": "b", "image": "3"}))
                }),
            ),
            (
                "a container removed",
                edit(&|v| v["spec"]["template"]["spec"]["containers"] = json!([])),
            ),
            (
                "a label",
                edit(&|v| v["metadata"]["labels"]["tier"] = json!("web")),
            ),
            (
                "a finalizer",
                edit(&|v| v["metadata"]["finalizers"] = json!(["x", "y"])),
            ),
            (
                "metadata outside the owned fields",
                edit(&|v| v["metadata"]["resourceVersion"] = json!("2")),
            ),
            (
                "an empty map filled",
                edit(&|v| v["spec"]["empty"] = json!({"a": 1})),
            ),
            (
                "a map emptied",
                edit(&|v| v["spec"]["template"]["metadata"] = json!({})),
            ),
            (
                "a scalar becomes a map",
                edit(&|v| v["spec"]["replicas"] = json!({"n": 1})),
            ),
            (
                "a new top-level field",
                edit(&|v| v["data"] = json!({"x": "y"})),
            ),
        ];
        for scope in [Scope::All, Scope::MainWithoutStatus, Scope::Status] {
            for (name, new) in &cases {
                for (old, new) in [(&base, new), (new, &base)] {
                    let old_set = fields_of(old, scope, &BuiltinListTypes);
                    let new_set = fields_of(new, scope, &BuiltinListTypes);
                    let want_changed: FieldSet = new_set
                        .iter()
                        .filter(|p| {
                            p.last().map(String::as_str) != Some(".") || !old_set.contains(*p)
                        })
                        .filter(|p| get_at(old, p) != get_at(new, p))
                        .cloned()
                        .collect();
                    let want_removed: FieldSet = old_set.difference(&new_set).cloned().collect();
                    let got = changed_fields(old, new, scope, &BuiltinListTypes);
                    assert_eq!(got, (want_changed, want_removed), "{name}, {scope:?}");
                }
            }
        }
    }

    fn w<'a>(m: &'a str) -> Writer<'a> {
        Writer {
            manager: m,
            api_version: "v1",
            subresource: None,
            now: "2025-01-01T00:00:00Z",
        }
    }

    #[test]
    fn apply_conflicts_and_force() {
        let live = json!({"spec": {"replicas": 1}});
        let (live, entries) = apply(
            &json!({}),
            &live,
            Scope::All,
            &BuiltinListTypes,
            &w("a"),
            false,
            vec![],
        )
        .unwrap();
        let err = apply(
            &live,
            &json!({"spec": {"replicas": 2}}),
            Scope::All,
            &BuiltinListTypes,
            &w("b"),
            false,
            entries.clone(),
        )
        .unwrap_err();
        assert_eq!(err[0].field, ".spec.replicas");
        // Same value: co-ownership, no conflict.
        apply(
            &live,
            &json!({"spec": {"replicas": 1}}),
            Scope::All,
            &BuiltinListTypes,
            &w("b"),
            false,
            entries.clone(),
        )
        .unwrap();
        let (obj, entries) = apply(
            &live,
            &json!({"spec": {"replicas": 2}}),
            Scope::All,
            &BuiltinListTypes,
            &w("b"),
            true,
            entries,
        )
        .unwrap();
        assert_eq!(obj["spec"]["replicas"], 2);
        assert_eq!(entries.len(), 1);
    }

    #[test]
    fn apply_removes_dropped_fields_and_merges_keyed_lists() {
        let a1 = json!({"spec": {"x": 1, "y": 2, "containers": [{"name": "a", "image": "1"}]}});
        let (live, entries) = apply(
            &json!({}),
            &a1,
            Scope::All,
            &BuiltinListTypes,
            &w("a"),
            false,
            vec![],
        )
        .unwrap();
        let a2 = json!({"spec": {"x": 1, "containers": [{"name": "a", "image": "2"}]}});
        let (live, _) = apply(
            &live,
            &a2,
            Scope::All,
            &BuiltinListTypes,
            &w("a"),
            false,
            entries,
        )
        .unwrap();
        assert_eq!(
            live,
            json!({"spec": {"x": 1, "containers": [{"name": "a", "image": "2"}]}})
        );
        let set = fields_of(&live, Scope::All, &BuiltinListTypes);
        assert_eq!(from_fields_v1(&to_fields_v1(&set)), set);
    }
}
