//! Request handling in GitLab's processing order (spec §3.0): rate limit → route → faults →
//! authentication → token scope → Grape parameters → project → authorization/lookup →
//! business rules. Everything after routing runs synchronously under the state lock.

mod approvals;
mod auth;
mod deployments;
mod environments;
mod hooks;
mod merge_requests;
mod pagination;
mod reply;
mod routing;

use approvals::*;
use auth::*;
use deployments::*;
use environments::*;
use hooks::*;
use merge_requests::*;
use pagination::*;
use reply::*;
use routing::*;

use crate::faults::{FaultKind, FaultPhase, RateLimit, rate_limit_headers};
use crate::handle::{EmulatorHandle, Inner, ensure_environment};
use crate::model::*;
use crate::params::{Params, Validator, parse_datetime};
use crate::records::{Endpoint, RequestRecord};
use crate::render;
use crate::state::{Data, environment_name_errors, transition};
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};
use percent_encoding::percent_decode_str;
use serde_json::json;
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// Largest request body accepted.
const MAX_BODY: usize = 4 * 1024 * 1024;
/// Query/body parameters that carry credentials (never logged).
const CREDENTIAL_PARAMS: [&str; 3] = ["private_token", "access_token", "job_token"];
const API_STATUSES: [&str; 4] = ["running", "success", "failed", "canceled"];

/// Everything a route handler needs, read before taking the lock.
struct ApiRequest<'a> {
    route: &'a Route,
    params: &'a Params,
    headers: &'a HeaderMap,
    /// Raw request path (still percent-encoded), for `Link`.
    path: &'a str,
}

fn handle(g: &mut Inner, req: &ApiRequest<'_>) -> Result<Reply, ApiError> {
    let creds = credentials(req.headers, req.params);
    let caller = authenticate(&g.data, &creds)?;
    let write = matches!(
        req.route.endpoint,
        Endpoint::CreateDeployment
            | Endpoint::UpdateDeployment
            | Endpoint::DeleteDeployment
            | Endpoint::ApproveDeployment
            | Endpoint::UpdateEnvironment
            | Endpoint::CreateHook
            | Endpoint::DeleteHook
    );
    check_scope(&caller, write)?;
    let now = g.now();
    let base = g.external_url.clone();
    match req.route.endpoint {
        Endpoint::ListDeployments => list_deployments(&g.data, &caller, req, &base),
        Endpoint::GetDeployment => get_deployment(&g.data, &caller, req, &base),
        Endpoint::CreateDeployment => create_deployment(&mut g.data, &caller, req, &base, now),
        Endpoint::UpdateDeployment => update_deployment(&mut g.data, &caller, req, &base, now),
        Endpoint::DeleteDeployment => delete_deployment(&mut g.data, &caller, req),
        Endpoint::ListMergeRequests => list_merge_requests(&g.data, &caller, req, &base),
        Endpoint::ApproveDeployment => approve_deployment(&mut g.data, &caller, req, &base, now),
        Endpoint::ListEnvironments => list_environments(&g.data, &caller, req, &base),
        Endpoint::GetEnvironment => get_environment(&g.data, &caller, req, &base),
        Endpoint::UpdateEnvironment => update_environment(&mut g.data, &caller, req, &base, now),
        Endpoint::ListClusterAgents => list_cluster_agents(&g.data, &caller, req, &base),
        Endpoint::ListHooks => list_hooks(&g.data, &caller, req),
        Endpoint::GetHook => get_hook(&g.data, &caller, req),
        Endpoint::CreateHook => create_hook(&mut g.data, &caller, req, now),
        Endpoint::DeleteHook => delete_hook(&mut g.data, &caller, req),
        Endpoint::NotFound => Err(ApiError::RouteNotFound),
    }
}

/// The single axum handler (router fallback).
pub(crate) async fn dispatch(State(h): State<EmulatorHandle>, req: Request) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "local".to_string());
    let (parts, body) = req.into_parts();
    let method = parts.method.as_str().to_ascii_uppercase();
    let path = parts.uri.path().to_string();
    let logged_path = sanitized_path(&path, parts.uri.query());
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .unwrap_or_default();

    let mut params = Params::from_query(parts.uri.query().unwrap_or_default());
    let content_type = parts
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body_error = params.merge_body(&content_type, &bytes).err();

    let (route, now) = {
        let g = h.lock();
        (match_route(&method, &path, g.data.edition), g.now())
    };
    let endpoint = route
        .as_ref()
        .map(|r| r.endpoint)
        .unwrap_or(Endpoint::NotFound);
    let logged_headers = redacted_headers(&parts.headers);
    let logged_body = redacted_body(&content_type, &bytes);
    let record = |status: u16| RequestRecord {
        method: method.clone(),
        endpoint: endpoint.template().to_string(),
        route: endpoint,
        path: logged_path.clone(),
        status,
        at: now,
        headers: logged_headers.clone(),
        body: logged_body.clone(),
    };

    // 1. Rate limit (Rack::Attack runs before routing).
    let throttle = {
        let mut g = h.lock();
        match g.rate_limit.clone() {
            Some(limit) => {
                let creds = credentials(&parts.headers, &params);
                let who = authenticate(&g.data, &creds)
                    .map(|c| format!("user:{}", c.user_id))
                    .unwrap_or_else(|_| format!("ip:{peer}"));
                let period = limit.period_secs.max(1) as i64;
                let window = now.timestamp().div_euclid(period);
                let entry = g.rate_windows.entry(who).or_insert((window, 0));
                if entry.0 != window {
                    *entry = (window, 0);
                }
                entry.1 += 1;
                let observed = entry.1;
                (observed > limit.limit).then(|| throttled(&limit, observed, now))
            }
            None => None,
        }
    };
    if let Some(r) = throttle {
        h.record(record(r.status));
        return into_response(r);
    }

    // 2. Injected faults.
    let fault = {
        let mut g = h.lock();
        let pos = g.faults.iter().position(|f| f.matches(endpoint, &method));
        pos.map(|i| {
            let f = &mut g.faults[i];
            if let Some(n) = f.times.as_mut() {
                *n -= 1;
            }
            let f = f.clone();
            if g.faults[i].times == Some(0) {
                g.faults.remove(i);
            }
            f
        })
    };
    let mut after_fault = None;
    if let Some(f) = fault {
        match (&f.kind, f.phase) {
            (FaultKind::Delay(d), _) => tokio::time::sleep(*d).await,
            (_, FaultPhase::After) => after_fault = Some(f.kind),
            (kind, FaultPhase::Before) => {
                let r = fault_reply(kind, &h.lock());
                return match r {
                    Some(r) => {
                        h.record(record(r.status));
                        into_response(r)
                    }
                    None => {
                        h.record(record(0));
                        dropped_connection()
                    }
                };
            }
        }
    }

    // 3. The API itself.
    let reply = match (&route, body_error) {
        (None, _) => ApiError::RouteNotFound.reply(),
        (Some(_), Some(e)) => Reply::json(400, json!({"error": e.to_string()})),
        (Some(route), None) => {
            let api_req = ApiRequest {
                route,
                params: &params,
                headers: &parts.headers,
                path: &path,
            };
            let mut g = h.lock();
            let res = handle(&mut g, &api_req);
            let reply = match res {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(category = e.category(), error = %e, "api error");
                    e.reply()
                }
            };
            if method != "GET" {
                g.persist();
            }
            drop(g);
            crate::webhooks::spawn_deliveries(&h);
            reply
        }
    };

    if let Some(kind) = after_fault {
        let r = fault_reply(&kind, &h.lock());
        return match r {
            Some(r) => {
                h.record(record(r.status));
                into_response(r)
            }
            None => {
                h.record(record(0));
                dropped_connection()
            }
        };
    }
    h.record(record(reply.status));
    into_response(reply)
}
