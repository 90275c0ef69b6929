//! `--state FILE`: the store written atomically (temp file + rename) shortly after writes, and
//! loaded at start. History is not kept: clients resuming old watches get 410 and relist.

use crate::state::AppState;
use serde_json::{Value, json};
use std::io;
use std::path::Path;
use std::time::Duration;

pub fn load(state: &AppState, path: &Path) -> io::Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let v: Value =
        serde_json::from_str(&text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let mut inner = state.lock();
    // The file holds the whole store, the built-in namespaces included.
    inner.clear_objects();
    let items = v
        .get("objects")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    // CRDs first so their resources are registered before their objects.
    let mut sorted = items;
    sorted.sort_by_key(|o| o.get("kind") != Some(&json!("CustomResourceDefinition")));
    for o in sorted {
        let (Some(storage), Some(name)) = (
            o.get("storage").and_then(Value::as_str),
            o.pointer("/object/metadata/name").and_then(Value::as_str),
        ) else {
            continue;
        };
        let ns = o
            .pointer("/object/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let obj = o.get("object").cloned().unwrap_or(Value::Null);
        let key = (storage.to_string(), ns, name.to_string());
        // Objects keep the resourceVersions clients saw before the restart.
        inner.load(key, obj);
    }
    let rv = v
        .get("resourceVersion")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    inner.rv = inner.rv.max(rv);
    inner.compact();
    // The loaded objects have no history: the controllers serve the stored CRDs again (their
    // status is already in place, so no write happens).
    state.resync_controllers(&mut inner);
    Ok(())
}

fn snapshot(state: &AppState) -> Value {
    // Only Arc clones under the lock; the JSON is built after releasing it.
    let (rv, objects): (u64, Vec<(String, std::sync::Arc<Value>)>) = {
        let inner = state.lock();
        (
            inner.rv,
            inner
                .objects
                .iter()
                .map(|(k, o)| (k.0.clone(), o.clone()))
                .collect(),
        )
    };
    let objects: Vec<Value> = objects
        .iter()
        .map(|(storage, o)| json!({"storage": storage, "object": o.as_ref()}))
        .collect();
    json!({"resourceVersion": rv, "objects": objects})
}

pub async fn run(state: AppState) {
    let Some(path) = state.settings().state_file.clone() else {
        return;
    };
    loop {
        state.0.persist.notified().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let snap = snapshot(&state);
        let tmp = path.with_extension("tmp");
        let bytes = serde_json::to_vec(&snap).unwrap_or_default();
        let r = tokio::fs::write(&tmp, bytes).await;
        let r = match r {
            Ok(()) => tokio::fs::rename(&tmp, &path).await,
            Err(e) => Err(e),
        };
        if let Err(e) = r {
            tracing::warn!(%e, path = %path.display(), "cannot write state file");
        }
    }
}
