//! Label sharding, as Flux does it (`--watch-label-selector`): every watch of
//! `GitlabDeployment`s is filtered by one label selector, and each shard elects its own leader
//! on a lease whose name carries a hash of that selector, so shards never contend.
//!
//! The selector is handed to the API server as it was given (the server parses and validates
//! it; a bad one fails the start-up list with a 400 whose message names the problem).

/// One shard: the label selector its `GitlabDeployment` watches use (`None` = every resource).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Shard {
    selector: Option<String>,
}

impl Shard {
    /// A shard serving resources that match `selector`; blank means unsharded.
    pub fn new(selector: Option<&str>) -> Self {
        let selector = selector
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        Self { selector }
    }

    /// The selector for `watcher::Config::labels` and list calls, if any.
    pub fn selector(&self) -> Option<&str> {
        self.selector.as_deref()
    }

    /// The lease this shard's replicas elect their leader on: `base` unsharded, else
    /// `base-<fnv32a(selector) in hex>`, exactly as Flux's `leaderelection.GenerateID`, so the
    /// name is stable across versions and processes (no randomly seeded hasher).
    pub fn lease_name(&self, base: &str) -> String {
        match &self.selector {
            None => base.to_owned(),
            Some(selector) => format!("{base}-{:x}", fnv1a32(selector.as_bytes())),
        }
    }

    /// The value of the `shard` label on `gitlab_operator_shard_info`: the selector, or empty
    /// for the unsharded instance. One series per process, so cardinality stays bounded.
    pub fn metric_label(&self) -> String {
        self.selector.clone().unwrap_or_default()
    }
}

/// 32-bit FNV-1a (Go's `hash/fnv.New32a`).
fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_the_reference_vectors() {
        // From the FNV reference (draft-eastlake-fnv): "" and "a" and "foobar".
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn lease_names_per_selector() {
        let base = "gitlab-deployment-operator";
        let cases: Vec<(Option<&str>, String)> = vec![
            (None, base.to_owned()),
            (Some(""), base.to_owned()),
            (Some("   "), base.to_owned()),
            (
                Some("sharding.gitlab-operator.io/key=shard1"),
                format!(
                    "{base}-{:x}",
                    fnv1a32(b"sharding.gitlab-operator.io/key=shard1")
                ),
            ),
        ];
        for (selector, expected) in cases {
            assert_eq!(
                Shard::new(selector).lease_name(base),
                expected,
                "{selector:?}"
            );
        }
        let one = Shard::new(Some("k=shard1")).lease_name(base);
        let two = Shard::new(Some("k=shard2")).lease_name(base);
        let main = Shard::new(Some("!k")).lease_name(base);
        assert_ne!(one, two, "shards never share a lease");
        assert_ne!(one, main);
        assert_ne!(
            main, base,
            "the excluding main instance has its own lease too"
        );
        assert_eq!(one, Shard::new(Some(" k=shard1 ")).lease_name(base));
    }

    #[test]
    fn metric_label_is_the_selector_or_empty() {
        assert_eq!(Shard::new(None).metric_label(), "");
        assert_eq!(Shard::new(Some("k=a")).metric_label(), "k=a");
    }
}
