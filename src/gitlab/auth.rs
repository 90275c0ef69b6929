//! Credentials. The secret lives in [`Token`], whose `Debug` and `Display` redact it, and it is
//! only ever sent in a header marked sensitive: never in URLs, logs or errors.

use std::fmt;
use std::str::FromStr;

use http::{HeaderName, HeaderValue};

use super::error::Error;

/// Which kind of GitLab credential a token is; decides the header it travels in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// Personal, project or group access token → `PRIVATE-TOKEN`.
    Private,
    /// OAuth2 access token → `Authorization: Bearer`.
    OAuth,
    /// CI/CD job token (`CI_JOB_TOKEN`) → `JOB-TOKEN`.
    Job,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Private => "private",
            TokenKind::OAuth => "oauth",
            TokenKind::Job => "job",
        }
    }
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TokenKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "private" | "pat" | "personal" => Ok(TokenKind::Private),
            "oauth" | "bearer" => Ok(TokenKind::OAuth),
            "job" | "ci" => Ok(TokenKind::Job),
            other => Err(format!(
                "unknown token kind {other:?}; expected private, oauth or job"
            )),
        }
    }
}

/// A GitLab credential. Cheap to clone; prints as `Token(private, <redacted>)`.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    kind: TokenKind,
    secret: String,
}

impl Token {
    pub fn new(kind: TokenKind, secret: impl Into<String>) -> Token {
        Token {
            kind,
            secret: secret.into(),
        }
    }

    pub fn private(secret: impl Into<String>) -> Token {
        Token::new(TokenKind::Private, secret)
    }

    pub fn oauth(secret: impl Into<String>) -> Token {
        Token::new(TokenKind::OAuth, secret)
    }

    pub fn job(secret: impl Into<String>) -> Token {
        Token::new(TokenKind::Job, secret)
    }

    pub fn kind(&self) -> TokenKind {
        self.kind
    }

    /// The header carrying this token, its value marked sensitive (hyper and reqwest then keep
    /// it out of their debug output). Fails, without echoing the secret, if it is empty or
    /// holds characters a header cannot carry (a stray newline from a Secret file, say).
    pub(crate) fn header(&self) -> Result<(HeaderName, HeaderValue), Error> {
        let secret = self.secret.trim();
        if secret.is_empty() {
            return Err(Error::config(format!("the {} token is empty", self.kind)));
        }
        let (name, value) = match self.kind {
            TokenKind::Private => (HeaderName::from_static("private-token"), secret.to_owned()),
            TokenKind::OAuth => (http::header::AUTHORIZATION, format!("Bearer {secret}")),
            TokenKind::Job => (HeaderName::from_static("job-token"), secret.to_owned()),
        };
        let mut value = HeaderValue::from_str(&value).map_err(|_| {
            Error::config(format!(
                "the {} token contains characters that cannot be sent in an HTTP header",
                self.kind
            ))
        })?;
        value.set_sensitive(true);
        Ok((name, value))
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({}, <redacted>)", self.kind)
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<redacted {} token>", self.kind)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn redacted_everywhere() {
        let t = Token::private("glpat-SECRET123");
        assert!(!format!("{t:?}").contains("SECRET"));
        assert!(!format!("{t}").contains("SECRET"));
        let (_, v) = t.header().unwrap();
        assert!(v.is_sensitive());
        assert!(!format!("{v:?}").contains("SECRET"));
    }

    #[test]
    fn headers_per_kind() {
        let cases = [
            (Token::private("a"), "private-token", "a"),
            (Token::oauth("b"), "authorization", "Bearer b"),
            (Token::job("c\n"), "job-token", "c"),
        ];
        for (token, name, value) in cases {
            let (n, v) = token.header().unwrap();
            assert_eq!(n.as_str(), name);
            assert_eq!(v.to_str().unwrap(), value);
        }
        let err = Token::private("bad\u{7f}SECRET").header().unwrap_err();
        assert!(!err.to_string().contains("SECRET"));
        assert!(Token::private("  ").header().is_err());
    }
}
