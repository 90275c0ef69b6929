//! What a `GitlabDeployment` refers to, resolved one way for every reader: the connection
//! (the operator's default when `spec.connectionRef` is absent) and the target object. The
//! reconciler, the reference index (which wakes a resource when its target or connection
//! changes) and the webhook receiver all resolve through here, so they cannot disagree.

use kube::ResourceExt;

use super::index::{TargetKey, TargetKind};
use crate::api::deployment::{GitlabDeployment, TargetRef};
use crate::api::validate::ConnectionTarget;

/// The objects one resource depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct References {
    /// The resource's namespace: where its target and a `GitlabConnection` are looked up.
    pub namespace: String,
    pub connection: ConnectionTarget,
    /// `None` while `spec.target` leaves a part blank (validation reports it).
    pub target: Option<TargetKey>,
}

/// Resolve a resource's references; `None` for an object without a namespace (one that did
/// not come from the API server).
pub fn references(
    gd: &GitlabDeployment,
    default_connection: &ConnectionTarget,
) -> Option<References> {
    let namespace = gd.namespace()?;
    let target = &gd.spec.target;
    let blank = [&target.api_version, &target.kind, &target.name]
        .into_iter()
        .any(|part| part.trim().is_empty());
    Some(References {
        connection: ConnectionTarget::of(gd.spec.connection_ref.as_ref(), default_connection),
        target: (!blank).then(|| target_key(&namespace, target)),
        namespace,
    })
}

/// The key of the object `target` names, in `namespace` (targets are namespaced with their
/// resource).
pub fn target_key(namespace: &str, target: &TargetRef) -> TargetKey {
    TargetKey {
        kind: TargetKind {
            api_version: target.api_version.clone(),
            kind: target.kind.clone(),
        },
        namespace: namespace.to_owned(),
        name: target.name.clone(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::deployment::ConnectionKind;

    fn resource(spec: serde_json::Value, namespace: Option<&str>) -> GitlabDeployment {
        let mut base = json!({
            "apiVersion": "gitlab-operator.io/v1alpha1",
            "kind": "GitlabDeployment",
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {
                "project": "group/web",
                "environment": "production",
                "ref": "main",
                "sha": "0123456789abcdef0123456789abcdef01234567",
                "target": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}
            }
        });
        if let (Some(base_spec), Some(patch)) = (base["spec"].as_object_mut(), spec.as_object()) {
            for (k, v) in patch {
                base_spec.insert(k.clone(), v.clone());
            }
        }
        serde_json::from_value(base).unwrap()
    }

    fn connection(kind: ConnectionKind, name: &str) -> ConnectionTarget {
        ConnectionTarget {
            kind,
            name: name.into(),
        }
    }

    fn deployment(namespace: &str, name: &str) -> TargetKey {
        TargetKey {
            kind: TargetKind {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
            },
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// (name, spec patch, namespace, operator default, expected)
    type Case = (
        &'static str,
        serde_json::Value,
        Option<&'static str>,
        ConnectionTarget,
        Option<References>,
    );

    #[test]
    fn references_resolve_the_connection_and_the_target() {
        use ConnectionKind::{ClusterGitlabConnection as Cluster, GitlabConnection as Local};
        let shared = connection(Cluster, "shared");
        let cases: Vec<Case> = vec![
            (
                "no connectionRef: the built-in default",
                json!({}),
                Some("apps"),
                ConnectionTarget::default(),
                Some(References {
                    namespace: "apps".into(),
                    connection: connection(Local, "default"),
                    target: Some(deployment("apps", "web")),
                }),
            ),
            (
                "no connectionRef: the operator's --default-connection",
                json!({}),
                Some("apps"),
                shared.clone(),
                Some(References {
                    namespace: "apps".into(),
                    connection: shared.clone(),
                    target: Some(deployment("apps", "web")),
                }),
            ),
            (
                "a connectionRef wins over the default",
                json!({"connectionRef": {"kind": "GitlabConnection", "name": "team"}}),
                Some("apps"),
                shared.clone(),
                Some(References {
                    namespace: "apps".into(),
                    connection: connection(Local, "team"),
                    target: Some(deployment("apps", "web")),
                }),
            ),
            (
                "a cluster connection by name",
                json!({"connectionRef": {"kind": "ClusterGitlabConnection", "name": "shared"}}),
                Some("apps"),
                ConnectionTarget::default(),
                Some(References {
                    namespace: "apps".into(),
                    connection: shared.clone(),
                    target: Some(deployment("apps", "web")),
                }),
            ),
            (
                "a blank target part: no target",
                json!({"target": {"apiVersion": "apps/v1", "kind": " ", "name": "web"}}),
                Some("apps"),
                ConnectionTarget::default(),
                Some(References {
                    namespace: "apps".into(),
                    connection: connection(Local, "default"),
                    target: None,
                }),
            ),
            (
                "the target is looked up in the resource's namespace",
                json!({"target": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"}}),
                Some("other"),
                ConnectionTarget::default(),
                Some(References {
                    namespace: "other".into(),
                    connection: connection(Local, "default"),
                    target: Some(deployment("other", "api")),
                }),
            ),
            (
                "no namespace: nothing",
                json!({}),
                None,
                ConnectionTarget::default(),
                None,
            ),
        ];
        for (name, patch, namespace, default, want) in cases {
            let gd = resource(patch, namespace);
            assert_eq!(references(&gd, &default), want, "case {name}");
        }
    }

    /// The reconciler derives the key from the validated spec, the index from the raw one:
    /// for a valid resource they are the same key.
    #[test]
    fn the_validated_spec_gives_the_same_target_key() {
        let gd = resource(json!({}), Some("apps"));
        let default = ConnectionTarget::default();
        let spec = crate::api::validate::validate(&gd, &default).unwrap();
        let refs = references(&gd, &default).unwrap();
        assert_eq!(Some(target_key(&spec.namespace, &spec.target)), refs.target);
        assert_eq!(spec.connection, refs.connection);
    }
}
