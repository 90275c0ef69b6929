//! Watch streams (spec §8): initial state or history replay, live events filtered per watcher
//! (selector transitions become ADDED/DELETED), bookmarks, timeouts, and 410 Expired delivered
//! as an in-stream ERROR event.

use crate::print::{self, IncludeObject};
use crate::resources::ResourceInfo;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::state::AppState;
use crate::store::{Event, EventType};
use crate::views;
use bytes::Bytes;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// How each event's object is rendered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Render {
    Json,
    Metadata,
    Table(IncludeObject),
}

pub struct WatchRequest {
    pub res: ResourceInfo,
    pub namespace: Option<String>,
    pub resource_version: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub timeout: Option<Duration>,
    pub bookmarks: bool,
    pub send_initial_events: bool,
    pub render: Render,
}

impl WatchRequest {
    fn matches(&self, key_ns: &str, obj: &Value) -> bool {
        self.namespace.as_deref().is_none_or(|n| n == key_ns)
            && self.labels.matches(obj)
            && self.fields.matches(obj)
    }

    fn render_obj(&self, obj: &Value) -> Value {
        let view = views::to_view(&self.res, obj);
        match self.render {
            Render::Json => view,
            Render::Metadata => {
                json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": view.get("metadata").cloned().unwrap_or(json!({}))})
            }
            Render::Table(inc) => print::table(&self.res, &[view], inc, None),
        }
    }

    fn line(&self, kind: &str, obj: &Value) -> Bytes {
        if self.stored_form() {
            let json = serde_json::to_vec(obj).unwrap_or_default();
            return event_line(kind, &json);
        }
        let mut s = serde_json::to_vec(&json!({"type": kind, "object": self.render_obj(obj)}))
            .unwrap_or_default();
        s.push(b'\n');
        Bytes::from(s)
    }

    /// The line for a store event: its shared serialisation when this watch sends objects as
    /// stored.
    fn event_line(&self, kind: &str, ev: &Event) -> Bytes {
        if self.stored_form() {
            return event_line(kind, ev.object_json());
        }
        self.line(kind, &ev.obj)
    }

    /// Whether this watch sends objects exactly as stored (plain JSON of a resource whose view
    /// is the stored form).
    fn stored_form(&self) -> bool {
        self.render == Render::Json && views::is_stored_form(&self.res)
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let (kind, av) = match self.render {
            Render::Metadata => (
                "PartialObjectMetadata".to_string(),
                "meta.k8s.io/v1".to_string(),
            ),
            _ => (self.res.kind.clone(), self.res.api_version()),
        };
        let mut md = json!({"resourceVersion": rv.to_string(), "creationTimestamp": null});
        if initial_end {
            md["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let mut s = serde_json::to_vec(&json!({"type": "BOOKMARK", "object": {"kind": kind, "apiVersion": av, "metadata": md}})).unwrap_or_default();
        s.push(b'\n');
        Bytes::from(s)
    }
}

/// `{"type":KIND,"object":OBJECT}` and a newline, around an object already serialised.
fn event_line(kind: &str, object: &[u8]) -> Bytes {
    let mut s = Vec::with_capacity(object.len() + kind.len() + 24);
    s.extend_from_slice(b"{\"type\":\"");
    s.extend_from_slice(kind.as_bytes());
    s.extend_from_slice(b"\",\"object\":");
    s.extend_from_slice(object);
    s.extend_from_slice(b"}\n");
    Bytes::from(s)
}

fn expired_line(message: String) -> Bytes {
    let mut s = serde_json::to_vec(&json!({"type": "ERROR", "object": {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": "Expired", "code": 410,
    }}))
    .unwrap_or_default();
    s.push(b'\n');
    Bytes::from(s)
}

/// Start a watch; the returned channel yields the response body chunks.
pub fn start(state: &AppState, req: WatchRequest) -> mpsc::Receiver<Result<Bytes, std::io::Error>> {
    let (tx, rx) = mpsc::channel(256);
    let mut initial: Vec<Bytes> = Vec::new();
    // Under the lock only Arc clones are taken; serialisation happens after releasing it.
    let mut replay: Vec<Arc<Event>> = Vec::new();
    let mut current: Vec<Arc<Value>> = Vec::new();
    let forced = state.hooks().take_forced_expiry();
    let (sub, start_rv, send_end_bookmark) = {
        let inner = state.lock();
        let requested = req
            .resource_version
            .as_deref()
            .filter(|s| !s.is_empty() && *s != "0");
        match requested.map(|s| s.parse::<u64>()) {
            _ if forced => {
                initial.push(expired_line(format!(
                    "too old resource version: {} ({})",
                    req.resource_version.clone().unwrap_or_default(),
                    inner.rv
                )));
                (None, inner.rv, false)
            }
            Some(Err(_)) => {
                initial.push(expired_line(format!(
                    "too old resource version: {}",
                    requested.unwrap_or("")
                )));
                (None, inner.rv, false)
            }
            Some(Ok(n)) if n < inner.compacted => {
                initial.push(expired_line(format!(
                    "too old resource version: {n} ({})",
                    inner.compacted + 1
                )));
                (None, inner.rv, false)
            }
            // A custom resource whose watch cache was rebuilt after `n` (its CRD changed):
            // the real apiserver names the resourceVersion the new cache starts from.
            Some(Ok(n)) if n < inner.watch_start(&req.res.storage) => {
                initial.push(expired_line(format!(
                    "too old resource version: {n} ({})",
                    inner.watch_start(&req.res.storage)
                )));
                (None, inner.rv, false)
            }
            Some(Ok(n)) => {
                replay.extend(
                    inner
                        .history
                        .iter()
                        .filter(|e| e.rv > n && e.key.0 == req.res.storage)
                        .cloned(),
                );
                (Some(inner.tx.subscribe()), inner.rv, false)
            }
            None => {
                let ns = if req.res.namespaced {
                    req.namespace.as_deref()
                } else {
                    None
                };
                current.extend(
                    inner
                        .range(&req.res.storage, ns)
                        .filter(|(k, o)| req.matches(&k.1, o))
                        .map(|(_, o)| o.clone()),
                );
                (
                    Some(inner.tx.subscribe()),
                    inner.rv,
                    req.send_initial_events,
                )
            }
        }
    };
    initial.extend(replay.iter().filter_map(|ev| transition(&req, ev)));
    initial.extend(current.iter().map(|o| req.line("ADDED", o)));
    if send_end_bookmark {
        initial.push(req.bookmark(start_rv, true));
    }
    let drop_signal = state.hooks().drop_signal();
    let hooks = state.hooks().clone();
    let interval = state.settings().bookmark_interval;
    let timeout = req.timeout.unwrap_or(state.settings().max_watch);
    tokio::spawn(async move {
        for line in initial {
            if tx.send(Ok(line)).await.is_err() {
                return;
            }
        }
        let Some(mut sub) = sub else { return };
        let mut drop_signal = drop_signal;
        if let Some(d) = drop_signal.as_mut() {
            d.mark_unchanged();
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        let mut last_rv = start_rv;
        loop {
            tokio::select! {
                ev = sub.recv() => match ev {
                    Ok(ev) => {
                        if ev.rv <= last_rv && ev.rv <= start_rv {
                            continue;
                        }
                        last_rv = last_rv.max(ev.rv);
                        if let Some(crd) = &req.res.crd
                            && crate::controllers::crd::rebuilds_storage(&ev, &crd.crd_name)
                        {
                            return;
                        }
                        if ev.key.0 != req.res.storage {
                            continue;
                        }
                        if let Some(line) = transition(&req, &ev)
                            && tx.send(Ok(line)).await.is_err()
                        {
                            return;
                        }
                    }
                    // A lagging watcher is closed, as the real server does; clients re-watch.
                    Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = ticker.tick() => {
                    if req.bookmarks && hooks.bookmarks_enabled() && tx.send(Ok(req.bookmark(last_rv, false))).await.is_err() {
                        return;
                    }
                }
                _ = &mut deadline => return,
                changed = async {
                    match drop_signal.as_mut() {
                        Some(d) => d.changed().await.is_err(),
                        None => std::future::pending().await,
                    }
                } => { let _ = changed; return; }
                _ = tx.closed() => return,
            }
        }
    });
    rx
}

/// The line this watcher sees for one store event, with label/field selector transitions.
fn transition(req: &WatchRequest, ev: &Arc<Event>) -> Option<Bytes> {
    let now = req.matches(&ev.key.1, &ev.obj);
    let before = ev.prev.as_ref().is_some_and(|p| req.matches(&ev.key.1, p));
    match ev.kind {
        EventType::Added => now.then(|| req.event_line("ADDED", ev)),
        EventType::Deleted => before.then(|| req.event_line("DELETED", ev)),
        EventType::Modified => match (before, now) {
            (true, true) => Some(req.event_line("MODIFIED", ev)),
            (false, true) => Some(req.event_line("ADDED", ev)),
            (true, false) => Some(req.event_line("DELETED", ev)),
            (false, false) => None,
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::hooks::Hooks;
    use crate::ops::{self, WriteCtx};
    use crate::state::Settings;

    /// A watcher that stops reading falls behind; once it lags past the buffer its stream is
    /// closed (as the real server does), and the client re-watches.
    #[tokio::test]
    async fn a_lagging_watcher_is_closed() {
        let settings = Settings {
            watch_buffer: 4,
            ..Settings::default()
        };
        let state = AppState::new(settings, Hooks::new());
        let res = state
            .lock()
            .resource("", "v1", "configmaps")
            .cloned()
            .unwrap();
        let req = WatchRequest {
            res: res.clone(),
            namespace: Some("default".into()),
            resource_version: Some(state.lock().rv.to_string()),
            labels: LabelSelector::default(),
            fields: FieldSelector::default(),
            timeout: Some(Duration::from_secs(60)),
            bookmarks: false,
            send_initial_events: false,
            render: Render::Json,
        };
        let mut rx = start(&state, req);
        let ctx = WriteCtx {
            now: ops::now_string(),
            manager: "t".into(),
            ..Default::default()
        };
        // More writes than the mpsc (256) and broadcast (4) buffers hold, without reading.
        for i in 0..400 {
            let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("c{i}")}});
            ops::create(&mut state.lock(), &res, Some("default"), body, &ctx).unwrap();
            if i % 50 == 0 {
                tokio::task::yield_now().await;
            }
        }
        let mut lines = 0;
        let drained = tokio::time::timeout(Duration::from_secs(20), async {
            while rx.recv().await.is_some() {
                lines += 1;
            }
        })
        .await;
        assert!(drained.is_ok(), "the stream was closed");
        assert!(
            lines < 400,
            "the lagging watcher did not get every event ({lines})"
        );
    }
}
