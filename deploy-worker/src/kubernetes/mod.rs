//! The `kubernetes` driver. Objects are rendered by pure functions (like
//! [`crate::docker::spec`] for the docker driver) into the documents
//! [`berth_common::kubernetes::apply`] applies, and that `deploy-worker
//! render` prints: one code path for both.
//!
//! * [`berth_common::kubernetes::tenant_namespace`]: `berth-<tenant>`, fenced
//!   by a ResourceQuota, a LimitRange, a default-deny NetworkPolicy and a
//!   ServiceAccount without an API token.
//! * [`app_objects`]: the Secret, Deployment, Service and Ingress of one
//!   deployment of a release.

mod app;

#[cfg(test)]
mod app_tests;

pub use app::{app_host, app_objects, env_secret_name, tls_secret_name, AppObjects};

use berth_common::kubernetes::TenantSettings;
use clap::Args;

/// Cluster-specific choices of the Kubernetes driver.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct KubernetesSettings {
    /// Apps answer on `<app>.<tenant>.<base domain>`.
    #[arg(long, env = "BERTH_K8S_BASE_DOMAIN", default_value = "apps.localhost")]
    pub base_domain: String,
    /// The cert-manager ClusterIssuer that signs each app's TLS certificate.
    #[arg(long, env = "BERTH_K8S_CLUSTER_ISSUER", default_value = "letsencrypt")]
    pub cluster_issuer: String,
    /// The IngressClass that serves berth's Ingresses.
    #[arg(long, env = "BERTH_K8S_INGRESS_CLASS", default_value = "nginx")]
    pub ingress_class: String,
    #[command(flatten)]
    pub tenant: TenantSettings,
}

impl Default for KubernetesSettings {
    fn default() -> Self {
        Self {
            base_domain: "apps.localhost".into(),
            cluster_issuer: "letsencrypt".into(),
            ingress_class: "nginx".into(),
            tenant: TenantSettings::default(),
        }
    }
}
