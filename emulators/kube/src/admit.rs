//! Per-kind admission: defaulting and validation of built-ins (spec §11) and the CRD pipeline
//! for custom resources (spec §10). Admission only looks at the one request; what a write sets
//! off elsewhere (a CRD served, a namespace's ServiceAccount, cleanup) is the `controllers`'.

use crate::crdval;
use crate::error::{ApiError, ApiResult};
use crate::patch;
use crate::resources::{CrdVersion, ResourceInfo};
use crate::store::Inner;
use serde_json::{Value, json};

/// How admission treats fields a CR's schema does not know (the `fieldValidation` parameter).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum FieldValidation {
    Ignore,
    #[default]
    Warn,
    Strict,
}

const DNS_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const NAME_PART_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

fn is_name_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars().last().is_some_and(|c| c.is_ascii_alphanumeric())
}

/// A qualified name (`[prefix/]name`): the causes' messages when invalid.
fn qualified_name_errors(key: &str) -> Vec<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let mut out = Vec::new();
    if !is_name_part(name) {
        out.push(NAME_PART_MSG.to_string());
    }
    if let Some(p) = prefix
        && !(p.len() <= 253 && p.split('.').all(is_dns_label))
    {
        out.push(format!("prefix part {DNS_SUBDOMAIN_MSG}"));
    }
    out
}

/// ObjectMeta validation every kind gets: label keys and values, annotation keys, at most one
/// controller ownerReference (spec §4).
pub fn validate_metadata(res: &ResourceInfo, name: &str, obj: &Value) -> ApiResult<()> {
    let mut causes: Vec<(&str, String, String)> = Vec::new();
    // Typed ObjectMeta: a malformed map or list is a decoding error on the real server.
    for (field, want_map) in [
        ("labels", true),
        ("annotations", true),
        ("finalizers", false),
        ("ownerReferences", false),
    ] {
        let Some(v) = obj.pointer(&format!("/metadata/{field}")) else {
            continue;
        };
        let ok = if want_map {
            v.as_object()
                .is_some_and(|m| m.values().all(Value::is_string))
        } else {
            v.is_array()
        };
        if !ok {
            return Err(ApiError::bad_request(format!(
                "{} in version {:?} cannot be handled as a {}: json: cannot unmarshal metadata.{field}",
                res.kind, res.version, res.kind
            )));
        }
    }
    if let Some(labels) = obj.pointer("/metadata/labels").and_then(Value::as_object) {
        for (k, v) in labels {
            for m in qualified_name_errors(k) {
                causes.push((
                    "FieldValueInvalid",
                    "metadata.labels".into(),
                    format!("Invalid value: {k:?}: {m}"),
                ));
            }
            let v = v.as_str().unwrap_or("");
            if !(v.is_empty() || is_name_part(v)) {
                causes.push((
                    "FieldValueInvalid",
                    "metadata.labels".into(),
                    format!("Invalid value: {v:?}: {LABEL_VALUE_MSG}"),
                ));
            }
        }
    }
    if let Some(ann) = obj
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
    {
        for k in ann.keys() {
            for m in qualified_name_errors(k) {
                causes.push((
                    "FieldValueInvalid",
                    "metadata.annotations".into(),
                    format!("Invalid value: {k:?}: {m}"),
                ));
            }
        }
    }
    let controllers = obj
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter(|r| r.get("controller") == Some(&json!(true)))
                .count()
        })
        .unwrap_or(0);
    if controllers > 1 {
        causes.push((
            "FieldValueInvalid",
            "metadata.ownerReferences".into(),
            "Invalid value: []v1.OwnerReference{...}: Only one reference can have Controller set to true".into(),
        ));
    }
    if causes.is_empty() {
        return Ok(());
    }
    Err(ApiError::invalid(&res.kind, &res.group, name, &causes))
}

pub fn validate_name(res: &ResourceInfo, name: &str) -> ApiResult<()> {
    let (ok, msg) = if res.plural == "namespaces" || res.plural == "services" {
        (is_dns_label(name), DNS_LABEL_MSG)
    } else {
        (
            name.len() <= 253 && name.split('.').all(is_dns_label),
            DNS_SUBDOMAIN_MSG,
        )
    };
    if ok {
        return Ok(());
    }
    Err(ApiError::invalid(
        &res.kind,
        &res.group,
        name,
        &[(
            "FieldValueInvalid",
            "metadata.name".into(),
            format!("Invalid value: {name:?}: {msg}"),
        )],
    ))
}

/// Defaulting and validation for one write; returns `Warning` texts.
pub fn admit(
    inner: &Inner,
    res: &ResourceInfo,
    old: Option<&Value>,
    obj: &mut Value,
    validation: FieldValidation,
    status_only: bool,
) -> ApiResult<Vec<String>> {
    let obj_name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    validate_metadata(res, &obj_name, obj)?;
    if let Some(crd) = &res.crd {
        return admit_cr(res, crd, old, obj, validation, status_only);
    }
    patch::drop_nulls(obj);
    // Typed built-ins: `spec`, `status` and a pod template are objects (else a decoding error,
    // and the defaulting below could not index into them).
    for ptr in [
        "/spec",
        "/status",
        "/spec/template",
        "/spec/template/metadata",
        "/spec/template/spec",
        "/spec/selector",
        "/spec/selector/matchLabels",
    ] {
        if obj.pointer(ptr).is_some_and(|v| !v.is_object()) {
            return Err(ApiError::bad_request(format!(
                "{} in version {:?} cannot be handled as a {}: json: cannot unmarshal {} into an object",
                res.kind,
                res.version,
                res.kind,
                ptr.trim_start_matches('/').replace('/', ".")
            )));
        }
    }
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let invalid = |field: &str, msg: String| {
        ApiError::invalid(
            &res.kind,
            &res.group,
            &name,
            &[("FieldValueInvalid", field.to_string(), msg)],
        )
    };
    match (res.group.as_str(), res.kind.as_str()) {
        ("", "Namespace") => {
            if old.is_none() {
                obj["spec"] = json!({"finalizers": ["kubernetes"]});
                obj["status"] = json!({"phase": "Active"});
            } else if let Some(o) = old {
                obj["spec"] = o.get("spec").cloned().unwrap_or(json!({}));
                obj["status"] = o.get("status").cloned().unwrap_or(json!({}));
            }
            let labels = obj.pointer_mut("/metadata").and_then(Value::as_object_mut);
            if let Some(md) = labels {
                let l = md.entry("labels").or_insert(json!({}));
                l["kubernetes.io/metadata.name"] = json!(name);
            }
        }
        ("", "Secret") => {
            if obj
                .get("type")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                obj["type"] = json!("Opaque");
            }
            if obj.get("data").is_some_and(|d| !d.is_object()) {
                return Err(invalid(
                    "data",
                    "Invalid value: must be a map of strings".into(),
                ));
            }
            if let Some(Value::Object(sd)) =
                obj.as_object_mut().and_then(|m| m.remove("stringData"))
            {
                use crate::b64::encode;
                for (k, v) in sd {
                    obj["data"][k] = json!(encode(v.as_str().unwrap_or("").as_bytes()));
                }
            }
            if let Some(Value::Object(d)) = obj.get("data") {
                for (k, v) in d {
                    if !v.as_str().is_some_and(crate::b64::valid) {
                        return Err(invalid(
                            &format!("data[{k}]"),
                            "Invalid value: \"<secret contents redacted>\": illegal base64 data"
                                .into(),
                        ));
                    }
                }
            }
            if let Some(o) = old
                && o.get("type") != obj.get("type")
            {
                return Err(invalid("type", "Invalid value: field is immutable".into()));
            }
        }
        ("", "ConfigMap") => {
            if let Some(o) = old
                && o.get("immutable") == Some(&json!(true))
                && (o.get("data") != obj.get("data")
                    || o.get("binaryData") != obj.get("binaryData"))
            {
                return Err(ApiError::invalid(
                    &res.kind,
                    "",
                    &name,
                    &[(
                        "FieldValueForbidden",
                        "data".into(),
                        "Forbidden: field is immutable when `immutable` is set".into(),
                    )],
                ));
            }
        }
        ("", "Service") => default_service(inner, old, obj, &invalid)?,
        ("apps", kind @ ("Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet")) => {
            default_workload(kind, obj);
            validate_selector(res, &name, old, obj)?;
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => admit_crd(obj, old, &name)?,
        ("events.k8s.io", "Event") if old.is_none() => validate_new_event(res, &name, obj)?,
        ("", "Event") | ("events.k8s.io", "Event") => {}
        _ => {}
    }
    Ok(Vec::new())
}

fn admit_cr(
    res: &ResourceInfo,
    crd: &CrdVersion,
    old: Option<&Value>,
    obj: &mut Value,
    validation: FieldValidation,
    status_only: bool,
) -> ApiResult<Vec<String>> {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let Some(c) = &crd.compiled else {
        return Ok(vec![]);
    };
    let pruned = crdval::prune(c, obj);
    let mut warnings = Vec::new();
    if !pruned.is_empty() {
        match validation {
            FieldValidation::Strict => {
                let list: Vec<String> = pruned
                    .iter()
                    .map(|p| format!("unknown field {p:?}"))
                    .collect();
                return Err(ApiError::bad_request(format!(
                    "{} in version {:?} cannot be handled as a {}: strict decoding error: {}",
                    res.kind,
                    res.version,
                    res.kind,
                    list.join(", ")
                )));
            }
            FieldValidation::Warn => {
                warnings.extend(pruned.iter().map(|p| format!("unknown field {p:?}")))
            }
            FieldValidation::Ignore => {}
        }
    }
    crdval::apply_defaults(c, obj);
    let causes = crdval::validate(c, obj, old, status_only);
    if !causes.is_empty() {
        let refs: Vec<(&str, String, String)> = causes
            .iter()
            .map(|(r, f, m)| (r.as_str(), f.clone(), m.clone()))
            .collect();
        return Err(ApiError::invalid(&res.kind, &res.group, &name, &refs));
    }
    Ok(warnings)
}

fn default_service(
    inner: &Inner,
    old: Option<&Value>,
    obj: &mut Value,
    invalid: &dyn Fn(&str, String) -> ApiError,
) -> ApiResult<()> {
    let spec = obj
        .as_object_mut()
        .map(|m| m.entry("spec").or_insert(json!({})));
    let Some(spec) = spec else { return Ok(()) };
    if spec.get("type").is_none() {
        spec["type"] = json!("ClusterIP");
    }
    if spec.get("sessionAffinity").is_none() {
        spec["sessionAffinity"] = json!("None");
    }
    let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
    match old.and_then(|o| o.pointer("/spec/clusterIP")).cloned() {
        Some(ip) => {
            if spec.get("clusterIP").is_some_and(|c| *c != ip) {
                return Err(invalid(
                    "spec.clusterIP",
                    format!("Invalid value: {}: field is immutable", spec["clusterIP"]),
                ));
            }
            spec["clusterIP"] = ip.clone();
            spec["clusterIPs"] = json!([ip]);
        }
        None if !headless && spec.get("clusterIP").is_none() => {
            let n = inner.rv;
            let ip = format!("10.96.{}.{}", (n / 250) % 250, n % 250 + 2);
            spec["clusterIP"] = json!(ip);
            spec["clusterIPs"] = json!([ip]);
        }
        None => {
            let ip = spec["clusterIP"].clone();
            spec["clusterIPs"] = json!([ip]);
        }
    }
    spec["ipFamilies"] = json!(["IPv4"]);
    spec["ipFamilyPolicy"] = json!("SingleStack");
    if spec.get("internalTrafficPolicy").is_none() {
        spec["internalTrafficPolicy"] = json!("Cluster");
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter(|p| p.is_object()) {
            if p.get("protocol").is_none() {
                p["protocol"] = json!("TCP");
            }
            if p.get("targetPort").is_none() {
                p["targetPort"] = p.get("port").cloned().unwrap_or(json!(0));
            }
        }
    }
    if obj.get("status").is_none() {
        obj["status"] = json!({"loadBalancer": {}});
    }
    Ok(())
}

fn default_pod_template(tpl: &mut Value) {
    let Some(spec) = tpl.get_mut("spec") else {
        return;
    };
    for (k, v) in [
        ("restartPolicy", json!("Always")),
        ("terminationGracePeriodSeconds", json!(30)),
        ("dnsPolicy", json!("ClusterFirst")),
        ("schedulerName", json!("default-scheduler")),
        ("securityContext", json!({})),
    ] {
        if spec.get(k).is_none() {
            spec[k] = v;
        }
    }
    for list in ["containers", "initContainers"] {
        if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs.iter_mut().filter(|c| c.is_object()) {
                let image = c.get("image").and_then(Value::as_str).unwrap_or("");
                let last = image.rsplit('/').next().unwrap_or("");
                let latest = !last.contains(':') || last.ends_with(":latest");
                let latest = latest && !image.contains('@');
                for (k, v) in [
                    (
                        "imagePullPolicy",
                        json!(if latest { "Always" } else { "IfNotPresent" }),
                    ),
                    ("terminationMessagePath", json!("/dev/termination-log")),
                    ("terminationMessagePolicy", json!("File")),
                    ("resources", json!({})),
                ] {
                    if c.get(k).is_none() {
                        c[k] = v;
                    }
                }
                if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
                    for p in ports.iter_mut().filter(|p| p.is_object()) {
                        if p.get("protocol").is_none() {
                            p["protocol"] = json!("TCP");
                        }
                    }
                }
            }
        }
    }
}

fn default_workload(kind: &str, obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec") else {
        return;
    };
    if kind != "DaemonSet" && spec.get("replicas").is_none() {
        spec["replicas"] = json!(1);
    }
    if kind != "ReplicaSet" && spec.get("revisionHistoryLimit").is_none() {
        spec["revisionHistoryLimit"] = json!(10);
    }
    match kind {
        "Deployment" => {
            if spec.get("strategy").is_none() {
                spec["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}});
            }
            if spec.get("progressDeadlineSeconds").is_none() {
                spec["progressDeadlineSeconds"] = json!(600);
            }
        }
        "StatefulSet" => {
            if spec.get("podManagementPolicy").is_none() {
                spec["podManagementPolicy"] = json!("OrderedReady");
            }
            if spec.get("updateStrategy").is_none() {
                spec["updateStrategy"] =
                    json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}});
            }
            if spec.get("persistentVolumeClaimRetentionPolicy").is_none() {
                spec["persistentVolumeClaimRetentionPolicy"] =
                    json!({"whenDeleted": "Retain", "whenScaled": "Retain"});
            }
        }
        "DaemonSet" if spec.get("updateStrategy").is_none() => {
            spec["updateStrategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}});
        }
        _ => {}
    }
    if let Some(t) = spec.get_mut("template") {
        if t.get("metadata").is_none() {
            t["metadata"] = json!({});
        }
        default_pod_template(t);
    }
}

/// A label map as upstream's field errors print a bad value: Go's JSON (sorted keys), `null`
/// when absent.
fn go_map(labels: Option<&Value>) -> String {
    let sorted: Option<std::collections::BTreeMap<&String, &Value>> = labels
        .and_then(Value::as_object)
        .map(|m| m.iter().collect());
    serde_json::to_string(&sorted).unwrap_or_default()
}

fn validate_selector(
    res: &ResourceInfo,
    name: &str,
    old: Option<&Value>,
    obj: &Value,
) -> ApiResult<()> {
    let sel = obj.pointer("/spec/selector");
    let labels = obj.pointer("/spec/template/metadata/labels");
    let Some(sel) = sel else {
        // Upstream goes on with the empty selector, which matches no template labels either.
        return Err(ApiError::invalid(
            &res.kind,
            &res.group,
            name,
            &[
                (
                    "FieldValueRequired",
                    "spec.selector".into(),
                    "Required value".into(),
                ),
                (
                    "FieldValueInvalid",
                    "spec.template.metadata.labels".into(),
                    format!(
                        "Invalid value: {}: `selector` does not match template `labels`",
                        go_map(labels)
                    ),
                ),
            ],
        ));
    };
    let matches = sel
        .get("matchLabels")
        .and_then(Value::as_object)
        .is_none_or(|ml| {
            ml.iter()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        });
    if !matches {
        return Err(ApiError::invalid(
            &res.kind,
            &res.group,
            name,
            &[(
                "FieldValueInvalid",
                "spec.template.metadata.labels".into(),
                format!(
                    "Invalid value: {}: `selector` does not match template `labels`",
                    go_map(labels)
                ),
            )],
        ));
    }
    if let Some(o) = old
        && o.pointer("/spec/selector") != Some(sel)
        && res.kind != "ReplicaSet"
    {
        return Err(ApiError::invalid(
            &res.kind,
            &res.group,
            name,
            &[(
                "FieldValueInvalid",
                "spec.selector".into(),
                format!(
                    "Invalid value: v1.LabelSelector{{MatchLabels:{}}}: field is immutable",
                    go_map(sel.get("matchLabels"))
                ),
            )],
        ));
    }
    Ok(())
}

fn admit_crd(obj: &mut Value, old: Option<&Value>, name: &str) -> ApiResult<()> {
    for ptr in ["/spec", "/spec/names"] {
        if obj.pointer(ptr).is_some_and(|v| !v.is_object()) {
            return Err(ApiError::bad_request(format!(
                "CustomResourceDefinition in version \"v1\" cannot be handled as a CustomResourceDefinition: json: cannot unmarshal {} into an object",
                ptr.trim_start_matches('/').replace('/', ".")
            )));
        }
    }
    let kind = "CustomResourceDefinition";
    let group_ = "apiextensions.k8s.io";
    let spec = obj.get_mut("spec").ok_or_else(|| {
        ApiError::invalid(
            kind,
            group_,
            name,
            &[("FieldValueRequired", "spec".into(), "Required value".into())],
        )
    })?;
    let g = spec
        .get("group")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let names = spec.get_mut("names").ok_or_else(|| {
        ApiError::invalid(
            kind,
            group_,
            name,
            &[(
                "FieldValueRequired",
                "spec.names".into(),
                "Required value".into(),
            )],
        )
    })?;
    let plural = names
        .get("plural")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let k = names
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if names.get("singular").is_none() {
        names["singular"] = json!(k.to_lowercase());
    }
    if names.get("listKind").is_none() {
        names["listKind"] = json!(format!("{k}List"));
    }
    if name != format!("{plural}.{g}") {
        return Err(ApiError::invalid(
            kind,
            group_,
            name,
            &[(
                "FieldValueInvalid",
                "metadata.name".into(),
                format!("Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"),
            )],
        ));
    }
    if spec.get("conversion").is_none() {
        spec["conversion"] = json!({"strategy": "None"});
    }
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let storage = versions
        .iter()
        .filter(|v| v.get("storage") == Some(&json!(true)))
        .count();
    if storage != 1 {
        return Err(ApiError::invalid(
            kind,
            group_,
            name,
            &[(
                "FieldValueInvalid",
                "spec.versions".into(),
                format!(
                    "Invalid value: {}: must have exactly one version marked as storage version",
                    json!(
                        versions
                            .iter()
                            .map(|v| v.get("name").cloned().unwrap_or(Value::Null))
                            .collect::<Vec<_>>()
                    )
                ),
            )],
        ));
    }
    for v in versions.iter() {
        if let Some(s) = v.pointer("/schema/openAPIV3Schema")
            && let Err(causes) = crdval::compile(s)
        {
            let causes: Vec<(&str, String, String)> = causes
                .iter()
                .map(|(r, f, m)| (r.as_str(), f.clone(), m.clone()))
                .collect();
            return Err(ApiError::invalid(kind, group_, name, &causes));
        }
    }
    if let Some(o) = old {
        obj["status"] = o.get("status").cloned().unwrap_or(json!({}));
    }
    Ok(())
}

/// Creation through events.k8s.io/v1 is validated strictly (apiserver `ValidateEventCreate`);
/// `obj` is already in the stored core form, causes use the events.k8s.io field names.
fn validate_new_event(res: &ResourceInfo, name: &str, obj: &Value) -> ApiResult<()> {
    let s = |k: &str| obj.get(k).and_then(Value::as_str).unwrap_or("");
    let mut causes: Vec<(&str, String, String)> = Vec::new();
    if obj.get("eventTime").is_none_or(Value::is_null) {
        causes.push((
            "FieldValueRequired",
            "eventTime".into(),
            "Required value".into(),
        ));
    }
    let ty = s("type");
    if ty != "Normal" && ty != "Warning" {
        causes.push((
            "FieldValueInvalid",
            "type".into(),
            format!("Invalid value: \"\": has invalid value: {ty}"),
        ));
    }
    let controller = s("reportingComponent");
    if controller.is_empty() {
        causes.push((
            "FieldValueRequired",
            "reportingController".into(),
            "Required value".into(),
        ));
    } else {
        for m in qualified_name_errors(controller) {
            causes.push((
                "FieldValueInvalid",
                "reportingController".into(),
                format!("Invalid value: {controller:?}: {m}"),
            ));
        }
    }
    for (field, stored, limit) in [
        ("reportingInstance", "reportingInstance", 128),
        ("action", "action", 128),
        ("reason", "reason", 128),
    ] {
        let v = s(stored);
        if v.is_empty() {
            causes.push(("FieldValueRequired", field.into(), "Required value".into()));
        } else if v.len() > limit {
            causes.push((
                "FieldValueInvalid",
                field.into(),
                format!("Invalid value: \"\": can have at most {limit} characters"),
            ));
        }
    }
    if s("message").len() > 1024 {
        causes.push((
            "FieldValueInvalid",
            "note".into(),
            "Invalid value: \"\": can have at most 1024 characters".into(),
        ));
    }
    let ns = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let regarding_ns = obj
        .pointer("/involvedObject/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    // Events about cluster-scoped objects live in `default` (or `kube-system`). The real check
    // for events with eventTime does not compare non-empty namespaces (unverified).
    if regarding_ns.is_empty() && ns != "default" && ns != "kube-system" {
        causes.push((
            "FieldValueInvalid",
            "regarding.namespace".into(),
            format!("Invalid value: {regarding_ns:?}: does not match event.namespace"),
        ));
    }
    if causes.is_empty() {
        return Ok(());
    }
    Err(ApiError::invalid(&res.kind, &res.group, name, &causes))
}
