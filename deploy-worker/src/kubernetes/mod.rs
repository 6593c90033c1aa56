//! The `kubernetes` driver. Objects are rendered by pure functions (like
//! [`crate::docker::spec`] for the docker driver) into the documents
//! [`berth_common::kubernetes::apply`] applies, and that `deploy-worker
//! render` prints: [`plan`] is the one code path for both.
//!
//! * [`berth_common::kubernetes::tenant_namespace`]: `berth-<tenant>`, fenced
//!   by a ResourceQuota, a LimitRange, a default-deny NetworkPolicy and a
//!   ServiceAccount without an API token.
//! * [`app_objects`]: the Secret, Deployment, Service and Ingress of one
//!   deployment of a release.
//! * [`PullSecret`]: the tenant's image pull Secret, a pull grant of that
//!   tenant for berth's registry, renewed by every deploy and scale-up.
//! * [`KubeRuntime`]: applies the plan, waits for the rollout
//!   (`rollout.rs`, diagnosed by the pure `status.rs`), restores the
//!   previous release when it fails, prunes the env Secrets no ReplicaSet
//!   runs any more once it went live, scales and removes apps.

mod app;
mod domains;
mod failures;
mod plan;
pub mod pull;
pub mod render;
mod rollout;
mod runtime;
mod status;

#[cfg(test)]
mod app_tests;
#[cfg(test)]
mod domains_tests;
#[cfg(test)]
mod failures_tests;
#[cfg(test)]
mod fake;
#[cfg(test)]
mod lifecycle_tests;
#[cfg(test)]
mod plan_tests;
#[cfg(test)]
mod pull_tests;
#[cfg(test)]
mod restore_tests;
#[cfg(test)]
mod rollout_tests;
#[cfg(test)]
mod status_tests;

pub use app::{app_host, app_objects, env_secret_name, tls_secret_name, AppObjects};
pub use domains::{domain_secret_name, domains_ingress, domains_ingress_name};
pub use plan::{deployment_name, endpoint, plan, restore_document};
pub use pull::{PullSecret, PULL_SECRET};
pub use runtime::KubeRuntime;

use berth_common::kubernetes::TenantSettings;
use clap::Args;
use std::time::Duration;

/// Cluster-specific choices of the Kubernetes driver: everything that
/// shapes the objects it applies (and `render` prints).
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
    /// Earlier rollouts of an app its Deployment keeps to roll back to (its
    /// `revisionHistoryLimit`: old ReplicaSets, one per deployment). A
    /// release's env Secret lives as long as a ReplicaSet runs it; a
    /// rollback to an older release applies its Secret again.
    #[arg(long, env = "BERTH_K8S_RELEASE_HISTORY", default_value_t = 3)]
    pub release_history: u32,
    #[command(flatten)]
    pub tenant: TenantSettings,
}

impl Default for KubernetesSettings {
    fn default() -> Self {
        Self {
            base_domain: "apps.localhost".into(),
            cluster_issuer: "letsencrypt".into(),
            ingress_class: "nginx".into(),
            release_history: 3,
            tenant: TenantSettings::default(),
        }
    }
}

/// How the Kubernetes driver waits for a rollout; none of it changes the
/// objects.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct RolloutSettings {
    /// Seconds a release has to roll out (every new pod ready, every old one
    /// gone) before the deploy fails and the previous release is restored.
    #[arg(long, env = "BERTH_K8S_ROLLOUT_TIMEOUT_SECS", default_value_t = 300)]
    pub rollout_timeout_secs: u64,
    /// Milliseconds between two looks at a rolling Deployment and its pods.
    #[arg(long, env = "BERTH_K8S_ROLLOUT_POLL_MILLIS", default_value_t = 1000)]
    pub rollout_poll_millis: u64,
}

impl RolloutSettings {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.rollout_timeout_secs)
    }

    pub fn poll(&self) -> Duration {
        Duration::from_millis(self.rollout_poll_millis)
    }
}

impl Default for RolloutSettings {
    fn default() -> Self {
        Self {
            rollout_timeout_secs: 300,
            rollout_poll_millis: 1000,
        }
    }
}
