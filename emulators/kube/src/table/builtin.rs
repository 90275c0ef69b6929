//! Built-in printers (`pkg/printers/internalversion/printers.go`) for the kinds of spec §9.
//! The server always generates the wide cells (priority-1 columns); kubectl hides them
//! unless `-o wide`.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::{
    CREATION_TIMESTAMP_DESCRIPTION, IncludeObject, NAME_DESCRIPTION, age, column_definition,
    row_object, table,
};

struct Col {
    name: &'static str,
    type_: &'static str,
    format: &'static str,
    priority: i32,
    description: &'static str,
}

const fn col(
    name: &'static str,
    type_: &'static str,
    priority: i32,
    description: &'static str,
) -> Col {
    Col {
        name,
        type_,
        format: "",
        priority,
        description,
    }
}

const NAME: Col = Col {
    name: "Name",
    type_: "string",
    format: "name",
    priority: 0,
    description: NAME_DESCRIPTION,
};
const AGE: Col = col("Age", "string", 0, CREATION_TIMESTAMP_DESCRIPTION);
const CONTAINERS: Col = col(
    "Containers",
    "string",
    1,
    "Names of each container in the template.",
);
const IMAGES: Col = col(
    "Images",
    "string",
    1,
    "Images referenced by each container in the template.",
);
const SELECTOR: Col = col(
    "Selector",
    "string",
    1,
    "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.",
);

fn columns(kind_plural: &str) -> Option<Vec<Col>> {
    Some(match kind_plural {
        "namespaces" => vec![
            NAME,
            col("Status", "string", 0, "The status of the namespace"),
            AGE,
        ],
        "configmaps" => vec![
            NAME,
            col("Data", "string", 0, "Data contains the configuration data."),
            AGE,
        ],
        "secrets" => vec![
            NAME,
            col(
                "Type",
                "string",
                0,
                "Used to facilitate programmatic handling of secret data.",
            ),
            col("Data", "string", 0, "Data contains the secret data."),
            AGE,
        ],
        "serviceaccounts" => vec![
            NAME,
            col(
                "Secrets",
                "string",
                0,
                "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
            ),
            AGE,
        ],
        "services" => vec![
            NAME,
            col(
                "Type",
                "string",
                0,
                "type determines how the Service is exposed.",
            ),
            col(
                "Cluster-IP",
                "string",
                0,
                "clusterIP is the IP address of the service.",
            ),
            col(
                "External-IP",
                "string",
                0,
                "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.",
            ),
            col(
                "Port(s)",
                "string",
                0,
                "The list of ports that are exposed by this service.",
            ),
            AGE,
            col(
                "Selector",
                "string",
                1,
                "Route service traffic to pods with label keys and values matching this selector.",
            ),
        ],
        "deployments" => vec![
            NAME,
            col("Ready", "string", 0, "Number of the pod with ready state"),
            col(
                "Up-to-date",
                "string",
                0,
                "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
            ),
            col(
                "Available",
                "string",
                0,
                "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
            ),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ],
        "replicasets" => vec![
            NAME,
            col(
                "Desired",
                "integer",
                0,
                "Replicas is the number of desired replicas.",
            ),
            col(
                "Current",
                "integer",
                0,
                "Replicas is the most recently observed number of replicas.",
            ),
            col(
                "Ready",
                "integer",
                0,
                "readyReplicas is the number of pods targeted by this ReplicaSet with a Ready Condition.",
            ),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ],
        "statefulsets" => vec![
            NAME,
            col("Ready", "string", 0, "Number of the pod with ready state"),
            AGE,
            CONTAINERS,
            IMAGES,
        ],
        "daemonsets" => vec![
            NAME,
            col(
                "Desired",
                "integer",
                0,
                "The total number of nodes that should be running the daemon pod.",
            ),
            col(
                "Current",
                "integer",
                0,
                "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod.",
            ),
            col(
                "Ready",
                "integer",
                0,
                "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready.",
            ),
            col(
                "Up-to-date",
                "integer",
                0,
                "The total number of nodes that are running updated daemon pod",
            ),
            col(
                "Available",
                "integer",
                0,
                "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available.",
            ),
            col(
                "Node Selector",
                "string",
                0,
                "NodeSelector is a selector which must be true for the pod to fit on a node.",
            ),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ],
        "pods" => vec![
            NAME,
            col(
                "Ready",
                "string",
                0,
                "The aggregate readiness state of this pod for accepting traffic.",
            ),
            col(
                "Status",
                "string",
                0,
                "The aggregate status of the containers in this pod.",
            ),
            col(
                "Restarts",
                "string",
                0,
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
            ),
            AGE,
            col(
                "IP",
                "string",
                1,
                "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
            ),
            col(
                "Node",
                "string",
                1,
                "NodeName is a request to schedule this pod onto a specific node.",
            ),
            col(
                "Nominated Node",
                "string",
                1,
                "nominatedNodeName is set only when this pod preempts other pods on the node.",
            ),
            col(
                "Readiness Gates",
                "string",
                1,
                "If specified, all readiness gates will be evaluated for pod readiness.",
            ),
        ],
        "events" => vec![
            col(
                "Last Seen",
                "string",
                0,
                "The time at which the most recent occurrence of this event was recorded.",
            ),
            col(
                "Type",
                "string",
                0,
                "Type of this event (Normal, Warning), new types could be added in the future",
            ),
            col(
                "Reason",
                "string",
                0,
                "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
            ),
            col(
                "Object",
                "string",
                0,
                "The object that this event is about.",
            ),
            col(
                "Subobject",
                "string",
                1,
                "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go-field access statement.",
            ),
            col("Source", "string", 1, "The component reporting this event."),
            col(
                "Message",
                "string",
                0,
                "A human-readable description of the status of this operation.",
            ),
            col(
                "First Seen",
                "string",
                1,
                "The time at which the event was first recorded.",
            ),
            col(
                "Count",
                "string",
                1,
                "The number of times this event has occurred.",
            ),
            Col {
                name: "Name",
                type_: "string",
                format: "name",
                priority: 1,
                description: NAME_DESCRIPTION,
            },
        ],
        "leases" => vec![
            NAME,
            col(
                "Holder",
                "string",
                0,
                "holderIdentity contains the identity of the holder of a current lease.",
            ),
            AGE,
        ],
        "customresourcedefinitions" => vec![
            NAME,
            col("Created At", "date", 0, CREATION_TIMESTAMP_DESCRIPTION),
        ],
        _ => return None,
    })
}

fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn int(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn or_none(s: &str) -> String {
    if s.is_empty() {
        "<none>".into()
    } else {
        s.to_string()
    }
}

fn len_of(v: &Value, pointer: &str) -> i64 {
    match v.pointer(pointer) {
        Some(Value::Object(m)) => m.len() as i64,
        Some(Value::Array(a)) => a.len() as i64,
        _ => 0,
    }
}

/// `labels.FormatLabels`: `k=v,k2=v2` sorted, `<none>` when empty.
fn format_labels(v: Option<&Value>) -> String {
    let map: BTreeMap<&str, &str> = v
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    if map.is_empty() {
        return "<none>".into();
    }
    map.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `metav1.LabelSelectorAsSelector(sel).String()`: requirements sorted by key.
fn selector_string(sel: Option<&Value>) -> String {
    let Some(sel) = sel else { return String::new() };
    let mut reqs: Vec<(String, String)> = Vec::new();
    if let Some(labels) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in labels {
            reqs.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or(""))));
        }
    }
    if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let key = s(e, "/key").to_string();
            let mut values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            values.sort_unstable();
            let text = match s(e, "/operator") {
                "In" => format!("{key} in ({})", values.join(",")),
                "NotIn" => format!("{key} notin ({})", values.join(",")),
                "Exists" => key.clone(),
                "DoesNotExist" => format!("!{key}"),
                _ => continue,
            };
            reqs.push((key, text));
        }
    }
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    reqs.into_iter()
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join(",")
}

/// `layoutContainerCells`: container names and images, comma separated.
fn containers_and_images(obj: &Value, pointer: &str) -> (String, String) {
    let containers = obj
        .pointer(pointer)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = containers.iter().map(|c| s(c, "/name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| s(c, "/image")).collect();
    (names.join(","), images.join(","))
}

fn service_ports(obj: &Value) -> String {
    let ports = obj
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let pieces: Vec<String> = ports
        .iter()
        .map(|p| {
            let protocol = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
            match int(p, "/nodePort") {
                0 => format!("{}/{protocol}", int(p, "/port")),
                node => format!("{}:{node}/{protocol}", int(p, "/port")),
            }
        })
        .collect();
    or_none(&pieces.join(","))
}

fn service_external_ip(obj: &Value) -> String {
    let external: Vec<&str> = obj
        .pointer("/spec/externalIPs")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    match s(obj, "/spec/type") {
        "" | "ClusterIP" | "NodePort" => or_none(&external.join(",")),
        "LoadBalancer" => {
            let ingress = obj
                .pointer("/status/loadBalancer/ingress")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let mut all: Vec<String> = ingress
                .iter()
                .filter_map(|i| {
                    i.get("ip")
                        .or_else(|| i.get("hostname"))
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .collect();
            all.extend(external.iter().map(|s| s.to_string()));
            if all.is_empty() {
                "<pending>".into()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => s(obj, "/spec/externalName").to_string(),
        _ => "<unknown>".into(),
    }
}

/// `printPod`, reduced to what an emulator's pods carry.
fn pod_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let total = len_of(obj, "/spec/containers");
    let mut reason = s(obj, "/status/phase").to_string();
    if !s(obj, "/status/reason").is_empty() {
        reason = s(obj, "/status/reason").to_string();
    }
    let mut restarts = 0;
    let mut ready = 0;
    let mut last_restart: Option<String> = None;
    let mut has_running = false;
    let statuses = obj
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for c in statuses.iter().rev() {
        restarts += int(c, "/restartCount");
        if let Some(t) = c
            .pointer("/lastState/terminated/finishedAt")
            .and_then(Value::as_str)
            && last_restart.as_deref().is_none_or(|l| t > l)
        {
            last_restart = Some(t.to_string());
        }
        if !s(c, "/state/waiting/reason").is_empty() {
            reason = s(c, "/state/waiting/reason").to_string();
        } else if !s(c, "/state/terminated/reason").is_empty() {
            reason = s(c, "/state/terminated/reason").to_string();
        } else if let Some(term) = c.pointer("/state/terminated") {
            reason = match int(term, "/signal") {
                0 => format!("ExitCode:{}", int(term, "/exitCode")),
                sig => format!("Signal:{sig}"),
            };
        } else if c.get("ready").and_then(Value::as_bool) == Some(true)
            && c.pointer("/state/running").is_some()
        {
            has_running = true;
            ready += 1;
        }
    }
    if reason == "Completed" && has_running {
        reason = "Running".into();
    }
    if obj
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
    {
        reason = if s(obj, "/status/reason") == "NodeLost" {
            "Unknown".into()
        } else {
            "Terminating".into()
        };
    }
    let restarts_text = match (&last_restart, restarts) {
        (Some(t), n) if n != 0 => format!("{n} ({} ago)", age(Some(t), now)),
        (_, n) => n.to_string(),
    };
    let gates = len_of(obj, "/spec/readinessGates");
    let gates_text = if gates == 0 {
        "<none>".to_string()
    } else {
        let conditions = obj
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let gate_types: Vec<&str> = obj
            .pointer("/spec/readinessGates")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|g| s(g, "/conditionType")).collect())
            .unwrap_or_default();
        let true_gates = gate_types
            .iter()
            .filter(|t| {
                conditions
                    .iter()
                    .any(|c| s(c, "/type") == **t && s(c, "/status") == "True")
            })
            .count();
        format!("{true_gates}/{gates}")
    };
    vec![
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts_text),
        json!(age(
            obj.pointer("/metadata/creationTimestamp")
                .and_then(Value::as_str),
            now
        )),
        json!(or_none(s(obj, "/status/podIP"))),
        json!(or_none(s(obj, "/spec/nodeName"))),
        json!(or_none(s(obj, "/status/nominatedNodeName"))),
        json!(gates_text),
    ]
}

/// `printEvent` (wide): reads the core v1 fields, falling back to events.k8s.io names.
fn event_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let ts = |p: &str| {
        obj.pointer(p)
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
    };
    let first = ts("/firstTimestamp").or_else(|| ts("/deprecatedFirstTimestamp"));
    let first_text = match first {
        Some(t) => age(Some(t), now),
        None => age(ts("/eventTime"), now),
    };
    let mut last_text = match ts("/lastTimestamp").or_else(|| ts("/deprecatedLastTimestamp")) {
        Some(t) => age(Some(t), now),
        None => first_text.clone(),
    };
    let mut count = obj
        .get("count")
        .or_else(|| obj.get("deprecatedCount"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if let Some(series) = obj.get("series").filter(|v| v.is_object()) {
        last_text = age(series.get("lastObservedTime").and_then(Value::as_str), now);
        count = int(series, "/count");
    } else if count == 0 {
        count = 1;
    }
    let involved = obj
        .get("involvedObject")
        .or_else(|| obj.get("regarding"))
        .cloned()
        .unwrap_or(Value::Null);
    let kind = s(&involved, "/kind").to_lowercase();
    let target = match s(&involved, "/name") {
        "" => kind,
        name => format!("{kind}/{name}"),
    };
    let component = [
        s(obj, "/source/component"),
        s(obj, "/reportingController"),
        s(obj, "/reportingComponent"),
    ]
    .into_iter()
    .find(|c| !c.is_empty())
    .unwrap_or("");
    let instance = [s(obj, "/source/host"), s(obj, "/reportingInstance")]
        .into_iter()
        .find(|c| !c.is_empty())
        .unwrap_or("");
    let source = if instance.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {instance}")
    };
    let message = obj
        .get("message")
        .or_else(|| obj.get("note"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim()
        .to_string();
    vec![
        json!(last_text),
        json!(s(obj, "/type")),
        json!(s(obj, "/reason")),
        json!(target),
        json!(s(&involved, "/fieldPath")),
        json!(source),
        json!(message),
        json!(first_text),
        json!(count),
        json!(s(obj, "/metadata/name")),
    ]
}

fn cells(kind_plural: &str, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let name = json!(s(obj, "/metadata/name"));
    let created = obj
        .pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str);
    let age_cell = json!(age(created, now));
    match kind_plural {
        "namespaces" => vec![name, json!(s(obj, "/status/phase")), age_cell],
        "configmaps" => vec![
            name,
            json!(len_of(obj, "/data") + len_of(obj, "/binaryData")),
            age_cell,
        ],
        "secrets" => vec![
            name,
            json!(s(obj, "/type")),
            json!(len_of(obj, "/data")),
            age_cell,
        ],
        "serviceaccounts" => vec![name, json!(len_of(obj, "/secrets")), age_cell],
        "services" => {
            let cluster_ip = obj
                .pointer("/spec/clusterIPs/0")
                .and_then(Value::as_str)
                .or_else(|| obj.pointer("/spec/clusterIP").and_then(Value::as_str))
                .unwrap_or("");
            let spec_type = match s(obj, "/spec/type") {
                "" => "ClusterIP",
                t => t,
            };
            vec![
                name,
                json!(spec_type),
                json!(or_none(cluster_ip)),
                json!(service_external_ip(obj)),
                json!(service_ports(obj)),
                age_cell,
                json!(format_labels(obj.pointer("/spec/selector"))),
            ]
        }
        "deployments" => {
            let desired = obj
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            let (containers, images) = containers_and_images(obj, "/spec/template/spec/containers");
            vec![
                name,
                json!(format!("{}/{desired}", int(obj, "/status/readyReplicas"))),
                json!(int(obj, "/status/updatedReplicas")),
                json!(int(obj, "/status/availableReplicas")),
                age_cell,
                json!(containers),
                json!(images),
                json!(selector_string(obj.pointer("/spec/selector"))),
            ]
        }
        "replicasets" => {
            let (containers, images) = containers_and_images(obj, "/spec/template/spec/containers");
            vec![
                name,
                json!(
                    obj.pointer("/spec/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)
                ),
                json!(int(obj, "/status/replicas")),
                json!(int(obj, "/status/readyReplicas")),
                age_cell,
                json!(containers),
                json!(images),
                json!(selector_string(obj.pointer("/spec/selector"))),
            ]
        }
        "statefulsets" => {
            let desired = obj
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            let (containers, images) = containers_and_images(obj, "/spec/template/spec/containers");
            vec![
                name,
                json!(format!("{}/{desired}", int(obj, "/status/readyReplicas"))),
                age_cell,
                json!(containers),
                json!(images),
            ]
        }
        "daemonsets" => {
            let (containers, images) = containers_and_images(obj, "/spec/template/spec/containers");
            vec![
                name,
                json!(int(obj, "/status/desiredNumberScheduled")),
                json!(int(obj, "/status/currentNumberScheduled")),
                json!(int(obj, "/status/numberReady")),
                json!(int(obj, "/status/updatedNumberScheduled")),
                json!(int(obj, "/status/numberAvailable")),
                json!(format_labels(
                    obj.pointer("/spec/template/spec/nodeSelector")
                )),
                age_cell,
                json!(containers),
                json!(images),
                json!(selector_string(obj.pointer("/spec/selector"))),
            ]
        }
        "pods" => {
            let mut c = vec![name];
            c.extend(pod_cells(obj, now));
            c
        }
        "events" => event_cells(obj, now),
        "leases" => vec![
            name,
            json!(or_none(s(obj, "/spec/holderIdentity"))),
            age_cell,
        ],
        "customresourcedefinitions" => {
            // The default table convertor prints the timestamp itself, not an age.
            let at = created
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| {
                    t.with_timezone(&Utc)
                        .to_rfc3339_opts(SecondsFormat::Secs, true)
                })
                .unwrap_or_default();
            vec![name, json!(at)]
        }
        _ => vec![name, age_cell],
    }
}

/// Table for a built-in resource (by plural, e.g. `deployments`); `None` when the kind has no
/// dedicated printer (use [`default_table`]).
pub fn builtin_table(
    kind_plural: &str,
    objects: &[Value],
    include_object: IncludeObject,
    now: DateTime<Utc>,
) -> Option<Value> {
    let cols = columns(kind_plural)?;
    let defs = cols
        .iter()
        .map(|c| column_definition(c.name, c.type_, c.format, c.description, c.priority))
        .collect();
    let rows = objects
        .iter()
        .map(|obj| json!({"cells": cells(kind_plural, obj, now), "object": row_object(obj, include_object)}))
        .collect();
    Some(table(defs, rows))
}

/// The default table convertor (`NAME`, `CREATED AT`) for built-ins without a printer.
pub fn default_table(
    objects: &[Value],
    include_object: IncludeObject,
    now: DateTime<Utc>,
) -> Value {
    builtin_table("customresourcedefinitions", objects, include_object, now)
        .unwrap_or_else(|| table(Vec::new(), Vec::new()))
}
