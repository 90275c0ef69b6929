//! Two views of one storage (spec §11): Events are stored in core/v1 form and shown as
//! events.k8s.io/v1 on that group's endpoints. Every other resource is its own view.

use crate::resources::ResourceInfo;
use serde_json::{Map, Value, json};

fn is_events_v1(res: &ResourceInfo) -> bool {
    res.group == "events.k8s.io"
}

fn mv(from: &mut Map<String, Value>, to: &mut Map<String, Value>, a: &str, b: &str) {
    if let Some(v) = from.remove(a) {
        to.insert(b.to_string(), v);
    }
}

/// Whether the resource's view is its stored form (every kind but events.k8s.io/v1 Events).
pub fn is_stored_form(res: &ResourceInfo) -> bool {
    !is_events_v1(res)
}

/// Stored (core) form → the resource's view.
pub fn to_view(res: &ResourceInfo, obj: &Value) -> Value {
    if !is_events_v1(res) {
        return obj.clone();
    }
    let Some(src) = obj.as_object() else {
        return obj.clone();
    };
    let mut src = src.clone();
    let mut out = Map::new();
    out.insert("kind".into(), json!("Event"));
    out.insert("apiVersion".into(), json!("events.k8s.io/v1"));
    src.remove("kind");
    src.remove("apiVersion");
    mv(&mut src, &mut out, "metadata", "metadata");
    mv(&mut src, &mut out, "involvedObject", "regarding");
    mv(&mut src, &mut out, "message", "note");
    mv(
        &mut src,
        &mut out,
        "reportingComponent",
        "reportingController",
    );
    mv(&mut src, &mut out, "source", "deprecatedSource");
    mv(
        &mut src,
        &mut out,
        "firstTimestamp",
        "deprecatedFirstTimestamp",
    );
    mv(
        &mut src,
        &mut out,
        "lastTimestamp",
        "deprecatedLastTimestamp",
    );
    mv(&mut src, &mut out, "count", "deprecatedCount");
    for (k, v) in src {
        out.insert(k, v);
    }
    Value::Object(out)
}

/// The resource's view → stored (core) form.
pub fn from_view(res: &ResourceInfo, obj: Value) -> Value {
    if !is_events_v1(res) {
        return obj;
    }
    let Value::Object(mut src) = obj else {
        return obj;
    };
    let mut out = Map::new();
    out.insert("kind".into(), json!("Event"));
    out.insert("apiVersion".into(), json!("v1"));
    src.remove("kind");
    src.remove("apiVersion");
    mv(&mut src, &mut out, "metadata", "metadata");
    mv(&mut src, &mut out, "regarding", "involvedObject");
    mv(&mut src, &mut out, "note", "message");
    mv(
        &mut src,
        &mut out,
        "reportingController",
        "reportingComponent",
    );
    mv(&mut src, &mut out, "deprecatedSource", "source");
    mv(
        &mut src,
        &mut out,
        "deprecatedFirstTimestamp",
        "firstTimestamp",
    );
    mv(
        &mut src,
        &mut out,
        "deprecatedLastTimestamp",
        "lastTimestamp",
    );
    mv(&mut src, &mut out, "deprecatedCount", "count");
    for (k, v) in src {
        out.insert(k, v);
    }
    // Core view: count = series.count (or 1) so `kubectl get events` / describe show repeats.
    let count = out.get("series").and_then(|s| s.get("count")).cloned();
    match count {
        Some(c) => {
            out.insert("count".into(), c);
        }
        None => {
            out.entry("count").or_insert(json!(1));
        }
    }
    if !out.contains_key("source")
        && let Some(c) = out.get("reportingComponent").cloned()
    {
        out.insert("source".into(), json!({"component": c}));
    }
    Value::Object(out)
}
