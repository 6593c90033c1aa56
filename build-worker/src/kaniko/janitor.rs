//! The janitor: deletes the build Pods (and their registry Secrets) of
//! attempts that died: a worker SIGKILLed, OOM-killed or lost with its node
//! after it created the Pod. Such a Pod would keep building, push an image
//! nobody deploys, and then stay `Failed` or `Succeeded` forever.
//!
//! An attempt that is alive stamps its Pod ([`super::pod::ATTEMPT_ALIVE_AT`])
//! and deletes the Pod itself when the build ends, so the janitor takes
//! only Pods whose stamp is three renewals old, or, for a Pod without a
//! stamp (an older berth), one older than the build's deadline and grace.
//! Several build-workers may sweep at once: a delete that finds nothing is
//! fine.

use super::pod::{secret_name_of_pod, ROLE_LABEL};
use super::KanikoSettings;
use berth_proto::labels;
use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the janitor looks, in renewals of the stamp.
const SWEEP_EVERY_RENEWALS: u32 = 6;

/// Whether the attempt that made `pod` is gone; see the module docs.
pub fn abandoned(pod: &Pod, renew: Duration, max_age: Duration, now: DateTime<Utc>) -> bool {
    let older_than = |at: DateTime<Utc>, limit: Duration| {
        now.signed_duration_since(at)
            .to_std()
            .is_ok_and(|age| age >= limit)
    };
    match super::cleanup::stamped_at(pod) {
        Some(at) => older_than(at, renew * 3),
        None => pod
            .metadata
            .creation_timestamp
            .as_ref()
            .and_then(|created| DateTime::from_timestamp(created.0.as_second(), 0))
            .is_some_and(|created| older_than(created, max_age)),
    }
}

/// Deletes every abandoned build Pod and its Secret; returns how many Pods.
pub async fn sweep(client: &kube::Client, settings: &KanikoSettings) -> Result<usize, kube::Error> {
    let selector = format!(
        "{ROLE_LABEL}=build,{}={}",
        labels::MANAGED_BY,
        labels::MANAGED_BY_VALUE
    );
    let all: Api<Pod> = Api::all(client.clone());
    let max_age = settings.deadline + settings.grace;
    let now = Utc::now();
    let mut deleted = 0;
    for pod in all.list(&ListParams::default().labels(&selector)).await? {
        if !abandoned(&pod, settings.lease_renew, max_age, now) {
            continue;
        }
        let (Some(name), Some(namespace)) = (&pod.metadata.name, &pod.metadata.namespace) else {
            continue;
        };
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let params = DeleteParams::background().grace_period(0);
        for result in [
            pods.delete(name, &params).await.map(drop),
            secrets
                .delete(&secret_name_of_pod(name), &DeleteParams::default())
                .await
                .map(drop),
        ] {
            match result {
                Ok(()) => {}
                Err(kube::Error::Api(status)) if status.is_not_found() => {}
                Err(error) => return Err(error),
            }
        }
        tracing::warn!(
            pod = name,
            namespace,
            "deleted the build pod of an attempt that died"
        );
        deleted += 1;
    }
    metrics::counter!("berth_build_pods_swept_total").increment(deleted as u64);
    Ok(deleted)
}

/// Sweeps at start and then every few renewals, until `shutdown`.
pub async fn run(client: kube::Client, settings: KanikoSettings, shutdown: CancellationToken) {
    let every = settings.lease_renew * SWEEP_EVERY_RENEWALS;
    loop {
        if let Err(error) = sweep(&client, &settings).await {
            tracing::warn!(%error, "the build pod janitor could not sweep");
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}
