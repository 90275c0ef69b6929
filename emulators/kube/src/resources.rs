//! The table of served resources: built-in kinds described by data, plus one entry per served
//! CRD version. Everything else (routing, discovery, storage keys) reads this table.

use serde_json::Value;
use std::sync::Arc;

/// Paths of a `/scale` subresource (CRD `subresources.scale` or a built-in workload).
#[derive(Debug, Clone)]
pub struct ScalePaths {
    pub spec_replicas: String,
    pub status_replicas: String,
    pub label_selector: Option<String>,
}

/// One served resource (group, version, plural).
#[derive(Debug, Clone)]
pub struct ResourceInfo {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub namespaced: bool,
    pub status: bool,
    pub scale: Option<ScalePaths>,
    /// Whether `metadata.generation` is maintained (spec §4).
    pub generation: bool,
    /// Set for custom resources: the CRD version's schema and printer columns.
    pub crd: Option<Arc<CrdVersion>>,
    /// Storage identity: two views of one storage (core and events.k8s.io Events) share it.
    pub storage: String,
}

/// What the server needs from one served CRD version.
#[derive(Debug)]
pub struct CrdVersion {
    pub crd_name: String,
    pub schema: Option<Value>,
    pub compiled: Option<crate::crdval::Compiled>,
    pub printer_columns: Value,
}

impl ResourceInfo {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
    /// `<resource>.<group>` (core: `<resource>`) used in NotFound/AlreadyExists/Conflict.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
    pub fn is_crd(&self) -> bool {
        self.crd.is_some()
    }
    pub fn verbs(&self) -> Vec<&'static str> {
        let mut verbs = vec![
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ];
        if !self.delete_collection() {
            verbs.retain(|v| *v != "deletecollection");
        }
        verbs
    }

    /// Whether `DELETE` on the collection is served: not for Namespaces (upstream's
    /// namespace storage has no DeleteCollection; tests/fidelity.rs, `discovery`).
    pub fn delete_collection(&self) -> bool {
        !(self.group.is_empty() && self.plural == "namespaces")
    }
}

#[allow(clippy::too_many_arguments)] // one row of the built-in table
fn builtin(
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    short: &[&str],
    namespaced: bool,
    status: bool,
    scale: bool,
    generation: bool,
    categories: &[&str],
) -> ResourceInfo {
    ResourceInfo {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        short_names: short.iter().map(|s| s.to_string()).collect(),
        categories: categories.iter().map(|s| s.to_string()).collect(),
        namespaced,
        status,
        scale: scale.then(|| ScalePaths {
            spec_replicas: ".spec.replicas".into(),
            status_replicas: ".status.replicas".into(),
            label_selector: Some(".status.selector".into()),
        }),
        generation,
        crd: None,
        storage: if group.is_empty() {
            plural.to_string()
        } else {
            format!("{group}/{plural}")
        },
    }
}

/// The built-in kinds (spec §11).
pub fn builtins() -> Vec<ResourceInfo> {
    let mut v = vec![
        builtin(
            "",
            "v1",
            "Namespace",
            "namespaces",
            &["ns"],
            false,
            true,
            false,
            false,
            &[],
        ),
        builtin(
            "",
            "v1",
            "ConfigMap",
            "configmaps",
            &["cm"],
            true,
            false,
            false,
            false,
            &[],
        ),
        builtin(
            "",
            "v1",
            "Secret",
            "secrets",
            &[],
            true,
            false,
            false,
            false,
            &[],
        ),
        builtin(
            "",
            "v1",
            "ServiceAccount",
            "serviceaccounts",
            &["sa"],
            true,
            false,
            false,
            false,
            &[],
        ),
        builtin(
            "",
            "v1",
            "Service",
            "services",
            &["svc"],
            true,
            true,
            false,
            false,
            &["all"],
        ),
        builtin(
            "",
            "v1",
            "Pod",
            "pods",
            &["po"],
            true,
            true,
            false,
            false,
            &["all"],
        ),
        builtin(
            "",
            "v1",
            "Event",
            "events",
            &["ev"],
            true,
            false,
            false,
            false,
            &[],
        ),
        builtin(
            "events.k8s.io",
            "v1",
            "Event",
            "events",
            &["ev"],
            true,
            false,
            false,
            false,
            &[],
        ),
        builtin(
            "coordination.k8s.io",
            "v1",
            "Lease",
            "leases",
            &[],
            true,
            false,
            false,
            false,
            &[],
        ),
        builtin(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            &["crd", "crds"],
            false,
            true,
            false,
            true,
            &["api-extensions"],
        ),
        builtin(
            "apps",
            "v1",
            "Deployment",
            "deployments",
            &["deploy"],
            true,
            true,
            true,
            true,
            &["all"],
        ),
        builtin(
            "apps",
            "v1",
            "StatefulSet",
            "statefulsets",
            &["sts"],
            true,
            true,
            true,
            true,
            &["all"],
        ),
        builtin(
            "apps",
            "v1",
            "DaemonSet",
            "daemonsets",
            &["ds"],
            true,
            true,
            false,
            true,
            &["all"],
        ),
        builtin(
            "apps",
            "v1",
            "ReplicaSet",
            "replicasets",
            &["rs"],
            true,
            true,
            true,
            true,
            &["all"],
        ),
        builtin(
            "apps",
            "v1",
            "ControllerRevision",
            "controllerrevisions",
            &[],
            true,
            false,
            false,
            false,
            &[],
        ),
    ];
    // Both Event views share the core storage (spec §11: same storage, two views).
    if let Some(e) = v.iter_mut().find(|r| r.group == "events.k8s.io") {
        e.storage = "events".into();
    }
    v
}
