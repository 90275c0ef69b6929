//! The rules the rendered install grants the operator's ServiceAccount, and RBAC's matching
//! of a request against them: shared by tests/rbac.rs (the emulator's request log) and
//! rbac_real.rs (the requests the operator made under real enforcement).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kube_emulator::RequestRecord;
use serde_json::{Value, json};

pub const OPERATOR_NS: &str = "gitlab-deployment-operator";
pub const SA: &str = "gitlab-deployment-operator";

/// One rule as granted to the operator: where (a RoleBinding's namespace, or cluster-wide) and
/// through which binding.
#[derive(Debug, Clone)]
pub struct Grant {
    pub namespace: Option<String>,
    pub via: String,
    pub groups: Vec<String>,
    pub resources: Vec<String>,
    pub verbs: Vec<String>,
    pub names: Vec<String>,
}

impl Grant {
    /// RBAC's rule match: group, `resource` or `resource/subresource`, verb, resourceNames, and
    /// a RoleBinding's grant only inside its namespace (never on cluster-scoped objects).
    pub fn allows(&self, r: &RequestRecord) -> bool {
        if let Some(ns) = &self.namespace
            && &r.namespace != ns
        {
            return false;
        }
        let resource = if r.subresource.is_empty() {
            r.resource.clone()
        } else {
            format!("{}/{}", r.resource, r.subresource)
        };
        self.groups.contains(&r.group)
            && self.resources.contains(&resource)
            && self.verbs.contains(&r.verb)
            && (self.names.is_empty() || (!r.name.is_empty() && self.names.contains(&r.name)))
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Every rule the rendered bindings grant the operator's ServiceAccount.
pub fn grants(objs: &[Value]) -> Vec<Grant> {
    let mut out = Vec::new();
    for b in objs
        .iter()
        .filter(|o| o["kind"] == "RoleBinding" || o["kind"] == "ClusterRoleBinding")
    {
        let ours = b["subjects"].as_array().into_iter().flatten().any(|s| {
            s["kind"] == "ServiceAccount" && s["name"] == SA && s["namespace"] == OPERATOR_NS
        });
        if !ours {
            continue;
        }
        let namespace = (b["kind"] == "RoleBinding")
            .then(|| b["metadata"]["namespace"].as_str().unwrap().to_owned());
        let (role_kind, role_name) = (&b["roleRef"]["kind"], &b["roleRef"]["name"]);
        let role = objs
            .iter()
            .find(|o| {
                &o["kind"] == role_kind
                    && &o["metadata"]["name"] == role_name
                    && (o["kind"] == "ClusterRole"
                        || o["metadata"]["namespace"] == json!(namespace))
            })
            .unwrap_or_else(|| panic!("binding {b} names a role not in the render"));
        for rule in role["rules"].as_array().into_iter().flatten() {
            out.push(Grant {
                namespace: namespace.clone(),
                via: format!(
                    "{} {} via {} {}",
                    role_kind.as_str().unwrap(),
                    role_name.as_str().unwrap(),
                    b["kind"].as_str().unwrap(),
                    b["metadata"]["name"].as_str().unwrap()
                ),
                groups: strings(&rule["apiGroups"]),
                resources: strings(&rule["resources"]),
                verbs: strings(&rule["verbs"]),
                names: strings(&rule["resourceNames"]),
            });
        }
    }
    out
}

pub fn describe(r: &RequestRecord) -> String {
    let group = if r.group.is_empty() { "core" } else { &r.group };
    let sub = if r.subresource.is_empty() {
        String::new()
    } else {
        format!("/{}", r.subresource)
    };
    let ns = if r.namespace.is_empty() {
        "(cluster)".to_owned()
    } else {
        format!("ns={}", r.namespace)
    };
    format!("{} {group}/{}{sub} {ns}", r.verb, r.resource)
}
