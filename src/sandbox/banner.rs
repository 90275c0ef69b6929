//! What the sandbox prints for a person to poke at it: addresses, tokens, commands. Pure text.

/// Everything the banner and the approval hint name.
#[derive(Clone, Debug)]
pub struct Info {
    pub kube_url: String,
    pub kubeconfig: String,
    pub gitlab_url: String,
    pub project_path: String,
    pub project_id: u64,
    pub root_token: String,
    pub approver_token: String,
    pub admin_url: String,
}

/// The block printed once everything runs.
pub fn banner(i: &Info) -> String {
    let kc = &i.kubeconfig;
    [
        String::new(),
        "The sandbox is up:".to_owned(),
        format!("  Kubernetes API   {}", i.kube_url),
        format!("  kubeconfig       {kc}"),
        format!(
            "  GitLab           {}  (API {}/api/v4, project {} = id {})",
            i.gitlab_url, i.gitlab_url, i.project_path, i.project_id
        ),
        format!(
            "  GitLab tokens    root (Maintainer, deploys): {}",
            i.root_token
        ),
        format!(
            "                   approver (approves production): {}",
            i.approver_token
        ),
        format!(
            "  operator         {}/metrics  {}/readyz",
            i.admin_url, i.admin_url
        ),
        String::new(),
        "Try, in another terminal:".to_owned(),
        format!("  kubectl --kubeconfig {kc} get gld"),
        format!("  kubectl --kubeconfig {kc} describe gld web-production"),
        format!("  kubectl --kubeconfig {kc} get events --sort-by=.lastTimestamp"),
        format!(
            "  curl -s -H 'PRIVATE-TOKEN: {}' {}/api/v4/projects/{}/deployments",
            i.root_token, i.gitlab_url, i.project_id
        ),
        format!(
            "  GITLAB_URL={} GITLAB_TOKEN={} gitlab-deployment-operator deployments --project {} list",
            i.gitlab_url, i.root_token, i.project_path
        ),
        String::new(),
    ]
    .join("\n")
}

/// How to approve GitLab deployment `id` as the approver, from a shell.
pub fn approve_hint(i: &Info, id: i64) -> String {
    let env = format!(
        "GITLAB_URL={} GITLAB_TOKEN={}",
        i.gitlab_url, i.approver_token
    );
    let args = format!("deployments --project {} approve {id}", i.project_path);
    [
        String::new(),
        format!("production waits for approval. Approve GitLab deployment {id} as the approver:"),
        format!("  {env} gitlab-deployment-operator {args}"),
        format!("  (from the source tree: {env} cargo run --release -- {args})"),
        "then watch the operator pick it up (it polls GitLab for approvals: 10 s, then less often):"
            .to_owned(),
        format!(
            "  kubectl --kubeconfig {} get gld web-production -w",
            i.kubeconfig
        ),
        String::new(),
    ]
    .join("\n")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn info() -> Info {
        Info {
            kube_url: "https://127.0.0.1:6443".into(),
            kubeconfig: "/tmp/kc".into(),
            gitlab_url: "http://127.0.0.1:8080".into(),
            project_path: "demo/app".into(),
            project_id: 1,
            root_token: "glpat-root".into(),
            approver_token: "glpat-approver".into(),
            admin_url: "http://127.0.0.1:9090".into(),
        }
    }

    #[test]
    fn banner_names_kubeconfig_url_tokens_and_commands() {
        let b = banner(&info());
        for want in [
            "kubectl --kubeconfig /tmp/kc get gld",
            "kubectl --kubeconfig /tmp/kc describe gld web-production",
            "curl -s -H 'PRIVATE-TOKEN: glpat-root' http://127.0.0.1:8080/api/v4/projects/1/deployments",
            "glpat-approver",
            "https://127.0.0.1:6443",
        ] {
            assert!(b.contains(want), "banner lacks {want:?}:\n{b}");
        }
    }

    #[test]
    fn approve_hint_is_a_runnable_command() {
        let h = approve_hint(&info(), 7);
        assert!(h.contains(
            "GITLAB_URL=http://127.0.0.1:8080 GITLAB_TOKEN=glpat-approver gitlab-deployment-operator deployments --project demo/app approve 7"
        ), "{h}");
    }
}
