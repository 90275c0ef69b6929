//! Admin HTTP routes for the hooks (`/__emulator/...`), so tests driving the binary can use them.

use crate::hooks::Fault;
use crate::state::AppState;
use axum::response::{IntoResponse, Response};
use http::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;

fn q(query: Option<&str>) -> HashMap<String, String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query.unwrap_or(""))
        .unwrap_or_default()
        .into_iter()
        .collect()
}

fn ok(v: Value) -> Response {
    (StatusCode::OK, axum::Json(v)).into_response()
}

pub async fn handle(
    state: &AppState,
    method: &Method,
    path: &str,
    query: Option<&str>,
    body: &[u8],
) -> Response {
    let params = q(query);
    let num = |k: &str, d: u64| {
        params
            .get(k)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(d)
    };
    let hooks = state.hooks();
    match (method.clone(), path.trim_end_matches('/')) {
        (Method::POST, "watches/drop") => {
            hooks.drop_watches();
            ok(json!({"dropped": true}))
        }
        (Method::POST, "watches/expire") => {
            hooks.expire_next_watches(num("count", 1) as usize);
            ok(json!({"expire": num("count", 1)}))
        }
        (Method::POST, "bookmarks") => {
            hooks.set_bookmarks(params.get("enabled").map(String::as_str) != Some("false"));
            ok(json!({}))
        }
        (Method::POST, "faults") => match serde_json::from_slice::<Fault>(body) {
            Ok(f) => {
                hooks.fail_requests(&f.path_prefix, f.code, f.remaining, f.retry_after_seconds);
                ok(json!({"added": true}))
            }
            Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        },
        (Method::DELETE, "faults") => {
            hooks.clear_faults();
            ok(json!({}))
        }
        (Method::POST, "latency") => {
            hooks.set_latency(Duration::from_millis(num("ms", 0)));
            ok(json!({"ms": num("ms", 0)}))
        }
        (Method::POST, "restart") => {
            hooks.restart();
            ok(json!({"restarted": true}))
        }
        (Method::GET, "requests") => {
            ok(serde_json::to_value(hooks.requests()).unwrap_or(Value::Null))
        }
        (Method::DELETE, "requests") => {
            hooks.clear_requests();
            ok(json!({}))
        }
        (Method::GET, "counts") => {
            let counts: Vec<Value> = hooks
                .counts()
                .into_iter()
                .map(|((v, r), n)| json!({"verb": v, "resource": r, "count": n}))
                .collect();
            ok(Value::Array(counts))
        }
        (Method::POST, "rollouts/pause") => {
            hooks.pause_rollouts(params.get("paused").map(String::as_str) != Some("false"));
            ok(json!({}))
        }
        (Method::POST, "rollouts/advance") => {
            hooks.advance_rollouts(num("steps", 1));
            ok(json!({"steps": num("steps", 1)}))
        }
        (Method::POST, "compact") => {
            // What was written so far is observed first: compaction must not hide it from the
            // controllers.
            let mut inner = state.lock();
            state.observe(&mut inner);
            inner.compact();
            ok(json!({}))
        }
        (Method::GET, "rv") => ok(json!({"resourceVersion": state.lock().rv.to_string()})),
        _ => (StatusCode::NOT_FOUND, "unknown admin path").into_response(),
    }
}
