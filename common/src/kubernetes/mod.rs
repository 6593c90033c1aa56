//! What both workers need to talk to a Kubernetes API server: the names and
//! fences of a tenant's namespaces, server-side apply with berth's field
//! manager, and the client.
//!
//! Objects are rendered by pure functions into JSON documents and applied
//! as they were rendered, so what an operator reviews (`deploy-worker
//! render`) is exactly what berth applies.

mod apply;
mod tenant;

#[cfg(test)]
mod apply_tests;
#[cfg(test)]
mod tenant_tests;

pub use apply::{apply, apply_all, ApplyError, FIELD_MANAGER};
pub use tenant::{tenant_namespace, tenant_namespaces, TenantNamespace, TenantNamespaceKind};

use berth_proto::labels;
use clap::Args;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use std::collections::BTreeMap;

/// The ServiceAccount berth creates in every tenant namespace and runs pods
/// as. Its token is never mounted: apps and builds have no business with the
/// Kubernetes API.
pub const SERVICE_ACCOUNT: &str = "berth-workload";

/// The label Kubernetes itself puts on every namespace (immutable, set by the
/// API server), so a NetworkPolicy can select a namespace by name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// How a tenant's namespaces are fenced in; both workers apply them.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct TenantSettings {
    /// Where the ingress controller runs: the only namespace allowed to open
    /// connections to apps.
    #[arg(
        long,
        env = "BERTH_K8S_INGRESS_NAMESPACE",
        default_value = "ingress-nginx"
    )]
    pub ingress_namespace: String,
    /// The registry's port, which builds push to (besides 80 and 443).
    #[arg(long, env = "BERTH_K8S_REGISTRY_PORT", default_value_t = 5000)]
    pub registry_port: u16,
    /// Total CPU a tenant namespace may request and be limited to.
    #[arg(long, env = "BERTH_K8S_QUOTA_CPU", default_value = "4")]
    pub quota_cpu: String,
    /// Total memory a tenant namespace may request and be limited to.
    #[arg(long, env = "BERTH_K8S_QUOTA_MEMORY", default_value = "8Gi")]
    pub quota_memory: String,
    /// How many pods a tenant namespace may hold.
    #[arg(long, env = "BERTH_K8S_QUOTA_PODS", default_value_t = 20)]
    pub quota_pods: u32,
    /// What a container without a CPU request or limit gets, in millicores.
    #[arg(long, env = "BERTH_K8S_DEFAULT_CPU_MILLIS", default_value_t = 250)]
    pub default_cpu_millis: u32,
    /// What a container without a memory request or limit gets, in MiB.
    #[arg(long, env = "BERTH_K8S_DEFAULT_MEMORY_MB", default_value_t = 256)]
    pub default_memory_mb: u32,
}

impl Default for TenantSettings {
    fn default() -> Self {
        Self {
            ingress_namespace: "ingress-nginx".into(),
            registry_port: 5000,
            quota_cpu: "4".into(),
            quota_memory: "8Gi".into(),
            quota_pods: 20,
            default_cpu_millis: 250,
            default_memory_mb: 256,
        }
    }
}

/// `berth-<tenant>`: where a tenant's apps run.
pub fn app_namespace(tenant: &str) -> String {
    format!("berth-{tenant}")
}

/// `berth-<tenant>-build`: where a tenant's builds run, apart from its apps
/// so a build never reaches a running app and has its own quota.
pub fn build_namespace(tenant: &str) -> String {
    format!("berth-{tenant}-build")
}

/// `app.kubernetes.io/managed-by=berth` plus `berth.dev/tenant`: every
/// object berth applies carries them, so berth finds (and prunes) only its own.
pub fn base_labels(tenant: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            labels::MANAGED_BY.to_owned(),
            labels::MANAGED_BY_VALUE.to_owned(),
        ),
        (labels::TENANT.to_owned(), tenant.to_owned()),
    ])
}

pub fn meta(
    name: impl Into<String>,
    namespace: Option<&str>,
    labels: BTreeMap<String, String>,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: namespace.map(str::to_owned),
        labels: Some(labels),
        ..Default::default()
    }
}

/// A typed object as the JSON document berth applies.
pub fn document<T: Serialize>(object: &T) -> serde_json::Value {
    serde_json::to_value(object).expect("Kubernetes objects serialize to JSON")
}

/// The documents as one multi-document YAML stream (each document is JSON,
/// which is YAML), for `kubectl apply -f -` or a reviewer's eyes.
pub fn render_yaml<T: Serialize>(objects: &[T]) -> Result<String, serde_json::Error> {
    let mut out = String::new();
    for object in objects {
        out.push_str("---\n");
        out.push_str(&serde_json::to_string_pretty(object)?);
        out.push('\n');
    }
    Ok(out)
}

/// A client from the environment: `KUBECONFIG` or `~/.kube/config`, else
/// the in-cluster service account.
pub async fn connect() -> Result<kube::Client, kube::Error> {
    kube::Client::try_default().await
}
