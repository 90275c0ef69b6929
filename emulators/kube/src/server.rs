//! HTTP layer: one handler parses the Kubernetes URL layout (spec §3) and dispatches to
//! discovery, OpenAPI, the admin hooks or the resource verbs.

use crate::discovery;
use crate::error::{ApiError, ApiResult};
use crate::hooks::RequestRecord;
use crate::ops::{self, DeleteOpts, Deleted, FieldValidation, PatchType, WriteCtx, Written};
use crate::print::{self, IncludeObject};
use crate::resources::ResourceInfo;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::state::AppState;
use crate::views;
use crate::watch::{self, Render, WatchRequest};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;
use tokio_stream::wrappers::ReceiverStream;

/// The emulator's router (API, discovery, OpenAPI, admin hooks).
pub fn router(state: AppState) -> Router {
    Router::new().fallback(handle).with_state(state)
}

/// Serve `router(state)` on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, state: AppState) -> std::io::Result<()> {
    axum::serve(listener, router(state)).await
}

/// Query parameters, with empty pairs ignored (kube-rs sends `?&watch=true`).
#[derive(Debug, Default)]
pub struct Query(HashMap<String, String>);

impl Query {
    fn parse(q: Option<&str>) -> ApiResult<Self> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(q.unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("invalid query: {e}")))?;
        Ok(Self(
            pairs.into_iter().filter(|(k, _)| !k.is_empty()).collect(),
        ))
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }
    fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true" | "1" | "True"))
    }
}

/// Parsed resource URL.
#[derive(Debug, Clone, Default)]
struct Target {
    group: String,
    version: String,
    namespace: Option<String>,
    resource: String,
    name: Option<String>,
    subresource: Option<String>,
}

fn parse_target(group: &str, version: &str, rest: &[&str]) -> Option<Target> {
    let t = |ns: Option<&str>, r: &str, n: Option<&str>, s: Option<&str>| Target {
        group: group.into(),
        version: version.into(),
        namespace: ns.map(String::from),
        resource: r.into(),
        name: n.map(String::from),
        subresource: s.map(String::from),
    };
    match rest {
        ["namespaces", ns, sub @ ("status" | "finalize")] => {
            Some(t(None, "namespaces", Some(ns), Some(sub)))
        }
        ["namespaces", ns, r] => Some(t(Some(ns), r, None, None)),
        ["namespaces", ns, r, n] => Some(t(Some(ns), r, Some(n), None)),
        ["namespaces", ns, r, n, s] => Some(t(Some(ns), r, Some(n), Some(s))),
        [r] => Some(t(None, r, None, None)),
        [r, n] => Some(t(None, r, Some(n), None)),
        [r, n, s] => Some(t(None, r, Some(n), Some(s))),
        _ => None,
    }
}

fn json_response(code: StatusCode, v: &Value) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_default();
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn typed_response(code: StatusCode, content_type: &str, v: &Value) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_default();
    let ct =
        HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static("application/json"));
    (code, [(header::CONTENT_TYPE, ct)], body).into_response()
}

/// Negotiated response form from the `Accept` header (spec §7, §9).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Accept {
    Json,
    Metadata,
    Table { v1beta1: bool },
}

fn negotiate(headers: &HeaderMap) -> ApiResult<Accept> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.is_empty() {
        return Ok(Accept::Json);
    }
    let mut json_ok = false;
    for part in accept.split(',') {
        let p = part.replace(' ', "");
        if p.contains("as=Table") {
            return Ok(Accept::Table {
                v1beta1: p.contains("v=v1beta1"),
            });
        }
        if p.contains("as=PartialObjectMetadata") {
            return Ok(Accept::Metadata);
        }
        if p.starts_with("application/json")
            || p.starts_with("*/*")
            || p.starts_with("application/*")
            || p.starts_with("application/yaml")
        {
            json_ok = true;
        }
    }
    if json_ok || accept.contains("protobuf") {
        Ok(Accept::Json)
    } else {
        Err(ApiError::Status {
            code: 406,
            reason: "NotAcceptable",
            message: format!(
                "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf; got {accept}"
            ),
            details: None,
            retry_after: None,
        })
    }
}

fn authorized(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(token) = &state.settings().token else {
        return true;
    };
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| t.trim() == token)
}

async fn handle(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    if matches!(path.as_str(), "/healthz" | "/readyz" | "/livez") {
        return (StatusCode::OK, "ok").into_response();
    }
    if !authorized(&state, &headers) {
        return ApiError::unauthorized().into_response();
    }
    if let Some(rest) = path.strip_prefix("/__emulator/") {
        return crate::admin::handle(&state, &method, rest, uri.query(), &body).await;
    }
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let query = match Query::parse(uri.query()) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    match segs.as_slice() {
        ["version"] => return json_response(StatusCode::OK, &discovery::version()),
        ["api"] => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("127.0.0.1")
                .to_string();
            return json_response(StatusCode::OK, &discovery::api_versions(&host));
        }
        ["apis"] => {
            return json_response(
                StatusCode::OK,
                &discovery::api_group_list(&state.lock().resources),
            );
        }
        ["openapi", rest @ ..] => return crate::openapi_routes::handle(&state, rest, &query.0),
        _ => {}
    }
    let (group, version, rest) = match segs.as_slice() {
        ["api", "v1", rest @ ..] => ("", "v1", rest),
        ["apis", g] => {
            return match discovery::api_group(&state.lock().resources, g) {
                Some(v) => json_response(StatusCode::OK, &v),
                None => ApiError::not_found_path().into_response(),
            };
        }
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return ApiError::not_found_path().into_response(),
    };
    if rest.is_empty() {
        return match discovery::resource_list(&state.lock().resources, group, version) {
            Some(v) => json_response(StatusCode::OK, &v),
            None => ApiError::not_found_path().into_response(),
        };
    }
    let Some(target) = parse_target(group, version, rest) else {
        return ApiError::not_found_path().into_response();
    };
    let verb = verb_of(&method, &target, &query);
    let mut record = RequestRecord {
        verb: verb.to_string(),
        group: target.group.clone(),
        resource: target.resource.clone(),
        subresource: target.subresource.clone().unwrap_or_default(),
        namespace: target.namespace.clone().unwrap_or_default(),
        name: target.name.clone().unwrap_or_default(),
        code: 0,
        field_manager: query.get("fieldManager").unwrap_or("").to_string(),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string(),
    };
    let latency = state.hooks().latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let full_resource = if record.subresource.is_empty() {
        record.resource.clone()
    } else {
        format!("{}/{}", record.resource, record.subresource)
    };
    if state
        .hooks()
        .is_forbidden(verb, &record.group, &full_resource)
    {
        let resp = forbidden(
            verb,
            &record.group,
            &full_resource,
            &record.namespace,
            &record.name,
        )
        .into_response();
        record.code = resp.status().as_u16();
        state.hooks().record(record);
        return resp;
    }
    let resp = match state.hooks().take_fault(&path) {
        Some(f) => {
            let (reason, message) = match f.code {
                429 => (
                    "TooManyRequests",
                    "Too many requests, please try again later.".to_string(),
                ),
                503 => (
                    "ServiceUnavailable",
                    "The service is unavailable.".to_string(),
                ),
                409 => (
                    "Conflict",
                    "Operation cannot be fulfilled: injected conflict".to_string(),
                ),
                _ => (
                    "InternalError",
                    "Internal error occurred: injected fault".to_string(),
                ),
            };
            ApiError::Status {
                code: f.code,
                reason,
                message,
                details: None,
                retry_after: f.retry_after_seconds.or((f.code == 429).then_some(1)),
            }
            .into_response()
        }
        None => match resource_request(&state, &method, &target, &query, &headers, body).await {
            Ok(r) => r,
            Err(e) => e.into_response(),
        },
    };
    record.code = resp.status().as_u16();
    state.hooks().record(record);
    resp
}

/// The real authorizer's refusal (`kubectl` and kube-rs show its message as is).
fn forbidden(verb: &str, group: &str, resource: &str, namespace: &str, name: &str) -> ApiError {
    let scope = if namespace.is_empty() {
        "at the cluster scope".to_owned()
    } else {
        format!("in the namespace \"{namespace}\"")
    };
    let (kind, _) = resource.split_once('/').unwrap_or((resource, ""));
    let mut details = json!({"group": group, "kind": kind});
    if !name.is_empty() {
        details["name"] = json!(name);
    }
    let subject = if name.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource} \"{name}\"")
    };
    ApiError::Status {
        code: 403,
        reason: "Forbidden",
        message: format!(
            "{subject} is forbidden: User \"system:serviceaccount:emulator:client\" cannot {verb} resource \"{resource}\" in API group \"{group}\" {scope}"
        ),
        details: Some(details),
        retry_after: None,
    }
}

fn verb_of(method: &Method, t: &Target, q: &Query) -> &'static str {
    match *method {
        Method::GET if t.name.is_none() && q.flag("watch") => "watch",
        Method::GET if t.name.is_none() => "list",
        Method::GET => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if t.name.is_none() => "deletecollection",
        Method::DELETE => "delete",
        _ => "unknown",
    }
}

fn write_ctx(q: &Query, headers: &HeaderMap) -> ApiResult<WriteCtx> {
    let manager = match q.get("fieldManager") {
        Some(m) if m.len() > 128 => {
            return Err(ApiError::bad_request(
                "fieldManager: Too long: may not be more than 128 bytes",
            ));
        }
        Some(m) => m.to_string(),
        None => headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.split('/').next().unwrap_or("").to_string())
            .unwrap_or_default(),
    };
    let validation = match q.get("fieldValidation") {
        Some("Strict") => FieldValidation::Strict,
        Some("Ignore") => FieldValidation::Ignore,
        Some("Warn") | None | Some("") => FieldValidation::Warn,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "fieldValidation: Unsupported value: {other:?}: supported values: \"Ignore\", \"Strict\", \"Warn\""
            )));
        }
    };
    Ok(WriteCtx {
        now: ops::now_string(),
        manager,
        dry_run: q.get("dryRun") == Some("All"),
        validation,
        force: q.flag("force"),
    })
}

fn parse_body(headers: &HeaderMap, body: &[u8]) -> ApiResult<Value> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if ct.starts_with("application/vnd.kubernetes.protobuf") {
        return crate::protobuf::decode(body).ok_or_else(|| ApiError::Status {
            code: 415,
            reason: "UnsupportedMediaType",
            message: "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (protobuf is accepted only for Namespace, ConfigMap, Secret and ServiceAccount)".to_string(),
            details: None,
            retry_after: None,
        });
    }
    if ct.contains("yaml") {
        serde_yaml::from_slice::<Value>(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
    } else {
        serde_json::from_slice::<Value>(body).map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
        })
    }
}

fn with_warnings(mut resp: Response, warnings: &[String]) -> Response {
    for w in warnings {
        let escaped = w.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(v) = HeaderValue::from_str(&format!("299 - \"{escaped}\"")) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    resp
}

fn lookup(state: &AppState, t: &Target) -> ApiResult<ResourceInfo> {
    let inner = state.lock();
    let res = inner
        .resource(&t.group, &t.version, &t.resource)
        .cloned()
        .ok_or_else(ApiError::not_found_path)?;
    if !res.namespaced && t.namespace.is_some() {
        return Err(ApiError::not_found_path());
    }
    if let Some(s) = &t.subresource {
        let ok = match s.as_str() {
            "status" => res.status,
            "scale" => res.scale.is_some(),
            "finalize" => res.kind == "Namespace",
            _ => false,
        };
        if !ok {
            return Err(ApiError::not_found_path());
        }
    }
    Ok(res)
}

async fn resource_request(
    state: &AppState,
    method: &Method,
    t: &Target,
    q: &Query,
    headers: &HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let res = lookup(state, t)?;
    let ns = t.namespace.as_deref();
    let accept = negotiate(headers)?;
    match (method.clone(), &t.name) {
        (Method::GET, None) if q.flag("watch") => watch_response(state, res, t, q, accept),
        (Method::GET, None) => list_response(state, &res, ns, q, accept),
        (Method::GET, Some(name)) => {
            let obj = {
                let inner = state.lock();
                inner
                    .get(&ops::key(&res, ns, name))
                    .cloned()
                    .ok_or_else(|| ops::not_found(&res, name))?
            };
            if t.subresource.as_deref() == Some("scale") {
                return Ok(json_response(StatusCode::OK, &scale_of(&res, &obj)));
            }
            Ok(render_one(&res, &views::to_view(&res, &obj), accept))
        }
        (Method::POST, None) => {
            let ctx = write_ctx(q, headers)?;
            let obj = parse_body(headers, &body)?;
            if obj
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .is_some_and(|rv| !rv.is_empty())
            {
                return Err(ApiError::create_with_resource_version());
            }
            let w = state.write(|inner| ops::create(inner, &res, ns, obj, &ctx))?;
            state.written(false);
            Ok(written_response(&res, w, StatusCode::CREATED))
        }
        (Method::PUT, Some(name)) => {
            let ctx = write_ctx(q, headers)?;
            let obj = parse_body(headers, &body)?;
            let w = state.write(|inner| match t.subresource.as_deref() {
                Some("scale") => scale_update(inner, &res, ns, name, |_| Ok(obj.clone()), &ctx),
                Some("finalize") => ops::update(inner, &res, ns, name, obj, None, &ctx),
                sub => ops::update(inner, &res, ns, name, obj, sub, &ctx),
            })?;
            state.written(w.removed);
            Ok(written_response(&res, w, StatusCode::OK))
        }
        (Method::PATCH, Some(name)) => {
            let ct = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let ptype = match ct.split(';').next().unwrap_or("").trim() {
                "application/merge-patch+json" => PatchType::Merge,
                "application/json-patch+json" => PatchType::Json,
                "application/strategic-merge-patch+json" => PatchType::Strategic,
                "application/apply-patch+yaml"
                | "application/apply-patch+json"
                | "application/apply-patch+cbor" => PatchType::Apply,
                _ => return Err(ApiError::unsupported_media_type()),
            };
            let ctx = write_ctx(q, headers)?;
            let patch = parse_body(headers, &body)?;
            if ptype == PatchType::Apply && ctx.manager.is_empty() {
                return Err(ApiError::bad_request(
                    "fieldManager is required for apply requests",
                ));
            }
            let w = state.write(|inner| match t.subresource.as_deref() {
                Some("scale") => scale_update(
                    inner,
                    &res,
                    ns,
                    name,
                    |scale| {
                        let mut s = scale.clone();
                        match ptype {
                            PatchType::Json => crate::patch::json_patch(&mut s, &patch)?,
                            _ => crate::patch::merge_patch(&mut s, &patch),
                        }
                        Ok(s)
                    },
                    &ctx,
                ),
                sub => ops::patch(inner, &res, ns, name, ptype, patch, sub, &ctx),
            })?;
            state.written(w.removed);
            let code = if w.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(written_response(&res, w, code))
        }
        (Method::DELETE, Some(name)) => {
            let opts = delete_opts(q, headers, &body)?;
            let now = ops::now_string();
            let d = state.write(|inner| ops::delete(inner, &res, ns, name, &opts, &now))?;
            match d {
                Deleted::Gone(last) => {
                    state.written(true);
                    if res.kind == "Namespace" || res.kind == "Pod" {
                        return Ok(json_response(StatusCode::OK, &views::to_view(&res, &last)));
                    }
                    let mut details = json!({"name": name, "kind": res.plural, "uid": last.pointer("/metadata/uid").cloned().unwrap_or(Value::Null)});
                    if !res.group.is_empty() {
                        details["group"] = json!(res.group);
                    }
                    Ok(json_response(
                        StatusCode::OK,
                        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}),
                    ))
                }
                Deleted::Pending(obj) => {
                    state.written(false);
                    state.0.gc.notify_one();
                    Ok(json_response(StatusCode::OK, &views::to_view(&res, &obj)))
                }
            }
        }
        (Method::DELETE, None) if res.delete_collection() => {
            let opts = delete_opts(q, headers, &body)?;
            let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))?;
            let fields =
                FieldSelector::parse(q.get("fieldSelector").unwrap_or(""), &res.kind, &res.group)?;
            let now = ops::now_string();
            let mut items = Vec::new();
            state.write(|inner| -> ApiResult<()> {
                let (_, objs) = ops::list_snapshot(inner, &res, ns, None)?;
                for o in objs
                    .iter()
                    .filter(|o| labels.matches(o) && fields.matches(o))
                {
                    let name = o
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    let ons = o
                        .pointer("/metadata/namespace")
                        .and_then(Value::as_str)
                        .map(String::from);
                    match ops::delete(inner, &res, ons.as_deref(), &name, &opts, &now)? {
                        Deleted::Gone(v) | Deleted::Pending(v) => {
                            items.push(views::to_view(&res, &v))
                        }
                    }
                }
                Ok(())
            })?;
            state.written(true);
            Ok(json_response(
                StatusCode::OK,
                &json!({"kind": format!("{}List", res.kind), "apiVersion": res.api_version(), "metadata": {}, "items": items}),
            ))
        }
        _ => Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        )),
    }
}

fn delete_opts(q: &Query, headers: &HeaderMap, body: &[u8]) -> ApiResult<DeleteOpts> {
    let b: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        parse_body(headers, body)?
    };
    let s = |v: Option<&Value>| v.and_then(Value::as_str).map(String::from);
    let dry = b
        .get("dryRun")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|x| x == "All"))
        || q.get("dryRun") == Some("All");
    Ok(DeleteOpts {
        propagation: s(b.get("propagationPolicy"))
            .or_else(|| q.get("propagationPolicy").map(String::from)),
        uid: s(b.pointer("/preconditions/uid")),
        resource_version: s(b.pointer("/preconditions/resourceVersion")),
        dry_run: dry,
    })
}

fn written_response(res: &ResourceInfo, w: Written, code: StatusCode) -> Response {
    let resp = json_response(code, &views::to_view(res, &w.obj));
    with_warnings(resp, &w.warnings)
}

fn render_one(res: &ResourceInfo, obj: &Value, accept: Accept) -> Response {
    match accept {
        Accept::Json => json_response(StatusCode::OK, obj),
        Accept::Metadata => typed_response(
            StatusCode::OK,
            "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
            &json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata").cloned().unwrap_or(json!({}))}),
        ),
        Accept::Table { v1beta1 } => {
            let mut t = print::table(
                res,
                std::slice::from_ref(obj),
                IncludeObject::Metadata,
                obj.pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .map(String::from),
            );
            table_response(&mut t, v1beta1)
        }
    }
}

fn table_response(t: &mut Value, v1beta1: bool) -> Response {
    let v = if v1beta1 { "v1beta1" } else { "v1" };
    t["apiVersion"] = json!(format!("meta.k8s.io/{v}"));
    typed_response(
        StatusCode::OK,
        &format!("application/json;as=Table;v={v};g=meta.k8s.io"),
        t,
    )
}

/// Continue tokens: hex of `{"rv":N,"ns":..,"name":..}` (opaque to clients).
fn encode_continue(rv: u64, ns: &str, name: &str) -> String {
    let s = json!({"rv": rv, "ns": ns, "name": name}).to_string();
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_continue(t: &str) -> ApiResult<(u64, String, String)> {
    let bad = || {
        ApiError::bad_request(
            "invalid continue token: continue key is not valid: illegal base64 data",
        )
    };
    if !t.len().is_multiple_of(2) {
        return Err(bad());
    }
    let bytes: Result<Vec<u8>, _> = (0..t.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&t[i..i + 2], 16))
        .collect();
    let v: Value = serde_json::from_slice(&bytes.map_err(|_| bad())?).map_err(|_| bad())?;
    Ok((
        v.get("rv").and_then(Value::as_u64).ok_or_else(bad)?,
        v.get("ns")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        v.get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
    ))
}

fn list_response(
    state: &AppState,
    res: &ResourceInfo,
    ns: Option<&str>,
    q: &Query,
    accept: Accept,
) -> ApiResult<Response> {
    let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))?;
    let fields = FieldSelector::parse(q.get("fieldSelector").unwrap_or(""), &res.kind, &res.group)?;
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let cont = q
        .get("continue")
        .filter(|c| !c.is_empty())
        .map(decode_continue)
        .transpose()?;
    let rv_match = q.get("resourceVersionMatch").filter(|s| !s.is_empty());
    let rv_param = q.get("resourceVersion").filter(|s| !s.is_empty());
    if rv_match.is_some() && rv_param.is_none() {
        return Err(ApiError::bad_request(
            "resourceVersionMatch is forbidden unless resourceVersion is provided",
        ));
    }
    if rv_match.is_some() && cont.is_some() {
        return Err(ApiError::bad_request(
            "resourceVersionMatch is forbidden when continue is provided",
        ));
    }
    let exact = match (rv_match, rv_param) {
        (Some("Exact"), Some(rv)) => Some(
            rv.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv}")))?,
        ),
        _ => None,
    };
    let (rv, page, next, remaining) = {
        let inner = state.lock();
        let at = cont.as_ref().map(|c| c.0).or(exact);
        let (rv, objs) = match ops::list_snapshot(&inner, res, ns, at) {
            Ok(x) => x,
            Err(_) if cont.is_some() => {
                return Err(ApiError::expired(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
                ));
            }
            Err(e) => return Err(e),
        };
        let start = cont.as_ref().map(|c| (c.1.clone(), c.2.clone()));
        let mut page = Vec::new();
        let mut next = None;
        let pinned = fields.pinned_name();
        let mut remaining = None;
        for (i, o) in objs.iter().enumerate() {
            let ons = o
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("");
            let oname = o
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            if let Some((sns, sname)) = &start
                && (ons, oname) <= (sns.as_str(), sname.as_str())
            {
                continue;
            }
            if pinned.is_some_and(|p| p != oname) || !labels.matches(o) || !fields.matches(o) {
                continue;
            }
            if limit.is_some_and(|l| page.len() >= l) {
                let last: &Value = page
                    .last()
                    .map(|x: &std::sync::Arc<Value>| x.as_ref())
                    .unwrap_or(&Value::Null);
                next = Some(encode_continue(
                    rv,
                    last.pointer("/metadata/namespace")
                        .and_then(Value::as_str)
                        .unwrap_or(""),
                    last.pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or(""),
                ));
                // The real server counts what is left only for unfiltered lists.
                if labels.is_empty() && fields.is_empty() {
                    remaining = Some(objs.len() - i);
                }
                break;
            }
            page.push(o.clone());
        }
        (rv, page, next, remaining)
    };
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if let Some(n) = &next {
        meta["continue"] = json!(n);
    }
    if let Some(r) = remaining {
        meta["remainingItemCount"] = json!(r);
    }
    match accept {
        Accept::Table { v1beta1 } => {
            let views: Vec<Value> = page.iter().map(|o| views::to_view(res, o)).collect();
            let inc = IncludeObject::parse(q.get("includeObject"));
            let mut t = print::table(res, &views, inc, Some(rv.to_string()));
            t["metadata"] = meta;
            Ok(table_response(&mut t, v1beta1))
        }
        Accept::Metadata => {
            let items: Vec<Value> = page
                .iter()
                .map(|o| json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o.get("metadata").cloned().unwrap_or(json!({}))}))
                .collect();
            Ok(typed_response(
                StatusCode::OK,
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
                &json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "items": items}),
            ))
        }
        Accept::Json => {
            let mut out = Vec::with_capacity(page.len() * 512 + 128);
            out.extend_from_slice(b"{\"kind\":");
            out.extend_from_slice(json!(format!("{}List", res.kind)).to_string().as_bytes());
            out.extend_from_slice(b",\"apiVersion\":");
            out.extend_from_slice(json!(res.api_version()).to_string().as_bytes());
            out.extend_from_slice(b",\"metadata\":");
            out.extend_from_slice(meta.to_string().as_bytes());
            out.extend_from_slice(b",\"items\":[");
            for (i, o) in page.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                if res.group == "events.k8s.io" {
                    let _ = serde_json::to_writer(&mut out, &views::to_view(res, o));
                } else {
                    let _ = serde_json::to_writer(&mut out, o.as_ref());
                }
            }
            out.extend_from_slice(b"]}");
            Ok((
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                out,
            )
                .into_response())
        }
    }
}

fn watch_response(
    state: &AppState,
    res: ResourceInfo,
    t: &Target,
    q: &Query,
    accept: Accept,
) -> ApiResult<Response> {
    let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))?;
    let fields = FieldSelector::parse(q.get("fieldSelector").unwrap_or(""), &res.kind, &res.group)?;
    let send_initial = q.flag("sendInitialEvents");
    if send_initial
        && (!q.flag("allowWatchBookmarks") || q.get("resourceVersionMatch") != Some("NotOlderThan"))
    {
        return Err(ApiError::invalid("ListOptions", "meta.k8s.io", "", &[("FieldValueForbidden", "sendInitialEvents".into(), "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan and allowWatchBookmarks".into())]));
    }
    let (render, ct) = match accept {
        Accept::Json => (Render::Json, "application/json".to_string()),
        Accept::Metadata => (
            Render::Metadata,
            "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1".to_string(),
        ),
        Accept::Table { v1beta1 } => (
            Render::Table(IncludeObject::parse(q.get("includeObject"))),
            format!(
                "application/json;as=Table;v={};g=meta.k8s.io",
                if v1beta1 { "v1beta1" } else { "v1" }
            ),
        ),
    };
    let mut rv = q.get("resourceVersion").map(String::from);
    if send_initial {
        // Streaming list: initial state, then the initial-events-end bookmark.
        rv = None;
    }
    let req = WatchRequest {
        namespace: if res.namespaced {
            t.namespace.clone()
        } else {
            None
        },
        res,
        resource_version: rv,
        labels,
        fields,
        timeout: q
            .get("timeoutSeconds")
            .and_then(|s| s.parse::<u64>().ok())
            .filter(|s| *s > 0)
            .map(Duration::from_secs),
        bookmarks: q.flag("allowWatchBookmarks"),
        send_initial_events: send_initial,
        render,
    };
    let rx = watch::start(state, req);
    let body = Body::from_stream(ReceiverStream::new(rx));
    let ct = HeaderValue::from_str(&ct).unwrap_or(HeaderValue::from_static("application/json"));
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, ct)], body).into_response())
}

fn json_path_get<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = obj;
    for seg in path
        .trim_start_matches('.')
        .split('.')
        .filter(|s| !s.is_empty())
    {
        cur = cur.get(seg)?;
    }
    Some(cur)
}

fn json_path_set(obj: &mut Value, path: &str, v: Value) {
    let segs: Vec<&str> = path
        .trim_start_matches('.')
        .split('.')
        .filter(|s| !s.is_empty())
        .collect();
    let mut cur = obj;
    for (i, seg) in segs.iter().enumerate() {
        if !cur.is_object() {
            *cur = json!({});
        }
        if i + 1 == segs.len() {
            cur[*seg] = v;
            return;
        }
        cur = &mut cur[*seg];
    }
}

/// `autoscaling/v1` Scale view of an object (spec §3).
fn scale_of(res: &ResourceInfo, obj: &Value) -> Value {
    let Some(sp) = &res.scale else {
        return json!({});
    };
    let md = obj.get("metadata").cloned().unwrap_or(json!({}));
    let mut selector = sp
        .label_selector
        .as_deref()
        .and_then(|p| json_path_get(obj, p))
        .cloned()
        .unwrap_or(Value::Null);
    if !res.is_crd() {
        // Built-in workloads: the selector string from spec.selector.matchLabels.
        let ml = obj
            .pointer("/spec/selector/matchLabels")
            .and_then(Value::as_object);
        selector = json!(
            ml.map(|m| m
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(","))
                .unwrap_or_default()
        );
    }
    let mut status =
        json!({"replicas": json_path_get(obj, &sp.status_replicas).cloned().unwrap_or(json!(0))});
    if !selector.is_null() {
        status["selector"] = selector;
    }
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": md.get("name"), "namespace": md.get("namespace"), "uid": md.get("uid"), "resourceVersion": md.get("resourceVersion"), "creationTimestamp": md.get("creationTimestamp")},
        "spec": {"replicas": json_path_get(obj, &sp.spec_replicas).cloned().unwrap_or(json!(0))},
        "status": status,
    })
}

fn scale_update(
    inner: &mut crate::store::Inner,
    res: &ResourceInfo,
    ns: Option<&str>,
    name: &str,
    edit: impl FnOnce(&Value) -> ApiResult<Value>,
    ctx: &WriteCtx,
) -> ApiResult<Written> {
    let k = ops::key(res, ns, name);
    let old = inner
        .get(&k)
        .cloned()
        .ok_or_else(|| ops::not_found(res, name))?;
    let scale = scale_of(res, &old);
    let new_scale = edit(&scale)?;
    if let Some(rv) = new_scale
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        && Some(rv)
            != old
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
    {
        return Err(ApiError::Conflict {
            qualified: res.qualified(),
            group: res.group.clone(),
            resource: res.plural.clone(),
            name: name.into(),
            message: None,
        });
    }
    let replicas = new_scale
        .pointer("/spec/replicas")
        .cloned()
        .unwrap_or(json!(0));
    let mut obj = (*old).clone();
    if let Some(sp) = &res.scale {
        json_path_set(&mut obj, &sp.spec_replicas, replicas);
    }
    let w = ops::finish_update(inner, res, k, old, obj, None, ctx, None)?;
    Ok(Written {
        obj: std::sync::Arc::new(scale_of(res, &w.obj)),
        ..w
    })
}
