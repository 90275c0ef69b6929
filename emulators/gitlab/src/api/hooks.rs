//! Project webhooks (spec Part B): `GET/POST /projects/:id/hooks`, `GET/DELETE .../:hook_id`.
//! Maintainer (or admin) for every route, reads included; the `token` is write-only.

use super::*;

/// Plan limit `project_hooks` (default 100).
const MAX_PROJECT_HOOKS: usize = 100;
/// Longest `token` GitLab stores.
const MAX_TOKEN_LEN: usize = 8192;

/// B.2: `authorize!(:admin_web_hook)` runs as a `before` hook, so 404/403 come before Grape's
/// parameter errors.
fn maintained_project<'d>(
    d: &'d Data,
    caller: &Caller,
    req: &ApiRequest<'_>,
) -> Result<&'d Project, ApiError> {
    let p = find_project(d, caller, &req.route.id)?;
    if !d.has_role_at_least(p, caller.user_id, Role::Maintainer) {
        return Err(ApiError::Forbidden);
    }
    Ok(p)
}

fn hook_of<'d>(
    d: &'d Data,
    p: &Project,
    req: &ApiRequest<'_>,
) -> Result<&'d ProjectHook, ApiError> {
    let id: u64 = req
        .route
        .deployment_id
        .as_deref()
        .unwrap_or_default()
        .parse()
        .map_err(|_| ApiError::NotFound)?;
    d.hooks
        .get(&id)
        .filter(|h| h.project_id == p.id)
        .ok_or(ApiError::NotFound)
}

pub(super) fn list_hooks(
    d: &Data,
    caller: &Caller,
    req: &ApiRequest<'_>,
) -> Result<Reply, ApiError> {
    let p = maintained_project(d, caller, req)?;
    let mut v = Validator::new(req.params);
    let (page, per_page) = v.pagination();
    v.finish().map_err(ApiError::Params)?;
    let hooks: Vec<_> = d
        .hooks
        .values()
        .filter(|h| h.project_id == p.id)
        .map(|h| render::project_hook(d, h, false))
        .collect();
    let skip = usize::try_from((page.max(1) - 1) * per_page).unwrap_or(usize::MAX);
    let items: Vec<_> = hooks
        .into_iter()
        .skip(skip)
        .take(usize::try_from(per_page).unwrap_or(20))
        .collect();
    Ok(Reply::entity(200, &items))
}

pub(super) fn get_hook(d: &Data, caller: &Caller, req: &ApiRequest<'_>) -> Result<Reply, ApiError> {
    let p = maintained_project(d, caller, req)?;
    let hook = hook_of(d, p, req)?;
    Ok(Reply::entity(200, &render::project_hook(d, hook, true)))
}

pub(super) fn create_hook(
    d: &mut Data,
    caller: &Caller,
    req: &ApiRequest<'_>,
    now: DateTime<Utc>,
) -> Result<Reply, ApiError> {
    let project_id = maintained_project(d, caller, req)?.id;
    let mut v = Validator::new(req.params);
    let url = v.required_string("url");
    let token = v.optional_string("token");
    let name = v.optional_string("name");
    let description = v.optional_string("description");
    let push_events = v.optional_bool("push_events");
    let deployment_events = v.optional_bool("deployment_events");
    let ssl = v.optional_bool("enable_ssl_verification");
    v.finish().map_err(ApiError::Params)?;
    let url = url.unwrap_or_default();
    if !hook_url_allowed(&url, d.allow_local_webhooks) {
        return Err(ApiError::Unprocessable(
            json!({"error": "Invalid url given"}),
        ));
    }
    if let Some(t) = &token
        && (t.len() > MAX_TOKEN_LEN || t.contains('\n'))
    {
        return Err(ApiError::Unprocessable(
            json!({"error": "Token is invalid"}),
        ));
    }
    if d.hooks
        .values()
        .filter(|h| h.project_id == project_id)
        .count()
        >= MAX_PROJECT_HOOKS
    {
        return Err(ApiError::Unprocessable(
            json!({"error": "Maximum number of project hooks (100) exceeded"}),
        ));
    }
    let id = d.hooks.keys().next_back().map_or(1, |last| last + 1);
    let hook = ProjectHook {
        id,
        project_id,
        url,
        token: token.filter(|t| !t.is_empty()),
        name,
        description,
        push_events: push_events.unwrap_or(true),
        deployment_events: deployment_events.unwrap_or(false),
        enable_ssl_verification: ssl.unwrap_or(true),
        created_at: now,
    };
    let reply = Reply::entity(201, &render::project_hook(d, &hook, true));
    d.hooks.insert(id, hook);
    Ok(reply)
}

pub(super) fn delete_hook(
    d: &mut Data,
    caller: &Caller,
    req: &ApiRequest<'_>,
) -> Result<Reply, ApiError> {
    let p = maintained_project(d, caller, req)?;
    let id = hook_of(d, p, req)?.id;
    d.hooks.remove(&id);
    Ok(Reply::no_content())
}

/// B.6: `http`/`https` only; loopback, private and link-local targets only when the admin
/// setting allows local requests. Names are not resolved (GitLab accepts a name that does not
/// resolve at save time); `localhost` counts as local.
fn hook_url_allowed(raw: &str, allow_local: bool) -> bool {
    let Ok(url) = url::Url::parse(raw) else {
        return false;
    };
    if !matches!(url.scheme(), "http" | "https") {
        return false;
    }
    let local = match url.host() {
        None => return false,
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => {
            ip.is_loopback() || ip.is_private() || ip.is_link_local() || ip.is_unspecified()
        }
        Some(url::Host::Ipv6(ip)) => ip.is_loopback() || ip.is_unspecified(),
    };
    allow_local || !local
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::hook_url_allowed;

    #[test]
    fn hook_urls() {
        let cases = [
            ("https://hooks.example.com/x", false, true),
            ("ftp://hooks.example.com/x", true, false),
            ("http://127.0.0.1:9000/hooks/gitlab", false, false),
            ("http://127.0.0.1:9000/hooks/gitlab", true, true),
            ("http://10.1.2.3/", false, false),
            ("http://localhost/", false, false),
            ("not a url", true, false),
        ];
        for (url, local, want) in cases {
            assert_eq!(hook_url_allowed(url, local), want, "{url} local={local}");
        }
    }
}
