//! The GitLab host allow-list. A namespace that can create a `GitlabConnection` must not be able
//! to point the operator (and the token it holds) at an arbitrary host, so every connection URL
//! is checked against the hosts the operator was started with: the scheme (plain `http` only
//! when the operator runs with `--allow-insecure-http`), the host, and the port (a bare host
//! allows only the scheme's default port, so `gitlab.example.com` never reaches a side service
//! on `gitlab.example.com:8081`).

use url::Url;

/// One allowed host: `gitlab.example.com` (its default port: 443, or 80 for plain http),
/// `gitlab.example.com:8443` (that port only), or `*.example.com` (any subdomain, not the
/// domain itself, on the default port).
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
        "connection URL {url:?} uses plain http, which would send the token unencrypted; use https://, or (for a test server on a trusted network) ask the cluster admin to start the operator with --allow-insecure-http (GITLAB_ALLOW_INSECURE_HTTP=true)"
    )]
    InsecureHttp { url: String },
    /// Names only the refused host (and port): the allow-list itself is the cluster admin's
    /// business, not every tenant's.
    #[error(
        "GitLab host {host:?} is not in the operator's allow-list; ask the cluster admin to add it with --allowed-host"
    )]
    NotAllowed { host: String },
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

/// Exactly this address and port (a server the operator's own process started, such as the
/// sandbox's GitLab emulator).
impl From<std::net::SocketAddr> for AllowedHost {
    fn from(addr: std::net::SocketAddr) -> Self {
        AllowedHost {
            host: addr.ip().to_string(),
            port: Some(addr.port()),
            wildcard: false,
        }
    }
}

impl AllowedHost {
    /// `port` is the URL's explicit port, `None` when it is the scheme's default (the `url`
    /// crate drops a default port, so `https://h:443` and `https://h` are the same URL).
    fn matches(&self, host: &str, port: Option<u16>, default_port: u16) -> bool {
        let host_ok = if self.wildcard {
            host.strip_suffix(&self.host)
                .is_some_and(|prefix| prefix.ends_with('.') && prefix.len() > 1)
        } else {
            host == self.host
        };
        let port_ok = match self.port {
            None => port.is_none(),
            Some(p) => port.unwrap_or(default_port) == p,
        };
        host_ok && port_ok
    }
}

/// The allow-list the operator was started with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostAllowList {
    hosts: Vec<AllowedHost>,
    /// `--allow-insecure-http`: plain `http` URLs are accepted (tests, the sandbox, a GitLab
    /// reached over a trusted network). Off, a token only ever travels over TLS.
    insecure_http: bool,
}

impl HostAllowList {
    pub fn new(hosts: Vec<AllowedHost>) -> Self {
        Self {
            hosts,
            insecure_http: false,
        }
    }

    /// Accept plain `http` URLs too (`--allow-insecure-http`).
    pub fn allow_insecure_http(mut self, allow: bool) -> Self {
        self.insecure_http = allow;
        self
    }

    /// Parse and check a connection URL: an absolute https URL (http only when allowed)
    /// without credentials whose host and port are allowed.
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
        if url.scheme() == "http" && !self.insecure_http {
            return Err(HostError::InsecureHttp {
                url: raw.to_string(),
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
        let default_port = if url.scheme() == "http" { 80 } else { 443 };
        if self
            .hosts
            .iter()
            .any(|h| h.matches(&host, url.port(), default_port))
        {
            Ok(url)
        } else {
            let host = match url.port() {
                Some(port) if host.contains(':') => format!("[{host}]:{port}"),
                Some(port) => format!("{host}:{port}"),
                None => host,
            };
            Err(HostError::NotAllowed { host })
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
        let insecure = allow.clone().allow_insecure_http(true);
        // (case, url, allowed over https only, allowed with --allow-insecure-http)
        let cases: &[(&str, &str, bool, bool)] = &[
            ("exact host", "https://gitlab.example.com", true, true),
            (
                "default port written out",
                "https://gitlab.example.com:443/",
                true,
                true,
            ),
            (
                "bare host: other port",
                "https://gitlab.example.com:8443/",
                false,
                false,
            ),
            (
                "bare host: a side service",
                "https://gitlab.example.com:8081/",
                false,
                false,
            ),
            (
                "bare host: http's port over https",
                "https://gitlab.example.com:80/",
                false,
                false,
            ),
            ("case-insensitive", "https://GitLab.Example.com", true, true),
            ("other host", "https://evil.example.com", false, false),
            (
                "suffix trick",
                "https://gitlab.example.com.evil.io",
                false,
                false,
            ),
            ("wildcard subdomain", "https://git.corp.example", true, true),
            ("wildcard deeper", "https://a.b.corp.example", true, true),
            (
                "wildcard, other port",
                "https://git.corp.example:8443",
                false,
                false,
            ),
            (
                "wildcard not the apex",
                "https://corp.example",
                false,
                false,
            ),
            (
                "wildcard not a lookalike",
                "https://xcorp.example",
                false,
                false,
            ),
            (
                "plain http, bare host",
                "http://gitlab.example.com/",
                false,
                true,
            ),
            (
                "plain http, bare host, other port",
                "http://gitlab.example.com:8081/",
                false,
                false,
            ),
            (
                "plain http, https's port",
                "http://gitlab.example.com:443/",
                false,
                false,
            ),
            (
                "port pinned over http",
                "http://127.0.0.1:8080",
                false,
                true,
            ),
            (
                "port pinned over https",
                "https://127.0.0.1:8080",
                true,
                true,
            ),
            (
                "port pinned, other port",
                "http://127.0.0.1:9090",
                false,
                false,
            ),
            (
                "port pinned, default port",
                "https://127.0.0.1",
                false,
                false,
            ),
        ];
        for (name, url, https_only, with_http) in cases {
            assert_eq!(allow.check(url).is_ok(), *https_only, "case {name}: {url}");
            assert_eq!(
                insecure.check(url).is_ok(),
                *with_http,
                "case {name} with --allow-insecure-http: {url}"
            );
        }
    }

    #[test]
    fn bad_urls_say_what_to_fix() {
        let allow = list(&["gitlab.example.com", "gitlab.internal:8443"]);
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
        let http = allow.check("http://gitlab.example.com").unwrap_err();
        assert!(matches!(http, HostError::InsecureHttp { .. }), "{http}");
        let text = http.to_string();
        assert!(
            text.contains("--allow-insecure-http") && text.contains("GITLAB_ALLOW_INSECURE_HTTP"),
            "says how to allow it: {text}"
        );
        // The refusal names the refused host and the flag, never the list itself.
        for (url, named) in [
            ("https://other.example.com", "\"other.example.com\""),
            (
                "https://gitlab.example.com:8081",
                "\"gitlab.example.com:8081\"",
            ),
        ] {
            let err = allow.check(url).unwrap_err().to_string();
            assert!(
                err.contains("--allowed-host") && err.contains(named),
                "{err}"
            );
            assert!(
                !err.contains("gitlab.internal"),
                "lists the allow-list: {err}"
            );
        }
        let empty = HostAllowList::default().check("https://gitlab.example.com");
        assert!(matches!(empty, Err(HostError::NotAllowed { .. })));
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
