//! Shared fixture for the conformance tests: an emulator with one seeded project and members
//! of every role, and a tiny HTTP helper over reqwest.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use gitlab_emulator::{EmulatorHandle, GitlabEmulator, Role, SeededProject};
use serde_json::Value;

pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    }
    pub fn content_type(&self) -> String {
        self.header("content-type").unwrap_or_default()
    }
    #[track_caller]
    pub fn assert(&self, status: u16, body: &str) {
        assert_eq!((self.status, self.text.as_str()), (status, body));
        if !body.is_empty() {
            assert!(
                self.content_type().starts_with("application/json"),
                "{}",
                self.content_type()
            );
        }
    }
}

pub struct Fx {
    pub gl: GitlabEmulator,
    pub h: EmulatorHandle,
    pub client: reqwest::Client,
    pub p: SeededProject,
    /// Maintainer token.
    pub tok: String,
    pub dev: String,
    pub reporter: String,
    pub guest: String,
    pub outsider: String,
}

pub fn fx() -> Fx {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let gl = GitlabEmulator::start().unwrap();
    let h = gl.handle();
    let p = h.seed_project("team/app", "main", 5);
    let member = |name: &str, role: Option<Role>| {
        let (id, tok) = h.add_user_with_token(name);
        if let Some(role) = role {
            h.add_member(p.id, id, role);
        }
        tok
    };
    let dev = member("dev", Some(Role::Developer));
    let reporter = member("reporter", Some(Role::Reporter));
    let guest = member("guest", Some(Role::Guest));
    let outsider = member("outsider", None);
    Fx {
        tok: p.maintainer_token.clone(),
        gl,
        h,
        client: reqwest::Client::new(),
        p,
        dev,
        reporter,
        guest,
        outsider,
    }
}

impl Fx {
    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v4{}", self.gl.base_url(), path)
    }

    pub fn deployments(&self) -> String {
        format!("/projects/{}/deployments", self.p.id)
    }

    /// A request with an optional PRIVATE-TOKEN and an optional form body.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        form: Option<&str>,
    ) -> Resp {
        let mut rb = self.client.request(method.parse().unwrap(), self.url(path));
        if let Some(t) = token {
            rb = rb.header("PRIVATE-TOKEN", t);
        }
        if let Some(f) = form {
            rb = rb
                .header("content-type", "application/x-www-form-urlencoded")
                .body(f.to_string());
        }
        send(rb).await
    }

    pub async fn json(&self, method: &str, path: &str, token: &str, body: Value) -> Resp {
        let rb = self
            .client
            .request(method.parse().unwrap(), self.url(path))
            .header("PRIVATE-TOKEN", token)
            .json(&body);
        send(rb).await
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.call("GET", path, Some(&self.tok.clone()), None).await
    }

    /// Creates a deployment as the maintainer; returns its id.
    pub async fn create(&self, env: &str, sha: &str, status: &str) -> u64 {
        let r = self
            .call(
                "POST",
                &self.deployments(),
                Some(&self.tok.clone()),
                Some(&format!(
                    "environment={env}&sha={sha}&ref=main&tag=false&status={status}"
                )),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        r.json()["id"].as_u64().unwrap()
    }

    pub async fn put_status(&self, id: u64, status: &str) -> Resp {
        let path = format!("{}/{id}", self.deployments());
        self.call(
            "PUT",
            &path,
            Some(&self.tok.clone()),
            Some(&format!("status={status}")),
        )
        .await
    }
}

pub async fn send(rb: reqwest::RequestBuilder) -> Resp {
    let r = rb.send().await.unwrap();
    Resp {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        text: r.text().await.unwrap(),
    }
}
