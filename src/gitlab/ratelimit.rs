//! Rate limiting of one connection, both sides of it:
//! - our own budget: an optional `governor` token bucket (requests/second + burst);
//! - GitLab's: a 429 sets ONE pause deadline shared by every clone of the client, which every
//!   caller waits out before its next request, so concurrent reconciles do not keep hitting a
//!   throttled GitLab (spec §8).

use std::num::NonZeroU32;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use http::HeaderMap;
use parking_lot::Mutex;
use tokio::time::Instant;

use super::error::Late;

/// Client-side request budget of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

/// Pause used when a 429 carries no usable header (a proxy's, say).
pub const DEFAULT_PAUSE: Duration = Duration::from_secs(5);
/// Longest pause we accept from a header: GitLab's longest throttle period is one hour.
pub const MAX_PAUSE: Duration = Duration::from_secs(3600);

/// How long GitLab asks us to wait, from a 429's headers: `Retry-After` (seconds or HTTP date),
/// else `RateLimit-Reset` (Unix seconds), else `RateLimit-ResetTime` (HTTP date), else
/// [`DEFAULT_PAUSE`]. Clamped to [`MAX_PAUSE`].
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Duration {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let until_date = |s: &str| {
        let at = chrono::DateTime::parse_from_rfc2822(s).ok()?;
        let at = UNIX_EPOCH + Duration::from_secs(u64::try_from(at.timestamp()).ok()?);
        Some(at.duration_since(now).unwrap_or(Duration::ZERO))
    };
    let from_retry_after = header("retry-after").and_then(|v| match v.parse::<u64>() {
        Ok(secs) => Some(Duration::from_secs(secs)),
        Err(_) => until_date(v),
    });
    let from_reset = || {
        header("ratelimit-reset")
            .and_then(|v| v.parse::<u64>().ok())
            .map(|epoch| {
                (UNIX_EPOCH + Duration::from_secs(epoch))
                    .duration_since(now)
                    .unwrap_or(Duration::ZERO)
            })
    };
    let from_reset_time = || header("ratelimit-resettime").and_then(until_date);
    from_retry_after
        .or_else(from_reset)
        .or_else(from_reset_time)
        .unwrap_or(DEFAULT_PAUSE)
        .min(MAX_PAUSE)
}

/// The shared gate every request of one connection passes.
#[derive(Debug)]
pub(crate) struct Throttle {
    limiter: Option<DefaultDirectRateLimiter>,
    paused_until: Mutex<Option<Instant>>,
}

impl Throttle {
    pub(crate) fn new(limit: Option<RateLimit>) -> Throttle {
        let limiter = limit
            .map(|l| RateLimiter::direct(Quota::per_second(l.per_second).allow_burst(l.burst)));
        Throttle {
            limiter,
            paused_until: Mutex::new(None),
        }
    }

    /// The pause deadline set by the last 429, if still in the future.
    pub(crate) fn paused_until(&self) -> Option<Instant> {
        let guard = self.paused_until.lock();
        guard.filter(|t| *t > Instant::now())
    }

    /// Extend the pause to `now + pause` (never shorten it: a later 429 with a shorter
    /// Retry-After must not release callers early). Returns the resulting deadline.
    pub(crate) fn pause(&self, pause: Duration) -> Instant {
        let wanted = Instant::now() + pause;
        let mut guard = self.paused_until.lock();
        let deadline = match *guard {
            Some(t) if t > wanted => t,
            _ => wanted,
        };
        *guard = Some(deadline);
        deadline
    }

    /// Wait out any pause (re-checking, since another caller may extend it meanwhile), then
    /// take a token from the bucket. With `send_by`, no wait that would end after it is
    /// started: the answer is then why, and no token was taken.
    pub(crate) async fn ready(&self, send_by: Option<Instant>) -> Result<(), Late> {
        let fits = |at: Instant| send_by.is_none_or(|by| at <= by);
        while let Some(until) = self.paused_until() {
            if !fits(until) {
                return Err(Late::Paused(
                    until.saturating_duration_since(Instant::now()),
                ));
            }
            tokio::time::sleep_until(until).await;
        }
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        // governor's `until_ready` is this loop without the deadline check.
        loop {
            let Err(not_until) = limiter.check() else {
                return Ok(());
            };
            let wait = not_until.wait_time_from(limiter.clock().now());
            if !fits(Instant::now() + wait) {
                return Err(Late::Budget(wait));
            }
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use http::HeaderValue;

    type Headers = &'static [(&'static str, &'static str)];

    #[test]
    fn retry_after_table() {
        // 2015-10-21T07:28:00Z
        let now = UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        let s = Duration::from_secs;
        let cases: &[(&str, Headers, Duration)] = &[
            ("seconds", &[("retry-after", "17")], s(17)),
            (
                "seconds wins",
                &[("retry-after", "3"), ("ratelimit-reset", "1445412540")],
                s(3),
            ),
            (
                "http date",
                &[("retry-after", "Wed, 21 Oct 2015 07:28:30 GMT")],
                s(30),
            ),
            (
                "date in past",
                &[("retry-after", "Wed, 21 Oct 2015 07:00:00 GMT")],
                s(0),
            ),
            ("reset epoch", &[("ratelimit-reset", "1445412540")], s(60)),
            (
                "reset time",
                &[("ratelimit-resettime", "Wed, 21 Oct 2015 07:28:10 GMT")],
                s(10),
            ),
            ("garbage", &[("retry-after", "soon")], DEFAULT_PAUSE),
            ("none", &[], DEFAULT_PAUSE),
            ("huge", &[("retry-after", "999999")], MAX_PAUSE),
        ];
        for (name, headers, want) in cases {
            let mut map = HeaderMap::new();
            for (k, v) in *headers {
                map.insert(*k, HeaderValue::from_static(v));
            }
            assert_eq!(retry_after(&map, now), *want, "case {name}");
        }
    }

    /// With a send deadline, a wait that would end after it is not begun: the pause or the
    /// bucket's wait is the answer at once, and no token is taken; a wait that ends in time is.
    #[tokio::test]
    async fn no_wait_past_the_send_deadline_is_begun() {
        let ms = Duration::from_millis;
        let t = Throttle::new(None);
        t.pause(ms(400));
        let start = Instant::now();
        let refused = t.ready(Some(start + ms(100))).await;
        assert!(
            matches!(refused, Err(Late::Paused(left)) if left > ms(300)),
            "{refused:?}"
        );
        assert!(start.elapsed() < ms(100), "no wait was begun");
        t.ready(Some(start + ms(600))).await.unwrap();
        assert!(start.elapsed() >= ms(350));

        let one = NonZeroU32::new(1).unwrap();
        let t = Throttle::new(Some(RateLimit {
            per_second: NonZeroU32::new(5).unwrap(),
            burst: one,
        }));
        t.ready(Some(Instant::now())).await.unwrap();
        let start = Instant::now();
        let refused = t.ready(Some(start + ms(50))).await;
        assert!(
            matches!(refused, Err(Late::Budget(wait)) if wait > ms(100)),
            "{refused:?}"
        );
        assert!(start.elapsed() < ms(50), "no wait was begun");
        // The refusal took no token: the next one is free at +200 ms, as it would have been
        // anyway (one taken by the refusal would make it +400 ms, past this deadline).
        t.ready(Some(start + ms(350))).await.unwrap();
    }

    #[tokio::test]
    async fn pause_only_extends_and_gates_everyone() {
        let t = Throttle::new(None);
        let first = t.pause(Duration::from_millis(300));
        let second = t.pause(Duration::from_millis(50));
        assert_eq!(
            first, second,
            "a shorter pause must not shorten the deadline"
        );
        let start = Instant::now();
        t.ready(None).await.unwrap();
        assert!(Instant::now() - start >= Duration::from_millis(250));
        assert!(t.paused_until().is_none());
    }
}
