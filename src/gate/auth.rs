//! Who may ask the gate: the bearer token in a file mounted from a Secret (`--gate-token-file`).
//! The file is stat'ed on each request and re-read when its modification time or size changes,
//! so a rotated Secret (the kubelet swaps the volume's `..data` link) works without a restart;
//! a file that disappears or empties refuses every request (fail closed). The token never
//! reaches a log line, a metric or a response.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use tokio::sync::Mutex;

use crate::webhook::tokens::constant_time_eq;

/// How requests are authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GateAuth {
    /// The token is the file's content (surrounding whitespace, like `echo`'s newline, trimmed).
    TokenFile(PathBuf),
    /// Everyone may ask (`--gate-insecure-no-auth`): tests and sandboxes only.
    Insecure,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read the gate token file {path}: {source}; mount the token Secret there")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the gate token file {0} is empty; put a long random token in the Secret")]
    Empty(PathBuf),
}

impl TokenError {
    /// Stable category.
    pub fn category(&self) -> &'static str {
        match self {
            TokenError::Read { .. } => "token_unreadable",
            TokenError::Empty(_) => "token_empty",
        }
    }
}

/// File identity that changes when the kubelet (or anyone) replaces the content.
type Stamp = (Option<SystemTime>, u64);

/// The token, cached by the file's stamp.
pub struct TokenFile {
    path: PathBuf,
    cached: Mutex<Option<(Stamp, Vec<u8>)>>,
}

impl TokenFile {
    /// Read the file now: a missing or empty token stops the start instead of refusing every
    /// request later without anyone noticing.
    pub async fn load(path: &Path) -> Result<Self, TokenError> {
        let file = Self {
            path: path.to_owned(),
            cached: Mutex::new(None),
        };
        file.current().await?;
        Ok(file)
    }

    async fn current(&self) -> Result<Vec<u8>, TokenError> {
        let read_err = |source| TokenError::Read {
            path: self.path.clone(),
            source,
        };
        let meta = tokio::fs::metadata(&self.path).await.map_err(read_err)?;
        let stamp = (meta.modified().ok(), meta.len());
        let mut cached = self.cached.lock().await;
        if let Some((seen, token)) = cached.as_ref()
            && *seen == stamp
        {
            return Ok(token.clone());
        }
        let raw = tokio::fs::read(&self.path).await.map_err(read_err)?;
        let token = raw.trim_ascii().to_vec();
        if token.is_empty() {
            *cached = None;
            return Err(TokenError::Empty(self.path.clone()));
        }
        if cached.is_some() {
            tracing::info!(path = %self.path.display(), "gate token file changed; using the new token");
        }
        *cached = Some((stamp, token.clone()));
        Ok(token)
    }

    /// Whether `presented` is the current token (compared in constant time).
    pub async fn accepts(&self, presented: &[u8]) -> bool {
        match self.current().await {
            Ok(token) => !presented.is_empty() && constant_time_eq(&token, presented),
            Err(err) => {
                tracing::warn!(category = err.category(), error = %err, "gate request refused");
                false
            }
        }
    }
}

/// The token of an `Authorization: Bearer …` header value.
pub fn bearer(header: Option<&[u8]>) -> Option<&[u8]> {
    let value = header?;
    let (scheme, token) = value.split_at_checked(7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| token.trim_ascii())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens() {
        assert_eq!(bearer(Some(b"Bearer abc")), Some(&b"abc"[..]));
        assert_eq!(bearer(Some(b"bearer  abc ")), Some(&b"abc"[..]));
        assert_eq!(bearer(Some(b"Basic abc")), None);
        assert_eq!(bearer(Some(b"Bearer")), None);
        assert_eq!(bearer(None), None);
    }

    #[tokio::test]
    async fn the_file_is_re_read_when_it_changes() {
        let dir = std::env::temp_dir().join(format!("gate-token-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        assert!(matches!(
            TokenFile::load(&path).await,
            Err(TokenError::Read { .. })
        ));
        std::fs::write(&path, "\n").unwrap();
        assert!(matches!(
            TokenFile::load(&path).await,
            Err(TokenError::Empty(_))
        ));
        std::fs::write(&path, "first-token\n").unwrap();
        let file = TokenFile::load(&path).await.unwrap();
        assert!(file.accepts(b"first-token").await);
        assert!(!file.accepts(b"first-toke").await);
        assert!(!file.accepts(b"").await);
        // Rotation: a different size changes the stamp even within one mtime tick.
        std::fs::write(&path, "the-second-token").unwrap();
        assert!(file.accepts(b"the-second-token").await);
        assert!(!file.accepts(b"first-token").await);
        std::fs::remove_file(&path).unwrap();
        assert!(!file.accepts(b"the-second-token").await, "fails closed");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
