//! Retry policy for idempotent calls: jittered exponential backoff, bounded in attempts and in
//! total time. Which errors are retried is decided by the error (`Error::is_retryable`) and the
//! route (`Endpoint::idempotent`), never by string checks.

use std::time::Duration;

/// How hard the client retries an idempotent call (GET, PUT, DELETE) after a 5xx, a timeout or
/// a transport error, and how long it will wait out a 429 pause before giving the error back.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Total attempts including the first; 1 disables retries.
    pub max_attempts: u32,
    /// Backoff before the second attempt.
    pub initial_backoff: Duration,
    /// Cap of one backoff.
    pub max_backoff: Duration,
    /// No retry starts after this much time since the first attempt.
    pub max_elapsed: Duration,
    /// Longest 429 pause a call waits out: an idempotent call retries after a pause up to
    /// this long, and any call made while a longer pause is active fails fast with
    /// `RateLimited` without sending (the operator requeues instead of holding a reconcile).
    pub max_rate_limit_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            max_elapsed: Duration::from_secs(30),
            max_rate_limit_wait: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// No retries at all (the CLI's `--no-retry`, tests).
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            max_rate_limit_wait: Duration::ZERO,
            ..RetryPolicy::default()
        }
    }

    /// Backoff after failed attempt number `attempt` (1-based): `initial * 2^(attempt-1)`,
    /// capped at `max_backoff`, then "equal jitter": a uniform point in `[d/2, d]` chosen by
    /// `jitter` ∈ [0, 1]. Equal jitter keeps a floor so a burst of 5xx is not hammered, while
    /// spreading concurrent callers apart.
    pub fn backoff(&self, attempt: u32, jitter: f64) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        let base = self
            .initial_backoff
            .saturating_mul(1u32 << exp)
            .min(self.max_backoff);
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            1.0
        };
        let half = base / 2;
        half + (base - half).mul_f64(jitter)
    }

    /// Whether another attempt may start after `attempt` attempts, `elapsed` since the first and
    /// a planned `delay` before the next one.
    pub fn may_retry(&self, attempt: u32, elapsed: Duration, delay: Duration) -> bool {
        attempt < self.max_attempts && elapsed.saturating_add(delay) <= self.max_elapsed
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn backoff_table() {
        let p = RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            ..RetryPolicy::default()
        };
        // (attempt, jitter, expected ms)
        let cases = [
            (1, 1.0, 100),
            (1, 0.0, 50),
            (2, 1.0, 200),
            (3, 0.5, 300),
            (4, 1.0, 800),
            (5, 1.0, 1000),
            (5, 0.0, 500),
            (60, 1.0, 1000),
            (0, 1.0, 100),
            (2, f64::NAN, 200),
            (2, 7.0, 200),
        ];
        for (attempt, jitter, ms) in cases {
            assert_eq!(
                p.backoff(attempt, jitter),
                Duration::from_millis(ms),
                "attempt {attempt} jitter {jitter}"
            );
        }
    }

    #[test]
    fn retry_budget() {
        let p = RetryPolicy {
            max_attempts: 3,
            max_elapsed: Duration::from_secs(10),
            ..RetryPolicy::default()
        };
        let s = Duration::from_secs;
        let cases = [
            (1, s(0), s(1), true),
            (2, s(5), s(1), true),
            (3, s(0), s(0), false),
            (1, s(9), s(2), false),
        ];
        for (attempt, elapsed, delay, want) in cases {
            assert_eq!(
                p.may_retry(attempt, elapsed, delay),
                want,
                "{attempt} {elapsed:?}"
            );
        }
        assert!(!RetryPolicy::none().may_retry(1, s(0), s(0)));
    }
}
