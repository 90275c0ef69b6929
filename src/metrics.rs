//! The operator's own Prometheus metrics. Labels are bounded: a result, an error category, a
//! phase. Per-object detail belongs in logs, events and status, never in a label.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// `ok` or `error`.
    pub result: &'static str,
    /// The error's stable category, `none` on success.
    pub category: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    pub phase: String,
}

/// The shard a process serves: its `--watch-label-selector`, empty when unsharded. One series
/// per process (an info metric), so joining on it keeps every other family's labels bounded.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShardLabels {
    pub shard: String,
}

/// Every operator metric, registered once at start-up.
#[derive(Debug)]
pub struct OperatorMetrics {
    pub reconciles: Family<ReconcileLabels, Counter>,
    pub reconcile_duration: Histogram,
    pub leader: Gauge,
    pub queue_depth: Gauge,
    pub resources: Family<PhaseLabels, Gauge>,
    pub watched_kinds: Gauge,
    /// Followed workloads cached whole (a watch keeps only the keys of the others): with
    /// label shards, the share of the namespaces' workloads this shard's resources follow.
    pub cached_targets: Gauge,
    /// From a workload's rollout finishing (`status.rollout.finishedAt`, whole seconds) to
    /// GitLab accepting its `success`/`failed`: what an on-call person means by "GitLab is
    /// behind".
    pub report_latency: Histogram,
    /// GitlabDeployments whose GitLab deployment waits for approval.
    pub approvals_pending: Gauge,
    /// Age in seconds of the oldest approval still pending (0 when none), for "approval
    /// pending longer than X" alerts without a per-object label.
    pub approval_pending_max_seconds: Gauge,
    pub shard_info: Family<ShardLabels, Gauge>,
}

impl Default for OperatorMetrics {
    fn default() -> Self {
        Self {
            reconciles: Family::default(),
            // 1 ms … ~16 s: a reconcile without GitLab calls is milliseconds, one with retries
            // can take seconds.
            reconcile_duration: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            leader: Gauge::default(),
            queue_depth: Gauge::default(),
            resources: Family::default(),
            watched_kinds: Gauge::default(),
            cached_targets: Gauge::default(),
            // 0.25 s … ~8.5 min: normally a second or two, minutes while GitLab is away.
            report_latency: Histogram::new(exponential_buckets(0.25, 2.0, 12)),
            approvals_pending: Gauge::default(),
            approval_pending_max_seconds: Gauge::default(),
            shard_info: Family::default(),
        }
    }
}

impl OperatorMetrics {
    /// Register every family under the `gitlab_operator` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let registry = registry.sub_registry_with_prefix("gitlab_operator");
        registry.register(
            "reconciles",
            "Reconciles of GitlabDeployments by result and error category",
            self.reconciles.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one reconcile",
            self.reconcile_duration.clone(),
        );
        registry.register(
            "leader",
            "1 while this instance holds the leader lease",
            self.leader.clone(),
        );
        registry.register(
            "queue_depth",
            "Reconcile triggers from target workloads not yet handled",
            self.queue_depth.clone(),
        );
        registry.register(
            "resources",
            "GitlabDeployments tracked, by phase",
            self.resources.clone(),
        );
        registry.register(
            "watched_kinds",
            "Workload kinds watched because some GitlabDeployment follows them",
            self.watched_kinds.clone(),
        );
        registry.register(
            "cached_targets",
            "Followed workloads cached whole (the others of a watched namespace only by key)",
            self.cached_targets.clone(),
        );
        registry.register(
            "report_latency_seconds",
            "Time from a rollout finishing to GitLab accepting its success or failed status",
            self.report_latency.clone(),
        );
        registry.register(
            "approvals_pending",
            "GitlabDeployments whose GitLab deployment waits for approval",
            self.approvals_pending.clone(),
        );
        registry.register(
            "approval_pending_max_seconds",
            "Age of the oldest approval still pending, 0 when none",
            self.approval_pending_max_seconds.clone(),
        );
        registry.register(
            "shard_info",
            "1, labelled with the label selector this instance serves (empty: unsharded)",
            self.shard_info.clone(),
        );
    }

    /// Publish the shard served (replacing any earlier one).
    pub fn set_shard(&self, shard: String) {
        self.shard_info.clear();
        self.shard_info.get_or_create(&ShardLabels { shard }).set(1);
    }

    /// Count one reconcile.
    pub fn observe_reconcile(&self, elapsed: Duration, error_category: Option<&'static str>) {
        let labels = match error_category {
            None => ReconcileLabels {
                result: "ok",
                category: "none",
            },
            Some(category) => ReconcileLabels {
                result: "error",
                category,
            },
        };
        self.reconciles.get_or_create(&labels).inc();
        self.reconcile_duration.observe(elapsed.as_secs_f64());
    }
}

/// Render a registry in the Prometheus text format.
pub fn encode(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry)?;
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_exported_with_bounded_labels() {
        let metrics = OperatorMetrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        metrics.observe_reconcile(Duration::from_millis(3), None);
        metrics.observe_reconcile(Duration::from_millis(3), Some("RateLimited"));
        metrics
            .resources
            .get_or_create(&PhaseLabels {
                phase: "Ready".into(),
            })
            .set(2);
        metrics.set_shard("old".into());
        metrics.set_shard("sharding.gitlab-operator.io/key=shard1".into());
        let text = encode(&registry).unwrap();
        assert!(
            !text.contains("shard=\"old\""),
            "one shard series only:\n{text}"
        );
        for family in [
            "gitlab_operator_reconciles_total{result=\"ok\",category=\"none\"} 1",
            "gitlab_operator_reconciles_total{result=\"error\",category=\"RateLimited\"} 1",
            "gitlab_operator_reconcile_duration_seconds_count 2",
            "gitlab_operator_leader 0",
            "gitlab_operator_queue_depth 0",
            "gitlab_operator_resources{phase=\"Ready\"} 2",
            "gitlab_operator_watched_kinds 0",
            "gitlab_operator_cached_targets 0",
            "gitlab_operator_report_latency_seconds_bucket",
            "gitlab_operator_approvals_pending 0",
            "gitlab_operator_approval_pending_max_seconds 0",
            "gitlab_operator_shard_info{shard=\"sharding.gitlab-operator.io/key=shard1\"} 1",
        ] {
            assert!(text.contains(family), "missing {family} in:\n{text}");
        }
    }
}
