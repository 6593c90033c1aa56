//! What `GET /me/quota` answers: each quota's limit and use.

use super::{AppResources, Quotas, StoredResources, Usage};
use serde::Serialize;
use utoipa::ToSchema;

/// One quota and how much of it is used.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct Quota {
    pub used: u64,
    pub limit: u64,
}

/// The caller's quotas and use (`GET /me/quota`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QuotaView {
    /// Live apps.
    pub apps: Quota,
    /// Deployments waiting to start.
    pub queued_deployments: Quota,
    /// Log sockets and event streams open now (every backend process).
    pub streams: Quota,
    /// REST log reads in progress now.
    pub log_reads: Quota,
    /// Memory of every app times its replicas, in MB.
    pub memory_mb: Quota,
    /// CPU of every app times its replicas, in millicores.
    pub cpu_millis: Quota,
    /// What an app gets when it asks for nothing.
    pub app_default: AppResources,
    /// The most one app may ask for.
    pub app_max: AppResources,
}

impl QuotaView {
    pub fn new(quotas: &Quotas, usage: Usage, streams: u32, log_reads: u32) -> Self {
        let quota = |used: u64, limit: u64| Quota { used, limit };
        Self {
            apps: quota(usage.apps.into(), quotas.apps.into()),
            queued_deployments: quota(
                usage.queued_deployments.into(),
                quotas.queued_deployments.into(),
            ),
            streams: quota(streams.into(), quotas.streams.into()),
            log_reads: quota(log_reads.into(), quotas.log_reads.into()),
            memory_mb: quota(usage.footprint.memory_mb, quotas.memory_mb),
            cpu_millis: quota(usage.footprint.cpu_millis, quotas.cpu_millis),
            app_default: quotas.app.effective(StoredResources::default()),
            app_max: AppResources {
                memory_mb: quotas.app.max_memory_mb,
                cpu_millis: quotas.app.max_cpu_millis,
            },
        }
    }
}
