//! Table tests for status computation: conditions and phase per situation, approval summary
//! from GitLab's JSON, bounded history and merge requests, the timeout clock, and stability.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::json;

use super::*;
use crate::api::conditions::find_condition;
use crate::rollout::Revision;

const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

fn now() -> Timestamp {
    "2026-01-01T12:00:00Z".parse().unwrap()
}
fn later(s: i64) -> Timestamp {
    now() + SignedDuration::from_secs(s)
}

fn view(id: i64, sha: &str, status: &str) -> GitlabDeploymentView {
    serde_json::from_value(json!({
        "id": id, "iid": id, "ref": "main", "sha": sha, "status": status,
        "created_at": "2026-01-01T11:50:00.123Z", "updated_at": "2026-01-01T11:55:00.456Z",
        "user": {"id": 1, "username": "operator"},
        "environment": {"id": 9, "name": "production", "slug": "production", "external_url": "https://web.example.com"},
        "deployable": null,
    }))
    .unwrap()
}

fn rollout(state: RolloutState, reason: Reason) -> RolloutStatus {
    RolloutStatus::new(state, reason, format!("{} message", reason.as_str()))
}

fn rev() -> DeployRevision {
    DeployRevision {
        sha: A.into(),
        ref_name: "main".into(),
        tag: false,
    }
}

struct Want {
    ready: (&'static str, &'static str),
    abnormal: Option<(&'static str, &'static str)>,
    phase: Phase,
}

#[test]
fn conditions_and_phase_table() {
    let spec_err = SpecError::RefEmpty;
    let token = Problem {
        reason: reason::TOKEN_SECRET_MISSING,
        message: "token Secret apps/gitlab has no key \"token\"".into(),
        user_error: true,
    };
    let transient = Problem {
        reason: reason::GITLAB_ERROR,
        message: "GitLab answered 502; retrying".into(),
        user_error: false,
    };
    let progressing = rollout(RolloutState::Progressing, Reason::ReplicasUpdating);
    let complete = rollout(RolloutState::Succeeded, Reason::RolloutComplete);
    let failed = rollout(RolloutState::Failed, Reason::ProgressTimeout);
    let not_found = rollout(RolloutState::Pending, Reason::TargetNotFound);
    let wanted = rev();

    let running = vec![Outcome::Recorded {
        view: view(1, A, "running"),
        tag: false,
    }];
    let success = vec![Outcome::Recorded {
        view: view(1, A, "success"),
        tag: false,
    }];
    let canceled = vec![Outcome::Recorded {
        view: view(1, A, "canceled"),
        tag: false,
    }];
    let mut pending_view = view(1, A, "success");
    pending_view.pending_approval_count = Some(1);
    pending_view.approval_summary = Some(ApprovalSummaryView {
        rules: vec![ApprovalRuleView {
            id: Some(3),
            access_level_description: Some("Maintainers".into()),
            required_approvals: 1,
            deployment_approvals: vec![],
        }],
    });
    let pending_approval = vec![Outcome::Recorded {
        view: pending_view.clone(),
        tag: false,
    }];
    let mut rejected_view = pending_view;
    rejected_view.approvals = vec![ApprovalView {
        user: UserView {
            username: "sec".into(),
        },
        status: "rejected".into(),
        comment: Some("no".into()),
        created_at: None,
    }];
    let rejected = vec![Outcome::Recorded {
        view: rejected_view,
        tag: false,
    }];

    let cases: Vec<(&str, GitlabDeploymentStatus, Observation<'_>, Want)> = vec![
        (
            "invalid spec stalls",
            GitlabDeploymentStatus::default(),
            Observation {
                spec_error: Some(&spec_err),
                ..Observation::new(2)
            },
            Want {
                ready: ("False", "InvalidSpec"),
                abnormal: Some(("Stalled", "InvalidSpec")),
                phase: Phase::Stalled,
            },
        ),
        (
            "user error stalls",
            GitlabDeploymentStatus::default(),
            Observation {
                problem: Some(&token),
                rollout: Some(&progressing),
                wanted: Some(&wanted),
                ..Observation::new(2)
            },
            Want {
                ready: ("False", "TokenSecretMissing"),
                abnormal: Some(("Stalled", "TokenSecretMissing")),
                phase: Phase::Stalled,
            },
        ),
        (
            "transient error keeps reconciling",
            GitlabDeploymentStatus::default(),
            Observation {
                problem: Some(&transient),
                rollout: Some(&progressing),
                wanted: Some(&wanted),
                ..Observation::new(2)
            },
            Want {
                ready: ("False", "GitLabError"),
                abnormal: Some(("Reconciling", "GitLabError")),
                phase: Phase::Progressing,
            },
        ),
        (
            "target not found",
            GitlabDeploymentStatus::default(),
            Observation {
                rollout: Some(&not_found),
                wanted: Some(&wanted),
                ..Observation::new(2)
            },
            Want {
                ready: ("False", "TargetNotFound"),
                abnormal: Some(("Reconciling", "TargetNotFound")),
                phase: Phase::Pending,
            },
        ),
        (
            "intent without id",
            with_intent(
                &GitlabDeploymentStatus::default(),
                &rev(),
                "production",
                GitlabStatus::Running,
                None,
                now(),
            ),
            Observation {
                rollout: Some(&progressing),
                wanted: Some(&wanted),
                ..Observation::new(2)
            },
            Want {
                ready: ("False", "DeploymentPending"),
                abnormal: Some(("Reconciling", "DeploymentPending")),
                phase: Phase::Progressing,
            },
        ),
        (
            "rollout progressing, GitLab running",
            GitlabDeploymentStatus::default(),
            Observation {
                rollout: Some(&progressing),
                wanted: Some(&wanted),
                outcomes: &running,
                ..Observation::new(2)
            },
            Want {
                ready: ("False", "RolloutProgressing"),
                abnormal: Some(("Reconciling", "RolloutProgressing")),
                phase: Phase::Progressing,
            },
        ),
        (
            "rollout complete, GitLab success",
            GitlabDeploymentStatus::default(),
            Observation {
                rollout: Some(&complete),
                wanted: Some(&wanted),
                outcomes: &success,
                ..Observation::new(2)
            },
            Want {
                ready: ("True", "RolloutComplete"),
                abnormal: None,
                phase: Phase::Succeeded,
            },
        ),
        (
            "rollout failed",
            GitlabDeploymentStatus::default(),
            Observation {
                rollout: Some(&failed),
                wanted: Some(&wanted),
                outcomes: &running,
                ..Observation::new(2)
            },
            Want {
                ready: ("False", "RolloutFailed"),
                abnormal: Some(("Stalled", "RolloutFailed")),
                phase: Phase::Failed,
            },
        ),
        (
            "approval pending after success",
            GitlabDeploymentStatus::default(),
            Observation {
                rollout: Some(&complete),
                wanted: Some(&wanted),
                outcomes: &pending_approval,
                ..Observation::new(2)
            },
            Want {
                ready: ("False", "ApprovalPending"),
                abnormal: Some(("Reconciling", "ApprovalPending")),
                phase: Phase::Progressing,
            },
        ),
        (
            "approval rejected",
            GitlabDeploymentStatus::default(),
            Observation {
                rollout: Some(&complete),
                wanted: Some(&wanted),
                outcomes: &rejected,
                ..Observation::new(2)
            },
            Want {
                ready: ("False", "ApprovalRejected"),
                abnormal: Some(("Stalled", "ApprovalRejected")),
                phase: Phase::Stalled,
            },
        ),
        (
            "deployment canceled because the target is gone",
            GitlabDeploymentStatus::default(),
            Observation {
                rollout: Some(&not_found),
                wanted: Some(&wanted),
                outcomes: &canceled,
                ..Observation::new(2)
            },
            Want {
                ready: ("False", "TargetNotFound"),
                abnormal: Some(("Reconciling", "TargetNotFound")),
                phase: Phase::Pending,
            },
        ),
        (
            "a newer revision is wanted than GitLab shows",
            {
                let mut st = GitlabDeploymentStatus::default();
                let newer = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
                record_deployment(&mut st, &view(1, newer, "success"), false, now());
                st
            },
            Observation {
                rollout: Some(&progressing),
                wanted: Some(&wanted),
                ..Observation::new(2)
            },
            Want {
                ready: ("False", "RolloutPending"),
                abnormal: Some(("Reconciling", "RolloutPending")),
                phase: Phase::Progressing,
            },
        ),
        (
            "revisionFrom finds no commit",
            GitlabDeploymentStatus::default(),
            Observation {
                rollout: Some(&progressing),
                wanted: None,
                ..Observation::new(2)
            },
            Want {
                ready: ("False", "RevisionUnknown"),
                abnormal: Some(("Stalled", "RevisionUnknown")),
                phase: Phase::Stalled,
            },
        ),
    ];
    for (name, old, obs, want) in cases {
        let next = next_status(&old, &obs, now());
        let c = &next.conditions;
        let ready = find_condition(c, READY).unwrap_or_else(|| panic!("case {name}: no Ready"));
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            want.ready,
            "case {name}"
        );
        assert!(
            !ready.message.is_empty(),
            "case {name}: Ready has a message"
        );
        let abnormal: Vec<_> = c
            .iter()
            .filter(|c| c.type_ == STALLED || c.type_ == RECONCILING)
            .collect();
        match want.abnormal {
            None => assert!(abnormal.is_empty(), "case {name}: {abnormal:?}"),
            Some((t, r)) => {
                assert_eq!(
                    abnormal.len(),
                    1,
                    "case {name}: one abnormal condition at a time"
                );
                assert_eq!(
                    (abnormal[0].type_.as_str(), abnormal[0].reason.as_str()),
                    (t, r),
                    "case {name}"
                );
                assert_eq!(c[0].type_, t, "case {name}: abnormal sorts first");
            }
        }
        assert!(
            c.iter().all(|c| c.observed_generation == Some(2)),
            "case {name}"
        );
        assert_eq!(next.phase, Some(want.phase), "case {name}");
        assert_eq!(next.observed_generation, Some(2), "case {name}");
    }
}

#[test]
fn approval_summary_from_gitlab_json() {
    let approval = |user: &str, status: &str| json!({"user": {"id": 100, "username": user, "name": user}, "status": status, "created_at": "2022-04-11T03:37:03.058Z", "comment": null});
    let rules = |qa: serde_json::Value, sec: serde_json::Value| {
        json!({"rules": [
            {"id": 12, "user_id": null, "group_id": 135, "access_level": null, "access_level_description": "security-group",
             "required_approvals": 2, "group_inheritance_type": 0, "deployment_approvals": sec},
            {"id": 11, "user_id": null, "group_id": 134, "access_level": null, "access_level_description": "qa-group",
             "required_approvals": 1, "group_inheritance_type": 0, "deployment_approvals": qa},
        ]})
    };
    let with = |pending: i64, approvals: serde_json::Value, summary: serde_json::Value| {
        let mut v = serde_json::to_value(json!({
            "id": 1, "iid": 1, "ref": "main", "sha": A, "status": "running",
            "pending_approval_count": pending, "approvals": approvals, "approval_summary": summary,
        }))
        .unwrap();
        v.as_object_mut().unwrap().retain(|_, v| !v.is_null());
        serde_json::from_value::<GitlabDeploymentView>(v).unwrap()
    };
    let one = approval("security-user-1", "approved");
    type Case = (
        &'static str,
        GitlabDeploymentView,
        Option<(ApprovalState, i64, i64)>,
        Option<&'static str>,
    );
    let cases: Vec<Case> = vec![
        (
            "CE: no approval fields",
            serde_json::from_value(
                json!({"id": 1, "iid": 1, "ref": "main", "sha": A, "status": "running"}),
            )
            .unwrap(),
            None,
            None,
        ),
        (
            "EE, unprotected",
            with(0, json!([]), json!({"rules": []})),
            None,
            None,
        ),
        (
            "one of two security approvals (spec §9.5 example)",
            with(
                2,
                json!([one.clone()]),
                rules(json!([]), json!([one.clone()])),
            ),
            Some((ApprovalState::Pending, 3, 2)),
            Some("1/3"),
        ),
        (
            "all approved",
            with(
                0,
                json!([
                    one.clone(),
                    approval("u2", "approved"),
                    approval("qa", "approved")
                ]),
                rules(
                    json!([approval("qa", "approved")]),
                    json!([one.clone(), approval("u2", "approved")]),
                ),
            ),
            Some((ApprovalState::Approved, 3, 0)),
            Some("3/3"),
        ),
        (
            "a rejection wins",
            with(
                2,
                json!([approval("qa", "rejected")]),
                rules(json!([approval("qa", "rejected")]), json!([])),
            ),
            Some((ApprovalState::Rejected, 3, 2)),
            Some("1/3"),
        ),
        (
            "legacy: count only",
            with(1, json!([one.clone()]), serde_json::Value::Null),
            Some((ApprovalState::Pending, 2, 1)),
            Some("1/2"),
        ),
    ];
    for (name, v, want, column) in cases {
        let mut st = GitlabDeploymentStatus::default();
        record_deployment(&mut st, &v, false, now());
        let got = st
            .approval
            .as_ref()
            .map(|a| (a.state, a.required, a.pending));
        assert_eq!(got, want, "case {name}");
        assert_eq!(st.approvals_summary.as_deref(), column, "case {name}");
        if let Some(a) = &st.approval {
            let ids: Vec<i64> = a.rules.iter().map(|r| r.id).collect();
            if !ids.is_empty() {
                assert_eq!(ids, [11, 12], "case {name}: rules sorted by id");
            }
            assert_eq!(
                a.pending_since.is_some(),
                a.state == ApprovalState::Pending,
                "case {name}"
            );
        }
    }
}

#[test]
fn pending_since_survives_polls_and_checked_at_moves() {
    let mut v = view(1, A, "running");
    v.pending_approval_count = Some(1);
    let mut st = GitlabDeploymentStatus::default();
    record_deployment(&mut st, &v, false, now());
    record_deployment(&mut st, &v, false, later(40));
    let a = st.approval.unwrap();
    assert_eq!(a.pending_since.unwrap().0, now());
    assert_eq!(a.checked_at.unwrap().0, later(40));
}

#[test]
fn history_is_bounded_newest_first() {
    let mut st = GitlabDeploymentStatus::default();
    for id in 1..=(MAX_HISTORY as i64 + 3) {
        record_deployment(&mut st, &view(id, A, "success"), false, now());
    }
    assert_eq!(
        i64::from(st.deployment.as_ref().unwrap().id),
        MAX_HISTORY as i64 + 3
    );
    let ids: Vec<i64> = st
        .history
        .iter()
        .map(|h| i64::from(h.deployment_id))
        .collect();
    assert_eq!(
        ids,
        (3..=(MAX_HISTORY as i64 + 2)).rev().collect::<Vec<_>>(),
        "oldest dropped"
    );
    assert!(st.history.iter().all(|h| h.finished_at.is_some()));

    // The same id again updates in place and does not grow the history.
    let before = st.history.len();
    record_deployment(
        &mut st,
        &view(MAX_HISTORY as i64 + 3, A, "failed"),
        false,
        now(),
    );
    assert_eq!(st.history.len(), before);
}

#[test]
fn merge_requests_are_bounded_and_sorted() {
    let mrs: Vec<MergeRequestView> = (1..=25)
        .map(|i| {
            serde_json::from_value(json!({
                "id": 1000 + i, "iid": i, "title": format!("MR {i}"), "web_url": format!("https://gitlab.example.com/g/p/-/merge_requests/{i}"),
                "author": {"id": 1, "username": "dev"}, "merged_at": format!("2026-01-01T10:{:02}:00.000Z", i),
                "state": "merged",
            }))
            .unwrap()
        })
        .collect();
    let mut st = GitlabDeploymentStatus::default();
    record_merge_requests(&mut st, DeploymentId::new(7).unwrap(), &mrs);
    assert_eq!(st.merge_requests.len(), MAX_MERGE_REQUESTS);
    assert_eq!(st.merge_requests[0].iid, 25, "newest merge first");
    assert_eq!(st.merge_requests.last().unwrap().iid, 6);
    assert_eq!(st.merge_requests[0].author.as_deref(), Some("dev"));
    assert_eq!(st.merge_requests_for, DeploymentId::new(7));
}

#[test]
fn rollout_clock_starts_pauses_and_resets() {
    let wanted = rev();
    let mut st = GitlabDeploymentStatus::default();
    let pending = rollout(RolloutState::Pending, Reason::GenerationNotObserved);
    let progressing = rollout(RolloutState::Progressing, Reason::ReplicasUpdating);
    let paused = rollout(RolloutState::Progressing, Reason::Paused);

    record_rollout(&mut st, &pending, Some(&wanted), now());
    assert_eq!(
        rollout_clock(&st, now()).0,
        None,
        "the gate has not passed: no clock"
    );
    record_rollout(&mut st, &progressing, Some(&wanted), later(10));
    assert_eq!(
        rollout_clock(&st, later(10)).0,
        Some(later(10)),
        "clock starts at the first gate pass"
    );
    record_rollout(&mut st, &paused, Some(&wanted), later(20));
    assert_eq!(
        rollout_clock(&st, later(50)).1.as_secs(),
        30,
        "a running pause counts up to now"
    );
    record_rollout(&mut st, &progressing, Some(&wanted), later(80));
    let (started, paused_for) = rollout_clock(&st, later(100));
    assert_eq!((started, paused_for.as_secs()), (Some(later(10)), 60));

    // A new revision restarts the clock.
    let mut next = progressing.clone();
    next.revision = Some(Revision {
        kind_id: Some("5d9c7b8f6".into()),
        ..Revision::default()
    });
    record_rollout(&mut st, &next, Some(&wanted), later(200));
    assert_eq!(
        rollout_clock(&st, later(200)),
        (Some(later(200)), std::time::Duration::ZERO)
    );
}

#[test]
fn identical_inputs_serialize_identically() {
    let wanted = rev();
    let progressing = rollout(RolloutState::Progressing, Reason::ReplicasUpdating);
    let running = vec![Outcome::Recorded {
        view: view(1, A, "running"),
        tag: false,
    }];
    let first = next_status(
        &GitlabDeploymentStatus::default(),
        &Observation {
            rollout: Some(&progressing),
            wanted: Some(&wanted),
            outcomes: &running,
            ..Observation::new(1)
        },
        now(),
    );
    // A later reconcile that learns nothing new (a watch event, a requeue).
    let obs = Observation {
        rollout: Some(&progressing),
        wanted: Some(&wanted),
        ..Observation::new(1)
    };
    let second = next_status(&first, &obs, later(30));
    assert_eq!(first, second);
    assert_eq!(
        serde_json::to_vec(&first).unwrap(),
        serde_json::to_vec(&second).unwrap()
    );
    assert_eq!(first.short_sha.as_deref(), Some("aaaaaaa"));
    let d = first.deployment.as_ref().unwrap();
    assert_eq!(
        d.environment_url.as_deref(),
        Some("https://web.example.com")
    );
    assert_eq!(
        d.created_at.as_ref().unwrap().0.to_string(),
        "2026-01-01T11:50:00Z",
        "whole seconds"
    );

    // A new message is a real change.
    let moved = RolloutStatus::new(
        RolloutState::Progressing,
        Reason::ReplicasUpdating,
        "2 of 3",
    );
    let third = next_status(
        &second,
        &Observation {
            rollout: Some(&moved),
            wanted: Some(&wanted),
            ..Observation::new(1)
        },
        later(60),
    );
    assert_ne!(second, third);
}

#[test]
fn intent_is_cleared_by_the_matching_deployment_or_a_failed_lookup() {
    let with_intent = with_intent(
        &GitlabDeploymentStatus::default(),
        &rev(),
        "production",
        GitlabStatus::Running,
        None,
        now(),
    );
    assert_eq!(with_intent.intent.as_ref().unwrap().claimed_at.0, now());
    let found = vec![Outcome::Recorded {
        view: view(1, A, "running"),
        tag: false,
    }];
    let next = next_status(
        &with_intent,
        &Observation {
            outcomes: &found,
            ..Observation::new(1)
        },
        now(),
    );
    assert!(next.intent.is_none() && next.deployment.is_some());
    let next = next_status(
        &with_intent,
        &Observation {
            outcomes: &[Outcome::IntentVoid],
            ..Observation::new(1)
        },
        now(),
    );
    assert!(next.intent.is_none() && next.deployment.is_none());
}

#[test]
fn a_refused_create_stays_stalled_until_the_generation_or_revision_moves_on() {
    let problem = Problem {
        reason: "Validation",
        message: "GitLab refused create deployment: 400 commit does not exist".into(),
        user_error: true,
    };
    let mut refused = GitlabDeploymentStatus {
        refused_create: Some(RefusedCreate {
            revision: rev(),
            generation: 1,
            reason: problem.reason.into(),
            message: problem.message.clone(),
            connection: "uid/1/2".into(),
        }),
        ..GitlabDeploymentStatus::default()
    };
    // As the failed reconcile wrote it.
    refused = next_status(
        &refused,
        &Observation {
            problem: Some(&problem),
            ..Observation::new(1)
        },
        now(),
    );
    let stalled = |s: &GitlabDeploymentStatus| {
        find_condition(&s.conditions, STALLED)
            .filter(|c| c.status == "True")
            .map(|c| {
                (
                    c.reason.clone(),
                    c.message.clone(),
                    c.last_transition_time.clone(),
                )
            })
    };
    let at_refusal = stalled(&refused).expect("stalled on the refusal");
    let progressing = rollout(RolloutState::Succeeded, Reason::RolloutComplete);
    let wanted = rev();
    let again = |status: &GitlabDeploymentStatus, generation: i64, wanted: &DeployRevision| {
        next_status(
            status,
            &Observation {
                rollout: Some(&progressing),
                wanted: Some(wanted),
                ..Observation::new(generation)
            },
            later(60),
        )
    };
    // A later reconcile (after a restart: no problem of its own) says the same thing.
    let later_status = again(&refused, 1, &wanted);
    assert_eq!(stalled(&later_status), Some(at_refusal));
    assert_eq!(later_status.phase, Some(Phase::Stalled));
    assert!(later_status.refused_create.is_some());
    // A new generation or another revision: the refusal is history.
    assert!(again(&refused, 2, &wanted).refused_create.is_none());
    let other = DeployRevision {
        sha: "b".repeat(40),
        ..rev()
    };
    assert!(again(&refused, 1, &other).refused_create.is_none());
    // The revision created after all: cleared too.
    let created = vec![Outcome::Recorded {
        view: view(1, A, "success"),
        tag: false,
    }];
    let next = next_status(
        &refused,
        &Observation {
            outcomes: &created,
            ..Observation::new(1)
        },
        now(),
    );
    assert!(next.refused_create.is_none());
}
