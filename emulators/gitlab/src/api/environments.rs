//! The Environments API subset the operator uses (spec Part A): list by name, get one, update
//! (tier, external URL, the dashboard for Kubernetes), and the project's cluster agents.

use super::*;

const TIERS: [&str; 5] = ["production", "staging", "testing", "development", "other"];

/// `\A[a-z0-9]([-a-z0-9]*[a-z0-9])?\z` (A.8: the namespace rule).
fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    let ok = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && b.iter().all(|c| ok(c) || *c == b'-')
        && b.first().is_some_and(ok)
        && b.last().is_some_and(ok)
}

/// Reporter reads environments; Developer changes them and reads agents.
fn environment_of<'d>(d: &'d Data, p: &Project, raw: &str) -> Result<&'d Environment, ApiError> {
    let id: u64 = raw.parse().map_err(|_| ApiError::NotFound)?;
    d.environments
        .get(&id)
        .filter(|e| e.project_id == p.id)
        .ok_or(ApiError::NotFound)
}

fn environment_id_param(v: &mut Validator<'_>, req: &ApiRequest<'_>) {
    let raw = req.route.deployment_id.clone().unwrap_or_default();
    v.required_int("environment_id", &raw);
}

/// The `Environment` entity (A.3). `with_project` on list and PUT, `last_deployment` only on
/// GET one. The three Kubernetes keys appear only when an agent is set and the caller may read
/// it (Developer+), and never on a server before 17.4.
fn render_environment(
    d: &Data,
    e: &Environment,
    caller: &Caller,
    base: &str,
    with_project: bool,
    last_deployment: bool,
) -> serde_json::Value {
    let ts = |t: &DateTime<Utc>| crate::clock::render_in(t, d.time_zone_offset_secs);
    let mut o = serde_json::Map::new();
    o.insert("id".into(), json!(e.id));
    o.insert("name".into(), json!(e.name));
    o.insert("slug".into(), json!(e.slug));
    o.insert("external_url".into(), json!(e.external_url));
    o.insert("created_at".into(), json!(ts(&e.created_at)));
    o.insert("updated_at".into(), json!(ts(&e.updated_at)));
    o.insert("tier".into(), json!(e.tier));
    let project = d.projects.get(&e.project_id);
    if with_project && let Some(p) = project {
        o.insert("project".into(), project_identity(p, base));
    }
    if last_deployment {
        let last = d
            .deployments
            .values()
            .filter(|dep| dep.environment_id == e.id && dep.status == DeploymentStatus::Success)
            .max_by_key(|dep| (dep.finished_at, dep.id));
        o.insert(
            "last_deployment".into(),
            last.map_or(serde_json::Value::Null, |dep| {
                let mut v = serde_json::to_value(render::deployment(d, dep, base, false))
                    .unwrap_or_default();
                if let Some(m) = v.as_object_mut() {
                    m.remove("environment");
                }
                v
            }),
        );
    }
    o.insert("state".into(), json!(e.state));
    o.insert("auto_stop_at".into(), serde_json::Value::Null);
    let agent = e.cluster_agent_id.and_then(|id| d.cluster_agents.get(&id));
    let may_read_agent = agent.is_some_and(|a| {
        d.projects
            .get(&a.project_id)
            .is_some_and(|ap| d.has_role_at_least(ap, caller.user_id, Role::Developer))
    });
    if !d.compat.no_environment_kubernetes_fields
        && let Some(a) = agent.filter(|_| may_read_agent)
    {
        o.insert("cluster_agent".into(), render_agent(d, a, base));
        o.insert("kubernetes_namespace".into(), json!(e.kubernetes_namespace));
        o.insert("flux_resource_path".into(), json!(e.flux_resource_path));
    }
    o.insert("description".into(), serde_json::Value::Null);
    o.insert("auto_stop_setting".into(), json!("always"));
    serde_json::Value::Object(o)
}

/// `ProjectIdentity` plus the few `BasicProjectDetails` keys clients read (a subset).
fn project_identity(p: &Project, base: &str) -> serde_json::Value {
    let name = p.path.rsplit('/').next().unwrap_or(&p.path);
    json!({
        "id": p.id,
        "description": null,
        "name": name,
        "name_with_namespace": p.path.replace('/', " / "),
        "path": name,
        "path_with_namespace": p.path,
        "web_url": format!("{base}/{}", p.path),
    })
}

fn render_agent(d: &Data, a: &ClusterAgent, base: &str) -> serde_json::Value {
    let ts = |t: &DateTime<Utc>| crate::clock::render_in(t, d.time_zone_offset_secs);
    json!({
        "id": a.id,
        "name": a.name,
        "config_project": d.projects.get(&a.project_id).map(|p| project_identity(p, base)),
        "created_at": ts(&a.created_at),
        "created_by_user_id": a.created_by_user_id,
    })
}

/// GET `/projects/:id/environments` with `name` (exact) and pagination (A.4).
pub(super) fn list_environments(
    d: &Data,
    caller: &Caller,
    req: &ApiRequest<'_>,
    base: &str,
) -> Result<Reply, ApiError> {
    let mut v = Validator::new(req.params);
    let (page, per_page) = v.pagination();
    let name = v.optional_string("name");
    let search = v.optional_string("search");
    let states = v.string_in("states", false, &["available", "stopping", "stopped"]);
    v.finish().map_err(ApiError::Params)?;
    if name.is_some() && search.is_some() {
        // Grape `mutually_exclusive` with a custom message (text inferred, A.4).
        return Err(ApiError::Params(
            "name, search cannot be used together".into(),
        ));
    }
    let p = find_project(d, caller, &req.route.id)?;
    if !can(d, p, caller, Role::Reporter) {
        return Err(ApiError::Forbidden);
    }
    let search = search.filter(|s| !s.is_empty());
    if search.as_ref().is_some_and(|s| s.chars().count() < 3) {
        return Err(ApiError::BadRequest(
            "Search query is less than 3 characters",
        ));
    }
    let rows: Vec<&Environment> = d
        .environments
        .values()
        .filter(|e| e.project_id == p.id)
        .filter(|e| name.as_ref().is_none_or(|n| &e.name == n))
        .filter(|e| {
            search.as_ref().is_none_or(|q| {
                let q = q.to_lowercase();
                let leaf = e.name.rsplit('/').next().unwrap_or(&e.name).to_lowercase();
                e.name.to_lowercase().starts_with(&q) || leaf.starts_with(&q)
            })
        })
        .filter(|e| states.as_ref().is_none_or(|s| &e.state == s))
        .collect();
    let q = link_query(req, &[]);
    let (page_rows, headers) = paginate(rows, page, per_page, base, req.path, q);
    let body: Vec<_> = page_rows
        .into_iter()
        .map(|e| render_environment(d, e, caller, base, true, false))
        .collect();
    let mut r = Reply::json(200, json!(body));
    r.headers = headers;
    Ok(r)
}

/// GET `/projects/:id/environments/:environment_id` (A.1 route 2).
pub(super) fn get_environment(
    d: &Data,
    caller: &Caller,
    req: &ApiRequest<'_>,
    base: &str,
) -> Result<Reply, ApiError> {
    let mut v = Validator::new(req.params);
    environment_id_param(&mut v, req);
    v.finish().map_err(ApiError::Params)?;
    let p = find_project(d, caller, &req.route.id)?;
    if !can(d, p, caller, Role::Reporter) {
        return Err(ApiError::Forbidden);
    }
    let e = environment_of(d, p, req.route.deployment_id.as_deref().unwrap_or_default())?;
    Ok(Reply::json(
        200,
        render_environment(d, e, caller, base, false, true),
    ))
}

/// A value that was sent: `Some(None)` for JSON `null` or an empty form value (clears it).
fn sent_string(v: &mut Validator<'_>, params: &Params, name: &str) -> Option<Option<String>> {
    params.get(name)?;
    Some(v.optional_string(name).filter(|s| !s.is_empty()))
}

/// PUT `/projects/:id/environments/:environment_id` (A.6): only the keys sent change.
pub(super) fn update_environment(
    d: &mut Data,
    caller: &Caller,
    req: &ApiRequest<'_>,
    base: &str,
    now: DateTime<Utc>,
) -> Result<Reply, ApiError> {
    let mut v = Validator::new(req.params);
    environment_id_param(&mut v, req);
    let external_url = sent_string(&mut v, req.params, "external_url");
    let tier = v.string_in("tier", false, &TIERS);
    let k8s = !d.compat.no_environment_kubernetes_fields;
    // Before 17.4 these parameters are undeclared, so Grape drops them silently.
    let agent = if k8s && req.params.get("cluster_agent_id").is_some() {
        Some(v.optional_int("cluster_agent_id"))
    } else {
        None
    };
    let namespace = k8s
        .then(|| sent_string(&mut v, req.params, "kubernetes_namespace"))
        .flatten();
    let flux = k8s
        .then(|| sent_string(&mut v, req.params, "flux_resource_path"))
        .flatten();
    if req.params.get("slug").is_some() {
        v.errors
            .push("slug is automatically generated and cannot be changed".into());
    }
    v.finish().map_err(ApiError::Params)?;
    let p = find_project(d, caller, &req.route.id)?;
    if !can(d, p, caller, Role::Developer) {
        return Err(ApiError::Forbidden);
    }
    let project_id = p.id;
    let env = environment_of(d, p, req.route.deployment_id.as_deref().unwrap_or_default())?;
    let env_id = env.id;
    let mut next = env.clone();
    if let Some(Some(id)) = agent {
        let usable = u64::try_from(id)
            .ok()
            .and_then(|id| d.cluster_agents.get(&id))
            .is_some_and(|a| a.project_id == project_id);
        if !usable {
            return Err(ApiError::BadRequest(
                "cluster agent doesn't exist or cannot be associated with this environment",
            ));
        }
    }
    if let Some(a) = agent {
        next.cluster_agent_id = a.and_then(|id| u64::try_from(id).ok());
    }
    if let Some(u) = external_url {
        next.external_url = u;
    }
    if let Some(t) = tier {
        next.tier = t;
    }
    if let Some(n) = namespace.clone() {
        next.kubernetes_namespace = n;
    }
    if let Some(f) = flux.clone() {
        next.flux_resource_path = f;
    }
    let agent_changed = next.cluster_agent_id != env.cluster_agent_id;
    let errors = validate(&next, agent_changed, namespace.is_some(), flux.is_some());
    if !errors.is_empty() {
        return Err(ApiError::Message(json!(errors)));
    }
    if next != *env {
        next.updated_at = now;
    }
    d.environments.insert(env_id, next);
    let e = d.environments.get(&env_id).ok_or(ApiError::NotFound)?;
    Ok(Reply::json(
        200,
        render_environment(d, e, caller, base, true, false),
    ))
}

/// Model validation (A.8), as PUT reports it: `{"<attr>": ["<msg>", ...]}`. The namespace is
/// validated only when it or the agent changed, the Flux path when it or the namespace did.
fn validate(
    e: &Environment,
    agent_changed: bool,
    namespace_sent: bool,
    flux_sent: bool,
) -> BTreeMap<&'static str, Vec<String>> {
    let mut errors: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    if let Some(url) = &e.external_url {
        let scheme = url.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
        if url.chars().count() > 255 {
            errors
                .entry("external_url")
                .or_default()
                .push("is too long (maximum is 255 characters)".into());
        }
        if let Some(s) = scheme.filter(|s| ["data", "javascript", "vbscript"].contains(&s.as_str()))
        {
            errors
                .entry("external_url")
                .or_default()
                .push(format!("{s} scheme is not allowed"));
        }
    }
    if (agent_changed || namespace_sent)
        && let Some(ns) = &e.kubernetes_namespace
    {
        let list = errors.entry("kubernetes_namespace").or_default();
        if ns.chars().count() > 63 {
            list.push("is too long (maximum is 63 characters)".into());
        }
        if !is_dns_label(ns) {
            list.push("can contain only lowercase letters, digits, and '-'. Must start with a letter, and cannot end with '-'".into());
        }
        if e.cluster_agent_id.is_none() {
            list.push("cannot be set without a cluster agent".into());
        }
        if list.is_empty() {
            errors.remove("kubernetes_namespace");
        }
    }
    if (namespace_sent || flux_sent)
        && let Some(path) = &e.flux_resource_path
    {
        let list = errors.entry("flux_resource_path").or_default();
        if path.chars().count() > 255 {
            list.push("is too long (maximum is 255 characters)".into());
        }
        if e.kubernetes_namespace.is_none() {
            list.push("cannot be set without a kubernetes namespace".into());
        }
        if list.is_empty() {
            errors.remove("flux_resource_path");
        }
    }
    errors
}

/// GET `/projects/:id/cluster_agents` (A.9): this project's agents, ordered by name.
pub(super) fn list_cluster_agents(
    d: &Data,
    caller: &Caller,
    req: &ApiRequest<'_>,
    base: &str,
) -> Result<Reply, ApiError> {
    let mut v = Validator::new(req.params);
    let (page, per_page) = v.pagination();
    v.finish().map_err(ApiError::Params)?;
    let p = find_project(d, caller, &req.route.id)?;
    if !d.has_role_at_least(p, caller.user_id, Role::Developer) {
        return Err(ApiError::NotFoundNamed("ClusterAgents"));
    }
    let mut rows: Vec<&ClusterAgent> = d
        .cluster_agents
        .values()
        .filter(|a| a.project_id == p.id)
        .collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    let q = link_query(req, &[]);
    let (page_rows, headers) = paginate(rows, page, per_page, base, req.path, q);
    let body: Vec<_> = page_rows
        .into_iter()
        .map(|a| render_agent(d, a, base))
        .collect();
    let mut r = Reply::json(200, json!(body));
    r.headers = headers;
    Ok(r)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_follow_the_dns_label_rule() {
        for (ns, ok) in [
            ("apps", true),
            ("a-1", true),
            ("1a", true),
            ("-a", false),
            ("a-", false),
            ("A", false),
            ("", false),
            ("a_b", false),
        ] {
            assert_eq!(is_dns_label(ns), ok, "{ns}");
        }
    }
}
