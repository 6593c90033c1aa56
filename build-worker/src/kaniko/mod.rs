//! The Kubernetes driver's [`ImageBuilder`]: one Kaniko Pod per build in the
//! tenant's build namespace `berth-<tenant>-build`.
//!
//! For each build the worker applies the namespace with its fences
//! (server-side apply, field manager `berth`), removes a Pod an earlier
//! attempt of the same deployment left (or, when that attempt still stamps
//! its Pod as alive, steps aside as a duplicate), applies the build's own registry
//! Secret (a push grant of the tenant, nothing else), creates the Pod (no
//! service-account token, resource limits, an active deadline), waits for
//! it to run, streams the context it cloned to the Pod's stdin as a gzipped
//! tar (Kaniko's `tar://stdin`) while following its log into the build log,
//! then reads the pushed image's digest from the termination message.
//! Kaniko pushes as it builds, so [`ImageBuilder::push`] has nothing to do.
//! The Pod and its Secret are deleted however the build ends; if the build
//! is dropped (the worker's own deadline, shutdown) a guard deletes them in
//! the background.

mod cleanup;
mod config;
pub mod janitor;
mod output;
mod pod;
mod status;
mod stream;

#[cfg(test)]
mod fake_cluster;
#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod janitor_tests;
#[cfg(test)]
mod scenario_tests;

pub use config::{KanikoConfig, KanikoSettings};
pub use output::KanikoOutput;
pub use pod::{
    build_pod, build_secret, cache_repo, kaniko_args, pod_name, secret_name, CONTAINER, ROLE_LABEL,
};
pub use status::{outcome, pod_state, Finish, PodState};

use crate::buildlog::BuildLog;
use crate::docker::{BuildJob, Built, ImageBuilder};
use crate::error::BuildError;
use async_trait::async_trait;
use berth_common::kubernetes::{
    apply_all, build_namespace, document, tenant_namespace, ApplyError, TenantNamespaceKind,
};
use berth_common::registry_auth::Access;
use cleanup::{claim, keep_alive, PodGuard};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, PostParams};
use std::time::Duration;
use stream::{follow_log, gzip, send_context};

/// How long the attach may linger once the build's log has ended.
const ATTACH_GRACE: Duration = Duration::from_secs(5);
/// Failed reads of the Pod's status in a row before the build fails.
const READ_RETRIES: u32 = 4;

/// [`ImageBuilder`] over a Kubernetes API server.
pub struct KanikoBuilder {
    client: kube::Client,
    settings: KanikoSettings,
}

impl KanikoBuilder {
    pub fn new(client: kube::Client, settings: KanikoSettings) -> Self {
        Self { client, settings }
    }

    /// The build namespace with its fences.
    async fn prepare(&self, tenant: &str) -> Result<(), BuildError> {
        let namespace =
            tenant_namespace(tenant, TenantNamespaceKind::Builds, &self.settings.tenant);
        self.apply(&namespace.to_documents()).await
    }

    async fn apply(&self, documents: &[serde_json::Value]) -> Result<(), BuildError> {
        apply_all(&self.client, documents)
            .await
            .map_err(|error| BuildError::Kubernetes {
                detail: match &error {
                    ApplyError::Api {
                        kind,
                        name,
                        source: kube::Error::Api(status),
                    } if !status.message.is_empty() => {
                        format!("applying {kind} `{name}`: {}", status.message)
                    }
                    other => other.to_string(),
                },
            })?;
        Ok(())
    }

    /// The Pod's state; a few failed reads in a row are retried, so one
    /// hiccup of the API server does not fail a long build.
    async fn state(&self, pods: &Api<Pod>, name: &str) -> Result<PodState, BuildError> {
        let mut failures = 0;
        loop {
            match pods.get(name).await {
                Ok(pod) => return Ok(pod_state(&pod, &self.settings.image)),
                Err(kube::Error::Api(status)) if status.is_not_found() => {
                    return Err(BuildError::BuildStart(format!(
                        "the build pod {name} was deleted before the build ended"
                    )))
                }
                Err(error) if failures < READ_RETRIES => {
                    failures += 1;
                    tracing::debug!(%error, failures, "reading the build pod failed; retrying");
                    tokio::time::sleep(self.settings.poll_interval * (1 << failures)).await;
                }
                Err(error) => return Err(api_error("reading the build pod", error)),
            }
        }
    }

    /// Waits until the build container runs, or the Pod finished or cannot start.
    async fn started(&self, pods: &Api<Pod>, name: &str) -> Result<Option<Finish>, BuildError> {
        loop {
            match self.state(pods, name).await? {
                PodState::Starting => tokio::time::sleep(self.settings.poll_interval).await,
                PodState::Running => return Ok(None),
                PodState::Finished(finish) => return Ok(Some(finish)),
                PodState::CannotStart(reason) => return Err(BuildError::BuildStart(reason)),
            }
        }
    }

    /// Waits until the Pod's status shows how the build ended.
    async fn finished(&self, pods: &Api<Pod>, name: &str) -> Result<Finish, BuildError> {
        loop {
            match self.state(pods, name).await? {
                PodState::Finished(finish) => return Ok(finish),
                PodState::CannotStart(reason) => return Err(BuildError::BuildStart(reason)),
                PodState::Starting | PodState::Running => {
                    tokio::time::sleep(self.settings.poll_interval).await
                }
            }
        }
    }

    /// From the created Pod to the pushed image's digest.
    async fn run(
        &self,
        pods: &Api<Pod>,
        name: &str,
        job: &BuildJob,
        log: &BuildLog,
    ) -> Result<String, BuildError> {
        let mut output = KanikoOutput::default();
        let finish = match self.started(pods, name).await? {
            // It ended before it ran (a bad flag): its log says why.
            Some(finish) => {
                follow_log(pods, name, log, &mut output).await;
                finish
            }
            None => {
                let context = gzip(&job.context).await?;
                let send = send_context(pods, name, &context);
                let follow = follow_log(pods, name, log, &mut output);
                tokio::pin!(send, follow);
                tokio::select! {
                    sent = &mut send => {
                        // Kaniko would wait on its stdin until the deadline.
                        sent?;
                        follow.await;
                    }
                    () = &mut follow => {
                        // The container ended: its status says how, whatever
                        // the attach has to add.
                        if let Ok(Err(error)) = tokio::time::timeout(ATTACH_GRACE, send).await {
                            tracing::debug!(%error, "the attach ended with an error after the build");
                        }
                    }
                }
                self.finished(pods, name).await?
            }
        };
        outcome(
            finish,
            &output,
            self.settings.deadline,
            &self.settings.memory,
        )
    }
}

#[async_trait]
impl ImageBuilder for KanikoBuilder {
    async fn build(&self, job: &BuildJob, log: &BuildLog) -> Result<Built, BuildError> {
        let tenant = &job.app.tenant;
        self.prepare(tenant).await?;
        let namespace = build_namespace(tenant);
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &namespace);
        let name = pod_name(job.deployment_id);
        let renew = self.settings.lease_renew;
        claim(&pods, &name, renew, self.settings.poll_interval, log).await?;
        let grant = self
            .settings
            .registry
            .credentials
            .for_tenant(tenant, Access::Push);
        self.apply(&[document(&build_secret(job, &self.settings, &grant))])
            .await?;
        let mut guard = PodGuard::new(
            pods.clone(),
            secrets,
            name.clone(),
            secret_name(job.deployment_id),
        );
        let mut pod = build_pod(job, &self.settings);
        pod.metadata.annotations.get_or_insert_default().insert(
            pod::ATTEMPT_ALIVE_AT.to_owned(),
            chrono::Utc::now().to_rfc3339(),
        );
        if let Err(error) = pods.create(&PostParams::default(), &pod).await {
            guard.delete().await;
            return Err(api_error("creating the build pod", error));
        }
        guard.pod_created();
        log.line(format!(
            "Building in pod {name} with {}",
            self.settings.image
        ))
        .await;
        let limit = self.settings.deadline + self.settings.grace;
        let run = tokio::time::timeout(limit, self.run(&pods, &name, job, log));
        let result = tokio::select! {
            result = run => match result {
                Ok(result) => result,
                Err(_) => Err(BuildError::DeadlineExceeded {
                    limit: self.settings.deadline,
                    phase: "building",
                }),
            },
            () = keep_alive(&pods, &name, renew) => unreachable!("keep_alive never returns"),
        };
        guard.delete().await;
        Ok(Built::Pushed { digest: result? })
    }

    async fn push(&self, _job: &BuildJob, _log: &BuildLog) -> Result<(), BuildError> {
        // Kaniko pushed as it built.
        Ok(())
    }
}

fn api_error(doing: &str, error: kube::Error) -> BuildError {
    let detail = match &error {
        kube::Error::Api(status) if !status.message.is_empty() => {
            format!("{doing}: {}", status.message)
        }
        other => format!("{doing}: {other}"),
    };
    BuildError::Kubernetes { detail }
}
