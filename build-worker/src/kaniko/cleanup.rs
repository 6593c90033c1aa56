//! The build Pod's ownership and removal: a Pod an earlier attempt left
//! (replaced, unless that attempt is alive), the stamp that says this
//! attempt is, and the Pod of this build and its registry Secret however the
//! build ends.

use super::api_error;
use super::pod::ATTEMPT_ALIVE_AT;
use crate::buildlog::BuildLog;
use crate::error::BuildError;
use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;
use std::time::Duration;

/// How long a Pod left by an earlier attempt may take to go away.
const LEFTOVER_WAIT: Duration = Duration::from_secs(60);

fn delete_params() -> DeleteParams {
    // The container may still run (a failed or timed-out build): stop it now.
    DeleteParams::background().grace_period(0)
}

/// When the attempt that owns `pod` last stamped it alive.
pub(super) fn stamped_at(pod: &Pod) -> Option<DateTime<Utc>> {
    let at = pod.metadata.annotations.as_ref()?.get(ATTEMPT_ALIVE_AT)?;
    DateTime::parse_from_rfc3339(at).ok().map(|at| at.to_utc())
}

/// Whether the attempt that owns `pod` stamped it within three renewals
/// and the Pod has not finished.
pub(super) fn attempt_alive(pod: &Pod, renew: Duration, now: DateTime<Utc>) -> bool {
    let finished = pod
        .status
        .as_ref()
        .and_then(|status| status.phase.as_deref())
        .is_some_and(|phase| matches!(phase, "Succeeded" | "Failed"));
    let fresh = stamped_at(pod).is_some_and(|at| {
        now.signed_duration_since(at)
            .to_std()
            .map_or(true, |age| age < renew * 3)
    });
    !finished && fresh
}

/// Takes the build's Pod name: free, or held by a Pod an earlier attempt
/// left (finished, or no longer stamped), which is deleted. A Pod whose
/// attempt is alive is left alone: this attempt is the duplicate.
pub(super) async fn claim(
    pods: &Api<Pod>,
    name: &str,
    renew: Duration,
    poll: Duration,
    log: &BuildLog,
) -> Result<(), BuildError> {
    let existing = pods
        .get_opt(name)
        .await
        .map_err(|error| api_error("looking for an earlier build pod", error))?;
    match existing {
        None => Ok(()),
        Some(pod) if attempt_alive(&pod, renew, Utc::now()) => {
            Err(BuildError::AttemptInProgress(name.to_owned()))
        }
        Some(_) => remove_leftover(pods, name, poll, log).await,
    }
}

/// Stamps the Pod as owned by a live attempt every `renew`, until dropped.
/// A failed stamp is logged: three in a row let a duplicate take over.
pub(super) async fn keep_alive(pods: &Api<Pod>, name: &str, renew: Duration) {
    loop {
        tokio::time::sleep(renew).await;
        let patch =
            json!({"metadata": {"annotations": {ATTEMPT_ALIVE_AT: Utc::now().to_rfc3339()}}});
        if let Err(error) = pods
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::warn!(pod = name, %error, "could not stamp the build pod as alive");
        }
    }
}

/// Deletes a Pod of the same name an earlier attempt left, and waits until
/// it is gone (its name is taken until then).
async fn remove_leftover(
    pods: &Api<Pod>,
    name: &str,
    poll: Duration,
    log: &BuildLog,
) -> Result<(), BuildError> {
    match pods.delete(name, &delete_params()).await {
        Err(kube::Error::Api(status)) if status.is_not_found() => return Ok(()),
        Err(error) => return Err(api_error("removing an earlier build pod", error)),
        Ok(_) => {}
    }
    log.line(format!(
        "Removing the build pod {name} an earlier attempt left"
    ))
    .await;
    let gone = async {
        loop {
            match pods.get_opt(name).await {
                Ok(None) => return Ok(()),
                Ok(Some(_)) => tokio::time::sleep(poll).await,
                Err(error) => return Err(api_error("removing an earlier build pod", error)),
            }
        }
    };
    tokio::time::timeout(LEFTOVER_WAIT, gone)
        .await
        .unwrap_or_else(|_| {
            Err(BuildError::Kubernetes {
                detail: format!("the earlier build pod {name} did not go away"),
            })
        })
}

/// Deletes the build Pod (once created) and its registry Secret: awaited
/// where the build ends, or in the background if the build is dropped
/// before.
pub(super) struct PodGuard {
    pods: Api<Pod>,
    secrets: Api<Secret>,
    name: String,
    secret: String,
    pod_created: bool,
    armed: bool,
}

impl PodGuard {
    pub(super) fn new(pods: Api<Pod>, secrets: Api<Secret>, name: String, secret: String) -> Self {
        Self {
            pods,
            secrets,
            name,
            secret,
            pod_created: false,
            armed: true,
        }
    }

    /// The Pod exists: it goes too.
    pub(super) fn pod_created(&mut self) {
        self.pod_created = true;
    }

    pub(super) async fn delete(mut self) {
        self.armed = false;
        remove(
            self.pod_created.then_some(&self.pods),
            &self.name,
            &self.secrets,
            &self.secret,
        )
        .await;
    }
}

impl Drop for PodGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let (pods, secrets) = (self.pods.clone(), self.secrets.clone());
            let (name, secret) = (
                std::mem::take(&mut self.name),
                std::mem::take(&mut self.secret),
            );
            let pod_created = self.pod_created;
            handle.spawn(async move {
                remove(pod_created.then_some(&pods), &name, &secrets, &secret).await
            });
        }
    }
}

/// The Pod first: its container reads the Secret until it stops.
async fn remove(pods: Option<&Api<Pod>>, name: &str, secrets: &Api<Secret>, secret: &str) {
    if let Some(pods) = pods {
        match pods.delete(name, &delete_params()).await {
            Ok(_) => tracing::debug!(pod = name, "build pod deleted"),
            Err(kube::Error::Api(status)) if status.is_not_found() => {}
            Err(error) => tracing::warn!(pod = name, %error, "the build pod could not be deleted"),
        }
    }
    match secrets.delete(secret, &DeleteParams::default()).await {
        Ok(_) => tracing::debug!(secret, "build registry secret deleted"),
        Err(kube::Error::Api(status)) if status.is_not_found() => {}
        Err(error) => {
            tracing::warn!(secret, %error, "the build's registry secret could not be deleted; its grant expires with the build's deadline")
        }
    }
}
