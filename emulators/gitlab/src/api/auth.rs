//! Authentication (`authenticate!`), token scopes, project visibility and abilities.

use super::*;

/// Credentials found in headers and parameters.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Credentials {
    pub(super) private: Option<String>,
    pub(super) bearer: Option<String>,
    pub(super) job: Option<String>,
}

pub(super) fn credentials(headers: &HeaderMap, params: &Params) -> Credentials {
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
pub(super) struct Caller {
    pub(super) user_id: u64,
    pub(super) job_project: Option<u64>,
    pub(super) scopes: Option<Vec<Scope>>,
}

/// `authenticate!`: the first credential present decides; a bad one is a 401, never a
/// fallback to the next.
pub(super) fn authenticate(d: &Data, c: &Credentials) -> Result<Caller, ApiError> {
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
pub(super) fn check_scope(caller: &Caller, write: bool) -> Result<(), ApiError> {
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

pub(super) fn find_project<'d>(
    d: &'d Data,
    caller: &Caller,
    id: &str,
) -> Result<&'d Project, ApiError> {
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
pub(super) fn can(d: &Data, p: &Project, caller: &Caller, min: Role) -> bool {
    p.environments_enabled && d.has_role_at_least(p, caller.user_id, min)
}

pub(super) fn lookup<'d>(d: &'d Data, p: &Project, raw: &str) -> Result<&'d Deployment, ApiError> {
    // Strict decimal lookup. Rails would cast "12abc" to 12 (unverified); we answer 404.
    let id: u64 = raw.parse().map_err(|_| ApiError::NotFound)?;
    d.deployments
        .get(&id)
        .filter(|dep| dep.project_id == p.id)
        .ok_or(ApiError::NotFound)
}
