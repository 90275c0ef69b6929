//! The GitLab client against the GitLab emulator over loopback HTTP: every endpoint, error
//! mapping from real bodies, pagination, retries, the shared 429 pause, timeouts, malformed
//! bodies, POST never retried, and the token never showing in errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use gitlab_deployment_operator::gitlab::metrics::EndpointLabels;
use gitlab_deployment_operator::gitlab::{
    ApprovalStatus, ApproveDeployment, CreateDeployment, DeploymentOrderBy, DeploymentStatus,
    Endpoint, Error, ErrorKind, GitlabClient, GitlabMetrics, Late, ListDeployments,
    ListMergeRequests, Missing, ProjectId, RateLimit, RetryPolicy, SortOrder, Token, WriteStatus,
};
use gitlab_emulator::{
    ApprovalRuleSpec, CiDeploymentSpec, DeployAccess, Edition, Fault, GitlabEmulator,
    MergeRequestSpec, Role, Scope, SeededProject,
};

type EmuEndpoint = gitlab_emulator::Endpoint;

const SECRET: &str = "glpat-TOPSECRET-h2";

struct World {
    gl: GitlabEmulator,
    project: SeededProject,
    pid: ProjectId,
    client: GitlabClient,
}

/// A fast retry policy so failure tests stay quick on a loaded machine.
fn quick_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        max_elapsed: Duration::from_secs(20),
        max_rate_limit_wait: Duration::from_secs(10),
    }
}

fn world() -> World {
    let gl = GitlabEmulator::start().expect("emulator starts");
    let h = gl.handle();
    let project = h.seed_project("team/app", "main", 5);
    // Our own token with a recognisable secret, so leak checks have something to look for.
    h.add_personal_access_token(project.maintainer_id, SECRET, &[Scope::Api]);
    let client = GitlabClient::builder(gl.base_url(), Token::private(SECRET))
        .timeout(Duration::from_secs(10))
        .retry(quick_retry())
        .build()
        .expect("client builds");
    World {
        pid: ProjectId::Path(project.path.clone()),
        gl,
        project,
        client,
    }
}

fn create_req(w: &World, env: &str, status: WriteStatus) -> CreateDeployment {
    CreateDeployment {
        environment: env.to_owned(),
        sha: w.project.head().to_owned(),
        git_ref: "main".to_owned(),
        tag: false,
        status,
    }
}

fn assert_no_secret(err: &Error) {
    let display = err.to_string();
    let debug = format!("{err:?}");
    assert!(
        !display.contains("TOPSECRET"),
        "token in Display: {display}"
    );
    assert!(!debug.contains("TOPSECRET"), "token in Debug: {debug}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_round_trip() {
    let w = world();
    let h = w.gl.handle();

    // create (201) → get → update → list → merge requests → delete.
    let created = w
        .client
        .create_deployment(&w.pid, &create_req(&w, "production", WriteStatus::Running))
        .await
        .unwrap();
    assert_eq!(created.status, DeploymentStatus::Running);
    assert_eq!(created.environment.name, "production");
    assert_eq!(created.sha, w.project.head());
    assert!(created.deployable.is_none());
    // EE: approval fields present even for an unprotected environment.
    assert_eq!(created.pending_approval_count, Some(0));

    let by_id = ProjectId::Id(w.project.id);
    let got = w.client.get_deployment(&by_id, created.id).await.unwrap();
    assert_eq!(got.id, created.id);
    assert_eq!(got.iid, created.iid);

    // An MR merged into main gets linked when the deployment succeeds.
    h.add_merge_request(
        w.project.id,
        MergeRequestSpec::merged(
            "Add feature",
            w.project.maintainer_id,
            "main",
            w.project.head(),
        ),
    );
    let updated = w
        .client
        .update_deployment_status(&w.pid, created.id, WriteStatus::Success)
        .await
        .unwrap();
    assert_eq!(updated.status, DeploymentStatus::Success);
    assert!(updated.updated_at >= created.updated_at);

    let listed: Vec<_> = w
        .client
        .list_deployments(&w.pid, &ListDeployments::default())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].status, DeploymentStatus::Success);
    assert!(listed[0].approvals.is_none(), "list uses the plain entity");

    let mrs: Vec<_> = w
        .client
        .list_merge_requests(&w.pid, created.id, &ListMergeRequests::default())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(mrs.len(), 1, "the merged MR is linked on success");
    assert_eq!(mrs[0].title, "Add feature");
    assert_eq!(mrs[0].target_branch, "main");

    // Unknown deployment id on the MR route is not an error: [].
    let none: Vec<_> = w
        .client
        .list_merge_requests(&w.pid, 999_999, &ListMergeRequests::default())
        .try_collect()
        .await
        .unwrap();
    assert!(none.is_empty());

    // A second, failed deployment can be deleted; the current one cannot.
    let second = w
        .client
        .create_deployment(&w.pid, &create_req(&w, "production", WriteStatus::Failed))
        .await
        .unwrap();
    w.client.delete_deployment(&w.pid, second.id).await.unwrap();
    assert!(h.deployment(second.id).is_none());
    let err = w
        .client
        .delete_deployment(&w.pid, created.id)
        .await
        .unwrap_err();
    assert_eq!(err.category(), "NotAllowed", "{err}");
    assert_eq!(
        err.gitlab_message(),
        Some("Deployment currently deployed to environment")
    );

    // The request log saw exactly the calls made, by route template.
    assert_eq!(h.count(EmuEndpoint::CreateDeployment), 2);
    assert_eq!(h.count(EmuEndpoint::DeleteDeployment), 2);
    let m = w.client.metrics();
    assert_eq!(m.request_count(Endpoint::CreateDeployment, "201"), 2);
    assert_eq!(m.request_count(Endpoint::DeleteDeployment, "204"), 1);
    assert_eq!(m.request_count(Endpoint::DeleteDeployment, "400"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_on_protected_environment_and_ce() {
    let w = world();
    let h = w.gl.handle();
    let (approver_id, approver_token) = h.add_user_with_token("approver");
    h.add_member(w.project.id, approver_id, Role::Maintainer);
    h.protect_environment(
        w.project.id,
        "production",
        vec![DeployAccess::Role(Role::Maintainer)],
        vec![ApprovalRuleSpec::role(Role::Maintainer, 1)],
    );
    let d = w
        .client
        .create_deployment(&w.pid, &create_req(&w, "production", WriteStatus::Running))
        .await
        .unwrap();
    assert_eq!(d.pending_approval_count, Some(1));
    assert_eq!(d.approval_summary.as_ref().unwrap().rules.len(), 1);

    let approver = GitlabClient::builder(w.gl.api_url(), Token::private(approver_token))
        .build()
        .unwrap();
    let approval = approver
        .approve_deployment(
            &w.pid,
            d.id,
            &ApproveDeployment {
                status: ApprovalStatus::Approved,
                comment: Some("ship it".into()),
                represented_as: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(approval.status, ApprovalStatus::Approved);
    assert_eq!(approval.user.username, "approver");
    assert_eq!(approval.comment.as_deref(), Some("ship it"));
    let after = w.client.get_deployment(&w.pid, d.id).await.unwrap();
    assert_eq!(after.pending_approval_count, Some(0));
    assert_eq!(after.approvals.as_ref().map(Vec::len), Some(1));

    // Unprotected environment → 400 with GitLab's bare message.
    let staging = w
        .client
        .create_deployment(&w.pid, &create_req(&w, "staging", WriteStatus::Running))
        .await
        .unwrap();
    let err = approver
        .approve_deployment(
            &w.pid,
            staging.id,
            &ApproveDeployment {
                status: ApprovalStatus::Approved,
                comment: None,
                represented_as: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.category(), "NotAllowed", "{err}");
    assert_eq!(
        err.gitlab_message(),
        Some("This environment is not protected.")
    );

    // CE has no approval route: the catch-all 404.
    h.set_edition(Edition::Ce);
    let err = approver
        .approve_deployment(
            &w.pid,
            d.id,
            &ApproveDeployment {
                status: ApprovalStatus::Rejected,
                comment: None,
                represented_as: None,
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotFound {
                what: Missing::Route,
                ..
            }
        ),
        "{err:?}"
    );
    let ce = w.client.get_deployment(&w.pid, d.id).await.unwrap();
    assert!(ce.pending_approval_count.is_none(), "CE has no EE fields");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_walks_every_page() {
    let w = world();
    let h = w.gl.handle();
    for _ in 0..23 {
        w.client
            .create_deployment(&w.pid, &create_req(&w, "review", WriteStatus::Running))
            .await
            .unwrap();
    }
    h.clear_requests();
    let query = ListDeployments {
        per_page: Some(5),
        order_by: Some(DeploymentOrderBy::Id),
        sort: Some(SortOrder::Desc),
        ..Default::default()
    };
    let all: Vec<_> = w
        .client
        .list_deployments(&w.pid, &query)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all.len(), 23);
    let ids: Vec<u64> = all.iter().map(|d| d.id).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(ids, sorted, "desc order kept across pages");
    assert_eq!(h.count(EmuEndpoint::ListDeployments), 5, "ceil(23/5) pages");

    let page = w
        .client
        .list_deployments_page(&w.pid, &query, 2)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 5);
    assert_eq!(
        (page.page, page.next_page, page.total, page.total_pages),
        (Some(2), Some(3), Some(23), Some(5))
    );
    let last = w
        .client
        .list_deployments_page(&w.pid, &query, 5)
        .await
        .unwrap();
    assert_eq!((last.items.len(), last.next_page), (3, None));

    // An error on a later page is yielded once, then the stream ends.
    {
        use futures::StreamExt;
        let mut stream = Box::pin(w.client.list_deployments(&w.pid, &query));
        for _ in 0..5 {
            stream.next().await.unwrap().unwrap();
        }
        h.inject_fault(Fault::status(500).on(EmuEndpoint::ListDeployments).sticky());
        let err = stream.next().await.unwrap().unwrap_err();
        assert_eq!(err.category(), "ServerError");
        assert!(stream.next().await.is_none());
        h.clear_faults();
    }

    // A full walk without a page size asks for GitLab's maximum: one call here.
    h.clear_requests();
    let all: Vec<_> = w
        .client
        .list_deployments(&w.pid, &ListDeployments::default())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all.len(), 23);
    let log = h.requests();
    assert_eq!(log.len(), 1, "{log:?}");
    assert!(log[0].path.contains("per_page=100"), "{}", log[0].path);

    // Filters reach GitLab: an unknown environment is an empty list, not an error.
    let none: Vec<_> = w
        .client
        .list_deployments(
            &w.pid,
            &ListDeployments {
                environment: Some("nope".into()),
                ..Default::default()
            },
        )
        .try_collect()
        .await
        .unwrap();
    assert!(none.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_map_from_real_bodies() {
    let w = world();
    let h = w.gl.handle();
    let d = w
        .client
        .create_deployment(&w.pid, &create_req(&w, "production", WriteStatus::Running))
        .await
        .unwrap();
    let mut errors = Vec::new();

    // Unknown project → 404 Project Not Found.
    let err = w
        .client
        .get_deployment(&ProjectId::Path("team/nope".into()), d.id)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotFound {
                what: Missing::Project,
                ..
            }
        ),
        "{err:?}"
    );
    errors.push(err);
    // Unknown deployment → 404 Not found.
    let err = w.client.get_deployment(&w.pid, 987_654).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotFound {
                what: Missing::Deployment,
                ..
            }
        ),
        "{err:?}"
    );
    errors.push(err);
    // Bad sha → field map.
    let mut bad = create_req(&w, "production", WriteStatus::Running);
    bad.sha = "0000000000000000000000000000000000000000".into();
    let err = w.client.create_deployment(&w.pid, &bad).await.unwrap_err();
    match &err {
        Error::Validation { fields, .. } => {
            assert_eq!(fields["sha"], vec!["The commit does not exist".to_owned()])
        }
        other => panic!("{other:?}"),
    }
    errors.push(err);
    // Blank environment → Grape's {"error": ...}.
    let mut blank = create_req(&w, "", WriteStatus::Running);
    blank.environment = String::new();
    let err = w
        .client
        .create_deployment(&w.pid, &blank)
        .await
        .unwrap_err();
    assert_eq!(err.category(), "Validation", "{err}");
    assert!(err.to_string().contains("environment is empty"), "{err}");
    errors.push(err);
    // Finder rule F2.
    let err = w
        .client
        .list_deployments_page(
            &w.pid,
            &ListDeployments {
                updated_after: Some("2020-01-01T00:00:00Z".parse().unwrap()),
                ..Default::default()
            },
            1,
        )
        .await
        .unwrap_err();
    assert_eq!(err.category(), "Validation");
    assert!(
        err.to_string()
            .contains("`updated_at` filter requires `updated_at` sort"),
        "{err}"
    );
    errors.push(err);
    // running → running: cannot transition via "run".
    let err = w
        .client
        .update_deployment_status(&w.pid, d.id, WriteStatus::Running)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidTransition { event, .. } if event == "run"),
        "{err:?}"
    );
    errors.push(err);
    // Delete a running deployment.
    let err = w.client.delete_deployment(&w.pid, d.id).await.unwrap_err();
    assert_eq!(
        err.gitlab_message(),
        Some("Cannot destroy running deployment")
    );
    assert_eq!(err.kind(), ErrorKind::User);
    errors.push(err);
    // CI-created deployments cannot be updated through the API.
    let (ci_id, _) = h.add_ci_deployment(CiDeploymentSpec {
        project_id: w.project.id,
        environment: "production".into(),
        sha: w.project.head().into(),
        ref_: "main".into(),
        tag: false,
        status: gitlab_emulator::DeploymentStatus::Running,
        user_id: w.project.maintainer_id,
        deployable: None,
    });
    let ci = w.client.get_deployment(&w.pid, ci_id).await.unwrap();
    assert!(ci.deployable.is_some());
    let err = w
        .client
        .update_deployment_status(&w.pid, ci_id, WriteStatus::Success)
        .await
        .unwrap_err();
    assert_eq!(err.category(), "NotAllowed", "{err}");
    assert_eq!(err.status(), Some(403));
    errors.push(err);

    // Credentials: unknown, expired, read_api scope on a write, Reporter role.
    let (reporter_id, reporter_token) = h.add_user_with_token("reporter");
    h.add_member(w.project.id, reporter_id, Role::Reporter);
    h.add_personal_access_token(reporter_id, "glpat-TOPSECRET-readonly", &[Scope::ReadApi]);
    h.add_personal_access_token(
        w.project.maintainer_id,
        "glpat-TOPSECRET-old",
        &[Scope::Api],
    );
    h.set_token_expired("glpat-TOPSECRET-old", true);
    let cases: [(&str, Token, &str); 4] = [
        (
            "unknown token",
            Token::private("glpat-TOPSECRET-unknown"),
            "Unauthorized",
        ),
        (
            "expired token",
            Token::private("glpat-TOPSECRET-old"),
            "Unauthorized",
        ),
        (
            "read_api on POST",
            Token::private("glpat-TOPSECRET-readonly"),
            "Forbidden",
        ),
        (
            "reporter on POST",
            Token::private(reporter_token),
            "Forbidden",
        ),
    ];
    for (name, token, category) in cases {
        let c = GitlabClient::builder(w.gl.base_url(), token)
            .build()
            .unwrap();
        let err = c
            .create_deployment(&w.pid, &create_req(&w, "production", WriteStatus::Running))
            .await
            .unwrap_err();
        assert_eq!(err.category(), category, "case {name}: {err}");
        assert_eq!(err.kind(), ErrorKind::User, "case {name}");
        errors.push(err);
    }
    let scoped = &errors[errors.len() - 2];
    assert!(
        matches!(
            scoped,
            Error::Forbidden {
                missing_scope: Some(_),
                ..
            }
        ),
        "{scoped:?}"
    );

    // OAuth and job tokens travel in their own headers and work.
    h.add_oauth_token(w.project.maintainer_id, "oauth-TOPSECRET");
    h.add_job_token("job-TOPSECRET", w.project.id, w.project.maintainer_id);
    for token in [Token::oauth("oauth-TOPSECRET"), Token::job("job-TOPSECRET")] {
        let c = GitlabClient::builder(w.gl.base_url(), token)
            .build()
            .unwrap();
        c.get_deployment(&w.pid, d.id).await.unwrap();
    }

    for err in &errors {
        assert_no_secret(err);
    }
    assert!(!format!("{:?}", w.client).contains("TOPSECRET"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_for_idempotent_calls_only() {
    let w = world();
    let h = w.gl.handle();
    let d = w
        .client
        .create_deployment(&w.pid, &create_req(&w, "production", WriteStatus::Running))
        .await
        .unwrap();

    // A burst of two 5xx (JSON 500, HTML 503) then success: 3 requests, 2 retries.
    h.clear_requests();
    h.inject_fault(Fault::status(500).on(EmuEndpoint::GetDeployment));
    h.inject_fault(Fault::status(503).on(EmuEndpoint::GetDeployment));
    let got = w.client.get_deployment(&w.pid, d.id).await.unwrap();
    assert_eq!(got.id, d.id);
    assert_eq!(h.count(EmuEndpoint::GetDeployment), 3);
    let m = w.client.metrics();
    assert_eq!(m.request_count(Endpoint::GetDeployment, "500"), 1);
    assert_eq!(m.request_count(Endpoint::GetDeployment, "503"), 1);
    let retries = m
        .retries
        .get_or_create(&EndpointLabels {
            endpoint: Endpoint::GetDeployment.template().to_owned(),
        })
        .get();
    assert_eq!(retries, 2);

    // A sticky 502: bounded attempts, then ServerError (transient).
    h.clear_requests();
    h.inject_fault(Fault::status(502).on(EmuEndpoint::GetDeployment).sticky());
    let err = w.client.get_deployment(&w.pid, d.id).await.unwrap_err();
    assert_eq!(err.category(), "ServerError");
    assert_eq!(err.kind(), ErrorKind::Transient);
    assert_eq!(h.count(EmuEndpoint::GetDeployment), 4, "max_attempts");
    assert_no_secret(&err);
    h.clear_faults();

    // POST create is never retried: one request, the error goes to the caller.
    h.clear_requests();
    h.inject_fault(Fault::status(500).on(EmuEndpoint::CreateDeployment));
    let err = w
        .client
        .create_deployment(&w.pid, &create_req(&w, "production", WriteStatus::Running))
        .await
        .unwrap_err();
    assert_eq!(err.category(), "ServerError");
    assert_eq!(h.count(EmuEndpoint::CreateDeployment), 1);

    // A POST whose answer is lost after GitLab stored it: one request, Transport error, and
    // the deployment exists (the operator recovers by lookup, never by a second POST).
    let before = h.deployments().len();
    h.inject_fault(
        Fault::drop_connection()
            .on(EmuEndpoint::CreateDeployment)
            .after_processing(),
    );
    let err = w
        .client
        .create_deployment(&w.pid, &create_req(&w, "production", WriteStatus::Running))
        .await
        .unwrap_err();
    assert_eq!(err.category(), "TransportError", "{err}");
    assert_eq!(h.count(EmuEndpoint::CreateDeployment), 2);
    assert_eq!(h.deployments().len(), before + 1);

    // Approval POST is not retried either.
    h.inject_fault(Fault::status(502).on(EmuEndpoint::ApproveDeployment));
    let err = w
        .client
        .approve_deployment(
            &w.pid,
            d.id,
            &ApproveDeployment {
                status: ApprovalStatus::Approved,
                comment: None,
                represented_as: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.category(), "ServerError");
    assert_eq!(h.count(EmuEndpoint::ApproveDeployment), 1);

    // A PUT whose answer was lost is retried; the retry's "cannot transition" is recognised as
    // "already done" by reading the deployment back.
    h.clear_requests();
    h.inject_fault(
        Fault::status(502)
            .on(EmuEndpoint::UpdateDeployment)
            .after_processing(),
    );
    let ok = w
        .client
        .update_deployment_status(&w.pid, d.id, WriteStatus::Success)
        .await
        .unwrap();
    assert_eq!(ok.status, DeploymentStatus::Success);
    assert_eq!(h.count(EmuEndpoint::UpdateDeployment), 2);
    assert_eq!(h.count(EmuEndpoint::GetDeployment), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_body_and_timeout() {
    let w = world();
    let h = w.gl.handle();
    let d = w
        .client
        .create_deployment(&w.pid, &create_req(&w, "production", WriteStatus::Running))
        .await
        .unwrap();

    h.clear_requests();
    h.inject_fault(Fault::malformed_json().on(EmuEndpoint::GetDeployment));
    let err = w.client.get_deployment(&w.pid, d.id).await.unwrap_err();
    assert_eq!(err.category(), "DecodeError", "{err}");
    assert_eq!(err.kind(), ErrorKind::Internal);
    assert_eq!(
        h.count(EmuEndpoint::GetDeployment),
        1,
        "decode errors are not retried"
    );

    let impatient = GitlabClient::builder(w.gl.base_url(), Token::private(SECRET))
        .timeout(Duration::from_millis(300))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    h.inject_fault(Fault::delay(Duration::from_secs(3)).on(EmuEndpoint::GetDeployment));
    let started = std::time::Instant::now();
    let err = impatient.get_deployment(&w.pid, d.id).await.unwrap_err();
    assert_eq!(err.category(), "Timeout", "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(
        impatient
            .metrics()
            .request_count(Endpoint::GetDeployment, "error"),
        1
    );
    assert_no_secret(&err);

    // With retries, a slow first answer is retried and the call succeeds.
    let patient = GitlabClient::builder(w.gl.base_url(), Token::private(SECRET))
        .timeout(Duration::from_millis(1500))
        .retry(quick_retry())
        .build()
        .unwrap();
    h.inject_fault(Fault::delay(Duration::from_secs(5)).on(EmuEndpoint::GetDeployment));
    patient.get_deployment(&w.pid, d.id).await.unwrap();

    // Nothing listens: a transport error, not a panic.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let nowhere = GitlabClient::builder(format!("http://127.0.0.1:{port}"), Token::private(SECRET))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let err = nowhere.get_deployment(&w.pid, 1).await.unwrap_err();
    assert_eq!(err.category(), "TransportError", "{err}");
    assert_no_secret(&err);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_limit_pause_is_shared_and_respected() {
    let w = world();
    let h = w.gl.handle();
    let d = w
        .client
        .create_deployment(&w.pid, &create_req(&w, "production", WriteStatus::Running))
        .await
        .unwrap();
    h.clear_requests();
    h.inject_fault(Fault::rate_limited(2).on(EmuEndpoint::ListDeployments));

    // Caller A hits the 429 and retries after the pause; caller B, on a clone of the same
    // connection, starts while the pause is active and must wait it out too.
    let a = {
        let c = w.client.clone();
        let pid = w.pid.clone();
        tokio::spawn(async move {
            c.list_deployments_page(&pid, &ListDeployments::default(), 1)
                .await
        })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while w.client.paused_until().is_none() {
        assert!(tokio::time::Instant::now() < deadline, "no pause was set");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let b = {
        let c = w.client.clone();
        let pid = w.pid.clone();
        let id = d.id;
        tokio::spawn(async move { c.get_deployment(&pid, id).await })
    };
    let page = a.await.unwrap().unwrap();
    assert_eq!(page.items.len(), 1);
    b.await.unwrap().unwrap();

    let log = h.requests();
    let throttled = log
        .iter()
        .find(|r| r.status == 429)
        .expect("a 429 was served");
    let after: Vec<_> = log.iter().filter(|r| r.at > throttled.at).collect();
    assert_eq!(after.len(), 2, "A's retry and B's call: {log:?}");
    for r in after {
        let gap = (r.at - throttled.at).to_std().unwrap();
        // Retry-After: 2 → nothing reaches GitLab for 2 s (small slack for clock granularity).
        assert!(
            gap >= Duration::from_millis(1900),
            "request {gap:?} after the 429: {r:?}"
        );
    }
    assert_eq!(w.client.metrics().rate_limit_pauses.get(), 1);

    // A POST is not retried on 429: the caller gets RateLimited with GitLab's Retry-After.
    h.inject_fault(Fault::rate_limited(1).on(EmuEndpoint::CreateDeployment));
    let err = w
        .client
        .create_deployment(&w.pid, &create_req(&w, "production", WriteStatus::Running))
        .await
        .unwrap_err();
    match &err {
        Error::RateLimited { retry_after, .. } => assert_eq!(*retry_after, Duration::from_secs(1)),
        other => panic!("{other:?}"),
    }
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert!(w.client.paused_until().is_some());

    // A caller unwilling to wait (no retries) fails fast during a long pause, sending nothing.
    let hasty = GitlabClient::builder(w.gl.base_url(), Token::private(SECRET))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    h.inject_fault(Fault::rate_limited(30).on(EmuEndpoint::GetDeployment));
    let err = hasty.get_deployment(&w.pid, d.id).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(30)));
    h.clear_requests();
    let err = hasty.get_deployment(&w.pid, d.id).await.unwrap_err();
    assert_eq!(err.category(), "RateLimited");
    assert!(err.retry_after().unwrap() > Duration::from_secs(25));
    assert!(h.requests().is_empty(), "nothing is sent during the pause");
}

/// A create with a send deadline (the operator's write-ahead claim): a 429 pause or a
/// rate-limiter wait that ends after the last moment the request may start is not begun and
/// the `POST` is not sent (again); one that ends in time is waited out and sent once.
#[tokio::test]
async fn a_create_is_not_sent_after_its_send_deadline() {
    let w = world();
    let h = w.gl.handle();
    let now = tokio::time::Instant::now;
    // The client's request timeout: `over_by` minus this is the last start.
    let timeout = Duration::from_secs(10);
    let req = create_req(&w, "production", WriteStatus::Running);
    let creates = |h: &gitlab_emulator::EmulatorHandle| h.count(EmuEndpoint::CreateDeployment);
    let stored = || async {
        w.client
            .list_deployments_page(&w.pid, &ListDeployments::default(), 1)
            .await
            .unwrap()
            .items
            .len()
    };

    // GitLab answers a create 429 with Retry-After: 5 (it stores nothing); the connection
    // pauses for 5 s.
    h.inject_fault(Fault::rate_limited(5).on(EmuEndpoint::CreateDeployment));
    let err = w.client.create_deployment(&w.pid, &req).await.unwrap_err();
    assert_eq!(err.category(), "RateLimited");
    h.clear_requests();

    // The same create, to be over 2 s after a full timeout: the pause outlasts its last
    // start, so it is neither waited out nor sent.
    let asked = now();
    let err = w
        .client
        .create_deployment_by(&w.pid, &req, now() + timeout + Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "no wait was begun"
    );
    match &err {
        Error::SendDeadlinePassed {
            late: Late::Paused(left),
            ..
        } => assert!(*left > Duration::from_secs(3), "{left:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(err.category(), "SendDeadlinePassed");
    assert_eq!(err.kind(), ErrorKind::Transient);
    assert!(err.to_string().contains("nothing reached GitLab"), "{err}");
    assert_no_secret(&err);
    assert_eq!(creates(&h), 0, "the POST was not sent again");

    // With room for the pause, it is waited out and the POST sent once.
    let d = w
        .client
        .create_deployment_by(&w.pid, &req, now() + timeout + Duration::from_secs(8))
        .await
        .unwrap();
    assert!(w.client.paused_until().is_none());
    assert_eq!(creates(&h), 1);
    assert_eq!(stored().await, 1, "GitLab holds one deployment");

    // A deadline already passed: refused without a request even with nothing to wait for.
    h.clear_requests();
    let err = w
        .client
        .create_deployment_by(&w.pid, &req, now() + timeout - Duration::from_millis(1))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::SendDeadlinePassed {
                late: Late::Passed,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(h.requests().is_empty(), "{:?}", h.requests());

    // The connection's own budget (1 request/s): a wait for the next token that ends after
    // the last start is not begun, and takes no token.
    let budgeted = GitlabClient::builder(w.gl.base_url(), Token::private(SECRET))
        .timeout(timeout)
        .rate_limit(Some(RateLimit {
            per_second: std::num::NonZeroU32::new(1).unwrap(),
            burst: std::num::NonZeroU32::new(1).unwrap(),
        }))
        .build()
        .unwrap();
    budgeted.get_deployment(&w.pid, d.id).await.unwrap();
    let err = budgeted
        .create_deployment_by(&w.pid, &req, now() + timeout + Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::SendDeadlinePassed {
                late: Late::Budget(_),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(creates(&h), 0);
    assert_eq!(stored().await, 1, "still one deployment");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_throttle_and_client_token_bucket() {
    let w = world();
    let h = w.gl.handle();
    // GitLab's own throttle (Rack::Attack-style): 3 requests per 2 s window; 8 concurrent
    // calls overflow it even if they straddle a window boundary.
    h.set_rate_limit(Some(gitlab_emulator::RateLimit::new(3, 2)));
    let results: Vec<_> = futures::future::join_all((0..8).map(|_| {
        let c = w.client.clone();
        let pid = w.pid.clone();
        async move {
            c.list_deployments_page(&pid, &ListDeployments::default(), 1)
                .await
        }
    }))
    .await;
    for r in &results {
        assert!(r.is_ok(), "idempotent calls wait out the window: {r:?}");
    }
    assert!(w.client.metrics().rate_limit_pauses.get() >= 1);
    h.set_rate_limit(None);

    // Our own bucket: 5/s with burst 1 → 6 calls take at least ~1 s.
    let metrics = Arc::new(GitlabMetrics::default());
    let limited = GitlabClient::builder(w.gl.base_url(), Token::private(SECRET))
        .rate_limit(Some(RateLimit {
            per_second: 5.try_into().unwrap(),
            burst: 1.try_into().unwrap(),
        }))
        .metrics(metrics.clone())
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    for _ in 0..6 {
        limited
            .list_deployments_page(&w.pid, &ListDeployments::default(), 1)
            .await
            .unwrap();
    }
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(metrics.request_count(Endpoint::ListDeployments, "200"), 6);
}

// ---------------------------------------------------------------------------------------------
// TLS: verified by default, an extra CA bundle makes a private CA trusted.
// ---------------------------------------------------------------------------------------------

/// Test-only CA and a leaf for 127.0.0.1/localhost signed by it (valid 2020–2120), made with
/// `openssl ca`. The key protects nothing.
const TEST_CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBjjCCATSgAwIBAgICEAAwCgYIKoZIzj0EAwIwLTErMCkGA1UEAwwiZ2l0bGFi
LWRlcGxveW1lbnQtb3BlcmF0b3IgdGVzdCBDQTAgFw0yMDAxMDEwMDAwMDBaGA8y
MTIwMDEwMTAwMDAwMFowLTErMCkGA1UEAwwiZ2l0bGFiLWRlcGxveW1lbnQtb3Bl
cmF0b3IgdGVzdCBDQTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABPaCOFVn+Ghz
+vV5lTquspx+/zFin4TbnydChVypH18ZWm63r3jqzoezduW8CdZ1pznvT53FshsJ
rVmZfEtLIsyjQjBAMA8GA1UdEwEB/wQFMAMBAf8wDgYDVR0PAQH/BAQDAgEGMB0G
A1UdDgQWBBQ33Ht5cFumEGK0Xe6HHEN33MAAajAKBggqhkjOPQQDAgNIADBFAiAt
gBaDrXlT31gDgaCceJRHubPo10MY/H17Kgs98qyRhAIhAOw5Kr1JFp7z4qqvdlTI
JwpoGN3LsuyWxRUhnS/ANBHq
-----END CERTIFICATE-----\n";
const TEST_LEAF_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBwzCCAWmgAwIBAgICEAEwCgYIKoZIzj0EAwIwLTErMCkGA1UEAwwiZ2l0bGFi
LWRlcGxveW1lbnQtb3BlcmF0b3IgdGVzdCBDQTAgFw0yMDAxMDEwMDAwMDBaGA8y
MTIwMDEwMTAwMDAwMFowFDESMBAGA1UEAwwJbG9jYWxob3N0MFkwEwYHKoZIzj0C
AQYIKoZIzj0DAQcDQgAELgvia3JZvjYyY6QututlaXTBU/3EOPtYpa2wvM+pKO22
Olt4doYEAQoLYvLb6aWsX5sTQbxr2axVVW5wu1F8JaOBjzCBjDAaBgNVHREEEzAR
hwR/AAABgglsb2NhbGhvc3QwCQYDVR0TBAIwADAOBgNVHQ8BAf8EBAMCB4AwEwYD
VR0lBAwwCgYIKwYBBQUHAwEwHwYDVR0jBBgwFoAUN9x7eXBbphBitF3uhxxDd9zA
AGowHQYDVR0OBBYEFDmYCvsUVmruAXRCKRCxJyJPkfdKMAoGCCqGSM49BAMCA0gA
MEUCIAbTsPKNC2lgTHpqeuQVvPRm6IycN//ivjb6JFJpQ6M7AiEArD7qdjCpaXGI
RfYN+HIkQwd0JE6bLFVM192aX0E1uqI=
-----END CERTIFICATE-----\n";
const TEST_LEAF_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgsclQ4pj1nuorNJWV
XichX1Opg8Q8SuGtx997Y+a11KWhRANCAAQuC+Jrclm+NjJjpC6262VpdMFT/cQ4
+1ilrbC8z6ko7bY6W3h2hgQBCgti8tvppaxfmxNBvGvZrFVVbnC7UXwl
-----END PRIVATE KEY-----\n";

/// A one-purpose HTTPS server: answers every request with one deployment as JSON. Blocking
/// rustls on a thread, so the test needs no TLS crate beyond the client's own.
fn start_tls_server() -> u16 {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use std::io::{Read, Write};

    let certs = vec![CertificateDer::from_pem_slice(TEST_LEAF_PEM.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(TEST_LEAF_KEY.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let config = Arc::new(config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { continue };
            let config = config.clone();
            std::thread::spawn(move || {
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf) {
                        Ok(0) | Err(_) => return, // e.g. the client refused our certificate
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let body = r#"{"id":7,"iid":1,"ref":"main","sha":"abc","created_at":"2024-05-02T10:15:30.123Z","updated_at":"2024-05-02T12:15:30.123+02:00","user":null,"environment":{"id":1,"name":"production","slug":"production","external_url":null,"created_at":"2024-05-02T10:15:30.050Z","updated_at":"2024-05-02T10:15:30.050Z"},"deployable":null,"status":"success"}"#;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(answer.as_bytes());
                let _ = tls.flush();
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_is_verified_and_extra_ca_is_trusted() {
    let port = start_tls_server();
    let url = format!("https://127.0.0.1:{port}");
    let pid = ProjectId::Id(1);

    let trusting = GitlabClient::builder(&url, Token::private(SECRET))
        .ca_bundle_pem(TEST_CA_PEM)
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let d = trusting.get_deployment(&pid, 7).await.unwrap();
    assert_eq!((d.id, d.status), (7, DeploymentStatus::Success));
    assert_eq!(
        d.updated_at, d.created_at,
        "12:15:30+02:00 is the same instant as 10:15:30Z"
    );

    // Without the CA the private certificate is refused: TLS is never unverified.
    let default = GitlabClient::builder(&url, Token::private(SECRET))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let err = default.get_deployment(&pid, 7).await.unwrap_err();
    assert_eq!(err.category(), "TransportError", "{err}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    assert_no_secret(&err);
}
