//! The Kubernetes driver's objects, rendered as pure functions so the shape of
//! what berth applies (server-side apply, field manager `berth`) is
//! unit-tested without a cluster, like [`crate::docker::spec`] for the docker
//! driver. Nothing here talks to an API server yet.
//!
//! * [`tenant_namespaces`]: the two namespaces a tenant owns, each fenced by a
//!   ResourceQuota, a LimitRange, a default-deny NetworkPolicy and a
//!   ServiceAccount without an API token.
//! * [`app_objects`]: the Secret, Deployment, Service and Ingress of one
//!   deployment of a release.

mod app;
mod tenant;

#[cfg(test)]
mod app_tests;
#[cfg(test)]
mod tenant_tests;

pub use app::{app_host, app_objects, env_secret_name, tls_secret_name, AppObjects};
pub use tenant::{tenant_namespaces, TenantNamespace, TenantNamespaceKind};

use berth_proto::labels;
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

/// Cluster-specific choices of the Kubernetes driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesSettings {
    /// Apps answer on `<app>.<tenant>.<base_domain>`.
    pub base_domain: String,
    /// The cert-manager ClusterIssuer that signs each app's TLS certificate.
    pub cluster_issuer: String,
    /// The IngressClass that serves berth's Ingresses.
    pub ingress_class: String,
    /// Where the ingress controller runs: the only namespace allowed to
    /// open connections to apps.
    pub ingress_namespace: String,
    /// The registry's port, which builds push to (besides 80 and 443).
    pub registry_port: u16,
    /// Total CPU a tenant namespace may request / be limited to.
    pub quota_cpu: String,
    /// Total memory a tenant namespace may request / be limited to.
    pub quota_memory: String,
    /// How many pods a tenant namespace may hold.
    pub quota_pods: u32,
    /// What a container without a CPU request/limit gets, in millicores.
    pub default_cpu_millis: u32,
    /// What a container without a memory request/limit gets, in MiB.
    pub default_memory_mb: u32,
}

impl Default for KubernetesSettings {
    fn default() -> Self {
        Self {
            base_domain: "apps.localhost".into(),
            cluster_issuer: "letsencrypt".into(),
            ingress_class: "nginx".into(),
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
pub(crate) fn base_labels(tenant: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            labels::MANAGED_BY.to_owned(),
            labels::MANAGED_BY_VALUE.to_owned(),
        ),
        (labels::TENANT.to_owned(), tenant.to_owned()),
    ])
}

pub(crate) fn meta(
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

/// The objects as one multi-document YAML stream (each document is JSON,
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
