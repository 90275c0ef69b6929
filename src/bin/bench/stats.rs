//! Summaries of measured samples.

/// The `q` quantile (0..=1) of `samples` by nearest rank; `None` when there are none.
pub fn quantile(samples: &[i64], q: f64) -> Option<i64> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.saturating_sub(1).min(sorted.len() - 1))
        .copied()
}

/// Sum the samples of one metric family in Prometheus/OpenMetrics text (every label set).
pub fn metric_sum(text: &str, family: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(family)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

/// How many samples fall at or under each bound (and above the last), e.g.
/// `<=100: 80, <=250: 15, >250: 5`.
pub fn histogram(samples: &[i64], bounds: &[i64]) -> String {
    let mut counts = vec![0usize; bounds.len() + 1];
    for s in samples {
        let slot = bounds.iter().position(|b| s <= b).unwrap_or(bounds.len());
        counts[slot] += 1;
    }
    let mut parts: Vec<String> = bounds
        .iter()
        .zip(&counts)
        .map(|(b, n)| format!("<={b}: {n}"))
        .collect();
    if let (Some(last), Some(n)) = (bounds.last(), counts.last()) {
        parts.push(format!(">{last}: {n}"));
    }
    parts.join(", ")
}

/// KiB as MiB with one decimal.
pub fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let s: Vec<i64> = (1..=100).rev().collect();
        assert_eq!(quantile(&s, 0.5), Some(50));
        assert_eq!(quantile(&s, 0.99), Some(99));
        assert_eq!(quantile(&s, 1.0), Some(100));
        assert_eq!(quantile(&[7], 0.99), Some(7));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn histogram_counts_each_sample_once() {
        assert_eq!(
            histogram(&[-3, 40, 100, 101, 900], &[50, 100, 500]),
            "<=50: 2, <=100: 1, <=500: 1, >500: 1"
        );
    }

    #[test]
    fn metric_families_are_summed_over_labels() {
        let text = "# TYPE gitlab_operator_reconciles counter\n\
            gitlab_operator_reconciles_total{result=\"ok\",category=\"none\"} 12\n\
            gitlab_operator_reconciles_total{result=\"error\",category=\"Gitlab\"} 3\n\
            gitlab_operator_reconciles_total_extra 100\n";
        assert_eq!(metric_sum(text, "gitlab_operator_reconciles_total"), 15.0);
        assert_eq!(metric_sum(text, "absent"), 0.0);
    }
}
