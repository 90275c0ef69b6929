//! The Grafana dashboard and the PrometheusRule in `deploy/observability/` use only metrics
//! the operator exports (scraped from a running operator), and every alert has its runbook
//! section in docs/operations.md: so they cannot rot when a metric is renamed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use gitlab_deployment_operator::admin;
use harness::{Env, gitlab_status};
use serde_json::json;

fn repo(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// Every sample name a scrape can show: the families' `# TYPE` lines with the suffixes the
/// text format gives them, and the sample lines themselves.
fn exported_names(scrape: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in scrape.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                _ => &[""],
            };
            for s in suffixes {
                names.insert(format!("{name}{s}"));
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_owned());
        }
    }
    names
}

/// Metric names a PromQL expression uses: identifiers outside string literals that start
/// with the operator's prefixes (functions, keywords and label names never do).
fn used_names(expr: &str) -> BTreeSet<String> {
    let unquoted = regex::Regex::new(r#""(?:[^"\\]|\\.)*""#)
        .unwrap()
        .replace_all(expr, "\"\"");
    regex::Regex::new(r"[A-Za-z_:][A-Za-z0-9_:]*")
        .unwrap()
        .find_iter(&unquoted)
        .map(|m| m.as_str().to_owned())
        .filter(|n| n.starts_with("gitlab_"))
        .collect()
}

/// Every PromQL expression of the dashboard: panel targets and template queries.
fn dashboard_exprs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr" | "definition", serde_json::Value::String(s)) => out.push(s.clone()),
                    ("query", serde_json::Value::String(s)) if s.contains('(') => {
                        out.push(s.clone());
                    }
                    _ => dashboard_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| dashboard_exprs(v, out)),
        _ => {}
    }
}

/// (alert name, expression, runbook anchor) of every rule.
fn rules() -> Vec<(String, String, String)> {
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&repo("deploy/observability/prometheusrule.yaml")).unwrap();
    assert_eq!(doc["kind"], serde_yaml::Value::from("PrometheusRule"));
    let mut out = Vec::new();
    for group in doc["spec"]["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let name = rule["alert"].as_str().unwrap().to_owned();
            let expr = rule["expr"].as_str().unwrap().to_owned();
            let runbook = rule["annotations"]["runbook_url"]
                .as_str()
                .unwrap_or_else(|| panic!("{name} has no runbook_url"));
            let anchor = runbook
                .split_once("docs/operations.md#")
                .unwrap_or_else(|| panic!("{name}: runbook {runbook} is not in docs/operations.md"))
                .1
                .to_owned();
            out.push((name, expr, anchor));
        }
    }
    out
}

#[test]
fn promql_names_are_found_outside_strings_only() {
    assert_eq!(
        used_names(
            r#"sum by (endpoint) (rate(gitlab_requests_total{code=~"gitlab_x|5.."}[5m])) / gitlab_operator_leader"#
        ),
        BTreeSet::from([
            "gitlab_operator_leader".to_owned(),
            "gitlab_requests_total".to_owned()
        ])
    );
    let scrape = "# HELP a_b x\n# TYPE a_b counter\n# TYPE h histogram\nh_bucket{le=\"1\"} 0\n# TYPE g gauge\ng 1\n# EOF\n";
    assert_eq!(
        exported_names(scrape),
        ["a_b_total", "g", "h_bucket", "h_count", "h_sum"]
            .map(str::to_owned)
            .into()
    );
}

#[tokio::test]
async fn dashboard_and_alerts_use_only_exported_metrics() {
    let env = Env::start().await;
    let _approver = env.protect_production();
    env.apply_workload("web", "registry.example/app:1", json!({}))
        .await;
    let op = env.start_operator();
    let (addr, _server) = admin::serve(
        "127.0.0.1:0".parse().unwrap(),
        op.admin.clone(),
        futures::future::pending(),
    )
    .await
    .unwrap();
    env.apply_gld("web-prod", env.fixed_spec("production", env.project.head()))
        .await;
    env.wait_for("web-prod", "success, approval pending", |gd| {
        gitlab_status(gd).as_deref() == Some("success")
            && gd.status.as_ref().unwrap().approvals_summary.as_deref() == Some("0/1")
    })
    .await;
    // The phase and approval gauges are refreshed on a 5 s timer.
    let url = format!("http://{addr}/metrics");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let scrape = loop {
        let text = reqwest::get(&url).await.unwrap().text().await.unwrap();
        if text.contains("gitlab_operator_approvals_pending 1") {
            break text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "approvals_pending never became 1:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // The new metrics mean what the dashboard says they mean.
    assert!(
        scrape.contains("gitlab_operator_report_latency_seconds_count 1"),
        "one rollout reported as success:\n{scrape}"
    );
    let oldest: i64 = scrape
        .lines()
        .find_map(|l| l.strip_prefix("gitlab_operator_approval_pending_max_seconds "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!((0..60).contains(&oldest), "{oldest}");

    let exported = exported_names(&scrape);
    let dashboard: serde_json::Value =
        serde_json::from_str(&repo("deploy/observability/grafana-dashboard.json")).unwrap();
    let mut exprs = Vec::new();
    dashboard_exprs(&dashboard, &mut exprs);
    let rules = rules();
    let mut used = BTreeSet::new();
    for (what, expr) in exprs
        .iter()
        .map(|e| ("dashboard", e.as_str()))
        .chain(rules.iter().map(|(n, e, _)| (n.as_str(), e.as_str())))
    {
        let names = used_names(expr);
        assert!(!names.is_empty(), "{what}: no operator metric in {expr}");
        for name in names {
            assert!(
                exported.contains(&name),
                "{what} uses {name}, which the operator does not export: {expr}"
            );
            used.insert(name);
        }
    }
    // The dashboard draws what the issue asked for.
    for name in [
        "gitlab_operator_reconciles_total",
        "gitlab_requests_total",
        "gitlab_request_duration_seconds_bucket",
        "gitlab_rate_limit_pauses_total",
        "gitlab_operator_approvals_pending",
        "gitlab_operator_report_latency_seconds_bucket",
        "gitlab_operator_leader",
        "gitlab_operator_resources",
    ] {
        assert!(used.contains(name), "nothing draws {name}");
    }
    // Every alert's runbook is a section of docs/operations.md.
    let runbook = repo("docs/operations.md");
    for (name, _, anchor) in &rules {
        assert_eq!(anchor, &name.to_lowercase(), "{name}: anchor");
        assert!(
            runbook.contains(&format!("\n### {name}\n")),
            "docs/operations.md has no section ### {name}"
        );
    }
    op.stop().await;
}
