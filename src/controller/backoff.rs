//! Per-object retry delays: capped exponential backoff with jitter, reset on success.
//!
//! A flat requeue for every error is either a hot loop (burning GitLab budget) or a stall; the
//! delay grows with the number of consecutive failures of *this* object, and the jitter keeps a
//! burst of failing objects from retrying in lockstep.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use parking_lot::Mutex;

/// Backoff parameters. The defaults suit GitLab calls: a first retry after about a second,
/// doubling to five minutes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BackoffPolicy {
    pub initial: Duration,
    pub max: Duration,
    /// Fraction of the delay added or removed at random (0.0 ..= 1.0).
    pub jitter: f64,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(300),
            jitter: 0.2,
        }
    }
}

impl BackoffPolicy {
    /// Delay before retry number `failures` (1 = the first failure), before jitter.
    pub fn base_delay(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(30);
        let factor = 1u64 << exp;
        let millis = (self.initial.as_millis() as u64).saturating_mul(factor);
        Duration::from_millis(millis).min(self.max)
    }

    /// Delay with jitter; `unit` is a random number in `[0, 1)` so the function stays pure.
    pub fn delay(&self, failures: u32, unit: f64) -> Duration {
        let base = self.base_delay(failures).as_secs_f64();
        let spread = base * self.jitter.clamp(0.0, 1.0);
        let jittered = base - spread + 2.0 * spread * unit.clamp(0.0, 1.0);
        Duration::from_secs_f64(jittered.max(0.0)).min(self.max)
    }
}

/// Consecutive failure counts per object, shared by `reconcile` (reset) and `error_policy`
/// (count). A std mutex is fine: it is never held across an `.await`.
#[derive(Debug)]
pub struct FailureCounts<K: Eq + Hash> {
    counts: Mutex<HashMap<K, u32>>,
}

impl<K: Eq + Hash> Default for FailureCounts<K> {
    fn default() -> Self {
        Self {
            counts: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash> FailureCounts<K> {
    /// Count one more failure and return the new total.
    pub fn record_failure(&self, key: K) -> u32 {
        let mut counts = self.counts.lock();
        let count = counts.entry(key).or_insert(0);
        *count = count.saturating_add(1);
        *count
    }

    /// The object reconciled cleanly: its next failure starts from the shortest delay again.
    pub fn reset(&self, key: &K) {
        let mut counts = self.counts.lock();
        counts.remove(key);
    }

    pub fn get(&self, key: &K) -> u32 {
        let counts = self.counts.lock();
        counts.get(key).copied().unwrap_or(0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn base_delay_doubles_and_caps() {
        let policy = BackoffPolicy::default();
        let cases = [
            ("first failure", 1, 1),
            ("second", 2, 2),
            ("third", 3, 4),
            ("ninth", 9, 256),
            ("capped", 10, 300),
            ("far past the cap does not overflow", u32::MAX, 300),
            ("zero failures behaves as the first", 0, 1),
        ];
        for (name, failures, secs) in cases {
            assert_eq!(
                policy.base_delay(failures),
                Duration::from_secs(secs),
                "case {name}"
            );
        }
    }

    #[test]
    fn jitter_stays_within_its_band_and_under_the_cap() {
        let policy = BackoffPolicy::default();
        for (name, failures, unit, lo, hi) in [
            ("low end", 3, 0.0, 3.2, 3.2),
            ("high end", 3, 0.999_999, 4.79, 4.8),
            ("middle is the base", 3, 0.5, 4.0, 4.0),
            ("cap is never exceeded", 20, 0.999, 0.0, 300.0),
        ] {
            let d = policy.delay(failures, unit).as_secs_f64();
            assert!(d >= lo - 1e-6 && d <= hi + 1e-6, "case {name}: {d}");
        }
    }

    #[test]
    fn counts_grow_and_reset_per_object() {
        let counts = FailureCounts::default();
        assert_eq!(counts.record_failure("a"), 1);
        assert_eq!(counts.record_failure("a"), 2);
        assert_eq!(counts.record_failure("b"), 1);
        counts.reset(&"a");
        assert_eq!(counts.get(&"a"), 0);
        assert_eq!(counts.get(&"b"), 1);
    }
}
