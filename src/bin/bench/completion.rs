//! When each rollout finished on the Kubernetes side, seen from a watch in the bench process:
//! the first moment a Deployment's status says its template at a revision is fully rolled out
//! (the `kubectl rollout status` rule), stamped with the same wall clock GitLab's emulator uses.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use parking_lot::Mutex;
use tokio::task::JoinHandle;

/// (workload name, sha) → first time seen complete.
pub type Completions = Arc<Mutex<HashMap<(String, String), DateTime<Utc>>>>;

pub struct CompletionWatch {
    pub seen: Completions,
    task: JoinHandle<()>,
}

impl CompletionWatch {
    pub fn start(api: Api<Deployment>) -> CompletionWatch {
        let seen: Completions = Arc::default();
        let sink = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            let mut events = watcher(api, watcher::Config::default())
                .default_backoff()
                .applied_objects()
                .boxed();
            while let Some(event) = events.next().await {
                let Ok(deployment) = event else { continue };
                let now = Utc::now();
                if let Some(key) = completed_revision(&deployment) {
                    sink.lock().entry(key).or_insert(now);
                }
            }
        });
        CompletionWatch { seen, task }
    }

    pub fn get(&self, name: &str, sha: &str) -> Option<DateTime<Utc>> {
        self.seen
            .lock()
            .get(&(name.to_string(), sha.to_string()))
            .copied()
    }
}

impl Drop for CompletionWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `(name, sha of container app's image tag)` when the Deployment is fully rolled out:
/// observed its generation, every replica updated and available, no old replica left.
pub fn completed_revision(d: &Deployment) -> Option<(String, String)> {
    let name = d.metadata.name.clone()?;
    let spec = d.spec.as_ref()?;
    let status = d.status.as_ref()?;
    let wanted = spec.replicas.unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    let done = status.observed_generation >= d.metadata.generation
        && updated == wanted
        && status.replicas.unwrap_or(0) == updated
        && status.available_replicas.unwrap_or(0) == updated;
    if !done {
        return None;
    }
    let image = spec
        .template
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == "app")?
        .image
        .clone()?;
    let sha = image.rsplit_once(':')?.1.to_string();
    Some((name, sha))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(
        generation: i64,
        observed: i64,
        updated: i32,
        total: i32,
        available: i32,
    ) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "w-1", "generation": generation},
            "spec": {"replicas": 2, "selector": {},
                     "template": {"spec": {"containers": [{"name": "app", "image": "r.example/app:abc"}]}}},
            "status": {"observedGeneration": observed, "updatedReplicas": updated,
                       "replicas": total, "availableReplicas": available}
        }))
        .unwrap()
    }

    #[test]
    fn complete_only_when_every_replica_is_new_and_available() {
        let key = Some(("w-1".to_string(), "abc".to_string()));
        assert_eq!(completed_revision(&deployment(2, 2, 2, 2, 2)), key);
        assert_eq!(
            completed_revision(&deployment(2, 1, 2, 2, 2)),
            None,
            "stale status"
        );
        assert_eq!(
            completed_revision(&deployment(2, 2, 1, 2, 2)),
            None,
            "old replica left"
        );
        assert_eq!(
            completed_revision(&deployment(2, 2, 2, 3, 2)),
            None,
            "old replica terminating"
        );
        assert_eq!(
            completed_revision(&deployment(2, 2, 2, 2, 1)),
            None,
            "not yet available"
        );
    }
}
