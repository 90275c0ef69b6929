//! Request handling in GitLab's processing order (spec §3.0): rate limit → route → faults →
//! authentication → token scope → Grape parameters → project → authorization/lookup →
//! business rules. Everything after routing runs synchronously under the state lock.

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

/// An answer before it becomes an HTTP response.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reply {
    pub status: u16,
    pub content_type: Option<&'static str>,
    pub body: String,
    pub headers: Vec<(String, String)>,
}

impl Reply {
    fn json(status: u16, body: serde_json::Value) -> Reply {
        Reply {
            status,
            content_type: Some("application/json"),
            body: body.to_string(),
            headers: Vec::new(),
        }
    }
    fn entity<T: serde::Serialize>(status: u16, v: &T) -> Reply {
        Reply {
            status,
            content_type: Some("application/json"),
            body: serde_json::to_string(v).unwrap_or_else(|_| "null".to_string()),
            headers: Vec::new(),
        }
    }
    fn no_content() -> Reply {
        Reply {
            status: 204,
            content_type: None,
            body: String::new(),
            headers: Vec::new(),
        }
    }
}

/// Every error answer, with GitLab's shape.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum ApiError {
    #[error("404 Not Found (no route)")]
    RouteNotFound,
    #[error("401 Unauthorized")]
    Unauthorized,
    #[error("token expired")]
    TokenExpired,
    #[error("token revoked")]
    TokenRevoked,
    #[error("insufficient scope, needs {0}")]
    InsufficientScope(&'static str),
    #[error("parameter errors: {0}")]
    Params(String),
    #[error("404 Project Not Found")]
    ProjectNotFound,
    #[error("403 Forbidden")]
    Forbidden,
    #[error("403 Forbidden - {0}")]
    ForbiddenBecause(&'static str),
    #[error("404 Not found")]
    NotFound,
    #[error("400 Bad request - {0}")]
    BadRequest(&'static str),
    #[error("400 {0}")]
    Message(serde_json::Value),
    #[error("412 Precondition Failed")]
    PreconditionFailed,
}

impl ApiError {
    /// Stable category, for logs.
    pub fn category(&self) -> &'static str {
        match self {
            ApiError::RouteNotFound => "RouteNotFound",
            ApiError::Unauthorized => "Unauthorized",
            ApiError::TokenExpired => "TokenExpired",
            ApiError::TokenRevoked => "TokenRevoked",
            ApiError::InsufficientScope(_) => "InsufficientScope",
            ApiError::Params(_) => "InvalidParameters",
            ApiError::ProjectNotFound => "ProjectNotFound",
            ApiError::Forbidden | ApiError::ForbiddenBecause(_) => "Forbidden",
            ApiError::NotFound => "NotFound",
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::Message(_) => "Unprocessable",
            ApiError::PreconditionFailed => "PreconditionFailed",
        }
    }

    fn reply(&self) -> Reply {
        match self {
            ApiError::RouteNotFound => Reply::json(404, json!({"error": "404 Not Found"})),
            ApiError::Unauthorized => Reply::json(401, json!({"message": "401 Unauthorized"})),
            ApiError::TokenExpired | ApiError::TokenRevoked => {
                let desc = if *self == ApiError::TokenExpired {
                    "Token is expired. You can either do re-authorization or token refresh."
                } else {
                    "Token was revoked. You have to re-authorize from the user."
                };
                let mut r = Reply::json(
                    401,
                    json!({"error": "invalid_token", "error_description": desc}),
                );
                r.headers.push((
                    "WWW-Authenticate".to_string(),
                    // rack-oauth2's default realm (unverified that GitLab keeps it).
                    format!(
                        "Bearer realm=\"Protected by OAuth 2.0\", error=\"invalid_token\", error_description=\"{desc}\""
                    ),
                ));
                r
            }
            // rack-oauth2's Forbidden carries no WWW-Authenticate header (GitLab's api_guard
            // notes this with a FIXME); `scope` is the accepted scopes joined by spaces.
            ApiError::InsufficientScope(scope) => Reply::json(
                403,
                json!({
                    "error": "insufficient_scope",
                    "error_description": "The request requires higher privileges than provided by the access token.",
                    "scope": scope
                }),
            ),
            ApiError::Params(msg) => Reply::json(400, json!({"error": msg})),
            ApiError::ProjectNotFound => {
                Reply::json(404, json!({"message": "404 Project Not Found"}))
            }
            ApiError::Forbidden => Reply::json(403, json!({"message": "403 Forbidden"})),
            ApiError::ForbiddenBecause(why) => {
                Reply::json(403, json!({"message": format!("403 Forbidden - {why}")}))
            }
            ApiError::NotFound => Reply::json(404, json!({"message": "404 Not found"})),
            ApiError::BadRequest(text) => {
                Reply::json(400, json!({"message": format!("400 Bad request - {text}")}))
            }
            ApiError::Message(v) => Reply::json(400, json!({"message": v})),
            ApiError::PreconditionFailed => {
                Reply::json(412, json!({"message": "412 Precondition Failed"}))
            }
        }
    }
}

/// A matched route with its raw (percent-decoded) path parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    pub endpoint: Endpoint,
    pub id: String,
    pub deployment_id: Option<String>,
}

fn decode(seg: &str) -> String {
    percent_decode_str(seg).decode_utf8_lossy().into_owned()
}

/// Matches `/api/v4/projects/:id/deployments...`. `:id` must not contain an un-encoded slash;
/// anything else falls to the catch-all. A wrong method on a known path also falls there
/// (GitLab's catch-all `route :any` answers 404; unverified versus Grape's 405).
pub(crate) fn match_route(method: &str, path: &str, edition: Edition) -> Option<Route> {
    let rest = path.strip_prefix("/api/v4/projects/")?;
    let mut segs: Vec<&str> = rest.split('/').collect();
    // Grape accepts an optional `.json` format suffix on the last segment.
    if let Some(last) = segs.last_mut()
        && let Some(s) = last.strip_suffix(".json")
    {
        *last = s;
    }
    if segs.iter().any(|s| s.is_empty()) || segs.get(1) != Some(&"deployments") {
        return None;
    }
    let method = if method == "HEAD" { "GET" } else { method };
    let id = decode(segs[0]);
    let did = segs.get(2).map(|s| decode(s));
    let endpoint = match (segs.len(), method, segs.get(3).copied()) {
        (2, "GET", _) => Endpoint::ListDeployments,
        (2, "POST", _) => Endpoint::CreateDeployment,
        (3, "GET", _) => Endpoint::GetDeployment,
        (3, "PUT", _) => Endpoint::UpdateDeployment,
        (3, "DELETE", _) => Endpoint::DeleteDeployment,
        (4, "GET", Some("merge_requests")) => Endpoint::ListMergeRequests,
        (4, "POST", Some("approval")) if edition == Edition::Ee => Endpoint::ApproveDeployment,
        _ => return None,
    };
    Some(Route {
        endpoint,
        id,
        deployment_id: did,
    })
}

/// Credentials found in headers and parameters.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Credentials {
    private: Option<String>,
    bearer: Option<String>,
    job: Option<String>,
}

fn credentials(headers: &HeaderMap, params: &Params) -> Credentials {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.trim().to_string())
    };
    let bearer = header("authorization").and_then(|a| {
        let (scheme, tok) = a.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| tok.trim().to_string())
    });
    Credentials {
        private: header("private-token")
            .or_else(|| params.get_str("private_token").map(str::to_string)),
        bearer: bearer.or_else(|| params.get_str("access_token").map(str::to_string)),
        job: header("job-token").or_else(|| params.get_str("job_token").map(str::to_string)),
    }
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Caller {
    user_id: u64,
    job_project: Option<u64>,
    scopes: Option<Vec<Scope>>,
}

/// `authenticate!`: the first credential present decides; a bad one is a 401, never a
/// fallback to the next.
fn authenticate(d: &Data, c: &Credentials) -> Result<Caller, ApiError> {
    let (tok, accept): (&str, fn(&TokenKind) -> bool) = if let Some(t) = &c.private {
        (t, |k| *k == TokenKind::Personal)
    } else if let Some(t) = &c.bearer {
        (t, |k| matches!(k, TokenKind::Personal | TokenKind::OAuth))
    } else if let Some(t) = &c.job {
        (t, |k| matches!(k, TokenKind::Job { .. }))
    } else {
        return Err(ApiError::Unauthorized);
    };
    let token = d
        .tokens
        .get(tok)
        .filter(|t| accept(&t.kind))
        .ok_or(ApiError::Unauthorized)?;
    if token.revoked {
        return Err(ApiError::TokenRevoked);
    }
    if token.expired {
        return Err(ApiError::TokenExpired);
    }
    let user = d.users.get(&token.user_id).ok_or(ApiError::Unauthorized)?;
    if user.state != "active" {
        return Err(ApiError::Unauthorized);
    }
    Ok(match token.kind {
        TokenKind::Job { project_id } => Caller {
            user_id: user.id,
            job_project: Some(project_id),
            scopes: None,
        },
        _ => Caller {
            user_id: user.id,
            job_project: None,
            scopes: Some(token.scopes.clone()),
        },
    })
}

/// Token scope check: writes need `api`; reads `api` or `read_api`. The `scope` member's
/// rendering for several scopes is unverified (we join with a space, as OAuth does).
fn check_scope(caller: &Caller, write: bool) -> Result<(), ApiError> {
    let Some(scopes) = &caller.scopes else {
        return Ok(());
    };
    let ok = scopes.iter().any(|s| match s {
        Scope::Api => true,
        Scope::ReadApi => !write,
        Scope::Other(_) => false,
    });
    if ok {
        Ok(())
    } else if write {
        Err(ApiError::InsufficientScope("api"))
    } else {
        Err(ApiError::InsufficientScope("api read_api"))
    }
}

/// Everything a route handler needs, read before taking the lock.
struct ApiRequest<'a> {
    route: &'a Route,
    params: &'a Params,
    headers: &'a HeaderMap,
    /// Raw request path (still percent-encoded), for `Link`.
    path: &'a str,
}

fn find_project<'d>(d: &'d Data, caller: &Caller, id: &str) -> Result<&'d Project, ApiError> {
    let p = d.project_by_ref(id).ok_or(ApiError::ProjectNotFound)?;
    if let Some(job_project) = caller.job_project {
        // Job-token allowlist: the job's own project, or one the target allows (unverified: 404).
        if p.id != job_project && !p.job_token_allowlist.contains(&job_project) {
            return Err(ApiError::ProjectNotFound);
        }
    }
    if !d.can_see_project(p, caller.user_id) {
        return Err(ApiError::ProjectNotFound);
    }
    Ok(p)
}

/// A deployments ability: the Environments feature must be on and the role high enough.
fn can(d: &Data, p: &Project, caller: &Caller, min: Role) -> bool {
    p.environments_enabled && d.has_role_at_least(p, caller.user_id, min)
}

fn lookup<'d>(d: &'d Data, p: &Project, raw: &str) -> Result<&'d Deployment, ApiError> {
    // Strict decimal lookup. Rails would cast "12abc" to 12 (unverified); we answer 404.
    let id: u64 = raw.parse().map_err(|_| ApiError::NotFound)?;
    d.deployments
        .get(&id)
        .filter(|dep| dep.project_id == p.id)
        .ok_or(ApiError::NotFound)
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
        Endpoint::NotFound => Err(ApiError::RouteNotFound),
    }
}

// ---- pagination (§6) -------------------------------------------------------------------

fn paginate<T>(
    items: Vec<T>,
    page: u64,
    per_page: u64,
    base: &str,
    path: &str,
    mut query: BTreeMap<String, String>,
) -> (Vec<T>, Vec<(String, String)>) {
    let total = items.len() as u64;
    let total_pages = total.div_ceil(per_page).max(1);
    let in_range = page <= total_pages;
    let next = (in_range && page < total_pages).then_some(page + 1);
    let prev = (in_range && page > 1).then_some(page - 1);
    let start = ((page - 1).saturating_mul(per_page)).min(total) as usize;
    let slice: Vec<T> = items
        .into_iter()
        .skip(start)
        .take(per_page as usize)
        .collect();
    let show_counts = total <= 10_000;
    query.insert("per_page".to_string(), per_page.to_string());
    let link = |n: u64| {
        let mut q = query.clone();
        q.insert("page".to_string(), n.to_string());
        let qs = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(q.iter())
            .finish();
        format!("<{base}{path}?{qs}>")
    };
    let mut links = Vec::new();
    if let Some(p) = prev {
        links.push(format!("{}; rel=\"prev\"", link(p)));
    }
    if let Some(n) = next {
        links.push(format!("{}; rel=\"next\"", link(n)));
    }
    links.push(format!("{}; rel=\"first\"", link(1)));
    if show_counts {
        links.push(format!("{}; rel=\"last\"", link(total_pages)));
    }
    let opt = |v: Option<u64>| v.map(|n| n.to_string()).unwrap_or_default();
    let mut h = vec![
        ("Link".to_string(), links.join(", ")),
        ("X-Next-Page".to_string(), opt(next)),
        ("X-Page".to_string(), page.to_string()),
        ("X-Per-Page".to_string(), per_page.to_string()),
        ("X-Prev-Page".to_string(), opt(prev)),
    ];
    if show_counts {
        h.push(("X-Total".to_string(), total.to_string()));
        h.push(("X-Total-Pages".to_string(), total_pages.to_string()));
    }
    (slice, h)
}

/// All request parameters except credentials, plus route params and declared defaults, as
/// GitLab's offset header builder puts them into `Link` (GitLab would include credential
/// parameters too; we leave them out so that `Link` headers never carry secrets).
fn link_query(req: &ApiRequest<'_>, defaults: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut q: BTreeMap<String, String> = req
        .params
        .map
        .iter()
        .filter(|(k, _)| !CREDENTIAL_PARAMS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.to_query_value()))
        .collect();
    for (k, v) in defaults {
        q.entry(k.to_string()).or_insert_with(|| v.to_string());
    }
    q.insert("id".to_string(), req.route.id.clone());
    if let Some(did) = &req.route.deployment_id {
        q.insert("deployment_id".to_string(), did.clone());
    }
    q
}

// ---- routes ----------------------------------------------------------------------------

fn list_deployments(
    d: &Data,
    caller: &Caller,
    req: &ApiRequest<'_>,
    base: &str,
) -> Result<Reply, ApiError> {
    let mut v = Validator::new(req.params);
    let (page, per_page) = v.pagination();
    let order_by = v.string_in(
        "order_by",
        false,
        &["id", "iid", "created_at", "updated_at", "finished_at"],
    );
    let sort = v.string_in("sort", false, &["asc", "desc"]);
    let updated_after = v.optional_datetime("updated_after");
    let updated_before = v.optional_datetime("updated_before");
    let finished_after = v.optional_datetime("finished_after");
    let finished_before = v.optional_datetime("finished_before");
    // The finder filters only on a present (non-blank) environment name.
    let environment = v
        .optional_string("environment")
        .filter(|e| !e.trim().is_empty());
    let all: Vec<&str> = DeploymentStatus::ALL.iter().map(|s| s.as_str()).collect();
    let status = v.string_in("status", false, &all);
    v.finish().map_err(ApiError::Params)?;

    let p = find_project(d, caller, &req.route.id)?;
    if !can(d, p, caller, Role::Reporter) {
        return Err(ApiError::Forbidden);
    }
    let order_by = order_by.unwrap_or_else(|| "id".to_string());
    let desc = sort.as_deref() == Some("desc");
    let any_updated = updated_after.is_some() || updated_before.is_some();
    let any_finished = finished_after.is_some() || finished_before.is_some();
    let finished_status = matches!(status.as_deref(), Some("success" | "failed" | "canceled"));
    if any_updated && any_finished {
        return Err(ApiError::BadRequest(
            "Both `updated_at` filter and `finished_at` filter can not be specified",
        ));
    }
    if any_updated && order_by != "updated_at" {
        return Err(ApiError::BadRequest(
            "`updated_at` filter requires `updated_at` sort",
        ));
    }
    if any_finished && order_by != "finished_at" {
        return Err(ApiError::BadRequest(
            "`finished_at` filter requires `finished_at` sort.",
        ));
    }
    if order_by == "finished_at" && !any_finished && !finished_status {
        return Err(ApiError::BadRequest(
            "`finished_at` sort requires `finished_at` filter or a filter with at least one of the finished statuses.",
        ));
    }
    if any_finished && status.as_deref() != Some("success") {
        return Err(ApiError::BadRequest(
            "`finished_at` filter must be combined with `success` status filter.",
        ));
    }
    let env_id = environment.as_ref().map(|name| {
        d.environments
            .values()
            .find(|e| e.project_id == p.id && &e.name == name)
            .map(|e| e.id)
    });
    let mut rows: Vec<&Deployment> = d
        .deployments
        .values()
        .filter(|dep| dep.project_id == p.id)
        .filter(|dep| env_id.is_none_or(|e| Some(dep.environment_id) == e))
        .filter(|dep| status.as_deref().is_none_or(|s| dep.status.as_str() == s))
        .filter(|dep| updated_after.is_none_or(|t| dep.updated_at >= t))
        .filter(|dep| updated_before.is_none_or(|t| dep.updated_at <= t))
        .filter(|dep| finished_after.is_none_or(|t| dep.finished_at.is_some_and(|f| f >= t)))
        .filter(|dep| finished_before.is_none_or(|t| dep.finished_at.is_some_and(|f| f < t)))
        .collect();
    match order_by.as_str() {
        "updated_at" => rows.sort_by(|a, b| a.updated_at.cmp(&b.updated_at).then(a.id.cmp(&b.id))),
        // PostgreSQL: NULLs last for ASC (and, reversed below, first for DESC).
        "finished_at" => rows.sort_by(|a, b| {
            let key = |x: &Deployment| (x.finished_at.is_none(), x.finished_at);
            key(a).cmp(&key(b)).then(a.id.cmp(&b.id))
        }),
        _ => rows.sort_by_key(|x| x.id),
    }
    if desc {
        rows.reverse();
    }
    let q = link_query(req, &[("order_by", "id"), ("sort", "asc")]);
    let (page_rows, headers) = paginate(rows, page, per_page, base, req.path, q);
    let body: Vec<_> = page_rows
        .into_iter()
        .map(|dep| render::deployment(d, dep, base, false))
        .collect();
    let mut r = Reply::entity(200, &body);
    r.headers = headers;
    Ok(r)
}

fn deployment_id_param(v: &mut Validator<'_>, req: &ApiRequest<'_>) {
    let raw = req.route.deployment_id.clone().unwrap_or_default();
    v.required_int("deployment_id", &raw);
}

fn get_deployment(
    d: &Data,
    caller: &Caller,
    req: &ApiRequest<'_>,
    base: &str,
) -> Result<Reply, ApiError> {
    let mut v = Validator::new(req.params);
    deployment_id_param(&mut v, req);
    v.finish().map_err(ApiError::Params)?;
    let p = find_project(d, caller, &req.route.id)?;
    if !can(d, p, caller, Role::Reporter) {
        return Err(ApiError::Forbidden);
    }
    let dep = lookup(d, p, req.route.deployment_id.as_deref().unwrap_or_default())?;
    Ok(Reply::entity(200, &render::deployment(d, dep, base, true)))
}

/// Status change with its side effects (§5.2): `updated_at`, `finished_at`, MR linking.
fn apply_status(d: &mut Data, dep_id: u64, status: DeploymentStatus, now: DateTime<Utc>) {
    let Some(dep) = d.deployments.get_mut(&dep_id) else {
        return;
    };
    dep.status = status;
    dep.updated_at = now;
    if status.is_finished() {
        dep.finished_at = Some(now);
    }
    if status == DeploymentStatus::Success {
        let snapshot = dep.clone();
        let to_link = d.merge_requests_to_link(&snapshot);
        if let Some(dep) = d.deployments.get_mut(&dep_id) {
            for m in to_link {
                if !dep.merge_request_ids.contains(&m) {
                    dep.merge_request_ids.push(m);
                }
            }
        }
    }
}

fn create_deployment(
    d: &mut Data,
    caller: &Caller,
    req: &ApiRequest<'_>,
    base: &str,
    now: DateTime<Utc>,
) -> Result<Reply, ApiError> {
    let mut v = Validator::new(req.params);
    let environment = v.required_nonblank_string("environment");
    let sha = v.required_nonblank_string("sha");
    let ref_ = v.required_nonblank_string("ref");
    let tag = v.required_bool("tag");
    let status = v.string_in("status", true, &API_STATUSES);
    v.finish().map_err(ApiError::Params)?;
    let (Some(environment), Some(sha), Some(ref_), Some(tag), Some(status)) = (
        environment,
        sha,
        ref_,
        tag,
        status.as_deref().and_then(DeploymentStatus::parse),
    ) else {
        return Err(ApiError::Params("invalid parameters".to_string()));
    };

    let p = find_project(d, caller, &req.route.id)?;
    if !can(d, p, caller, Role::Developer) {
        return Err(ApiError::Forbidden);
    }
    if p.resolve_revision(&sha).is_none() {
        return Err(ApiError::Message(
            json!({"sha": ["The commit does not exist"]}),
        ));
    }
    if p.resolve_revision(&ref_).is_none() {
        return Err(ApiError::Message(
            json!({"ref": ["The branch or tag does not exist"]}),
        ));
    }
    let project_id = p.id;
    let exists = d
        .environments
        .values()
        .any(|e| e.project_id == project_id && e.name == environment);
    if !exists {
        let errs = environment_name_errors(&environment);
        if !errs.is_empty() {
            return Err(ApiError::Message(json!({"name": errs})));
        }
    }
    // Created before the protected-environment check, as GitLab does.
    let env_id = ensure_environment(d, project_id, &environment, None, now);
    let p = d
        .projects
        .get(&project_id)
        .ok_or(ApiError::ProjectNotFound)?;
    if !d.may_deploy_to(p, caller.user_id, &environment) {
        return Err(ApiError::Forbidden);
    }
    // §3.3 duplicate short-circuit.
    if let Some(last) = d.last_successful_deployment(env_id)
        && last.ref_ == ref_
        && last.tag == tag
        && last.sha == sha
        && last.status == status
    {
        return Ok(Reply::entity(201, &render::deployment(d, last, base, true)));
    }
    let id = d.seq.deployment;
    d.seq.deployment += 1;
    let p = d
        .projects
        .get_mut(&project_id)
        .ok_or(ApiError::ProjectNotFound)?;
    let iid = p.next_deployment_iid;
    p.next_deployment_iid += 1;
    d.deployments.insert(
        id,
        Deployment {
            id,
            iid,
            project_id,
            environment_id: env_id,
            sha,
            ref_,
            tag,
            status: DeploymentStatus::Created,
            user_id: Some(caller.user_id),
            created_at: now,
            updated_at: now,
            finished_at: None,
            deployable: None,
            approvals: Vec::new(),
            merge_request_ids: Vec::new(),
        },
    );
    apply_status(d, id, status, now);
    let dep = d.deployments.get(&id).ok_or(ApiError::NotFound)?;
    Ok(Reply::entity(201, &render::deployment(d, dep, base, true)))
}

fn update_deployment(
    d: &mut Data,
    caller: &Caller,
    req: &ApiRequest<'_>,
    base: &str,
    now: DateTime<Utc>,
) -> Result<Reply, ApiError> {
    let mut v = Validator::new(req.params);
    let status = v.string_in("status", true, &API_STATUSES);
    v.finish().map_err(ApiError::Params)?;
    let status = status
        .as_deref()
        .and_then(DeploymentStatus::parse)
        .ok_or_else(|| ApiError::Params("status does not have a valid value".to_string()))?;
    let p = find_project(d, caller, &req.route.id)?;
    // Not declared Integer on this route: a non-numeric id is simply not found.
    let dep = lookup(d, p, req.route.deployment_id.as_deref().unwrap_or_default())?;
    let env_name = d
        .environments
        .get(&dep.environment_id)
        .map(|e| e.name.clone())
        .unwrap_or_default();
    if !can(d, p, caller, Role::Developer) || !d.may_deploy_to(p, caller.user_id, &env_name) {
        return Err(ApiError::Forbidden);
    }
    if dep.deployable.is_some() {
        return Err(ApiError::ForbiddenBecause(
            "Deployments created using GitLab CI can not be updated using the API",
        ));
    }
    if let Err(event) = transition(dep.status, status) {
        return Err(ApiError::Message(
            json!({"status": [format!("cannot transition via \"{event}\"")]}),
        ));
    }
    let id = dep.id;
    apply_status(d, id, status, now);
    let dep = d.deployments.get(&id).ok_or(ApiError::NotFound)?;
    Ok(Reply::entity(200, &render::deployment(d, dep, base, true)))
}

fn delete_deployment(
    d: &mut Data,
    caller: &Caller,
    req: &ApiRequest<'_>,
) -> Result<Reply, ApiError> {
    let mut v = Validator::new(req.params);
    deployment_id_param(&mut v, req);
    v.finish().map_err(ApiError::Params)?;
    let p = find_project(d, caller, &req.route.id)?;
    let dep = lookup(d, p, req.route.deployment_id.as_deref().unwrap_or_default())?;
    let env_name = d
        .environments
        .get(&dep.environment_id)
        .map(|e| e.name.clone())
        .unwrap_or_default();
    if !can(d, p, caller, Role::Maintainer) || !d.may_deploy_to(p, caller.user_id, &env_name) {
        return Err(ApiError::Forbidden);
    }
    let since = req
        .headers
        .get("if-unmodified-since")
        .and_then(|h| h.to_str().ok())
        .and_then(|s| {
            DateTime::parse_from_rfc2822(s)
                .map(|t| t.with_timezone(&Utc))
                .ok()
                .or_else(|| parse_datetime(s))
        });
    if since.is_some_and(|since| dep.updated_at > since) {
        return Err(ApiError::PreconditionFailed);
    }
    if dep.status == DeploymentStatus::Running {
        return Err(ApiError::Message(json!(
            "Cannot destroy running deployment"
        )));
    }
    if d.last_successful_deployment(dep.environment_id)
        .map(|l| l.id)
        == Some(dep.id)
    {
        return Err(ApiError::Message(json!(
            "Deployment currently deployed to environment"
        )));
    }
    let id = dep.id;
    d.deployments.remove(&id);
    Ok(Reply::no_content())
}

fn list_merge_requests(
    d: &Data,
    caller: &Caller,
    req: &ApiRequest<'_>,
    base: &str,
) -> Result<Reply, ApiError> {
    let mut v = Validator::new(req.params);
    deployment_id_param(&mut v, req);
    let (page, per_page) = v.pagination();
    let state = v.string_in(
        "state",
        false,
        &["opened", "closed", "locked", "merged", "all"],
    );
    let order_by = v.string_in(
        "order_by",
        false,
        &[
            "created_at",
            "updated_at",
            "merged_at",
            "title",
            "label_priority",
            "milestone_due",
            "popularity",
            "priority",
        ],
    );
    let sort = v.string_in("sort", false, &["asc", "desc"]);
    v.finish().map_err(ApiError::Params)?;
    let p = find_project(d, caller, &req.route.id)?;
    if !can(d, p, caller, Role::Reporter) {
        return Err(ApiError::Forbidden);
    }
    // The deployment is not looked up: unknown ids (or another project's) give [].
    let ids: Vec<u64> = req
        .route
        .deployment_id
        .as_deref()
        .and_then(|s| s.parse::<u64>().ok())
        .and_then(|id| d.deployments.get(&id))
        .filter(|dep| dep.project_id == p.id)
        .map(|dep| dep.merge_request_ids.clone())
        .unwrap_or_default();
    let state = state.unwrap_or_else(|| "all".to_string());
    let mut mrs: Vec<&MergeRequest> = ids
        .iter()
        .filter_map(|id| d.merge_requests.get(id))
        .filter(|m| state == "all" || m.state == state)
        .collect();
    match order_by.as_deref().unwrap_or("created_at") {
        "updated_at" => mrs.sort_by(|a, b| a.updated_at.cmp(&b.updated_at).then(a.id.cmp(&b.id))),
        "merged_at" => mrs.sort_by(|a, b| a.merged_at.cmp(&b.merged_at).then(a.id.cmp(&b.id))),
        "title" => mrs.sort_by(|a, b| a.title.cmp(&b.title).then(a.id.cmp(&b.id))),
        _ => mrs.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id))),
    }
    if sort.as_deref() != Some("asc") {
        mrs.reverse();
    }
    let q = link_query(
        req,
        &[
            ("order_by", "created_at"),
            ("sort", "desc"),
            ("state", "all"),
        ],
    );
    let (rows, headers) = paginate(mrs, page, per_page, base, req.path, q);
    let body: Vec<_> = rows
        .into_iter()
        .map(|m| render::merge_request(d, m, base))
        .collect();
    let mut r = Reply::entity(200, &body);
    r.headers = headers;
    Ok(r)
}

fn approve_deployment(
    d: &mut Data,
    caller: &Caller,
    req: &ApiRequest<'_>,
    base: &str,
    now: DateTime<Utc>,
) -> Result<Reply, ApiError> {
    let mut v = Validator::new(req.params);
    deployment_id_param(&mut v, req);
    let status = v.string_in("status", true, &["approved", "rejected"]);
    let comment = v.optional_string("comment");
    let represented_as = v.optional_string("represented_as");
    v.finish().map_err(ApiError::Params)?;
    let status = status.ok_or_else(|| ApiError::Message(json!("Unrecognized approval status.")))?;
    let p = find_project(d, caller, &req.route.id)?;
    if !can(d, p, caller, Role::Reporter) {
        return Err(ApiError::Forbidden);
    }
    let dep = lookup(d, p, req.route.deployment_id.as_deref().unwrap_or_default())?;
    let env_name = d
        .environments
        .get(&dep.environment_id)
        .map(|e| e.name.clone())
        .unwrap_or_default();
    let msg = |s: &str| ApiError::Message(json!(s));
    let Some(pe) = d.protected_environment(p, &env_name) else {
        return Err(msg("This environment is not protected."));
    };
    if dep.user_id == Some(caller.user_id)
        && status == "approved"
        && !p.allow_pipeline_trigger_approve_deployment
    {
        return Err(msg(
            "You cannot approve your own deployment. This configuration can be adjusted in the protected environment settings.",
        ));
    }
    if pe.approval_rules.is_empty() {
        return Err(msg(
            "Deployment approvals is not configured for this environment.",
        ));
    }
    if d.pending_approval_count(dep) == 0 {
        return Err(msg("This deployment is not waiting for approvals."));
    }
    let matching: Vec<&ApprovalRule> = pe
        .approval_rules
        .iter()
        .filter(|r| d.rule_matches(p, r, caller.user_id))
        .collect();
    if matching.is_empty() {
        return Err(msg(
            "You don't have permission to approve this deployment. Contact the project or group owner for help.",
        ));
    }
    let rule = match &represented_as {
        Some(want) => matching.iter().find(|r| {
            d.rule_description(r)
                .is_some_and(|desc| desc.contains(want.as_str()))
        }),
        None => matching.first(),
    };
    let Some(rule_id) = rule.map(|r| r.id) else {
        return Err(msg(
            "There are no approval rules for the given `represent_as` parameter. Use a valid User/Group/Role name instead.",
        ));
    };
    let dep_id = dep.id;
    let dep = d.deployments.get_mut(&dep_id).ok_or(ApiError::NotFound)?;
    let idx = match dep
        .approvals
        .iter()
        .position(|a| a.user_id == caller.user_id && a.rule_id == Some(rule_id))
    {
        Some(i) => {
            let a = &mut dep.approvals[i];
            if a.status != status {
                a.status = status;
                a.comment = comment;
            }
            i
        }
        None => {
            dep.approvals.push(Approval {
                user_id: caller.user_id,
                status,
                comment,
                created_at: now,
                rule_id: Some(rule_id),
            });
            dep.approvals.len() - 1
        }
    };
    let dep = d.deployments.get(&dep_id).ok_or(ApiError::NotFound)?;
    let a = dep.approvals.get(idx).ok_or(ApiError::NotFound)?;
    Ok(Reply::entity(201, &render::approval(d, a, base)))
}

// ---- dispatch (async shell) --------------------------------------------------------------

fn sanitized_path(path: &str, query: Option<&str>) -> String {
    let Some(q) = query.filter(|q| !q.is_empty()) else {
        return path.to_string();
    };
    let kept: Vec<&str> = q
        .split('&')
        .filter(|kv| {
            let k = kv.split('=').next().unwrap_or_default();
            !CREDENTIAL_PARAMS.contains(&decode(k).as_str())
        })
        .collect();
    if kept.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", kept.join("&"))
    }
}

fn html_error(code: u16) -> Reply {
    let reason = StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    Reply {
        status: code,
        content_type: Some("text/html"),
        body: format!(
            "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n<center><h1>{code} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
        ),
        headers: Vec::new(),
    }
}

fn throttled(limit: &RateLimit, observed: u64, now: DateTime<Utc>) -> Reply {
    Reply {
        status: 429,
        content_type: Some("text/plain"),
        body: "Retry later\n".to_string(),
        headers: rate_limit_headers(limit, observed, now)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    }
}

/// What an injected fault turns into (`None` = drop the connection).
fn fault_reply(kind: &FaultKind, g: &Inner) -> Option<Reply> {
    match kind {
        FaultKind::Status(500) => Some(Reply::json(
            500,
            json!({"message": "500 Internal Server Error"}),
        )),
        FaultKind::Status(code @ 502..=504) => Some(html_error(*code)),
        FaultKind::Status(code) => Some(Reply::json(*code, json!({"message": code.to_string()}))),
        FaultKind::RateLimited { retry_after_secs } => {
            let limit = g
                .rate_limit
                .clone()
                .unwrap_or_else(RateLimit::gitlab_default);
            let now = g.now();
            let mut r = throttled(&limit, limit.limit + 1, now);
            let reset = now.timestamp() + *retry_after_secs as i64;
            for (k, v) in r.headers.iter_mut() {
                match k.as_str() {
                    "Retry-After" => *v = retry_after_secs.to_string(),
                    "RateLimit-Reset" => *v = reset.to_string(),
                    "RateLimit-ResetTime" => {
                        *v = DateTime::<Utc>::from_timestamp(reset, 0)
                            .map(|t| t.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
                            .unwrap_or_default()
                    }
                    _ => {}
                }
            }
            Some(r)
        }
        FaultKind::MalformedJson => Some(Reply {
            status: 200,
            content_type: Some("application/json"),
            body: "{\"id\": 1, \"iid\": 1, \"ref\": \"main\", \"sha\": ".to_string(),
            headers: Vec::new(),
        }),
        FaultKind::Drop => None,
        FaultKind::Delay(_) => None,
    }
}

fn into_response(r: Reply) -> Response {
    let mut resp = Response::new(Body::from(r.body));
    *resp.status_mut() =
        StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    if let Some(ct) = r.content_type {
        h.insert("content-type", HeaderValue::from_static(ct));
    }
    for (k, v) in r.headers {
        if let (Ok(k), Ok(v)) = (
            axum::http::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            h.append(k, v);
        }
    }
    resp
}

/// A response whose body fails at once: hyper aborts the connection, so the client sees a
/// reset/EOF instead of an answer.
fn dropped_connection() -> Response {
    let stream = futures::stream::once(async {
        Err::<Vec<u8>, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "injected fault: drop connection",
        ))
    });
    Response::new(Body::from_stream(stream))
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
    let record = |status: u16| RequestRecord {
        method: method.clone(),
        endpoint: endpoint.template().to_string(),
        route: endpoint,
        path: logged_path.clone(),
        status,
        at: now,
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
