//! Retiring containers without losing the end of their logs.
//!
//! The log-streamer reads a container's log from the engine, and the log
//! goes with the container. A container removed the moment it is replaced
//! takes along whatever the streamer had not read yet: its last lines when
//! the streamer was down or behind, often the very lines (a shutdown
//! message, a crash) its users look for. So a retired container is only
//! stopped, and stays, stopped, for `retired_keep_secs`; the reconciler's
//! pass then removes it and its image
//! ([`DockerRuntime::prune_retired_containers`]).
//! A stopped container takes no memory, CPU or port, only its disk.
//!
//! A container that never started has no log and goes at once, as does
//! everything of a deleted app (its log topic goes too).

use bollard::models::{ContainerSummary, ContainerSummaryStateEnum};
use bollard::query_parameters::{RemoveContainerOptionsBuilder, StopContainerOptionsBuilder};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{image, spec, DockerRuntime};
use crate::error::DeployError;

/// Whether the container has run and ended (the state a retired one is
/// kept in).
fn has_ended(container: &ContainerSummary) -> bool {
    matches!(
        container.state,
        Some(ContainerSummaryStateEnum::EXITED | ContainerSummaryStateEnum::DEAD)
    )
}

impl DockerRuntime {
    fn keeps_retired(&self) -> bool {
        self.config.retired_keep_secs > 0
    }

    /// Retires a container: stops it and, unless retired containers are
    /// kept for their logs, removes it. Returns whether that changed
    /// anything: one that already ended and is kept is left as it is.
    pub(super) async fn retire(&self, container: &ContainerSummary) -> Result<bool, DeployError> {
        let Some(id) = container.id.as_deref() else {
            return Ok(false);
        };
        let never_ran = container.state == Some(ContainerSummaryStateEnum::CREATED);
        if never_ran || !self.keeps_retired() {
            self.stop_and_remove(id).await?;
            return Ok(true);
        }
        if has_ended(container) {
            return Ok(false);
        }
        // The old release must not go on serving: when the engine cannot
        // stop it, it goes by force (and its last lines may go with it).
        if let Err(error) = self.stop(id).await {
            tracing::warn!(container = id, %error, "stop failed; removing by force");
            self.remove(id).await?;
        }
        Ok(true)
    }

    /// Stops a container with the grace period; one that already stopped
    /// or is gone counts as stopped.
    pub(super) async fn stop(&self, id_or_name: &str) -> Result<(), DeployError> {
        let stop = StopContainerOptionsBuilder::default()
            .t(self.config.stop_timeout_secs as i32)
            .build();
        match self.docker.stop_container(id_or_name, Some(stop)).await {
            Ok(()) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304 | 404,
                ..
            }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Stops (with the grace period) and removes a container; one that is
    /// already gone counts as removed.
    pub(super) async fn stop_and_remove(&self, id_or_name: &str) -> Result<(), DeployError> {
        if let Err(error) = self.stop(id_or_name).await {
            tracing::warn!(container = id_or_name, %error, "stop failed; removing by force");
        }
        self.remove(id_or_name).await
    }

    pub(super) async fn remove(&self, id_or_name: &str) -> Result<(), DeployError> {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match self
            .docker
            .remove_container(id_or_name, Some(options))
            .await
        {
            Ok(()) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Retires the app's containers of deployments older than `current`
    /// (and unlabelled leftovers); containers of newer ones are left alone.
    /// Returns how many it stopped or removed.
    pub(super) async fn retire_older(
        &self,
        app_id: Uuid,
        current: Uuid,
    ) -> Result<usize, DeployError> {
        let mut retired = Vec::new();
        for container in self.app_containers(app_id).await? {
            let instance = spec::instance_of(&container, &self.config.public_host);
            let older = instance.deployment_id.is_none_or(|id| id < current);
            if older && self.retire(&container).await? {
                tracing::info!(app_id = %app_id, container = instance.name, "retired an older container");
                retired.push(container);
            }
        }
        Ok(self.retired(retired).await)
    }

    /// Counts retired containers and, when they were removed, removes
    /// their images unless another container uses them: rollback pulls
    /// them again, so the engine holds only what runs or is stopped.
    pub(super) async fn retired(&self, containers: Vec<ContainerSummary>) -> usize {
        let count = containers.len();
        if !self.keeps_retired() {
            self.remove_images_of(containers).await;
        }
        count
    }

    /// Removes the release images of removed containers that no other
    /// container uses.
    pub(super) async fn remove_images_of(&self, removed: Vec<ContainerSummary>) {
        image::remove_unused(&self.docker, removed.into_iter().filter_map(|c| c.image)).await;
    }

    /// Removes the app's retired containers, those of any deployment but
    /// `live` that ended more than `retired_keep_secs` ago, and then their
    /// images; returns how many containers went.
    pub(crate) async fn prune_retired_containers(
        &self,
        app_id: Uuid,
        live: Option<Uuid>,
    ) -> Result<usize, DeployError> {
        let keep = chrono::Duration::seconds(self.config.retired_keep_secs as i64);
        let mut pruned = Vec::new();
        for container in self.app_containers(app_id).await? {
            let instance = spec::instance_of(&container, &self.config.public_host);
            if instance.deployment_id == live && live.is_some() || !has_ended(&container) {
                continue;
            }
            let Some(id) = container.id.as_deref() else {
                continue;
            };
            // Not known yet (Podman's transient `stopped` state): the
            // next pass looks again.
            let Some(ended) = self.ended_at(id).await? else {
                continue;
            };
            if Utc::now() - ended < keep {
                continue;
            }
            self.remove(id).await?;
            tracing::info!(%app_id, container = instance.name, "removed a retired container");
            pruned.push(container);
        }
        let count = pruned.len();
        metrics::counter!("berth_retired_containers_removed_total").increment(count as u64);
        self.remove_images_of(pruned).await;
        Ok(count)
    }

    /// When the container's last run ended; `None` when the engine does
    /// not say.
    async fn ended_at(&self, id: &str) -> Result<Option<DateTime<Utc>>, DeployError> {
        let Some(inspect) = super::ready::inspect(&self.docker, id).await? else {
            return Ok(None);
        };
        Ok(inspect
            .state
            .and_then(|state| state.finished_at)
            .and_then(|at| DateTime::parse_from_rfc3339(&at).ok())
            .map(|at| at.with_timezone(&Utc)))
    }
}
