//! The operator's only writes to a target: the promote and abort of an Argo Rollout that
//! `spec.approval.promote` asks for. The bodies are the merge patches
//! `kubectl argo rollouts promote` and `abort` send to the status subresource (Argo Rollouts
//! v0.10 and later), plus the Rollout's `metadata.resourceVersion` as a precondition: the
//! planner decided on that state, and a Rollout that moved on since (our cache may lag) must
//! not get a patch meant for an earlier pause.

use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{Value, json};

use super::error::{Error, is_conflict};
use super::steps::TargetControl;
use super::targets::group_version;
use crate::api::deployment::TargetRef;
use crate::api::names::FIELD_MANAGER;

/// The target Rollout of one GitlabDeployment.
pub struct LiveRollout {
    api: Api<DynamicObject>,
    namespace: String,
    target: TargetRef,
}

impl LiveRollout {
    pub fn new(client: Client, namespace: &str, target: &TargetRef) -> Self {
        let (group, version) = group_version(&target.api_version);
        // The plural of the one kind `spec.approval.promote` accepts (CEL and Rust validation).
        let resource = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(group, version, &target.kind),
            "rollouts",
        );
        LiveRollout {
            api: Api::namespaced_with(client, namespace, &resource),
            namespace: namespace.to_owned(),
            target: target.clone(),
        }
    }

    async fn patch_status(
        &self,
        action: &'static str,
        status: Value,
        resource_version: &str,
    ) -> Result<bool, Error> {
        let body = json!({"metadata": {"resourceVersion": resource_version}, "status": status});
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        match self
            .api
            .patch_status(&self.target.name, &params, &Patch::Merge(&body))
            .await
        {
            Ok(_) => {
                tracing::info!(
                    rollout = %self.target.name,
                    action,
                    "patched the target Rollout"
                );
                Ok(true)
            }
            Err(err) if is_conflict(&err) => Ok(false),
            Err(source) => Err(Error::TargetWrite {
                action,
                target: format!(
                    "{} {}/{}",
                    self.target.kind, self.namespace, self.target.name
                ),
                source: Box::new(source),
            }),
        }
    }
}

impl TargetControl for LiveRollout {
    async fn promote(&mut self, resource_version: &str) -> Result<bool, Error> {
        // What `kubectl argo rollouts promote` sends for a Rollout with pause conditions.
        self.patch_status(
            "promote",
            json!({"pauseConditions": null}),
            resource_version,
        )
        .await
    }

    async fn abort(&mut self, resource_version: &str) -> Result<bool, Error> {
        self.patch_status("abort", json!({"abort": true}), resource_version)
            .await
    }
}
