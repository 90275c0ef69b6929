//! Prometheus metrics of the GitLab client. Labels are bounded: route template, method and
//! status code only (never a raw path, project or deployment id).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::endpoint::Endpoint;

/// Labels of `gitlab_requests`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Route template, e.g. `/projects/:id/deployments/:deployment_id`.
    pub endpoint: String,
    pub method: String,
    /// HTTP status code, or `error` when no answer came (timeout, transport).
    pub code: String,
}

/// Labels keyed by route template only.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    pub endpoint: String,
}

fn duration_histogram() -> Histogram {
    // 5 ms … ~20 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 13))
}

/// The client's metric families. Create one, `register` it in the operator's registry, and
/// hand the same `Arc` to every client; without registration it still counts (used by tests).
#[derive(Debug)]
pub struct GitlabMetrics {
    pub requests: Family<RequestLabels, Counter>,
    pub request_duration: Family<EndpointLabels, Histogram, fn() -> Histogram>,
    pub rate_limit_pauses: Counter,
    pub retries: Family<EndpointLabels, Counter>,
}

impl Default for GitlabMetrics {
    fn default() -> Self {
        GitlabMetrics {
            requests: Family::default(),
            request_duration: Family::new_with_constructor(duration_histogram),
            rate_limit_pauses: Counter::default(),
            retries: Family::default(),
        }
    }
}

impl GitlabMetrics {
    /// Create the families and register them under `gitlab_*` in `registry`.
    pub fn register(registry: &mut Registry) -> GitlabMetrics {
        let m = GitlabMetrics::default();
        registry.register(
            "gitlab_requests",
            "HTTP requests to GitLab by route template, method and status code",
            m.requests.clone(),
        );
        registry.register(
            "gitlab_request_duration_seconds",
            "Duration of HTTP requests to GitLab by route template",
            m.request_duration.clone(),
        );
        registry.register(
            "gitlab_rate_limit_pauses",
            "429 answers from GitLab that paused a connection",
            m.rate_limit_pauses.clone(),
        );
        registry.register(
            "gitlab_retries",
            "Retried GitLab requests by route template",
            m.retries.clone(),
        );
        // Start every route's retry counter at zero: a family with no series is not rendered
        // at all, and an absent series cannot be told from a missing metric in an alert.
        for endpoint in Endpoint::ALL {
            let _zero = m.retries.get_or_create(&EndpointLabels {
                endpoint: endpoint.template().to_owned(),
            });
        }
        m
    }

    pub(crate) fn observe(&self, endpoint: Endpoint, code: Option<u16>, seconds: f64) {
        let code = code.map_or_else(|| "error".to_owned(), |c| c.to_string());
        self.requests
            .get_or_create(&RequestLabels {
                endpoint: endpoint.template().to_owned(),
                method: endpoint.method().to_string(),
                code,
            })
            .inc();
        self.request_duration
            .get_or_create(&EndpointLabels {
                endpoint: endpoint.template().to_owned(),
            })
            .observe(seconds);
    }

    pub(crate) fn retried(&self, endpoint: Endpoint) {
        self.retries
            .get_or_create(&EndpointLabels {
                endpoint: endpoint.template().to_owned(),
            })
            .inc();
    }

    /// Requests counted so far for a route, method and code (tests, the CLI's debug output).
    pub fn request_count(&self, endpoint: Endpoint, code: &str) -> u64 {
        self.requests
            .get_or_create(&RequestLabels {
                endpoint: endpoint.template().to_owned(),
                method: endpoint.method().to_string(),
                code: code.to_owned(),
            })
            .get()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn registers_and_encodes_bounded_labels() {
        let mut registry = Registry::default();
        let m = GitlabMetrics::register(&mut registry);
        m.observe(Endpoint::GetDeployment, Some(200), 0.01);
        m.observe(Endpoint::GetDeployment, None, 0.01);
        m.retried(Endpoint::GetDeployment);
        m.rate_limit_pauses.inc();
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        assert!(out.contains(
            r#"gitlab_requests_total{endpoint="/projects/:id/deployments/:deployment_id",method="GET",code="200"} 1"#
        ), "{out}");
        assert!(out.contains(r#"code="error"} 1"#));
        assert!(out.contains("gitlab_rate_limit_pauses_total 1"));
        assert!(out.contains("gitlab_retries_total"));
        assert!(out.contains("gitlab_request_duration_seconds_bucket"));
        assert_eq!(m.request_count(Endpoint::GetDeployment, "200"), 1);
    }
}
