//! A compact, hand-written subset of the built-in kinds' OpenAPI schemas: enough for
//! `kubectl explain` on the kinds an operator test uses, with the real strategic-merge patch
//! metadata on every list declared (fields not declared here carry no patch metadata, which
//! kubectl treats as "replace", the same as its compiled-in types for scalars and maps).

use std::collections::BTreeMap;

use serde_json::{Value, json};

const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1";

fn r(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn s(description: &str) -> Value {
    json!({"type": "string", "description": description})
}

fn int(description: &str) -> Value {
    json!({"type": "integer", "format": "int32", "description": description})
}

fn boolean(description: &str) -> Value {
    json!({"type": "boolean", "description": description})
}

fn string_map(description: &str) -> Value {
    json!({"type": "object", "description": description, "additionalProperties": {"type": "string", "default": ""}})
}

fn string_list(description: &str) -> Value {
    json!({"type": "array", "description": description, "items": {"type": "string", "default": ""}, "x-kubernetes-list-type": "atomic"})
}

fn reference(name: &str, description: &str) -> Value {
    json!({"allOf": [r(name)], "default": {}, "description": description})
}

fn time(description: &str) -> Value {
    json!({"type": "string", "format": "date-time", "description": description})
}

fn int_or_string(description: &str) -> Value {
    json!({"x-kubernetes-int-or-string": true, "description": description})
}

/// A list of objects merged by `key` (the real `patchStrategy:"merge" patchMergeKey:key`).
fn merge_list(item: &str, key: &str, description: &str) -> Value {
    json!({
        "type": "array", "description": description,
        "items": {"allOf": [r(item)], "default": {}},
        "x-kubernetes-list-map-keys": [key], "x-kubernetes-list-type": "map",
        "x-kubernetes-patch-merge-key": key, "x-kubernetes-patch-strategy": "merge",
    })
}

fn atomic_list(item: &str, description: &str) -> Value {
    json!({"type": "array", "description": description, "items": {"allOf": [r(item)], "default": {}}, "x-kubernetes-list-type": "atomic"})
}

fn object(description: &str, properties: Value, required: &[&str]) -> Value {
    let mut o = json!({"type": "object", "description": description, "properties": properties});
    if !required.is_empty() {
        o["required"] = json!(required);
    }
    o
}

/// The published `apiVersion` property.
pub(crate) fn api_version_field() -> Value {
    s(
        "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources",
    )
}

/// The published `kind` property.
pub(crate) fn kind_field() -> Value {
    s(
        "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
    )
}

fn top_level(
    group: &str,
    version: &str,
    kind: &str,
    description: &str,
    mut properties: Value,
) -> Value {
    properties["apiVersion"] = api_version_field();
    properties["kind"] = kind_field();
    properties["metadata"] = reference(
        &format!("{META}.ObjectMeta"),
        "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
    );
    let mut o = object(description, properties, &[]);
    o["x-kubernetes-group-version-kind"] =
        json!([{"group": group, "version": version, "kind": kind}]);
    o
}

/// Schemas every GV document carries (meta types).
pub(crate) fn common_schemas() -> BTreeMap<String, Value> {
    let mut m = BTreeMap::new();
    m.insert(format!("{META}.ObjectMeta"), object(
        "ObjectMeta is metadata that all persisted resources must have, which includes all objects users must create.",
        json!({
            "annotations": string_map("Annotations is an unstructured key value map stored with a resource that may be set by external tools to store and retrieve arbitrary metadata."),
            "creationTimestamp": time("CreationTimestamp is a timestamp representing the server time when this object was created."),
            "deletionGracePeriodSeconds": json!({"type": "integer", "format": "int64", "description": "Number of seconds allowed for this object to gracefully terminate before it will be removed from the system."}),
            "deletionTimestamp": time("DeletionTimestamp is RFC 3339 date and time at which this resource will be deleted."),
            "finalizers": json!({"type": "array", "description": "Must be empty before the object is deleted from the registry.", "items": {"type": "string", "default": ""}, "x-kubernetes-list-type": "set", "x-kubernetes-patch-strategy": "merge"}),
            "generateName": s("GenerateName is an optional prefix, used by the server, to generate a unique name ONLY IF the Name field has not been provided."),
            "generation": json!({"type": "integer", "format": "int64", "description": "A sequence number representing a specific generation of the desired state."}),
            "labels": string_map("Map of string keys and values that can be used to organize and categorize (scope and select) objects."),
            "managedFields": json!({"type": "array", "description": "ManagedFields maps workflow-id and version to the set of fields that are managed by that workflow.", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}, "x-kubernetes-list-type": "atomic"}),
            "name": s("Name must be unique within a namespace."),
            "namespace": s("Namespace defines the space within which each name must be unique."),
            "ownerReferences": merge_list(&format!("{META}.OwnerReference"), "uid", "List of objects depended by this object."),
            "resourceVersion": s("An opaque value that represents the internal version of this object."),
            "selfLink": s("Deprecated: selfLink is a legacy read-only field that is no longer populated by the system."),
            "uid": s("UID is the unique in time and space value for this object."),
        }),
        &[],
    ));
    m.insert(format!("{META}.OwnerReference"), object(
        "OwnerReference contains enough information to let you identify an owning object.",
        json!({
            "apiVersion": s("API version of the referent."),
            "blockOwnerDeletion": boolean("If true, AND if the owner has the \"foregroundDeletion\" finalizer, then the owner cannot be deleted from the key-value store until this reference is removed."),
            "controller": boolean("If true, this reference points to the managing controller."),
            "kind": s("Kind of the referent."),
            "name": s("Name of the referent."),
            "uid": s("UID of the referent."),
        }),
        &["apiVersion", "kind", "name", "uid"],
    ));
    m.insert(format!("{META}.ListMeta"), object(
        "ListMeta describes metadata that synthetic resources must have, including lists and various status objects.",
        json!({"continue": s("continue may be set if the user set a limit on the number of items returned."),
               "remainingItemCount": json!({"type": "integer", "format": "int64", "description": "remainingItemCount is the number of subsequent items in the list."}),
               "resourceVersion": s("String that identifies the server's internal version of this object."),
               "selfLink": s("Deprecated.")}),
        &[],
    ));
    m.insert(format!("{META}.LabelSelector"), object(
        "A label selector is a label query over a set of resources.",
        json!({"matchExpressions": atomic_list(&format!("{META}.LabelSelectorRequirement"), "matchExpressions is a list of label selector requirements. The requirements are ANDed."),
               "matchLabels": string_map("matchLabels is a map of {key,value} pairs.")}),
        &[],
    ));
    m.insert(format!("{META}.LabelSelectorRequirement"), object(
        "A label selector requirement is a selector that contains values, a key, and an operator that relates the key and values.",
        json!({"key": s("key is the label key that the selector applies to."),
               "operator": s("operator represents a key's relationship to a set of values. Valid operators are In, NotIn, Exists and DoesNotExist."),
               "values": string_list("values is an array of string values.")}),
        &["key", "operator"],
    ));
    m.insert(format!("{META}.Condition"), object(
        "Condition contains details for one aspect of the current state of this API Resource.",
        json!({"lastTransitionTime": time("lastTransitionTime is the last time the condition transitioned from one status to another."),
               "message": s("message is a human readable message indicating details about the transition."),
               "observedGeneration": json!({"type": "integer", "format": "int64", "description": "observedGeneration represents the .metadata.generation that the condition was set based upon."}),
               "reason": s("reason contains a programmatic identifier indicating the reason for the condition's last transition."),
               "status": s("status of the condition, one of True, False, Unknown."),
               "type": s("type of condition in CamelCase or in foo.example.com/CamelCase.")}),
        &["type", "status", "lastTransitionTime", "reason", "message"],
    ));
    m.insert(format!("{META}.Patch"), json!({"type": "object", "description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body."}));
    m.insert(format!("{META}.Status"), object(
        "Status is a return value for calls that don't return other objects.",
        json!({"apiVersion": api_version_field(), "code": int("Suggested HTTP return code for this status, 0 if not set."),
               "details": json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true, "description": "Extended data associated with the reason."}),
               "kind": kind_field(), "message": s("A human-readable description of the status of this operation."),
               "metadata": reference(&format!("{META}.ListMeta"), "Standard list metadata."),
               "reason": s("A machine-readable description of why this operation is in the \"Failure\" status."),
               "status": s("Status of the operation. One of: \"Success\" or \"Failure\".")}),
        &[],
    ));
    m.insert("io.k8s.api.autoscaling.v1.Scale".into(), {
        let mut o = object(
            "Scale represents a scaling request for a resource.",
            json!({"apiVersion": api_version_field(), "kind": kind_field(),
                   "metadata": reference(&format!("{META}.ObjectMeta"), "Standard object metadata."),
                   "spec": object("ScaleSpec describes the attributes of a scale subresource.", json!({"replicas": int("replicas is the desired number of instances for the scaled object.")}), &[]),
                   "status": object("ScaleStatus represents the current status of a scale subresource.", json!({"replicas": int("replicas is the actual number of observed instances of the scaled object."), "selector": s("selector is the label query over pods that should match the replicas count.")}), &["replicas"])}),
            &[],
        );
        o["x-kubernetes-group-version-kind"] = json!([{"group": "autoscaling", "version": "v1", "kind": "Scale"}]);
        o
    });
    m
}

fn core_nested(m: &mut BTreeMap<String, Value>) {
    const CORE: &str = "io.k8s.api.core.v1";
    m.insert(format!("{CORE}.PodTemplateSpec"), object(
        "PodTemplateSpec describes the data a pod should have when created from a template",
        json!({"metadata": reference(&format!("{META}.ObjectMeta"), "Standard object's metadata."),
               "spec": reference(&format!("{CORE}.PodSpec"), "Specification of the desired behavior of the pod.")}),
        &[],
    ));
    m.insert(format!("{CORE}.PodSpec"), object(
        "PodSpec is a description of a pod.",
        json!({
            "containers": merge_list(&format!("{CORE}.Container"), "name", "List of containers belonging to the pod. Containers cannot currently be added or removed. There must be at least one container in a Pod. Cannot be updated."),
            "imagePullSecrets": merge_list(&format!("{CORE}.LocalObjectReference"), "name", "ImagePullSecrets is an optional list of references to secrets in the same namespace to use for pulling any of the images used by this PodSpec."),
            "initContainers": merge_list(&format!("{CORE}.Container"), "name", "List of initialization containers belonging to the pod."),
            "nodeName": s("NodeName indicates in which node this pod is scheduled."),
            "nodeSelector": string_map("NodeSelector is a selector which must be true for the pod to fit on a node."),
            "restartPolicy": s("Restart policy for all containers within the pod. One of Always, OnFailure, Never."),
            "serviceAccountName": s("ServiceAccountName is the name of the ServiceAccount to use to run this pod."),
            "terminationGracePeriodSeconds": json!({"type": "integer", "format": "int64", "description": "Optional duration in seconds the pod needs to terminate gracefully."}),
            "volumes": {
                "type": "array", "description": "List of volumes that can be mounted by containers belonging to the pod.",
                "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "x-kubernetes-list-map-keys": ["name"], "x-kubernetes-list-type": "map",
                "x-kubernetes-patch-merge-key": "name", "x-kubernetes-patch-strategy": "merge,retainKeys",
            },
        }),
        &["containers"],
    ));
    m.insert(format!("{CORE}.Container"), object(
        "A single application container that you want to run within a pod.",
        json!({
            "args": string_list("Arguments to the entrypoint."),
            "command": string_list("Entrypoint array. Not executed within a shell."),
            "env": merge_list(&format!("{CORE}.EnvVar"), "name", "List of environment variables to set in the container. Cannot be updated."),
            "image": s("Container image name."),
            "imagePullPolicy": s("Image pull policy. One of Always, Never, IfNotPresent."),
            "name": s("Name of the container specified as a DNS_LABEL. Each container in a pod must have a unique name (DNS_LABEL). Cannot be updated."),
            "ports": {
                "type": "array", "description": "List of ports to expose from the container.",
                "items": {"allOf": [r(&format!("{CORE}.ContainerPort"))], "default": {}},
                "x-kubernetes-list-map-keys": ["containerPort", "protocol"], "x-kubernetes-list-type": "map",
                "x-kubernetes-patch-merge-key": "containerPort", "x-kubernetes-patch-strategy": "merge",
            },
            "resources": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "description": "Compute Resources required by this container."},
            "volumeMounts": merge_list(&format!("{CORE}.VolumeMount"), "mountPath", "Pod volumes to mount into the container's filesystem. Cannot be updated."),
        }),
        &["name"],
    ));
    m.insert(format!("{CORE}.EnvVar"), object(
        "EnvVar represents an environment variable present in a Container.",
        json!({"name": s("Name of the environment variable."), "value": s("Variable references $(VAR_NAME) are expanded using the previously defined environment variables in the container."),
               "valueFrom": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "description": "Source for the environment variable's value."}}),
        &["name"],
    ));
    m.insert(format!("{CORE}.ContainerPort"), object(
        "ContainerPort represents a network port in a single container.",
        json!({"containerPort": int("Number of port to expose on the pod's IP address."), "name": s("If specified, this must be an IANA_SVC_NAME and unique within the pod."),
               "protocol": s("Protocol for port. Must be UDP, TCP, or SCTP. Defaults to \"TCP\".")}),
        &["containerPort"],
    ));
    m.insert(format!("{CORE}.VolumeMount"), object(
        "VolumeMount describes a mounting of a Volume within a container.",
        json!({"mountPath": s("Path within the container at which the volume should be mounted."), "name": s("This must match the Name of a Volume."),
               "readOnly": boolean("Mounted read-only if true, read-write otherwise (false or unspecified).")}),
        &["name", "mountPath"],
    ));
    m.insert(format!("{CORE}.LocalObjectReference"), object(
        "LocalObjectReference contains enough information to let you locate the referenced object inside the same namespace.",
        json!({"name": s("Name of the referent.")}),
        &[],
    ));
    m.insert(format!("{CORE}.ObjectReference"), object(
        "ObjectReference contains enough information to let you inspect or modify the referred object.",
        json!({"apiVersion": s("API version of the referent."), "fieldPath": s("If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement."),
               "kind": s("Kind of the referent."), "name": s("Name of the referent."), "namespace": s("Namespace of the referent."),
               "resourceVersion": s("Specific resourceVersion to which this reference is made, if any."), "uid": s("UID of the referent.")}),
        &[],
    ));
    m.insert(format!("{CORE}.ServicePort"), object(
        "ServicePort contains information on service's port.",
        json!({"name": s("The name of this port within the service."), "nodePort": int("The port on each node on which this service is exposed when type is NodePort or LoadBalancer."),
               "port": int("The port that will be exposed by this service."), "protocol": s("The IP protocol for this port. Supports \"TCP\", \"UDP\", and \"SCTP\". Default is TCP."),
               "targetPort": int_or_string("Number or name of the port to access on the pods targeted by the service.")}),
        &["port"],
    ));
}

fn workload_condition(m: &mut BTreeMap<String, Value>, name: &str) {
    m.insert(name.to_string(), object(
        "Describes the state of a workload at a certain point.",
        json!({"lastTransitionTime": time("Last time the condition transitioned from one status to another."),
               "lastUpdateTime": time("The last time this condition was updated."),
               "message": s("A human readable message indicating details about the transition."),
               "reason": s("The reason for the condition's last transition."),
               "status": s("Status of the condition, one of True, False, Unknown."),
               "type": s("Type of condition.")}),
        &["type", "status"],
    ));
}

fn conditions(item: &str) -> Value {
    merge_list(
        item,
        "type",
        "Represents the latest available observations of the object's current state.",
    )
}

/// Built-in schemas for one GV document: its kinds plus every nested type they reference.
pub fn builtin_schemas(group: &str, version: &str) -> BTreeMap<String, Value> {
    let mut m = BTreeMap::new();
    if matches!(group, "" | "apps" | "events.k8s.io") {
        core_nested(&mut m);
    }
    const CORE: &str = "io.k8s.api.core.v1";
    const APPS: &str = "io.k8s.api.apps.v1";
    let pod_template = || {
        reference(
            &format!("{CORE}.PodTemplateSpec"),
            "Template describes the pods that will be created.",
        )
    };
    let selector = || {
        reference(
            &format!("{META}.LabelSelector"),
            "Label selector for pods. It must match the pod template's labels.",
        )
    };
    match (group, version) {
        ("", "v1") => {
            m.insert(format!("{CORE}.Namespace"), top_level("", "v1", "Namespace", "Namespace provides a scope for Names. Use of multiple namespaces is optional.", json!({
                "spec": object("NamespaceSpec describes the attributes on a Namespace.", json!({"finalizers": string_list("Finalizers is an opaque list of values that must be empty to permanently remove object from storage.")}), &[]),
                "status": object("NamespaceStatus is information about the current status of a Namespace.", json!({"phase": s("Phase is the current lifecycle phase of the namespace.")}), &[]),
            })));
            m.insert(format!("{CORE}.ConfigMap"), top_level("", "v1", "ConfigMap", "ConfigMap holds configuration data for pods to consume.", json!({
                "binaryData": json!({"type": "object", "description": "BinaryData contains the binary data.", "additionalProperties": {"type": "string", "format": "byte"}}),
                "data": string_map("Data contains the configuration data."),
                "immutable": boolean("Immutable, if set to true, ensures that data stored in the ConfigMap cannot be updated (only object metadata can be modified)."),
            })));
            m.insert(format!("{CORE}.Secret"), top_level("", "v1", "Secret", "Secret holds secret data of a certain type. The total bytes of the values in the Data field must be less than MaxSecretSize bytes.", json!({
                "data": json!({"type": "object", "description": "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'. The serialized form of the secret data is a base64 encoded string.", "additionalProperties": {"type": "string", "format": "byte"}}),
                "immutable": boolean("Immutable, if set to true, ensures that data stored in the Secret cannot be updated (only object metadata can be modified)."),
                "stringData": string_map("stringData allows specifying non-binary secret data in string form. It is provided as a write-only input field for convenience."),
                "type": s("Used to facilitate programmatic handling of secret data."),
            })));
            m.insert(format!("{CORE}.ServiceAccount"), top_level("", "v1", "ServiceAccount", "ServiceAccount binds together: * a name, understood by users, and perhaps by peripheral systems, for an identity * a principal that can be authenticated and authorized * a set of secrets", json!({
                "automountServiceAccountToken": boolean("AutomountServiceAccountToken indicates whether pods running as this service account should have an API token automatically mounted."),
                "imagePullSecrets": atomic_list(&format!("{CORE}.LocalObjectReference"), "ImagePullSecrets is a list of references to secrets in the same namespace to use for pulling any images in pods that reference this ServiceAccount."),
                "secrets": merge_list(&format!("{CORE}.ObjectReference"), "name", "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."),
            })));
            m.insert(format!("{CORE}.Service"), top_level("", "v1", "Service", "Service is a named abstraction of software service (for example, mysql) consisting of local port (for example 3306) that the proxy listens on, and the selector that determines which pods will answer requests sent through the proxy.", json!({
                "spec": object("ServiceSpec describes the attributes that a user creates on a service.", json!({
                    "clusterIP": s("clusterIP is the IP address of the service and is usually assigned randomly."),
                    "clusterIPs": string_list("ClusterIPs is a list of IP addresses assigned to this service."),
                    "externalIPs": string_list("externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
                    "externalName": s("externalName is the external reference that discovery mechanisms will return as an alias for this service (e.g. a DNS CNAME record)."),
                    "ports": {
                        "type": "array", "description": "The list of ports that are exposed by this service.",
                        "items": {"allOf": [r(&format!("{CORE}.ServicePort"))], "default": {}},
                        "x-kubernetes-list-map-keys": ["port", "protocol"], "x-kubernetes-list-type": "map",
                        "x-kubernetes-patch-merge-key": "port", "x-kubernetes-patch-strategy": "merge",
                    },
                    "selector": string_map("Route service traffic to pods with label keys and values matching this selector."),
                    "type": s("type determines how the Service is exposed. Defaults to ClusterIP. Valid options are ExternalName, ClusterIP, NodePort, and LoadBalancer."),
                }), &[]),
                "status": object("ServiceStatus represents the current status of a service.", json!({"loadBalancer": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "description": "LoadBalancer contains the current status of the load-balancer, if one is present."}}), &[]),
            })));
            m.insert(format!("{CORE}.Pod"), top_level("", "v1", "Pod", "Pod is a collection of containers that can run on a host. This resource is created by clients and scheduled onto hosts.", json!({
                "spec": reference(&format!("{CORE}.PodSpec"), "Specification of the desired behavior of the pod."),
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "description": "Most recently observed status of the pod."},
            })));
            m.insert(format!("{CORE}.Event"), top_level("", "v1", "Event", "Event is a report of an event somewhere in the cluster.", json!({
                "count": int("The number of times this event has occurred."),
                "eventTime": json!({"type": "string", "format": "date-time", "description": "Time when this Event was first observed."}),
                "firstTimestamp": time("The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)"),
                "involvedObject": reference(&format!("{CORE}.ObjectReference"), "The object that this event is about."),
                "lastTimestamp": time("The time at which the most recent occurrence of this event was recorded."),
                "message": s("A human-readable description of the status of this operation."),
                "reason": s("This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
                "reportingComponent": s("Name of the controller that emitted this Event, e.g. `kubernetes.io/kubelet`."),
                "reportingInstance": s("ID of the controller instance, e.g. `kubelet-xyzf`."),
                "type": s("Type of this event (Normal, Warning), new types could be added in the future"),
            })));
        }
        ("apps", "v1") => {
            workload_condition(&mut m, &format!("{APPS}.DeploymentCondition"));
            workload_condition(&mut m, &format!("{APPS}.StatefulSetCondition"));
            workload_condition(&mut m, &format!("{APPS}.DaemonSetCondition"));
            workload_condition(&mut m, &format!("{APPS}.ReplicaSetCondition"));
            m.insert(format!("{APPS}.Deployment"), top_level("apps", "v1", "Deployment", "Deployment enables declarative updates for Pods and ReplicaSets.", json!({
                "spec": object("DeploymentSpec is the specification of the desired behavior of the Deployment.", json!({
                    "minReadySeconds": int("Minimum number of seconds for which a newly created pod should be ready without any of its container crashing, for it to be considered available."),
                    "paused": boolean("Indicates that the deployment is paused."),
                    "progressDeadlineSeconds": int("The maximum time in seconds for a deployment to make progress before it is considered to be failed."),
                    "replicas": int("Number of desired pods. This is a pointer to distinguish between explicit zero and not specified. Defaults to 1."),
                    "revisionHistoryLimit": int("The number of old ReplicaSets to retain to allow rollback."),
                    "selector": selector(),
                    "strategy": object("DeploymentStrategy describes how to replace existing pods with new ones.", json!({
                        "rollingUpdate": object("Spec to control the desired behavior of rolling update.", json!({
                            "maxSurge": int_or_string("The maximum number of pods that can be scheduled above the desired number of pods."),
                            "maxUnavailable": int_or_string("The maximum number of pods that can be unavailable during the update."),
                        }), &[]),
                        "type": s("Type of deployment. Can be \"Recreate\" or \"RollingUpdate\". Default is RollingUpdate."),
                    }), &[]),
                    "template": pod_template(),
                }), &["selector", "template"]),
                "status": object("DeploymentStatus is the most recently observed status of the Deployment.", json!({
                    "availableReplicas": int("Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
                    "collisionCount": int("Count of hash collisions for the Deployment."),
                    "conditions": conditions(&format!("{APPS}.DeploymentCondition")),
                    "observedGeneration": json!({"type": "integer", "format": "int64", "description": "The generation observed by the deployment controller."}),
                    "readyReplicas": int("readyReplicas is the number of pods targeted by this Deployment with a Ready Condition."),
                    "replicas": int("Total number of non-terminated pods targeted by this deployment (their labels match the selector)."),
                    "unavailableReplicas": int("Total number of unavailable pods targeted by this deployment."),
                    "updatedReplicas": int("Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
                }), &[]),
            })));
            m.insert(format!("{APPS}.StatefulSet"), top_level("apps", "v1", "StatefulSet", "StatefulSet represents a set of pods with consistent identities.", json!({
                "spec": object("A StatefulSetSpec is the specification of a StatefulSet.", json!({
                    "podManagementPolicy": s("podManagementPolicy controls how pods are created during initial scale up, when replacing pods on nodes, or when scaling down."),
                    "replicas": int("replicas is the desired number of replicas of the given Template."),
                    "selector": selector(),
                    "serviceName": s("serviceName is the name of the service that governs this StatefulSet."),
                    "template": pod_template(),
                    "updateStrategy": object("updateStrategy indicates the StatefulSetUpdateStrategy that will be employed to update Pods in the StatefulSet when a revision is made to Template.", json!({
                        "rollingUpdate": object("RollingUpdate is used to communicate parameters when Type is RollingUpdateStatefulSetStrategyType.", json!({"partition": int("Partition indicates the ordinal at which the StatefulSet should be partitioned for updates.")}), &[]),
                        "type": s("Type indicates the type of the StatefulSetUpdateStrategy. Default is RollingUpdate."),
                    }), &[]),
                }), &["selector", "template"]),
                "status": object("StatefulSetStatus represents the current state of a StatefulSet.", json!({
                    "availableReplicas": int("Total number of available pods (ready for at least minReadySeconds) targeted by this statefulset."),
                    "conditions": conditions(&format!("{APPS}.StatefulSetCondition")),
                    "currentReplicas": int("currentReplicas is the number of Pods created by the StatefulSet controller from the StatefulSet version indicated by currentRevision."),
                    "currentRevision": s("currentRevision, if not empty, indicates the version of the StatefulSet used to generate Pods in the sequence [0,currentReplicas)."),
                    "observedGeneration": json!({"type": "integer", "format": "int64", "description": "observedGeneration is the most recent generation observed for this StatefulSet."}),
                    "readyReplicas": int("readyReplicas is the number of pods created for this StatefulSet with a Ready Condition."),
                    "replicas": int("replicas is the number of Pods created by the StatefulSet controller."),
                    "updateRevision": s("updateRevision, if not empty, indicates the version of the StatefulSet used to generate Pods in the sequence [replicas-updatedReplicas,replicas)"),
                    "updatedReplicas": int("updatedReplicas is the number of Pods created by the StatefulSet controller from the StatefulSet version indicated by updateRevision."),
                }), &["replicas"]),
            })));
            m.insert(format!("{APPS}.DaemonSet"), top_level("apps", "v1", "DaemonSet", "DaemonSet represents the configuration of a daemon set.", json!({
                "spec": object("DaemonSetSpec is the specification of a daemon set.", json!({
                    "minReadySeconds": int("The minimum number of seconds for which a newly created DaemonSet pod should be ready without any of its container crashing, for it to be considered available."),
                    "revisionHistoryLimit": int("The number of old history to retain to allow rollback."),
                    "selector": selector(),
                    "template": pod_template(),
                    "updateStrategy": object("An update strategy to replace existing DaemonSet pods with new pods.", json!({
                        "rollingUpdate": object("Rolling update config params.", json!({
                            "maxSurge": int_or_string("The maximum number of nodes with an existing available DaemonSet pod that can have an updated DaemonSet pod during during an update."),
                            "maxUnavailable": int_or_string("The maximum number of DaemonSet pods that can be unavailable during the update."),
                        }), &[]),
                        "type": s("Type of daemon set update. Can be \"RollingUpdate\" or \"OnDelete\". Default is RollingUpdate."),
                    }), &[]),
                }), &["selector", "template"]),
                "status": object("DaemonSetStatus represents the current status of a daemon set.", json!({
                    "conditions": conditions(&format!("{APPS}.DaemonSetCondition")),
                    "currentNumberScheduled": int("The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod."),
                    "desiredNumberScheduled": int("The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod)."),
                    "numberAvailable": int("The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available."),
                    "numberMisscheduled": int("The number of nodes that are running the daemon pod, but are not supposed to run the daemon pod."),
                    "numberReady": int("numberReady is the number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition."),
                    "numberUnavailable": int("The number of nodes that should be running the daemon pod and have none of the daemon pod running and available."),
                    "observedGeneration": json!({"type": "integer", "format": "int64", "description": "The most recent generation observed by the daemon set controller."}),
                    "updatedNumberScheduled": int("The total number of nodes that are running updated daemon pod"),
                }), &["currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled", "numberReady"]),
            })));
            m.insert(format!("{APPS}.ReplicaSet"), top_level("apps", "v1", "ReplicaSet", "ReplicaSet ensures that a specified number of pod replicas are running at any given time.", json!({
                "spec": object("ReplicaSetSpec is the specification of a ReplicaSet.", json!({
                    "minReadySeconds": int("Minimum number of seconds for which a newly created pod should be ready without any of its container crashing, for it to be considered available."),
                    "replicas": int("Replicas is the number of desired pods."),
                    "selector": selector(),
                    "template": pod_template(),
                }), &["selector"]),
                "status": object("ReplicaSetStatus represents the current status of a ReplicaSet.", json!({
                    "availableReplicas": int("The number of available non-terminating pods (ready for at least minReadySeconds) for this replica set."),
                    "conditions": conditions(&format!("{APPS}.ReplicaSetCondition")),
                    "fullyLabeledReplicas": int("The number of non-terminating pods that have labels matching the labels of the pod template of the replicaset."),
                    "observedGeneration": json!({"type": "integer", "format": "int64", "description": "ObservedGeneration reflects the generation of the most recently observed ReplicaSet."}),
                    "readyReplicas": int("The number of non-terminating pods targeted by this ReplicaSet with a Ready Condition."),
                    "replicas": int("Replicas is the most recently observed number of non-terminating pods."),
                }), &["replicas"]),
            })));
        }
        ("coordination.k8s.io", "v1") => {
            m.insert("io.k8s.api.coordination.v1.Lease".into(), top_level("coordination.k8s.io", "v1", "Lease", "Lease defines a lease concept.", json!({
                "spec": object("LeaseSpec is a specification of a Lease.", json!({
                    "acquireTime": json!({"type": "string", "format": "date-time", "description": "acquireTime is a time when the current lease was acquired."}),
                    "holderIdentity": s("holderIdentity contains the identity of the holder of a current lease."),
                    "leaseDurationSeconds": int("leaseDurationSeconds is a duration that candidates for a lease need to wait to force acquire it."),
                    "leaseTransitions": int("leaseTransitions is the number of transitions of a lease between holders."),
                    "renewTime": json!({"type": "string", "format": "date-time", "description": "renewTime is a time when the current holder of a lease has last updated the lease."}),
                }), &[]),
            })));
        }
        ("events.k8s.io", "v1") => {
            m.insert("io.k8s.api.events.v1.Event".into(), top_level("events.k8s.io", "v1", "Event", "Event is a report of an event somewhere in the cluster.", json!({
                "action": s("action is what action was taken/failed regarding to the regarding object."),
                "eventTime": json!({"type": "string", "format": "date-time", "description": "eventTime is the time when this Event was first observed. It is required."}),
                "note": s("note is a human-readable description of the status of this operation."),
                "reason": s("reason is why the action was taken. It is human-readable."),
                "regarding": reference(&format!("{CORE}.ObjectReference"), "regarding contains the object this Event is about."),
                "reportingController": s("reportingController is the name of the controller that emitted this Event, e.g. `kubernetes.io/kubelet`."),
                "reportingInstance": s("reportingInstance is the ID of the controller instance, e.g. `kubelet-xyzf`."),
                "series": object("series is data about the Event series this event represents or nil if it's a singleton Event.", json!({
                    "count": int("count is the number of occurrences in this series up to the last heartbeat time."),
                    "lastObservedTime": json!({"type": "string", "format": "date-time", "description": "lastObservedTime is the time when last Event from the series was seen before last heartbeat."}),
                }), &["count", "lastObservedTime"]),
                "type": s("type is the type of this event (Normal, Warning), new types could be added in the future."),
            })));
        }
        ("apiextensions.k8s.io", "v1") => {
            m.insert("io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition".into(), top_level("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "CustomResourceDefinition represents a resource that should be exposed on the API server.  Its name MUST be in the format <.spec.name>.<.spec.group>.", json!({
                "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "description": "spec describes how the user wants the resources to appear"},
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "description": "status indicates the actual state of the CustomResourceDefinition"},
            })));
        }
        _ => {}
    }
    m
}
