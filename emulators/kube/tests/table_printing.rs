//! Table printing (spec §9): CRD printer columns, the default Age column, human durations and
//! the built-in printers' computed cells.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{DateTime, Duration, Utc};
use kube_emulator::table::{
    IncludeObject, PrinterColumn, builtin_table, default_table, human_duration, render,
};
use serde_json::{Value, json};

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-01-10T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn ago(d: Duration) -> String {
    (now() - d).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[test]
fn human_durations_match_apimachinery() {
    let cases = [
        (Duration::seconds(-5), "<invalid>"),
        (Duration::seconds(-1), "0s"),
        (Duration::seconds(0), "0s"),
        (Duration::seconds(45), "45s"),
        (Duration::seconds(119), "119s"),
        (Duration::seconds(120), "2m"),
        (Duration::seconds(5 * 60 + 10), "5m10s"),
        (Duration::minutes(10), "10m"),
        (Duration::minutes(179), "179m"),
        (Duration::hours(3), "3h"),
        (Duration::minutes(3 * 60 + 5), "3h5m"),
        (Duration::hours(8), "8h"),
        (Duration::hours(47), "47h"),
        (Duration::hours(48), "2d"),
        (Duration::hours(53), "2d5h"),
        (Duration::days(8), "8d"),
        (Duration::days(729), "729d"),
        (Duration::days(730), "2y"),
        (Duration::days(760), "2y30d"),
        (Duration::days(365 * 9), "9y"),
    ];
    for (d, want) in cases {
        assert_eq!(human_duration(d), want, "{d:?}");
    }
}

fn gitlab_columns() -> Vec<PrinterColumn> {
    PrinterColumn::list_from(&json!([
        {"name": "Environment", "type": "string", "jsonPath": ".spec.environment"},
        {"name": "SHA", "type": "string", "jsonPath": ".spec.sha", "priority": 1, "description": "Commit"},
        {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
        {"name": "Replicas", "type": "integer", "jsonPath": ".status.replicas"},
        {"name": "Ratio", "type": "number", "jsonPath": ".status.ratio"},
        {"name": "Paused", "type": "boolean", "jsonPath": ".spec.paused"},
        {"name": "Targets", "type": "string", "jsonPath": ".spec.targets"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]))
}

fn gitlab_deployment(name: &str, age: Duration) -> Value {
    json!({
        "apiVersion": "gitlab-operator.io/v1alpha1", "kind": "GitlabDeployment",
        "metadata": {"name": name, "namespace": "default", "uid": "u-1", "resourceVersion": "7",
            "creationTimestamp": ago(age), "labels": {"app": "demo"}},
        "spec": {"environment": "production", "sha": "0123abcd", "paused": false, "targets": ["a", "b"]},
        "status": {"replicas": 3, "ratio": 0.5, "conditions": [{"type": "Ready", "status": "True"}]},
    })
}

#[test]
fn crd_rows_use_printer_columns_in_order() {
    let table = render(
        &gitlab_columns(),
        &[gitlab_deployment("demo", Duration::seconds(310))],
        IncludeObject::Metadata,
        now(),
    );
    assert_eq!(table["kind"], "Table");
    assert_eq!(table["apiVersion"], "meta.k8s.io/v1");
    let names: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "Name",
            "Environment",
            "SHA",
            "Ready",
            "Replicas",
            "Ratio",
            "Paused",
            "Targets",
            "Age"
        ]
    );
    let defs = &table["columnDefinitions"];
    assert_eq!(defs[0]["format"], "name");
    assert_eq!(
        defs[1]["description"],
        "Custom resource definition column (in JSONPath format): .spec.environment"
    );
    assert_eq!(defs[2]["priority"], 1);
    assert_eq!(defs[2]["description"], "Commit");
    assert_eq!(
        table["rows"][0]["cells"],
        json!([
            "demo",
            "production",
            "0123abcd",
            "True",
            3,
            0.5,
            false,
            "[\"a\",\"b\"]",
            "5m10s"
        ])
    );
    assert_eq!(
        table["rows"][0]["object"],
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": {
            "name": "demo", "namespace": "default", "uid": "u-1", "resourceVersion": "7",
            "creationTimestamp": ago(Duration::seconds(310)), "labels": {"app": "demo"}}})
    );
}

#[test]
fn missing_values_are_null_and_bad_dates_invalid() {
    let mut obj = gitlab_deployment("bare", Duration::hours(53));
    obj["status"] = json!({"replicas": "three"});
    obj["metadata"]["creationTimestamp"] = json!("yesterday");
    let table = render(&gitlab_columns(), &[obj], IncludeObject::None, now());
    assert_eq!(
        table["rows"][0]["cells"],
        json!([
            "bare",
            "production",
            "0123abcd",
            null,
            null,
            null,
            false,
            "[\"a\",\"b\"]",
            "<invalid>"
        ])
    );
    assert_eq!(table["rows"][0]["object"], Value::Null);
}

#[test]
fn no_printer_columns_means_name_and_age() {
    let obj = gitlab_deployment("demo", Duration::hours(53));
    let table = render(
        &[],
        std::slice::from_ref(&obj),
        IncludeObject::Object,
        now(),
    );
    let defs = table["columnDefinitions"].as_array().unwrap();
    assert_eq!(defs.len(), 2);
    assert_eq!(
        (defs[1]["name"].as_str(), defs[1]["type"].as_str()),
        (Some("Age"), Some("date"))
    );
    assert_eq!(table["rows"][0]["cells"], json!(["demo", "2d5h"]));
    assert_eq!(table["rows"][0]["object"], obj);
}

fn column_names(table: &Value) -> Vec<String> {
    table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn builtin_printers_compute_their_cells() {
    let created = ago(Duration::minutes(3 * 60 + 5));
    let cases: Vec<(&str, Value, Vec<&str>, Value)> = vec![
        (
            "deployments",
            json!({
            "metadata": {"name": "web", "creationTimestamp": created},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "tier": "fe"},
                "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]}]},
                "template": {"spec": {"containers": [{"name": "app", "image": "nginx:1"}, {"name": "side", "image": "envoy"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}}),
            vec![
                "Name",
                "Ready",
                "Up-to-date",
                "Available",
                "Age",
                "Containers",
                "Images",
                "Selector",
            ],
            json!([
                "web",
                "2/3",
                3,
                2,
                "3h5m",
                "app,side",
                "nginx:1,envoy",
                "app=web,env in (dev,prod),tier=fe"
            ]),
        ),
        (
            "statefulsets",
            json!({"metadata": {"name": "db", "creationTimestamp": created},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "pg", "image": "postgres"}]}}},
            "status": {"readyReplicas": 1}}),
            vec!["Name", "Ready", "Age", "Containers", "Images"],
            json!(["db", "1/2", "3h5m", "pg", "postgres"]),
        ),
        (
            "replicasets",
            json!({"metadata": {"name": "web-5d9c", "creationTimestamp": created},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                "template": {"spec": {"containers": [{"name": "app", "image": "nginx:1"}]}}},
            "status": {"replicas": 3, "readyReplicas": 1}}),
            vec![
                "Name",
                "Desired",
                "Current",
                "Ready",
                "Age",
                "Containers",
                "Images",
                "Selector",
            ],
            json!(["web-5d9c", 3, 3, 1, "3h5m", "app", "nginx:1", "app=web"]),
        ),
        (
            "daemonsets",
            json!({"metadata": {"name": "agent", "creationTimestamp": created},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                "template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"}, "containers": [{"name": "a", "image": "agent:2"}]}}},
            "status": {"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberReady": 1, "updatedNumberScheduled": 2, "numberAvailable": 1}}),
            vec![
                "Name",
                "Desired",
                "Current",
                "Ready",
                "Up-to-date",
                "Available",
                "Node Selector",
                "Age",
                "Containers",
                "Images",
                "Selector",
            ],
            json!([
                "agent",
                2,
                2,
                1,
                2,
                1,
                "kubernetes.io/os=linux",
                "3h5m",
                "a",
                "agent:2",
                "app=agent"
            ]),
        ),
        (
            "services",
            json!({"metadata": {"name": "web", "creationTimestamp": created},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"], "selector": {"app": "web"},
                "ports": [{"port": 80, "protocol": "TCP"}, {"port": 443, "nodePort": 30443, "protocol": "TCP"}]}}),
            vec![
                "Name",
                "Type",
                "Cluster-IP",
                "External-IP",
                "Port(s)",
                "Age",
                "Selector",
            ],
            json!([
                "web",
                "ClusterIP",
                "10.96.0.10",
                "<none>",
                "80/TCP,443:30443/TCP",
                "3h5m",
                "app=web"
            ]),
        ),
        (
            "configmaps",
            json!({"metadata": {"name": "cfg", "creationTimestamp": created}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}}),
            vec!["Name", "Data", "Age"],
            json!(["cfg", 3, "3h5m"]),
        ),
        (
            "secrets",
            json!({"metadata": {"name": "tok", "creationTimestamp": created}, "type": "Opaque", "data": {"token": "eA=="}}),
            vec!["Name", "Type", "Data", "Age"],
            json!(["tok", "Opaque", 1, "3h5m"]),
        ),
        (
            "namespaces",
            json!({"metadata": {"name": "default", "creationTimestamp": created}, "status": {"phase": "Active"}}),
            vec!["Name", "Status", "Age"],
            json!(["default", "Active", "3h5m"]),
        ),
        (
            "serviceaccounts",
            json!({"metadata": {"name": "default", "creationTimestamp": created}}),
            vec!["Name", "Secrets", "Age"],
            json!(["default", 0, "3h5m"]),
        ),
        (
            "leases",
            json!({"metadata": {"name": "leader", "creationTimestamp": created}, "spec": {"holderIdentity": "pod-a"}}),
            vec!["Name", "Holder", "Age"],
            json!(["leader", "pod-a", "3h5m"]),
        ),
        (
            "pods",
            json!({"metadata": {"name": "web-1", "creationTimestamp": created},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "node-1"},
            "status": {"phase": "Running", "podIP": "10.0.0.5", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}},
                {"name": "b", "ready": false, "restartCount": 2, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                 "lastState": {"terminated": {"finishedAt": ago(Duration::seconds(45))}}}]}}),
            vec![
                "Name",
                "Ready",
                "Status",
                "Restarts",
                "Age",
                "IP",
                "Node",
                "Nominated Node",
                "Readiness Gates",
            ],
            json!([
                "web-1",
                "1/2",
                "CrashLoopBackOff",
                "2 (45s ago)",
                "3h5m",
                "10.0.0.5",
                "node-1",
                "<none>",
                "<none>"
            ]),
        ),
        (
            "events",
            json!({"metadata": {"name": "demo.1812", "creationTimestamp": created},
            "involvedObject": {"kind": "GitlabDeployment", "name": "demo"}, "reason": "DeploymentCreated", "type": "Normal",
            "message": " Created GitLab deployment 42 ", "eventTime": ago(Duration::seconds(310)),
            "series": {"count": 4, "lastObservedTime": ago(Duration::seconds(45))},
            "reportingComponent": "gitlab-deployment-operator", "reportingInstance": "pod-a"}),
            vec![
                "Last Seen",
                "Type",
                "Reason",
                "Object",
                "Subobject",
                "Source",
                "Message",
                "First Seen",
                "Count",
                "Name",
            ],
            json!([
                "45s",
                "Normal",
                "DeploymentCreated",
                "gitlabdeployment/demo",
                "",
                "gitlab-deployment-operator, pod-a",
                "Created GitLab deployment 42",
                "5m10s",
                4,
                "demo.1812"
            ]),
        ),
        (
            "customresourcedefinitions",
            json!({"metadata": {"name": "gitlabdeployments.gitlab-operator.io", "creationTimestamp": "2025-01-02T03:04:05Z"}}),
            vec!["Name", "Created At"],
            json!([
                "gitlabdeployments.gitlab-operator.io",
                "2025-01-02T03:04:05Z"
            ]),
        ),
    ];
    for (plural, obj, columns, want) in cases {
        let table = builtin_table(plural, &[obj], IncludeObject::Metadata, now())
            .unwrap_or_else(|| panic!("{plural}"));
        assert_eq!(column_names(&table), columns, "{plural}");
        assert_eq!(table["rows"][0]["cells"], want, "{plural}");
        assert_eq!(
            table["rows"][0]["object"]["kind"], "PartialObjectMetadata",
            "{plural}"
        );
    }
}

#[test]
fn wide_columns_have_priority_one_and_unknown_kinds_fall_back() {
    let table = builtin_table("deployments", &[], IncludeObject::Metadata, now()).unwrap();
    let priorities: Vec<i64> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["priority"].as_i64().unwrap())
        .collect();
    assert_eq!(priorities, [0, 0, 0, 0, 0, 1, 1, 1]);
    assert!(builtin_table("widgets", &[], IncludeObject::Metadata, now()).is_none());
    let fallback = default_table(
        &[json!({"metadata": {"name": "x", "creationTimestamp": "2025-01-02T03:04:05Z"}})],
        IncludeObject::None,
        now(),
    );
    assert_eq!(column_names(&fallback), ["Name", "Created At"]);
}
