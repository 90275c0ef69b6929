//! Route matching (route templates, path parameters) and log-safe paths.

use super::*;

/// A matched route with its raw (percent-decoded) path parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Route {
    pub endpoint: Endpoint,
    pub id: String,
    /// The second path parameter: `:deployment_id`, `:environment_id` or `:hook_id`.
    pub deployment_id: Option<String>,
}

pub(super) fn decode(seg: &str) -> String {
    percent_decode_str(seg).decode_utf8_lossy().into_owned()
}

/// Matches `/api/v4/projects/:id/deployments...`. `:id` must not contain an un-encoded slash;
/// anything else falls to the catch-all. A wrong method on a known path also falls there
/// (GitLab's catch-all `route :any` answers 404; unverified versus Grape's 405).
pub(super) fn match_route(method: &str, path: &str, edition: Edition) -> Option<Route> {
    let rest = path.strip_prefix("/api/v4/projects/")?;
    let mut segs: Vec<&str> = rest.split('/').collect();
    // Grape accepts an optional `.json` format suffix on the last segment.
    if let Some(last) = segs.last_mut()
        && let Some(s) = last.strip_suffix(".json")
    {
        *last = s;
    }
    if segs.iter().any(|s| s.is_empty()) {
        return None;
    }
    let method = if method == "HEAD" { "GET" } else { method };
    let id = decode(segs[0]);
    let did = segs.get(2).map(|s| decode(s));
    let endpoint = match (
        segs.get(1).copied()?,
        segs.len(),
        method,
        segs.get(3).copied(),
    ) {
        ("deployments", 2, "GET", _) => Endpoint::ListDeployments,
        ("deployments", 2, "POST", _) => Endpoint::CreateDeployment,
        ("deployments", 3, "GET", _) => Endpoint::GetDeployment,
        ("deployments", 3, "PUT", _) => Endpoint::UpdateDeployment,
        ("deployments", 3, "DELETE", _) => Endpoint::DeleteDeployment,
        ("deployments", 4, "GET", Some("merge_requests")) => Endpoint::ListMergeRequests,
        ("deployments", 4, "POST", Some("approval")) if edition == Edition::Ee => {
            Endpoint::ApproveDeployment
        }
        ("environments", 2, "GET", _) => Endpoint::ListEnvironments,
        ("environments", 3, "GET", _) => Endpoint::GetEnvironment,
        ("environments", 3, "PUT", _) => Endpoint::UpdateEnvironment,
        ("cluster_agents", 2, "GET", _) => Endpoint::ListClusterAgents,
        ("hooks", 2, "GET", _) => Endpoint::ListHooks,
        ("hooks", 2, "POST", _) => Endpoint::CreateHook,
        ("hooks", 3, "GET", _) => Endpoint::GetHook,
        ("hooks", 3, "DELETE", _) => Endpoint::DeleteHook,
        _ => return None,
    };
    Some(Route {
        endpoint,
        id,
        deployment_id: did,
    })
}

pub(super) fn sanitized_path(path: &str, query: Option<&str>) -> String {
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

/// Headers for the request log, with credentials replaced by `[REDACTED]`.
pub(super) fn redacted_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            let name = k.as_str().to_string();
            let value = if matches!(
                name.as_str(),
                "private-token" | "authorization" | "job-token"
            ) {
                "[REDACTED]".to_string()
            } else {
                String::from_utf8_lossy(v.as_bytes()).into_owned()
            };
            (name, value)
        })
        .collect()
}

/// The body for the request log: credential parameters of JSON or form bodies redacted.
pub(super) fn redacted_body(content_type: &str, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body).into_owned();
    if content_type.to_ascii_lowercase().contains("json") {
        if let Ok(serde_json::Value::Object(mut o)) = serde_json::from_str(&text) {
            for k in CREDENTIAL_PARAMS {
                if let Some(v) = o.get_mut(k) {
                    *v = serde_json::Value::String("[REDACTED]".to_string());
                }
            }
            return serde_json::Value::Object(o).to_string();
        }
        return text;
    }
    if CREDENTIAL_PARAMS.iter().any(|k| text.contains(k)) {
        // Form bodies: drop credential pairs; anything else containing the names is hidden.
        let kept = sanitized_path("", Some(&text));
        return kept.strip_prefix('?').unwrap_or(&kept).to_string();
    }
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    type Expected<'a> = Option<(Endpoint, &'a str, Option<&'a str>)>;

    #[test]
    fn routes() {
        let cases: &[(&str, &str, Edition, Expected<'_>)] = &[
            (
                "GET",
                "/api/v4/projects/1/deployments",
                Edition::Ee,
                Some((Endpoint::ListDeployments, "1", None)),
            ),
            (
                "POST",
                "/api/v4/projects/g%2Fp/deployments",
                Edition::Ee,
                Some((Endpoint::CreateDeployment, "g/p", None)),
            ),
            ("GET", "/api/v4/projects/g/p/deployments", Edition::Ee, None),
            (
                "PUT",
                "/api/v4/projects/1/deployments/abc",
                Edition::Ee,
                Some((Endpoint::UpdateDeployment, "1", Some("abc"))),
            ),
            (
                "PATCH",
                "/api/v4/projects/1/deployments/2",
                Edition::Ee,
                None,
            ),
            (
                "HEAD",
                "/api/v4/projects/1/deployments/2.json",
                Edition::Ee,
                Some((Endpoint::GetDeployment, "1", Some("2"))),
            ),
            (
                "GET",
                "/api/v4/projects/1/deployments/2/merge_requests",
                Edition::Ce,
                Some((Endpoint::ListMergeRequests, "1", Some("2"))),
            ),
            (
                "POST",
                "/api/v4/projects/1/deployments/2/approval",
                Edition::Ee,
                Some((Endpoint::ApproveDeployment, "1", Some("2"))),
            ),
            (
                "POST",
                "/api/v4/projects/1/deployments/2/approval",
                Edition::Ce,
                None,
            ),
            ("GET", "/api/v4/projects/1/deployments/", Edition::Ee, None),
            ("GET", "/api/v3/projects/1/deployments", Edition::Ee, None),
            (
                "PUT",
                "/api/v4/projects/g%2Fp/environments/7",
                Edition::Ce,
                Some((Endpoint::UpdateEnvironment, "g/p", Some("7"))),
            ),
            (
                "GET",
                "/api/v4/projects/1/cluster_agents",
                Edition::Ce,
                Some((Endpoint::ListClusterAgents, "1", None)),
            ),
            (
                "DELETE",
                "/api/v4/projects/1/environments/7",
                Edition::Ee,
                None,
            ),
        ];
        for (method, path, edition, want) in cases {
            let got = match_route(method, path, *edition)
                .map(|r| (r.endpoint, r.id.clone(), r.deployment_id.clone()));
            let want = want.map(|(e, id, d)| (e, id.to_string(), d.map(str::to_string)));
            assert_eq!(got, want, "{method} {path} {edition:?}");
        }
    }

    #[test]
    fn logged_bodies_hide_credentials() {
        assert_eq!(
            redacted_body(
                "application/json",
                br#"{"private_token":"s","status":"success"}"#
            ),
            r#"{"private_token":"[REDACTED]","status":"success"}"#
        );
        assert_eq!(
            redacted_body(
                "application/x-www-form-urlencoded",
                b"status=success&job_token=s"
            ),
            "status=success"
        );
    }

    #[test]
    fn logged_paths_hide_credentials() {
        assert_eq!(
            sanitized_path("/a", Some("private_token=x&page=2")),
            "/a?page=2"
        );
        assert_eq!(
            sanitized_path("/a", Some("access_token=x&job_token=y")),
            "/a"
        );
        assert_eq!(sanitized_path("/a", None), "/a");
    }
}
