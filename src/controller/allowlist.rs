//! The GitLab host allow-list. A namespace that can create a `GitlabConnection` must not be able
//! to point the operator (and the token it holds) at an arbitrary host, so every connection URL
//! is checked against the hosts the operator was started with.

use url::Url;

/// One allowed host: `gitlab.example.com`, `gitlab.example.com:8443`, or `*.example.com`
/// (any subdomain, not the domain itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowedHost {
    host: String,
    port: Option<u16>,
    wildcard: bool,
}

/// Why a URL was refused; the message says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error(
        "connection URL {url:?} is not a valid absolute URL ({reason}); use https://gitlab.example.com"
    )]
    InvalidUrl { url: String, reason: String },
    #[error(
        "connection URL scheme {scheme:?} is not supported; use https:// (or http:// for a local test server)"
    )]
    Scheme { scheme: String },
    #[error(
        "connection URL must not carry credentials; put the token in the Secret named by tokenSecretRef"
    )]
    Credentials,
    #[error(
        "GitLab host {host:?} is not in the operator's allow-list ({allowed}); ask the cluster admin to add it with --allowed-host"
    )]
    NotAllowed { host: String, allowed: String },
}

impl std::str::FromStr for AllowedHost {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        if s.is_empty() {
            return Err("empty host".into());
        }
        let (wildcard, rest) = match s.strip_prefix("*.") {
            Some(rest) => (true, rest.to_string()),
            None => (false, s.clone()),
        };
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') || h.starts_with('[') => {
                let port = p
                    .parse::<u16>()
                    .map_err(|_| format!("{s:?}: port {p:?} is not a number"))?;
                (h.to_string(), Some(port))
            }
            _ => (rest, None),
        };
        if host.is_empty() || host.contains('/') || host.contains('*') {
            return Err(format!(
                "{s:?} is not a host name (write gitlab.example.com, host:port or *.example.com)"
            ));
        }
        Ok(AllowedHost {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
            wildcard,
        })
    }
}

impl std::fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.wildcard {
            f.write_str("*.")?;
        }
        f.write_str(&self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

impl AllowedHost {
    fn matches(&self, host: &str, port: u16) -> bool {
        let host_ok = if self.wildcard {
            host.strip_suffix(&self.host)
                .is_some_and(|prefix| prefix.ends_with('.') && prefix.len() > 1)
        } else {
            host == self.host
        };
        host_ok && self.port.is_none_or(|p| p == port)
    }
}

/// The allow-list the operator was started with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostAllowList {
    hosts: Vec<AllowedHost>,
}

impl HostAllowList {
    pub fn new(hosts: Vec<AllowedHost>) -> Self {
        Self { hosts }
    }

    /// Parse and check a connection URL: an absolute http(s) URL without credentials whose host
    /// (and port, where the entry names one) is allowed.
    pub fn check(&self, raw: &str) -> Result<Url, HostError> {
        let url = Url::parse(raw).map_err(|e| HostError::InvalidUrl {
            url: raw.to_string(),
            reason: e.to_string(),
        })?;
        if url.scheme() != "https" && url.scheme() != "http" {
            return Err(HostError::Scheme {
                scheme: url.scheme().to_string(),
            });
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(HostError::Credentials);
        }
        let host = url
            .host_str()
            .map(|h| {
                h.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_ascii_lowercase()
            })
            .ok_or_else(|| HostError::InvalidUrl {
                url: raw.to_string(),
                reason: "no host".into(),
            })?;
        let port = url.port_or_known_default().unwrap_or(443);
        if self.hosts.iter().any(|h| h.matches(&host, port)) {
            Ok(url)
        } else {
            let allowed = if self.hosts.is_empty() {
                "the list is empty".to_string()
            } else {
                self.hosts
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            Err(HostError::NotAllowed { host, allowed })
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> HostAllowList {
        HostAllowList::new(entries.iter().map(|e| e.parse().unwrap()).collect())
    }

    #[test]
    fn urls_are_checked_against_the_list() {
        let allow = list(&["gitlab.example.com", "*.corp.example", "127.0.0.1:8080"]);
        let cases: &[(&str, &str, bool)] = &[
            ("exact host", "https://gitlab.example.com", true),
            (
                "exact host, any port",
                "https://gitlab.example.com:8443/",
                true,
            ),
            ("case-insensitive", "https://GitLab.Example.com", true),
            ("other host", "https://evil.example.com", false),
            ("suffix trick", "https://gitlab.example.com.evil.io", false),
            ("wildcard subdomain", "https://git.corp.example", true),
            ("wildcard deeper", "https://a.b.corp.example", true),
            ("wildcard not the apex", "https://corp.example", false),
            ("wildcard not a lookalike", "https://xcorp.example", false),
            ("port pinned", "http://127.0.0.1:8080", true),
            ("port pinned, other port", "http://127.0.0.1:9090", false),
        ];
        for (name, url, ok) in cases {
            assert_eq!(allow.check(url).is_ok(), *ok, "case {name}: {url}");
        }
    }

    #[test]
    fn bad_urls_say_what_to_fix() {
        let allow = list(&["gitlab.example.com"]);
        assert!(matches!(
            allow.check("gitlab.example.com"),
            Err(HostError::InvalidUrl { .. })
        ));
        assert!(matches!(
            allow.check("ftp://gitlab.example.com"),
            Err(HostError::Scheme { .. })
        ));
        assert_eq!(
            allow.check("https://user:secret@gitlab.example.com"),
            Err(HostError::Credentials)
        );
        let err = allow.check("https://other.example.com").unwrap_err();
        assert!(err.to_string().contains("--allowed-host"), "{err}");
        let empty = HostAllowList::default().check("https://gitlab.example.com");
        assert!(empty.unwrap_err().to_string().contains("the list is empty"));
    }

    #[test]
    fn entries_parse_and_print_back() {
        for (input, printed) in [
            ("gitlab.example.com", "gitlab.example.com"),
            ("GitLab.example.com:8443", "gitlab.example.com:8443"),
            ("*.example.com", "*.example.com"),
            ("127.0.0.1:8080", "127.0.0.1:8080"),
        ] {
            let host: AllowedHost = input.parse().unwrap();
            assert_eq!(host.to_string(), printed);
        }
        for bad in ["", "https://x/y", "host:port", "*"] {
            assert!(
                bad.parse::<AllowedHost>().is_err(),
                "{bad:?} should not parse"
            );
        }
    }
}
