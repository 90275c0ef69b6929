//! The gate's own metrics, under `gitlab_operator_gate_*`. Labels are bounded: a route template,
//! a status code, a verdict state; never a resource name.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route template (`flagger_gate`, `flagger_rollback`, `verdict`, `other`).
    pub route: &'static str,
    pub code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabels {
    /// `approved`, `pending`, `rejected`.
    pub state: &'static str,
}

fn latency_histogram() -> Histogram {
    // 50 µs … ~1.6 s: a cache lookup is microseconds; the tail is a slow client's body.
    Histogram::new(exponential_buckets(0.00005, 2.0, 16))
}

/// Requests, verdicts and latency of the gate endpoint.
#[derive(Debug)]
pub struct GateMetrics {
    pub requests: Family<RequestLabels, Counter>,
    pub verdicts: Family<VerdictLabels, Counter>,
    pub duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
}

impl Default for GateMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            verdicts: Family::default(),
            duration: Family::new_with_constructor(latency_histogram),
        }
    }
}

impl GateMetrics {
    pub fn register(&self, registry: &mut Registry) {
        let registry = registry.sub_registry_with_prefix("gitlab_operator_gate");
        registry.register(
            "requests",
            "Gate endpoint requests by route and HTTP status code",
            self.requests.clone(),
        );
        registry.register(
            "verdicts",
            "Verdicts the gate endpoint answered, by state",
            self.verdicts.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time to answer one gate endpoint request",
            self.duration.clone(),
        );
    }

    /// Requests answered on `route` with `code` so far.
    pub fn count(&self, route: &'static str, code: u16) -> u64 {
        self.requests
            .get_or_create(&RequestLabels { route, code })
            .get()
    }

    /// Verdicts answered with `state` so far.
    pub fn verdict_count(&self, state: &'static str) -> u64 {
        self.verdicts.get_or_create(&VerdictLabels { state }).get()
    }
}
