//! The CRD controllers (apiextensions-apiserver's naming, establishing and finalizing
//! controllers, in short): a CRD's kind is served as soon as the CRD is written, with status
//! `NamesAccepted`/`Established` and the cleanup finalizer; a terminating CRD is emptied of its
//! custom resources, then released; a removed CRD is no longer served.

use super::{delete_each, deleting, meta_str};
use crate::crdval;
use crate::resources::{CrdVersion, ResourceInfo, ScalePaths};
use crate::store::{Event, EventType, Inner, Key};
use serde_json::{Value, json};
use std::sync::Arc;

const STORAGE: &str = "apiextensions.k8s.io/customresourcedefinitions";
const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

#[derive(Debug)]
pub struct Crds;

impl Crds {
    /// A CRD was written or removed: serve what it defines now.
    pub fn observe(&mut self, inner: &mut Inner, ev: &Event, now: &str) {
        if ev.key.0 != STORAGE {
            return;
        }
        let Some(current) = inner.get(&ev.key).cloned() else {
            if ev.kind == EventType::Deleted {
                unserve(inner, &ev.key.2);
            }
            return;
        };
        // Only a change of the spec changes what is served (and costs a schema compile).
        let spec_changed = ev.kind == EventType::Deleted
            || ev
                .prev
                .as_ref()
                .is_none_or(|p| p.get("spec") != ev.obj.get("spec"));
        let served = inner
            .resources
            .iter()
            .any(|r| r.crd.as_ref().is_some_and(|c| c.crd_name == ev.key.2));
        establish(inner, &ev.key, &current, spec_changed || !served, now);
        if spec_changed && let Some(storage) = cr_storage(&current) {
            // The real apiserver serves the resource from a new watch cache: open watches end
            // (see `watch::ends_watch`) and older resourceVersions are expired.
            inner.watch_floor.insert(storage, inner.rv);
        }
    }

    /// Serve every stored CRD again, and none that is gone (after a state file is loaded, or
    /// when changes were compacted away before they were observed).
    pub fn resync(&mut self, inner: &mut Inner, now: &str) {
        let crds: Vec<(Key, Arc<Value>)> = inner
            .range(STORAGE, None)
            .map(|(k, o)| (k.clone(), o.clone()))
            .collect();
        inner.resources.retain(|r| {
            r.crd
                .as_ref()
                .is_none_or(|c| crds.iter().any(|(k, _)| k.2 == c.crd_name))
        });
        for (key, crd) in crds {
            establish(inner, &key, &crd, true, now);
        }
    }

    /// Empty terminating CRDs of their custom resources, then release them; whether anything
    /// changed.
    pub fn step(&mut self, inner: &mut Inner, now: &str) -> bool {
        let terminating: Vec<(Key, Arc<Value>)> = inner
            .range(STORAGE, None)
            .filter(|(_, o)| deleting(o))
            .map(|(k, o)| (k.clone(), o.clone()))
            .collect();
        let mut changed = false;
        for (key, crd) in terminating {
            let served = inner
                .resources
                .iter()
                .find(|r| r.crd.as_ref().is_some_and(|c| c.crd_name == key.2))
                .cloned();
            let contents: Vec<(ResourceInfo, Key)> = served
                .map(|r| {
                    inner
                        .range(&r.storage, None)
                        .map(|(k, _)| (r.clone(), k.clone()))
                        .collect()
                })
                .unwrap_or_default();
            changed |= if contents.is_empty() {
                super::finish_terminating(inner, key, &crd, |c| {
                    if let Some(f) = c
                        .pointer_mut("/metadata/finalizers")
                        .and_then(Value::as_array_mut)
                    {
                        f.retain(|x| x != CLEANUP_FINALIZER);
                    }
                })
            } else {
                delete_each(inner, contents, now)
            };
        }
        changed
    }
}

/// Serve the CRD at `key` (when `register`) and set its status and cleanup finalizer. A CRD
/// being deleted keeps what it has.
fn establish(inner: &mut Inner, key: &Key, crd: &Value, register: bool, now: &str) {
    if deleting(crd) {
        return;
    }
    if register && let Some(r) = served_resource(crd) {
        inner
            .resources
            .retain(|x| x.crd.as_ref().is_none_or(|c| c.crd_name != key.2));
        inner.resources.push(r);
        inner.resources_generation += 1;
    }
    let status = status(crd, now);
    let mut finalizers: Vec<Value> = crd
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let cleanup = json!(CLEANUP_FINALIZER);
    if !finalizers.contains(&cleanup) {
        finalizers.push(cleanup);
    }
    if crd.get("status") != Some(&status)
        || crd.pointer("/metadata/finalizers") != Some(&Value::Array(finalizers.clone()))
    {
        let mut n = crd.clone();
        n["status"] = status;
        n["metadata"]["finalizers"] = Value::Array(finalizers);
        inner.put(key.clone(), n, EventType::Modified);
    }
}

/// The storage of the custom resources a CRD defines (`group/plural`).
pub fn cr_storage(crd: &Value) -> Option<String> {
    let group = crd.pointer("/spec/group")?.as_str()?;
    let plural = crd.pointer("/spec/names/plural")?.as_str()?;
    Some(format!("{group}/{plural}"))
}

/// Whether `ev` rebuilds the storage of the custom resource `crd_name` (its CRD's spec
/// changed, or the CRD is gone): the real apiserver then ends the watches of that resource.
pub fn rebuilds_storage(ev: &Event, crd_name: &str) -> bool {
    ev.key.0 == STORAGE
        && ev.key.2 == crd_name
        && (ev.kind == EventType::Deleted
            || ev
                .prev
                .as_ref()
                .is_some_and(|p| p.get("spec") != ev.obj.get("spec")))
}

fn unserve(inner: &mut Inner, crd_name: &str) {
    inner
        .resources
        .retain(|x| x.crd.as_ref().is_none_or(|c| c.crd_name != crd_name));
    inner.resources_generation += 1;
}

/// The status of a served CRD: names accepted as given, established, the served version
/// among the stored ones. Condition times stay once set.
fn status(crd: &Value, now: &str) -> Value {
    let names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
    let version = served_version(crd)
        .and_then(|v| v.get("name"))
        .cloned()
        .unwrap_or(Value::Null);
    let mut accepted = names;
    if let Some(m) = accepted.as_object_mut() {
        m.retain(|k, _| {
            matches!(
                k.as_str(),
                "plural" | "singular" | "kind" | "listKind" | "shortNames" | "categories"
            )
        });
    }
    let existing_time = |t: &str| {
        crd.pointer("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().find(|c| c.get("type") == Some(&json!(t))))
            .and_then(|c| c.get("lastTransitionTime").cloned())
            .unwrap_or(json!(now))
    };
    let mut stored_versions: Vec<Value> = crd
        .pointer("/status/storedVersions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !stored_versions.contains(&version) {
        stored_versions.push(version);
    }
    json!({
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": existing_time("NamesAccepted")},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": existing_time("Established")},
        ],
        "acceptedNames": accepted,
        "storedVersions": stored_versions,
    })
}

/// The served version of a CRD (the storage version, else the first served one).
fn served_version(crd: &Value) -> Option<&Value> {
    let versions = crd.pointer("/spec/versions")?.as_array()?;
    versions
        .iter()
        .find(|v| v.get("storage") == Some(&json!(true)) && v.get("served") != Some(&json!(false)))
        .or_else(|| {
            versions
                .iter()
                .find(|v| v.get("served") != Some(&json!(false)))
        })
}

/// A custom resource's registration from its CRD.
fn served_resource(crd: &Value) -> Option<ResourceInfo> {
    let spec = crd.get("spec")?;
    let v = served_version(crd)?;
    let names = spec.get("names")?;
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let list = |k: &str| -> Vec<String> {
        names
            .get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let schema = v.pointer("/schema/openAPIV3Schema").cloned();
    let compiled = schema.as_ref().and_then(|s| crdval::compile(s).ok());
    let group = s(spec, "group");
    let plural = s(names, "plural");
    let scale = v.pointer("/subresources/scale").map(|sc| ScalePaths {
        spec_replicas: s(sc, "specReplicasPath"),
        status_replicas: s(sc, "statusReplicasPath"),
        label_selector: sc
            .get("labelSelectorPath")
            .and_then(Value::as_str)
            .map(String::from),
    });
    Some(ResourceInfo {
        version: s(v, "name"),
        kind: s(names, "kind"),
        singular: s(names, "singular"),
        short_names: list("shortNames"),
        categories: list("categories"),
        namespaced: s(spec, "scope") != "Cluster",
        status: v.pointer("/subresources/status").is_some(),
        scale,
        generation: true,
        crd: Some(Arc::new(CrdVersion {
            crd_name: meta_str(crd, "name").to_string(),
            schema,
            compiled,
            printer_columns: v
                .get("additionalPrinterColumns")
                .cloned()
                .unwrap_or(json!([])),
        })),
        storage: format!("{group}/{plural}"),
        group,
        plural,
    })
}
