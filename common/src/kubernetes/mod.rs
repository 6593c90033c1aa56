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

/// The ClusterRole (shipped in infra/kubernetes, bound by no
/// ClusterRoleBinding) that lets berth's own readers see a tenant's pods,
/// their logs and events: each tenant's app namespace binds it for them.
pub const TENANT_READER_ROLE: &str = "berth-tenant-reader";

/// berth's ServiceAccounts that read a tenant's pods and logs: the
/// deploy-worker (rollouts) and the log-streamer (logs).
pub const TENANT_READERS: [&str; 2] = ["berth-deploy-worker", "berth-log-streamer"];

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
    /// The namespace berth's own processes run in: its deploy-worker and
    /// log-streamer are let into each tenant's app namespace by a
    /// RoleBinding there, never cluster-wide.
    #[arg(
        long,
        env = "BERTH_K8S_SYSTEM_NAMESPACE",
        default_value = "berth-system"
    )]
    pub system_namespace: String,
    /// The registry's port, which builds push to (besides 80 and 443).
    #[arg(long, env = "BERTH_K8S_REGISTRY_PORT", default_value_t = 5000)]
    pub registry_port: u16,
    /// Addresses builds may not connect to, whatever their Dockerfile asks
    /// (comma-separated CIDRs, IPv4 and IPv6): private networks, CGNAT,
    /// loopback, link-local with the cloud metadata addresses
    /// (169.254.169.254, fd00:ec2::254). Builds reach everything else on
    /// 80, 443 and the registry's port.
    #[arg(long, env = "BERTH_K8S_BUILD_EGRESS_DENY", value_delimiter = ',',
          value_parser = parse_cidr, default_values_t = default_build_egress_deny())]
    pub build_egress_deny: Vec<String>,
    /// The cluster's pod and service CIDRs (comma-separated), denied to
    /// builds too; needed when they lie outside the ranges above.
    #[arg(long, env = "BERTH_K8S_CLUSTER_CIDRS", value_delimiter = ',', value_parser = parse_cidr)]
    pub cluster_cidrs: Vec<String>,
    /// The namespace of an in-cluster registry: builds may reach its pods on
    /// BERTH_K8S_REGISTRY_PORT although cluster addresses are denied. Unset
    /// when the registry is outside the cluster.
    #[arg(long, env = "BERTH_K8S_REGISTRY_NAMESPACE")]
    pub registry_namespace: Option<String>,
    /// The registry's own addresses (comma-separated CIDRs) when they are in
    /// a denied range outside the cluster: allowed on BERTH_K8S_REGISTRY_PORT.
    #[arg(long, env = "BERTH_K8S_REGISTRY_CIDRS", value_delimiter = ',', value_parser = parse_cidr)]
    pub registry_cidrs: Vec<String>,
    /// The namespace of the backend whose registry-token endpoint builds ask
    /// for push tokens inside the cluster (its pods are labelled
    /// app.kubernetes.io/name=berth-backend). Unset when builds reach it
    /// through its public URL.
    #[arg(long, env = "BERTH_K8S_TOKEN_NAMESPACE")]
    pub token_namespace: Option<String>,
    /// The port of the backend's registry-token endpoint on its pods.
    #[arg(long, env = "BERTH_K8S_TOKEN_PORT", default_value_t = 8080)]
    pub token_port: u16,
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
            system_namespace: "berth-system".into(),
            registry_port: 5000,
            build_egress_deny: default_build_egress_deny(),
            cluster_cidrs: Vec::new(),
            registry_namespace: None,
            registry_cidrs: Vec::new(),
            token_namespace: None,
            token_port: 8080,
            quota_cpu: "4".into(),
            quota_memory: "8Gi".into(),
            quota_pods: 20,
            default_cpu_millis: 250,
            default_memory_mb: 256,
        }
    }
}

/// What builds may not reach by default: RFC 1918, CGNAT, loopback,
/// link-local (the metadata address 169.254.169.254 among them), the
/// "this network" block; IPv6 unique local (fd00:ec2::254 among them),
/// link-local and loopback.
pub fn default_build_egress_deny() -> Vec<String> {
    [
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "169.254.0.0/16",
        "127.0.0.0/8",
        "0.0.0.0/8",
        "fc00::/7",
        "fe80::/10",
        "::1/128",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// A CIDR as NetworkPolicy's ipBlock takes it: `address/prefix`, the
/// address without host bits.
pub fn parse_cidr(value: &str) -> Result<String, String> {
    let value = value.trim();
    let (address, prefix) = value
        .split_once('/')
        .ok_or_else(|| format!("`{value}` is not a CIDR (address/prefix)"))?;
    let address: std::net::IpAddr = address
        .parse()
        .map_err(|_| format!("`{value}`: `{address}` is not an IP address"))?;
    let bits = if address.is_ipv4() { 32 } else { 128 };
    let prefix: u32 = prefix
        .parse()
        .ok()
        .filter(|p| *p <= bits)
        .ok_or_else(|| format!("`{value}`: the prefix must be 0 to {bits}"))?;
    let host_bits = match address {
        std::net::IpAddr::V4(ip) => {
            u128::from(u32::from(ip)) & u128::MAX.checked_shr(96 + prefix).unwrap_or(0)
        }
        std::net::IpAddr::V6(ip) => u128::from(ip) & u128::MAX.checked_shr(prefix).unwrap_or(0),
    };
    if host_bits != 0 {
        return Err(format!("`{value}` has host bits set"));
    }
    Ok(value.to_owned())
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
