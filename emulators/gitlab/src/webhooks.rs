//! Deployment Hooks (spec B.8, B.9) and their delivery (B.7).
//!
//! A status change or (with `approval_webhooks`) an approval puts a payload in `Data::outbox`
//! under the state lock; after the request, [`spawn_deliveries`] hands each payload to every
//! hook of the project with `deployment_events`, one background task per hook, as
//! `WebHookWorker` does. Deliveries speak plain HTTP/1.1 (`https` hook URLs are recorded as
//! failed: the emulator runs on loopback).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::handle::EmulatorHandle;
use crate::model::*;
use crate::records::HookDelivery;
use crate::state::{Data, HookEvent, environment_slug};

/// Sidekiq's `retry: 4` on `WebHookWorker`: only an exception that is not an HTTP error is
/// retried; of the delivery failures only a timeout gets there (B.7: "receivers must expect
/// duplicates only on timeouts"). Which timeout errors escape the rescue is unverified.
pub const TIMEOUT_RETRIES: u32 = 4;

/// What a hook delivery fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookFault {
    /// The delivery is lost (a Sidekiq job dropped, the receiver unreachable).
    Drop,
    /// The delivery waits this long before it is sent (a busy Sidekiq queue).
    Delay(Duration),
}

/// The fields of `User#hook_attrs`.
fn user_attrs(user: &User) -> Value {
    json!({
        "id": user.id,
        "name": user.name,
        "username": user.username,
        "avatar_url": format!("https://www.gravatar.com/avatar/{}?s=80&d=identicon",
            &crate::state::fake_sha(0, 7, &user.username)[..32]),
        "email": "[REDACTED]",
    })
}

/// `status_changed_at` as it arrives through Sidekiq: whole seconds, `+00:00`.
fn hook_time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S.000+00:00").to_string()
}

/// The B.8 lifecycle payload of `dep` with `status`. (`serde_json` sorts the keys; a JSON
/// receiver does not depend on GitLab's key order.)
fn lifecycle(d: &Data, dep: &Deployment, status: &str, at: &DateTime<Utc>, base: &str) -> Value {
    let project = d.projects.get(&dep.project_id);
    let env = d.environments.get(&dep.environment_id);
    let path = project.map(|p| p.path.clone()).unwrap_or_default();
    let web_url = format!("{base}/{path}");
    let host = base
        .split("://")
        .nth(1)
        .unwrap_or(base)
        .split('/')
        .next()
        .unwrap_or_default();
    let user = dep.user_id.and_then(|id| d.users.get(&id));
    let commit = project.and_then(|p| p.commits.get(&dep.sha));
    let name = path.rsplit('/').next().unwrap_or_default().to_string();
    let namespace = path.rsplit_once('/').map(|(ns, _)| ns).unwrap_or_default();
    let ssh = format!("git@{host}:{path}.git");
    let http = format!("{web_url}.git");
    let env_name = env.map(|e| e.name.clone()).unwrap_or_default();
    json!({
        "object_kind": "deployment",
        "status": status,
        "status_changed_at": hook_time(at),
        "deployment_id": dep.id,
        "deployable_id": Value::Null,
        "deployable_url": Value::Null,
        "environment": env_name,
        "environment_tier": env.map(|e| e.tier.clone()),
        "environment_slug": environment_slug(&env_name),
        "environment_external_url": env.and_then(|e| e.external_url.clone()),
        "project": {
            "id": dep.project_id, "name": name, "description": "", "web_url": web_url,
            "avatar_url": Value::Null, "git_ssh_url": ssh, "git_http_url": http,
            "namespace": namespace, "visibility_level": 0, "path_with_namespace": path,
            "default_branch": "main", "ci_config_path": Value::Null, "homepage": web_url,
            "url": ssh, "ssh_url": ssh, "http_url": http,
        },
        "short_sha": dep.sha.chars().take(8).collect::<String>(),
        "user": user.map(user_attrs),
        "user_url": user.map(|u| format!("{base}/{}", u.username)),
        "commit_url": commit.map(|_| format!("{web_url}/-/commit/{}", dep.sha)),
        "commit_title": commit.map(|c| c.message.lines().next().unwrap_or_default().to_string()),
        "ref": dep.ref_,
    })
}

/// Queue the Deployment Hook for a status change (B.8: `running` and the finished states;
/// `created` fires nothing).
pub(crate) fn status_changed(d: &mut Data, dep_id: u64, at: DateTime<Utc>, base: &str) {
    let Some(dep) = d.deployments.get(&dep_id) else {
        return;
    };
    let status = dep.status;
    if !(status == DeploymentStatus::Running || status.is_finished()) {
        return;
    }
    let payload = lifecycle(d, dep, status.as_str(), &at, base);
    d.outbox.push(HookEvent {
        project_id: dep.project_id,
        payload,
    });
}

/// Queue the approval lifecycle event of MR !239337 (B.9) for approval `index` of `dep_id`,
/// when the option is on (one event per recorded approval action).
pub(crate) fn approval_recorded(d: &mut Data, dep_id: u64, index: usize, base: &str) {
    if !d.approval_webhooks || d.edition != Edition::Ee {
        return;
    }
    let Some(dep) = d.deployments.get(&dep_id) else {
        return;
    };
    let Some(a) = dep.approvals.get(index) else {
        return;
    };
    let mut payload = lifecycle(d, dep, &a.status, &a.created_at, base);
    let rule = a.rule_id.and_then(|id| {
        let env = d.environments.get(&dep.environment_id)?;
        let project = d.projects.get(&dep.project_id)?;
        d.protected_environment(project, &env.name)?
            .approval_rules
            .iter()
            .find(|r| r.id == id)
            .map(|r| (r.clone(), d.rule_description(r)))
    });
    if let Value::Object(m) = &mut payload {
        m.insert(
            "approver".into(),
            d.users
                .get(&a.user_id)
                .map(user_attrs)
                .unwrap_or(Value::Null),
        );
        m.insert(
            "approval".into(),
            json!({
                // The emulator keeps no approval ids; the index stands in (unverified shape
                // of ids only).
                "id": index + 1,
                "status": a.status,
                "comment": a.comment.clone().unwrap_or_default(),
                "created_at": crate::clock::render(&a.created_at),
                "approval_rule": rule.map(|(r, description)| json!({
                    "id": r.id,
                    "user_id": Value::Null,
                    "group_id": Value::Null,
                    "access_level": Value::Null,
                    "access_level_description": description,
                    "required_approvals": r.required_approvals,
                    "group_inheritance_type": 0,
                })),
            }),
        );
    }
    d.outbox.push(HookEvent {
        project_id: dep.project_id,
        payload,
    });
}

/// One delivery to do: where, with which token, what.
struct Job {
    hook_id: u64,
    url: String,
    token: Option<String>,
    payload: Value,
}

/// Take the outbox and start one background delivery per (event, hook).
pub(crate) fn spawn_deliveries(h: &EmulatorHandle) {
    let jobs: Vec<Job> = {
        let mut g = h.lock();
        let events = std::mem::take(&mut g.data.outbox);
        events
            .into_iter()
            .flat_map(|e| {
                g.data
                    .hooks
                    .values()
                    .filter(|hook| hook.project_id == e.project_id && hook.deployment_events)
                    .map(|hook| Job {
                        hook_id: hook.id,
                        url: hook.url.clone(),
                        token: hook.token.clone(),
                        payload: e.payload.clone(),
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    for job in jobs {
        let h = h.clone();
        tokio::spawn(async move { deliver(h, job).await });
    }
}

async fn deliver(h: EmulatorHandle, job: Job) {
    let (fault, timeout, instance) = {
        let mut g = h.lock();
        let fault = g.take_hook_fault();
        (fault, g.webhook_timeout, g.external_url.clone())
    };
    // One per (hook, originating request), kept by a Sidekiq retry as the job's arguments are
    // (unverified for the recursion UUID; documented for `Idempotency-Key`).
    let event_uuid = random_uuid();
    let status = job.payload["status"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let deployment_id = job.payload["deployment_id"].as_u64().unwrap_or(0);
    let record = |attempt: u32, response_status: Option<u16>, outcome: String| HookDelivery {
        hook_id: job.hook_id,
        url: job.url.clone(),
        event_status: status.clone(),
        deployment_id,
        event_uuid: event_uuid.clone(),
        attempt,
        response_status,
        outcome,
        at: h.now(),
    };
    match fault {
        Some(HookFault::Drop) => {
            h.record_hook_delivery(record(1, None, "dropped".into()));
            return;
        }
        Some(HookFault::Delay(d)) => tokio::time::sleep(d).await,
        None => {}
    }
    let body = job.payload.to_string();
    let idempotency_key = random_uuid();
    for attempt in 1..=TIMEOUT_RETRIES + 1 {
        let mut headers = vec![
            ("Content-Type".to_string(), "application/json".to_string()),
            ("User-Agent".to_string(), "GitLab/19.3.0-ee".to_string()),
            ("X-Gitlab-Event".to_string(), "Deployment Hook".to_string()),
            ("X-Gitlab-Instance".to_string(), instance.clone()),
            ("X-Gitlab-Webhook-UUID".to_string(), random_uuid()),
            ("X-Gitlab-Event-UUID".to_string(), event_uuid.clone()),
            ("Idempotency-Key".to_string(), idempotency_key.clone()),
        ];
        if let Some(token) = &job.token {
            headers.push((
                "X-Gitlab-Token".to_string(),
                token.replace(['\n', '\r'], ""),
            ));
        }
        let sent = tokio::time::timeout(timeout, post(&job.url, &headers, &body)).await;
        match sent {
            Ok(Ok(code)) => {
                let outcome = if (200..400).contains(&code) {
                    "ok"
                } else {
                    "failed"
                };
                h.record_hook_delivery(record(attempt, Some(code), outcome.into()));
                return;
            }
            Ok(Err(err)) => {
                h.record_hook_delivery(record(attempt, None, format!("error: {err}")));
                return;
            }
            Err(_) => {
                h.record_hook_delivery(record(attempt, None, "timeout".into()));
                // Sidekiq's retry backoff, scaled down for tests (unverified timing).
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
        }
    }
}

fn random_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `POST url` over plain HTTP/1.1 (`Connection: close`); the answer's status code.
async fn post(url: &str, headers: &[(String, String)], body: &str) -> Result<u16, String> {
    let url = url::Url::parse(url).map_err(|e| e.to_string())?;
    if url.scheme() != "http" {
        return Err(format!("{} delivery is not emulated", url.scheme()));
    }
    let host = url.host_str().ok_or("no host")?.to_string();
    let port = url.port_or_known_default().unwrap_or(80);
    let mut path = url.path().to_string();
    if let Some(q) = url.query() {
        path = format!("{path}?{q}");
    }
    let mut stream = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port))
        .await
        .map_err(|e| e.to_string())?;
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    // The status line is all that matters; read until it is complete.
    while !answer.windows(2).any(|w| w == b"\r\n") {
        let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&answer);
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| "no HTTP answer".to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn hook_time_drops_sub_seconds() {
        let t = DateTime::parse_from_rfc3339("2026-08-02T07:59:54.731Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(hook_time(&t), "2026-08-02T07:59:54.000+00:00");
    }
}
