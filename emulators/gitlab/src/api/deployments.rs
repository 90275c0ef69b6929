//! Routes 1-5: list, get, create, update, delete deployments.

use super::*;

pub(super) fn list_deployments(
    d: &Data,
    caller: &Caller,
    req: &ApiRequest<'_>,
    base: &str,
) -> Result<Reply, ApiError> {
    let mut v = Validator::new(req.params);
    let (page, per_page) = v.pagination();
    let mut sorts = vec!["id", "iid", "created_at", "updated_at", "finished_at"];
    if d.compat.order_by_ref {
        sorts.push("ref");
    }
    let order_by = v.string_in("order_by", false, &sorts);
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
    if any_updated && order_by != "updated_at" && !d.compat.soft_updated_at_sort_check {
        return Err(ApiError::BadRequest(
            "`updated_at` filter requires `updated_at` sort",
        ));
    }
    if any_finished && order_by != "finished_at" {
        return Err(ApiError::BadRequest(
            "`finished_at` filter requires `finished_at` sort.",
        ));
    }
    if d.compat.legacy_finished_at_pairing && order_by == "finished_at" && !any_finished {
        return Err(ApiError::BadRequest(
            "`finished_at` filter and `finished_at` sorting must be paired",
        ));
    }
    if !d.compat.legacy_finished_at_pairing
        && order_by == "finished_at"
        && !any_finished
        && !finished_status
    {
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
        "ref" => rows.sort_by(|a, b| a.ref_.cmp(&b.ref_).then(a.id.cmp(&b.id))),
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

pub(super) fn deployment_id_param(v: &mut Validator<'_>, req: &ApiRequest<'_>) {
    let raw = req.route.deployment_id.clone().unwrap_or_default();
    v.required_int("deployment_id", &raw);
}

pub(super) fn get_deployment(
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
pub(super) fn apply_status(
    d: &mut Data,
    dep_id: u64,
    status: DeploymentStatus,
    now: DateTime<Utc>,
    base: &str,
) {
    let Some(dep) = d.deployments.get_mut(&dep_id) else {
        return;
    };
    dep.status = status;
    dep.updated_at = now;
    if status.is_finished() {
        dep.finished_at = Some(now);
    }
    crate::webhooks::status_changed(d, dep_id, now, base);
    let Some(dep) = d.deployments.get_mut(&dep_id) else {
        return;
    };
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

pub(super) fn create_deployment(
    d: &mut Data,
    caller: &Caller,
    req: &ApiRequest<'_>,
    base: &str,
    now: DateTime<Utc>,
) -> Result<Reply, ApiError> {
    let mut v = Validator::new(req.params);
    let (environment, sha, ref_) = if d.compat.no_allow_blank {
        (
            v.required_string("environment"),
            v.required_string("sha"),
            v.required_string("ref"),
        )
    } else {
        (
            v.required_nonblank_string("environment"),
            v.required_nonblank_string("sha"),
            v.required_nonblank_string("ref"),
        )
    };
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
    apply_status(d, id, status, now, base);
    let dep = d.deployments.get(&id).ok_or(ApiError::NotFound)?;
    Ok(Reply::entity(201, &render::deployment(d, dep, base, true)))
}

pub(super) fn update_deployment(
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
    apply_status(d, id, status, now, base);
    let dep = d.deployments.get(&id).ok_or(ApiError::NotFound)?;
    Ok(Reply::entity(200, &render::deployment(d, dep, base, true)))
}

pub(super) fn delete_deployment(
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
