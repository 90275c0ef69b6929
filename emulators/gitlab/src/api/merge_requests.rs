//! Route 6: merge requests linked to a deployment (§3.6, §10).

use super::*;

pub(super) fn list_merge_requests(
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
