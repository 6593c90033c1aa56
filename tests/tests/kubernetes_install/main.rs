//! berth's own installation on Kubernetes (`infra/kubernetes`): every
//! overlay renders offline with `kubectl kustomize`, passes
//! `kubernetes-validate --strict` for a current Kubernetes, and keeps the
//! promises of the issue: four processes with resources, probes and Pod
//! Security `restricted`; least-privilege RBAC without wildcards; an
//! admission policy that fences the workers into berth's namespaces; network
//! policies; a budget and an autoscaler for the backend; config from a
//! ConfigMap and a Secret.
//!
//! The tools come from PyPI through `infra/local/k8s-tools.sh` (which
//! `make test` runs first); no cluster is needed. If they cannot be
//! installed, every test here fails and says so.
//!
//! This file holds what every module shares: the names berth's manifests
//! use and small readers of JSON values. Rendering, validation and the
//! lookups on a rendering are in `render`; the tests are grouped by topic.

// Shared: renders the kustomizations and finds objects in them; evaluates
// the admission policy's CEL like the API server.
mod cel_eval;
mod render;

// The tests, by topic.
mod admission;
mod config;
mod network;
mod rbac;
mod workloads;

use serde_json::Value;
use std::collections::BTreeMap;

/// The newest Kubernetes whose schemas kubernetes-validate 1.37 bundles.
const KUBERNETES_VERSION: &str = "1.37.0";
const NAMESPACE: &str = "berth-system";
/// What an operator applies.
const OVERLAYS: [&str; 2] = ["kind", "production"];
const BACKEND: &str = "berth-backend";
const BUILD_WORKER: &str = "berth-build-worker";
const DEPLOY_WORKER: &str = "berth-deploy-worker";
const LOG_STREAMER: &str = "berth-log-streamer";
/// The four processes and the kind of workload each runs as.
const PROCESSES: [(&str, &str); 4] = [
    (BACKEND, "Deployment"),
    (BUILD_WORKER, "Deployment"),
    (DEPLOY_WORKER, "Deployment"),
    (LOG_STREAMER, "StatefulSet"),
];
/// The processes other than the backend: each talks to the Kubernetes API.
const WORKERS: [&str; 3] = [BUILD_WORKER, DEPLOY_WORKER, LOG_STREAMER];
/// The workers that write to the cluster, which the admission policy fences.
const WRITING_WORKERS: [&str; 2] = [DEPLOY_WORKER, BUILD_WORKER];
/// The identities the admission policy names.
const DEPLOY_WORKER_USER: &str = "system:serviceaccount:berth-system:berth-deploy-worker";
const BUILD_WORKER_USER: &str = "system:serviceaccount:berth-system:berth-build-worker";
const CLUSTER_SCOPED: [&str; 5] = [
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
];

// ------------------------------------------------------------------ reading values

fn str_of<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn strings(value: Option<&Value>) -> Vec<&str> {
    value
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn array(value: Option<&Value>) -> &[Value] {
    value.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

fn labels(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_object)
        .map(|map| {
            map.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// A replica count (`replicas`, `minReplicas`); unset is Kubernetes' default, 1.
fn replicas(value: &Value) -> u64 {
    value.as_u64().unwrap_or(1)
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or_else(|| panic!("`{addr}` is not host:port"))
}

/// A probe's or a Service's port, resolving a port name on the container.
fn container_port(container: &Value, port: &Value) -> u16 {
    if let Some(number) = port.as_u64() {
        return number as u16;
    }
    let name = port.as_str().unwrap_or_default();
    array(container.get("ports"))
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_u64())
        .unwrap_or_else(|| panic!("container {} has no port named {name}", container["name"]))
        as u16
}
