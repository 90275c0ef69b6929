//! Fault injection and the Rack::Attack-style rate limiter.

use crate::records::Endpoint;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// What a fault does to a matching request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// 500 answers `{"message":"500 Internal Server Error"}`; 502/503/504 answer an HTML page
    /// as a load balancer in front of GitLab would; any other code a `{"message":"<code>"}`.
    Status(u16),
    /// 429 `Retry later\n` with `Retry-After` and the `RateLimit-*` headers.
    RateLimited { retry_after_secs: u64 },
    /// Hang this long, then handle the request normally.
    Delay(Duration),
    /// Close the connection without a response.
    Drop,
    /// 200 with a body that is not valid JSON.
    MalformedJson,
}

/// When the fault fires relative to the real handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FaultPhase {
    /// Instead of handling the request (nothing is written).
    #[default]
    Before,
    /// After handling it (the write happened, the client never sees the answer): for
    /// "crash between POST and recording the id" tests. Ignored for `Delay`.
    After,
}

/// A fault rule. `times: None` is sticky; `Some(n)` fires on the next `n` matching requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub endpoint: Option<Endpoint>,
    /// Upper-case HTTP method, e.g. `"POST"`.
    pub method: Option<String>,
    pub kind: FaultKind,
    pub times: Option<u32>,
    pub phase: FaultPhase,
}

impl Fault {
    /// A one-shot fault on every route; narrow it with [`Fault::on`] / [`Fault::method`].
    pub fn new(kind: FaultKind) -> Fault {
        Fault {
            endpoint: None,
            method: None,
            kind,
            times: Some(1),
            phase: FaultPhase::Before,
        }
    }
    pub fn status(code: u16) -> Fault {
        Fault::new(FaultKind::Status(code))
    }
    pub fn rate_limited(retry_after_secs: u64) -> Fault {
        Fault::new(FaultKind::RateLimited { retry_after_secs })
    }
    pub fn delay(d: Duration) -> Fault {
        Fault::new(FaultKind::Delay(d))
    }
    pub fn drop_connection() -> Fault {
        Fault::new(FaultKind::Drop)
    }
    pub fn malformed_json() -> Fault {
        Fault::new(FaultKind::MalformedJson)
    }
    pub fn on(mut self, endpoint: Endpoint) -> Fault {
        self.endpoint = Some(endpoint);
        self
    }
    pub fn method(mut self, method: &str) -> Fault {
        self.method = Some(method.to_ascii_uppercase());
        self
    }
    pub fn times(mut self, n: u32) -> Fault {
        self.times = Some(n);
        self
    }
    pub fn sticky(mut self) -> Fault {
        self.times = None;
        self
    }
    pub fn after_processing(mut self) -> Fault {
        self.phase = FaultPhase::After;
        self
    }

    pub(crate) fn matches(&self, endpoint: Endpoint, method: &str) -> bool {
        self.endpoint.is_none_or(|e| e == endpoint)
            && self.method.as_deref().is_none_or(|m| m == method)
            && self.times != Some(0)
    }
}

/// Per-user (authenticated) / per-IP (anonymous) fixed-window throttle, windows aligned to the
/// Unix epoch as Rack::Attack's are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    pub limit: u64,
    pub period_secs: u64,
    /// `RateLimit-Name`, e.g. `throttle_authenticated_api`.
    pub name: String,
}

impl RateLimit {
    /// GitLab's self-managed default when the authenticated API throttle is enabled.
    pub fn gitlab_default() -> RateLimit {
        RateLimit {
            limit: 7200,
            period_secs: 3600,
            name: "throttle_authenticated_api".to_string(),
        }
    }
    pub fn new(limit: u64, period_secs: u64) -> RateLimit {
        RateLimit {
            limit,
            period_secs: period_secs.max(1),
            name: "throttle_authenticated_api".to_string(),
        }
    }
}

/// The §8 headers for a throttled answer, computed purely from the window and the count.
pub fn rate_limit_headers(
    limit: &RateLimit,
    observed: u64,
    now: DateTime<Utc>,
) -> Vec<(&'static str, String)> {
    let period = limit.period_secs.max(1);
    let now_s = now.timestamp().max(0) as u64;
    let retry_after = period - (now_s % period);
    let reset = now_s + retry_after;
    let per_minute = (limit.limit * 60).div_ceil(period);
    let reset_time = DateTime::<Utc>::from_timestamp(reset as i64, 0)
        .map(|t| t.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
        .unwrap_or_default();
    vec![
        ("RateLimit-Name", limit.name.clone()),
        ("RateLimit-Limit", per_minute.to_string()),
        ("RateLimit-Observed", observed.to_string()),
        (
            "RateLimit-Remaining",
            limit.limit.saturating_sub(observed).to_string(),
        ),
        ("RateLimit-Reset", reset.to_string()),
        ("RateLimit-ResetTime", reset_time),
        ("Retry-After", retry_after.to_string()),
    ]
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn headers_follow_epoch_aligned_windows() {
        let l = RateLimit::gitlab_default();
        let now = DateTime::<Utc>::from_timestamp(3600 * 10 + 100, 0).unwrap();
        let h = rate_limit_headers(&l, 7201, now);
        let get = |k: &str| h.iter().find(|(n, _)| *n == k).unwrap().1.clone();
        assert_eq!(get("RateLimit-Limit"), "120");
        assert_eq!(get("RateLimit-Remaining"), "0");
        assert_eq!(get("Retry-After"), "3500");
        assert_eq!(get("RateLimit-Reset"), (3600 * 11).to_string());
        assert_eq!(get("RateLimit-ResetTime"), "Thu, 01 Jan 1970 11:00:00 GMT");
    }
}
