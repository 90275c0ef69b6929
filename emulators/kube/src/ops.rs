//! Write and read semantics on the locked store (spec §3-§7, §10): create, update, patch,
//! server-side apply, delete with finalizers, list snapshots. Pure functions of `&mut Inner`
//! and the request; no IO, no `.await`. The verbs store and nothing more: what a write sets off
//! (CRDs served, ServiceAccounts, garbage collection) is the `controllers`' job.

use crate::admit;
use crate::error::{ApiError, ApiResult};
use crate::fields::{self, BuiltinListTypes, ListTypes, SchemaListTypes, Scope, Writer};
use crate::patch;
use crate::resources::ResourceInfo;
use crate::store::{EventType, Inner, Key};
use crate::views;
use serde_json::{Value, json};
use std::sync::Arc;

pub use crate::admit::FieldValidation;

/// Per-request write options.
#[derive(Debug, Clone, Default)]
pub struct WriteCtx {
    pub now: String,
    pub manager: String,
    pub dry_run: bool,
    pub validation: FieldValidation,
    pub force: bool,
}

/// A write's result, in storage form.
#[derive(Debug, Clone)]
pub struct Written {
    /// Shared with the store (and the watch event) rather than copied: at tens of thousands of
    /// simulated writes a second the copy was a visible part of the emulator's CPU.
    pub obj: Arc<Value>,
    pub created: bool,
    pub warnings: Vec<String>,
    /// True when an object was finally removed (GC should run).
    pub removed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PatchType {
    Merge,
    Json,
    Strategic,
    Apply,
}

pub fn now_string() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub fn key(res: &ResourceInfo, ns: Option<&str>, name: &str) -> Key {
    (
        res.storage.clone(),
        if res.namespaced {
            ns.unwrap_or("").to_string()
        } else {
            String::new()
        },
        name.to_string(),
    )
}

pub fn not_found(res: &ResourceInfo, name: &str) -> ApiError {
    ApiError::NotFound {
        qualified: res.qualified(),
        group: res.group.clone(),
        resource: res.plural.clone(),
        name: name.into(),
    }
}

fn conflict(res: &ResourceInfo, name: &str) -> ApiError {
    ApiError::Conflict {
        qualified: res.qualified(),
        group: res.group.clone(),
        resource: res.plural.clone(),
        name: name.into(),
        message: None,
    }
}

pub fn list_types(res: &ResourceInfo) -> Box<dyn ListTypes + '_> {
    match &res.crd {
        Some(c) => Box::new(SchemaListTypes(c.schema.as_ref())),
        None => Box::new(BuiltinListTypes),
    }
}

fn scope_for(res: &ResourceInfo, subresource: Option<&str>) -> Scope {
    match subresource {
        Some("status") => Scope::Status,
        _ if res.status => Scope::MainWithoutStatus,
        _ => Scope::All,
    }
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn ensure_metadata(obj: &mut Value) -> ApiResult<&mut serde_json::Map<String, Value>> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(
            "Object 'Kind' is missing in the request body",
        ));
    }
    let md = obj.as_object_mut().and_then(|o| {
        o.entry("metadata")
            .or_insert_with(|| json!({}))
            .as_object_mut()
    });
    md.ok_or_else(|| ApiError::bad_request("metadata must be an object"))
}

/// Body `apiVersion`/`kind` must name this resource (filled when absent).
fn check_type(res: &ResourceInfo, obj: &mut Value) -> ApiResult<()> {
    let av = res.api_version();
    let m = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the body of the request is not an object"))?;
    match m.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            m.insert("kind".into(), json!(res.kind));
        }
        Some(k) if k != res.kind => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                res.kind
            )));
        }
        _ => {}
    }
    match m.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            m.insert("apiVersion".into(), json!(av));
        }
        Some(a) if a != av => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({a}) does not match the expected API version ({av})"
            )));
        }
        _ => {}
    }
    Ok(())
}

/// Namespace must exist and not be terminating (spec §3).
fn check_namespace(inner: &Inner, res: &ResourceInfo, ns: Option<&str>) -> ApiResult<()> {
    if !res.namespaced {
        return Ok(());
    }
    let ns = ns.ok_or_else(ApiError::not_found_path)?;
    match inner.get(&("namespaces".into(), String::new(), ns.to_string())) {
        None => Err(ApiError::NotFound {
            qualified: "namespaces".into(),
            group: String::new(),
            resource: "namespaces".into(),
            name: ns.into(),
        }),
        Some(n) if n.pointer("/metadata/deletionTimestamp").is_some() => Err(ApiError::forbidden(
            format!(
                "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                res.qualified(),
                meta_str(n, "name").unwrap_or(ns)
            ),
            Some(
                json!({"name": ns, "kind": res.plural, "causes": [{"reason": "NamespaceTerminating", "message": format!("namespace {ns} is being terminated"), "field": "metadata.namespace"}]}),
            ),
        )),
        Some(_) => Ok(()),
    }
}

const GENERATE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn generate_suffix() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..5)
        .map(|_| GENERATE_ALPHABET[rng.random_range(0..GENERATE_ALPHABET.len())] as char)
        .collect()
}

/// The parts of an object that count for `generation` (spec §4).
/// Whether `a` and `b` differ in what bumps `metadata.generation`: everything but metadata,
/// and but status where status is not part of the spec (a built-in, or a CRD with a status
/// subresource). Compared in place: a copy of both objects per write was a visible part of
/// the emulator's CPU under the rollout simulator.
fn generation_differs(res: &ResourceInfo, a: &Value, b: &Value) -> bool {
    let counted = |k: &str| k != "metadata" && !(k == "status" && (res.status || !res.is_crd()));
    match (a.as_object(), b.as_object()) {
        (Some(am), Some(bm)) => {
            // Order-independent, like `Map`'s own equality (whatever serde_json's features).
            am.keys().filter(|k| counted(k)).count() != bm.keys().filter(|k| counted(k)).count()
                || am
                    .iter()
                    .filter(|(k, _)| counted(k))
                    .any(|(k, v)| bm.get(k) != Some(v))
        }
        _ => a != b,
    }
}

/// Create (POST, or apply/PUT creating). `body` is in the resource's view form.
pub fn create(
    inner: &mut Inner,
    res: &ResourceInfo,
    ns: Option<&str>,
    body: Value,
    ctx: &WriteCtx,
) -> ApiResult<Written> {
    create_with(inner, res, ns, body, ctx, None)
}

fn create_with(
    inner: &mut Inner,
    res: &ResourceInfo,
    ns: Option<&str>,
    body: Value,
    ctx: &WriteCtx,
    apply_entries: Option<Vec<fields::Entry>>,
) -> ApiResult<Written> {
    let mut obj = body;
    check_type(res, &mut obj)?;
    let mut obj = views::from_view(res, obj);
    let md = ensure_metadata(&mut obj)?;
    if res.namespaced {
        match (
            md.get("namespace")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty()),
            ns,
        ) {
            (Some(b), Some(u)) if b != u => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            (_, Some(u)) => {
                md.insert("namespace".into(), json!(u));
            }
            (_, None) => return Err(ApiError::not_found_path()),
        }
    } else {
        md.remove("namespace");
    }
    let mut name = md
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if name.is_empty() {
        let gen_name = md
            .get("generateName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if gen_name.is_empty() {
            return Err(ApiError::invalid(
                &res.kind,
                &res.group,
                "",
                &[(
                    "FieldValueRequired",
                    "metadata.name".into(),
                    "Required value: name or generateName is required".into(),
                )],
            ));
        }
        loop {
            let candidate = format!("{gen_name}{}", generate_suffix());
            if inner.get(&key(res, ns, &candidate)).is_none() {
                name = candidate;
                break;
            }
        }
        md.insert("name".into(), json!(name));
    }
    for f in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "managedFields",
        "selfLink",
    ] {
        md.remove(f);
    }
    md.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    md.insert("creationTimestamp".into(), json!(ctx.now));
    if res.generation {
        md.insert("generation".into(), json!(1));
    }
    if res.status && res.group != "apiextensions.k8s.io" {
        // Status is the controllers' to write: dropped on create (CRs with a status
        // subresource, apps workloads).
        if let Some(m) = obj.as_object_mut() {
            m.remove("status");
        }
    }
    admit::validate_name(res, &name)?;
    check_namespace(inner, res, ns)?;
    let k = key(res, ns, &name);
    if inner.get(&k).is_some() {
        return Err(ApiError::AlreadyExists {
            qualified: res.qualified(),
            group: res.group.clone(),
            resource: res.plural.clone(),
            name,
        });
    }
    let warnings = admit::admit(inner, res, None, &mut obj, ctx.validation, false)?;
    patch::normalize_metadata(&mut obj);
    let entries = match apply_entries {
        Some(e) => e,
        None => {
            let mut e = Vec::new();
            let w = Writer {
                manager: &ctx.manager,
                api_version: &res.api_version(),
                subresource: None,
                now: &ctx.now,
            };
            fields::record_update(
                &json!({}),
                &obj,
                scope_for(res, None),
                list_types(res).as_ref(),
                &w,
                &mut e,
            );
            e
        }
    };
    set_managed(&mut obj, &entries);
    if ctx.dry_run {
        return Ok(Written {
            obj: Arc::new(obj),
            created: true,
            warnings,
            removed: false,
        });
    }
    let stored = inner.put(k, obj, EventType::Added);
    Ok(Written {
        obj: stored,
        created: true,
        warnings,
        removed: false,
    })
}

fn set_managed(obj: &mut Value, entries: &[fields::Entry]) {
    if let Some(md) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        let rendered = fields::render_entries(entries);
        if rendered.as_array().is_some_and(|a| a.is_empty()) {
            md.remove("managedFields");
        } else {
            md.insert("managedFields".into(), rendered);
        }
    }
}

/// PUT on an item or its status subresource. `body` is in the view form.
pub fn update(
    inner: &mut Inner,
    res: &ResourceInfo,
    ns: Option<&str>,
    name: &str,
    body: Value,
    subresource: Option<&str>,
    ctx: &WriteCtx,
) -> ApiResult<Written> {
    let mut body = body;
    check_type(res, &mut body)?;
    let body = views::from_view(res, body);
    let body_name = meta_str(&body, "name").unwrap_or("");
    if body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    if res.namespaced
        && let (Some(b), Some(u)) = (meta_str(&body, "namespace"), ns)
        && b != u
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let k = key(res, ns, name);
    let Some(old) = inner.get(&k).cloned() else {
        // PUT creates only for a few built-ins; kube-rs and kubectl never rely on it.
        return Err(not_found(res, name));
    };
    if let Some(rv) = meta_str(&body, "resourceVersion")
        && Some(rv) != meta_str(&old, "resourceVersion")
    {
        return Err(conflict(res, name));
    }
    finish_update(inner, res, k, old, body, subresource, ctx, None)
}

/// PATCH on an item or its status subresource.
#[allow(clippy::too_many_arguments)]
pub fn patch(
    inner: &mut Inner,
    res: &ResourceInfo,
    ns: Option<&str>,
    name: &str,
    ptype: PatchType,
    body: Value,
    subresource: Option<&str>,
    ctx: &WriteCtx,
) -> ApiResult<Written> {
    let k = key(res, ns, name);
    let old = inner.get(&k).cloned();
    if ptype == PatchType::Strategic && res.is_crd() {
        return Err(ApiError::unsupported_media_type());
    }
    if ptype == PatchType::Apply {
        return apply(inner, res, ns, name, body, subresource, old, ctx);
    }
    let Some(old) = old else {
        return Err(not_found(res, name));
    };
    let mut view = views::to_view(res, &old);
    match ptype {
        PatchType::Merge => patch::merge_patch(&mut view, &body),
        PatchType::Strategic => patch::strategic_merge(&mut view, &body),
        PatchType::Json => patch::json_patch(&mut view, &body)?,
        PatchType::Apply => {}
    }
    let new = views::from_view(res, view);
    // A resourceVersion in the patch is a precondition.
    if meta_str(&new, "resourceVersion") != meta_str(&old, "resourceVersion")
        && meta_str(&new, "resourceVersion").is_some()
    {
        return Err(conflict(res, name));
    }
    if meta_str(&new, "name") != Some(name) {
        return Err(ApiError::bad_request(
            "metadata.name: Invalid value: the name of the object cannot change in a patch",
        ));
    }
    finish_update(inner, res, k, old, new, subresource, ctx, None)
}

#[allow(clippy::too_many_arguments)]
fn apply(
    inner: &mut Inner,
    res: &ResourceInfo,
    ns: Option<&str>,
    name: &str,
    body: Value,
    subresource: Option<&str>,
    old: Option<Arc<Value>>,
    ctx: &WriteCtx,
) -> ApiResult<Written> {
    if ctx.manager.is_empty() {
        return Err(ApiError::bad_request(
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
        ));
    }
    let mut body = body;
    if !body.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request is not an object",
        ));
    }
    check_type(res, &mut body)?;
    let applied = views::from_view(res, body);
    if meta_str(&applied, "name").is_some_and(|n| n != name) {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            meta_str(&applied, "name").unwrap_or("")
        )));
    }
    let lt = list_types(res);
    let av = res.api_version();
    let w = Writer {
        manager: &ctx.manager,
        api_version: &av,
        subresource,
        now: &ctx.now,
    };
    let scope = scope_for(res, subresource);
    let base = old.as_deref().cloned().unwrap_or_else(|| json!({}));
    let entries = fields::parse_entries(&base);
    let (mut merged, entries) = match fields::apply(
        &base,
        &applied,
        scope,
        lt.as_ref(),
        &w,
        ctx.force,
        entries.clone(),
    ) {
        Ok(x) => x,
        // The real server's client-side → server-side apply upgrade: `kubectl` may take
        // fields from `kubectl-client-side-apply` when they are in the object's
        // last-applied-configuration (apiserver lastAppliedManager).
        Err(c)
            if ctx.manager == "kubectl"
                && conflicts_allowed_by_last_applied(&base, &c, scope, lt.as_ref()) =>
        {
            fields::apply(&base, &applied, scope, lt.as_ref(), &w, true, entries)
                .map_err(|c| apply_conflict(&c))?
        }
        Err(c) => return Err(apply_conflict(&c)),
    };
    set_managed(&mut merged, &entries);
    match old {
        None => {
            if subresource.is_some() {
                return Err(not_found(res, name));
            }
            if let Some(m) = merged.as_object_mut() {
                m.insert("apiVersion".into(), json!(res.api_version()));
                m.insert("kind".into(), json!(res.kind));
            }
            if let Some(md) = merged.get_mut("metadata").and_then(Value::as_object_mut) {
                md.insert("name".into(), json!(name));
            } else if let Some(m) = merged.as_object_mut() {
                m.insert("metadata".into(), json!({"name": name}));
            }
            let view = views::to_view(res, &merged);
            create_with(inner, res, ns, view, ctx, Some(entries))
        }
        Some(old) => {
            if let Some(md) = merged.get_mut("metadata").and_then(Value::as_object_mut) {
                md.insert("managedFields".into(), fields::render_entries(&entries));
            }
            let k = key(res, ns, name);
            finish_update(inner, res, k, old, merged, subresource, ctx, Some(entries))
        }
    }
}

fn conflicts_allowed_by_last_applied(
    live: &Value,
    conflicts: &[fields::Conflict],
    scope: Scope,
    lt: &dyn ListTypes,
) -> bool {
    let Some(last) = live
        .pointer("/metadata/annotations")
        .and_then(|a| a.get("kubectl.kubernetes.io/last-applied-configuration"))
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
    else {
        return false;
    };
    let allowed = fields::fields_of(&last, scope, lt);
    conflicts.iter().all(|c| allowed.contains(&c.path))
}

fn apply_conflict(c: &[fields::Conflict]) -> ApiError {
    // As upstream's printManager: the subresource if any, then for an `Update` manager the
    // version and time it wrote at; an `Apply` manager by name only.
    let with = |c: &fields::Conflict| {
        let mut s = format!("conflict with \"{}\"", c.manager);
        if let Some(sub) = &c.subresource {
            s.push_str(&format!(" with subresource \"{sub}\""));
        }
        if c.operation == "Update" {
            s.push_str(&format!(" using {}", c.api_version));
            if !c.time.is_empty() {
                s.push_str(&format!(" at {}", c.time));
            }
        }
        s
    };
    let message = if c.len() == 1 {
        format!(
            "Apply failed with 1 conflict: {}: {}",
            with(&c[0]),
            c[0].field
        )
    } else {
        let mut s = format!("Apply failed with {} conflicts: ", c.len());
        let parts: Vec<String> = c
            .iter()
            .map(|x| format!("{}: {}", with(x), x.field))
            .collect();
        s.push_str(&parts.join("\n"));
        s
    };
    let causes: Vec<Value> = c
        .iter()
        .map(|x| json!({"reason": "FieldManagerConflict", "message": with(x), "field": x.field}))
        .collect();
    ApiError::Status {
        code: 409,
        reason: "Conflict",
        message,
        details: Some(json!({"causes": causes})),
        retry_after: None,
    }
}

/// The shared tail of update/patch/apply (spec §6.1): carry server metadata, apply
/// subresource rules, validate, bump generation, record ownership, detect no-ops, persist.
#[allow(clippy::too_many_arguments)]
pub fn finish_update(
    inner: &mut Inner,
    res: &ResourceInfo,
    k: Key,
    old: Arc<Value>,
    candidate: Value,
    subresource: Option<&str>,
    ctx: &WriteCtx,
    apply_entries: Option<Vec<fields::Entry>>,
) -> ApiResult<Written> {
    let name = k.2.clone();
    let mut new = match subresource {
        Some("status") => {
            let mut n = (*old).clone();
            match candidate.get("status") {
                Some(s) => n["status"] = s.clone(),
                None => {
                    if let Some(m) = n.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            n
        }
        _ => {
            let mut n = candidate;
            if res.status {
                match old.get("status") {
                    Some(s) => n["status"] = s.clone(),
                    None => {
                        if let Some(m) = n.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
            }
            n
        }
    };
    // Identity and server-owned metadata are carried over.
    let empty = serde_json::Map::new();
    let old_md = old
        .get("metadata")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let md = ensure_metadata(&mut new)?;
    for f in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "namespace",
        "name",
    ] {
        match old_md.get(f) {
            Some(v) => {
                md.insert(f.into(), v.clone());
            }
            None => {
                md.remove(f);
            }
        }
    }
    md.insert(
        "resourceVersion".into(),
        old_md
            .get("resourceVersion")
            .cloned()
            .unwrap_or(Value::Null),
    );
    // A write that sets managedFields itself (kubectl's client-side → server-side apply
    // migration, or `[{}]` to clear them) replaces the ownership records as given.
    let requested_managed = md
        .get("managedFields")
        .filter(|m| m.is_array() && Some(*m) != old_md.get("managedFields"))
        .cloned();
    if apply_entries.is_none() {
        md.insert(
            "managedFields".into(),
            old_md.get("managedFields").cloned().unwrap_or(Value::Null),
        );
    }
    if let Some(m) = new.as_object_mut() {
        m.insert(
            "apiVersion".into(),
            old.get("apiVersion").cloned().unwrap_or(Value::Null),
        );
        m.insert(
            "kind".into(),
            old.get("kind").cloned().unwrap_or(Value::Null),
        );
    }
    // No new finalizers while deleting (spec §4).
    if old_md.get("deletionTimestamp").is_some() {
        let old_f: Vec<&Value> = old_md
            .get("finalizers")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        let added: Vec<String> = new
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter(|f| !old_f.contains(f))
                    .filter_map(|f| f.as_str().map(|s| format!("{s:?}")))
                    .collect()
            })
            .unwrap_or_default();
        if !added.is_empty() {
            return Err(ApiError::invalid(
                &res.kind,
                &res.group,
                &name,
                &[(
                    "FieldValueForbidden",
                    "metadata.finalizers".into(),
                    format!(
                        "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                        added.join(", ")
                    ),
                )],
            ));
        }
    }
    let warnings = admit::admit(
        inner,
        res,
        Some(&old),
        &mut new,
        ctx.validation,
        subresource == Some("status"),
    )?;
    patch::normalize_metadata(&mut new);
    if res.generation && generation_differs(res, &old, &new) {
        let g = old_md
            .get("generation")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            + 1;
        new["metadata"]["generation"] = json!(g);
    }
    let entries = match (apply_entries, requested_managed) {
        (Some(e), _) => e,
        (None, Some(requested)) => {
            fields::parse_entries(&json!({"metadata": {"managedFields": requested}}))
        }
        (None, None) => {
            let mut e = fields::parse_entries(&old);
            let av = res.api_version();
            let w = Writer {
                manager: &ctx.manager,
                api_version: &av,
                subresource,
                now: &ctx.now,
            };
            fields::record_update(
                &old,
                &new,
                scope_for(res, subresource),
                list_types(res).as_ref(),
                &w,
                &mut e,
            );
            e
        }
    };
    set_managed(&mut new, &entries);
    patch::normalize_metadata(&mut new);
    if new == *old {
        return Ok(Written {
            obj: old,
            created: false,
            warnings,
            removed: false,
        });
    }
    let finalizers_empty = new
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_none_or(|a| a.is_empty());
    let deleting = new.pointer("/metadata/deletionTimestamp").is_some();
    if ctx.dry_run {
        return Ok(Written {
            obj: Arc::new(new),
            created: false,
            warnings,
            removed: false,
        });
    }
    if deleting && finalizers_empty && !has_spec_finalizers(&new) {
        let last = inner
            .remove(&k, new)
            .unwrap_or_else(|| Arc::new(Value::Null));
        return Ok(Written {
            obj: last,
            created: false,
            warnings,
            removed: true,
        });
    }
    let stored = inner.put(k, new, EventType::Modified);
    Ok(Written {
        obj: stored,
        created: false,
        warnings,
        removed: false,
    })
}

/// DELETE options (body or query).
#[derive(Debug, Clone, Default)]
pub struct DeleteOpts {
    pub propagation: Option<String>,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub dry_run: bool,
}

/// Result of a delete: the object (still present, being finalized) or the final state.
pub enum Deleted {
    Pending(Value),
    Gone(Value),
}

pub fn delete(
    inner: &mut Inner,
    res: &ResourceInfo,
    ns: Option<&str>,
    name: &str,
    opts: &DeleteOpts,
    now: &str,
) -> ApiResult<Deleted> {
    let k = key(res, ns, name);
    let Some(old) = inner.get(&k).cloned() else {
        return Err(not_found(res, name));
    };
    if let Some(uid) = &opts.uid
        && Some(uid.as_str()) != meta_str(&old, "uid")
    {
        return Err(ApiError::Conflict {
            qualified: res.qualified(),
            group: res.group.clone(),
            resource: res.plural.clone(),
            name: name.into(),
            message: Some(format!(
                "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                res.qualified(),
                meta_str(&old, "uid").unwrap_or("")
            )),
        });
    }
    if let Some(rv) = &opts.resource_version
        && Some(rv.as_str()) != meta_str(&old, "resourceVersion")
    {
        return Err(ApiError::Conflict {
            qualified: res.qualified(),
            group: res.group.clone(),
            resource: res.plural.clone(),
            name: name.into(),
            message: Some(format!(
                "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                res.qualified(),
                meta_str(&old, "resourceVersion").unwrap_or("")
            )),
        });
    }
    if opts.propagation.as_deref() == Some("Orphan") && !opts.dry_run {
        orphan_dependents(inner, meta_str(&old, "uid").unwrap_or(""));
    }
    let uid = meta_str(&old, "uid").unwrap_or("").to_string();
    let foreground = opts.propagation.as_deref() == Some("Foreground")
        && inner.dependents(&uid).next().is_some();
    let has_finalizers = foreground
        || old
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
        || has_spec_finalizers(&old)
        || needs_cleanup_finalizer(res);
    if !has_finalizers {
        if opts.dry_run {
            return Ok(Deleted::Gone((*old).clone()));
        }
        let last = inner
            .remove(&k, (*old).clone())
            .map(|o| (*o).clone())
            .unwrap_or(Value::Null);
        return Ok(Deleted::Gone(last));
    }
    if old.pointer("/metadata/deletionTimestamp").is_some() || opts.dry_run {
        return Ok(Deleted::Pending((*old).clone()));
    }
    let mut new = (*old).clone();
    new["metadata"]["deletionTimestamp"] = json!(now);
    new["metadata"]["deletionGracePeriodSeconds"] = json!(0);
    if res.generation {
        let g = new
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            + 1;
        new["metadata"]["generation"] = json!(g);
    }
    if foreground {
        // Foreground cascade: the owner waits, finalizer `foregroundDeletion`, until the GC
        // has deleted its dependents.
        let f = new["metadata"]
            .as_object_mut()
            .map(|m| m.entry("finalizers").or_insert_with(|| json!([])));
        if let Some(Value::Array(f)) = f
            && !f.contains(&json!(FOREGROUND_FINALIZER))
        {
            f.push(json!(FOREGROUND_FINALIZER));
        }
    }
    mark_deleting(res, &mut new, now);
    let stored = inner.put(k, new, EventType::Modified);
    Ok(Deleted::Pending((*stored).clone()))
}

/// Orphan propagation: strip ownerReferences to `uid` from every dependent.
fn orphan_dependents(inner: &mut Inner, uid: &str) {
    let deps: Vec<(Key, Arc<Value>)> = inner
        .dependents(uid)
        .map(|(k, o)| (k.clone(), o.clone()))
        .collect();
    for (k, o) in deps {
        let mut n = (*o).clone();
        if let Some(refs) = n
            .pointer_mut("/metadata/ownerReferences")
            .and_then(Value::as_array_mut)
        {
            refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid));
        }
        patch::normalize_metadata(&mut n);
        inner.put(k, n, EventType::Modified);
    }
}

pub fn owner_uids(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str).map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The finalizer a foreground deletion puts on the owner until its dependents are gone.
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";

/// A namespace is finalized by its `spec.finalizers` (the namespace controller's `kubernetes`)
/// before its metadata finalizers count.
fn has_spec_finalizers(obj: &Value) -> bool {
    obj.get("kind") == Some(&json!("Namespace"))
        && obj
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
}

/// Namespaces are never removed at once: the namespace controller empties them first.
fn needs_cleanup_finalizer(res: &ResourceInfo) -> bool {
    !res.is_crd() && res.group.is_empty() && res.kind == "Namespace"
}

/// Marking for deletion (the registry's part, at once): namespaces show `Terminating`, CRDs a
/// `Terminating` condition.
fn mark_deleting(res: &ResourceInfo, obj: &mut Value, now: &str) {
    if res.kind == "Namespace" && !res.is_crd() {
        obj["status"] = json!({"phase": "Terminating"});
    }
    if res.kind == "CustomResourceDefinition"
        && !res.is_crd()
        && let Some(conds) = obj
            .pointer_mut("/status/conditions")
            .and_then(Value::as_array_mut)
    {
        conds.push(json!({"type": "Terminating", "status": "True", "reason": "InstanceDeletionInProgress", "message": "CustomResource deletion is in progress", "lastTransitionTime": now}));
    }
}

/// List items (storage form) of a resource at the latest RV, or at `rv` from history.
pub fn list_snapshot(
    inner: &Inner,
    res: &ResourceInfo,
    ns: Option<&str>,
    rv: Option<u64>,
) -> ApiResult<(u64, Vec<Arc<Value>>)> {
    let ns = if res.namespaced { ns } else { None };
    match rv {
        Some(rv) if rv < inner.rv => {
            let snap = inner.snapshot(&res.storage, ns, rv).ok_or_else(|| {
                ApiError::expired(format!(
                    "too old resource version: {rv} ({})",
                    inner.compacted + 1
                ))
            })?;
            Ok((rv, snap.into_values().collect()))
        }
        _ => Ok((
            inner.rv,
            inner
                .range(&res.storage, ns)
                .map(|(_, v)| v.clone())
                .collect(),
        )),
    }
}
