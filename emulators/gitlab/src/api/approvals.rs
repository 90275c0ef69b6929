//! Route 7 (EE): approve or reject a deployment (§3.7, §9).

use super::*;

pub(super) fn approve_deployment(
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
    if d.compat.legacy_approval_order && dep.status != DeploymentStatus::Blocked {
        return Err(msg("This deployment is not waiting for approvals."));
    }
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
    // A repeated identical decision saves nothing and fires no event (B.9).
    let mut changed = true;
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
            } else {
                changed = false;
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
    if changed {
        crate::webhooks::approval_recorded(d, dep_id, idx, base);
    }
    let dep = d.deployments.get(&dep_id).ok_or(ApiError::NotFound)?;
    let a = dep.approvals.get(idx).ok_or(ApiError::NotFound)?;
    Ok(Reply::entity(201, &render::approval(d, a, base)))
}
