//! Which connection sent a hook: the webhook Secret (`--webhook-secret`) holds one token per
//! connection, under the key `GitlabConnection.<namespace>.<name>` or
//! `ClusterGitlabConnection.<name>`; a project hook's secret token is that value. The Secret is
//! read with a plain `get` and remembered briefly, so a burst of hooks (or of forged ones)
//! costs the API server one read per [`MEMO_FOR`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use tokio::sync::Mutex;

use super::hints::HookSource;

/// How long a read of the webhook Secret is used (a rotated token works after this long).
pub const MEMO_FOR: Duration = Duration::from_secs(10);

/// Where the tokens are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretName {
    pub namespace: String,
    pub name: String,
}

/// The connection a Secret key names, or `None` for a key of another shape. Namespace names
/// hold no dots, so the first dot after `GitlabConnection.` ends the namespace.
pub fn source_of_key(key: &str) -> Option<HookSource> {
    if let Some(name) = key.strip_prefix("ClusterGitlabConnection.") {
        return (!name.is_empty()).then(|| HookSource::Cluster {
            name: name.to_owned(),
        });
    }
    let rest = key.strip_prefix("GitlabConnection.")?;
    let (namespace, name) = rest.split_once('.')?;
    (!namespace.is_empty() && !name.is_empty()).then(|| HookSource::Namespaced {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    })
}

/// Equal contents, in time that does not depend on where they differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Every source whose token is `presented`. Each entry is compared (no early exit), so the
/// time taken says nothing about which token came close.
pub fn matching(tokens: &[(HookSource, Vec<u8>)], presented: &[u8]) -> Vec<HookSource> {
    let mut found = Vec::new();
    for (source, token) in tokens {
        if constant_time_eq(token, presented) && !token.is_empty() {
            found.push(source.clone());
        }
    }
    found
}

/// Each connection's token.
pub type Tokens = Arc<Vec<(HookSource, Vec<u8>)>>;

/// The tokens of one Secret, read on demand and memoised for [`MEMO_FOR`].
pub struct HookTokens {
    api: Api<Secret>,
    name: String,
    memo: Mutex<Option<(Instant, Tokens)>>,
}

impl HookTokens {
    pub fn new(client: kube::Client, secret: &SecretName) -> Self {
        Self {
            api: Api::namespaced(client, &secret.namespace),
            name: secret.name.clone(),
            memo: Mutex::new(None),
        }
    }

    /// The current tokens (empty when the Secret is missing or unreadable: every hook is
    /// then refused, and the log says why).
    pub async fn current(&self) -> Tokens {
        let mut memo = self.memo.lock().await;
        if let Some((at, tokens)) = memo.as_ref()
            && at.elapsed() < MEMO_FOR
        {
            return Arc::clone(tokens);
        }
        let tokens = match self.api.get_opt(&self.name).await {
            Ok(Some(secret)) => Arc::new(tokens_of(&secret)),
            Ok(None) => {
                tracing::warn!(secret = %self.name, "the webhook Secret does not exist; every hook is refused");
                Arc::new(Vec::new())
            }
            Err(err) => {
                tracing::warn!(secret = %self.name, error = %err, "cannot read the webhook Secret; every hook is refused");
                Arc::new(Vec::new())
            }
        };
        *memo = Some((Instant::now(), Arc::clone(&tokens)));
        tokens
    }
}

fn tokens_of(secret: &Secret) -> Vec<(HookSource, Vec<u8>)> {
    let mut tokens = Vec::new();
    for (key, value) in secret.data.iter().flatten() {
        match source_of_key(key) {
            Some(source) => tokens.push((source, value.0.clone())),
            None => tracing::warn!(
                key = %key,
                "webhook Secret key names no connection; write GitlabConnection.<namespace>.<name> or ClusterGitlabConnection.<name>"
            ),
        }
    }
    tokens
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_connections() {
        let cases = [
            (
                "GitlabConnection.apps.default",
                Some(HookSource::Namespaced {
                    namespace: "apps".into(),
                    name: "default".into(),
                }),
            ),
            (
                "GitlabConnection.apps.gitlab.example.com",
                Some(HookSource::Namespaced {
                    namespace: "apps".into(),
                    name: "gitlab.example.com".into(),
                }),
            ),
            (
                "ClusterGitlabConnection.main",
                Some(HookSource::Cluster {
                    name: "main".into(),
                }),
            ),
            ("GitlabConnection.apps", None),
            ("GitlabConnection..x", None),
            ("ClusterGitlabConnection.", None),
            ("token", None),
        ];
        for (key, want) in cases {
            assert_eq!(source_of_key(key), want, "{key}");
        }
    }

    #[test]
    fn tokens_match_exactly() {
        let a = HookSource::Cluster { name: "a".into() };
        let b = HookSource::Cluster { name: "b".into() };
        let tokens = vec![
            (a.clone(), b"s3cret".to_vec()),
            (b.clone(), b"other".to_vec()),
            (HookSource::Cluster { name: "c".into() }, Vec::new()),
        ];
        assert_eq!(matching(&tokens, b"s3cret"), vec![a]);
        assert_eq!(matching(&tokens, b"other"), vec![b]);
        assert!(matching(&tokens, b"s3cre").is_empty());
        assert!(matching(&tokens, b"s3cret ").is_empty());
        assert!(
            matching(&tokens, b"").is_empty(),
            "an empty token never matches"
        );
    }
}
