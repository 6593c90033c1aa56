//! The docker driver's crashes, from the engine's event stream: each `die`
//! of a container of this installation with a crash's exit code, and each
//! `oom` kill ([`Failure::is_crash`]).

use berth_proto::labels;
use bollard::query_parameters::EventsOptionsBuilder;
use bollard::Docker;
use futures::stream::BoxStream;
use futures::StreamExt;
use std::collections::HashMap;
use uuid::Uuid;

use super::{spec, DockerRuntime};
use crate::crash_loop::{Failure, FailureKind};
use crate::error::DeployError;
use bollard::models::ContainerSummaryStateEnum;

impl DockerRuntime {
    pub(super) fn crash_stream(&self) -> BoxStream<'static, Failure> {
        let since = chrono::Utc::now().timestamp().to_string();
        let installation = format!("{}={}", labels::INSTALLATION, self.config.installation);
        let filters = HashMap::from([("label", vec![installation.as_str()])]);
        let options = EventsOptionsBuilder::default()
            .since(&since)
            .filters(&filters)
            .build();
        let docker = self.docker.clone();
        self.docker
            .events(Some(options))
            .take_while(|event| {
                if let Err(error) = event {
                    tracing::warn!(%error, "the engine's event stream failed");
                }
                std::future::ready(event.is_ok())
            })
            .filter_map(move |event| {
                let docker = docker.clone();
                async move {
                    let event = event.ok()?;
                    let action = event.action?;
                    let actor = event.actor?;
                    let attributes = actor.attributes.unwrap_or_default();
                    let exit_code = attributes.get("exitCode").and_then(|c| c.parse().ok());
                    let oom = action == "oom";
                    if !(action == "die" || oom) || !Failure::is_crash(exit_code, oom) {
                        return None;
                    }
                    let labels = match attributes.contains_key(labels::DEPLOYMENT) {
                        true => attributes,
                        false => labels_of(&docker, actor.id.as_deref()?).await?,
                    };
                    Some(Failure {
                        app: spec::app_of(&labels)?,
                        deployment_id: labels.get(labels::DEPLOYMENT)?.parse().ok()?,
                        kind: FailureKind::Crashed {
                            instance: actor.id.clone()?,
                            exit_code,
                            oom,
                        },
                        at: chrono::Utc::now(),
                    })
                }
            })
            .boxed()
    }
}

/// A container's labels, when the event did not carry them.
async fn labels_of(docker: &Docker, container_id: &str) -> Option<HashMap<String, String>> {
    docker
        .inspect_container(container_id, None)
        .await
        .ok()?
        .config?
        .labels
}

impl DockerRuntime {
    /// See [`crate::Runtime::restart_crashed`].
    pub(super) async fn restart_crashed_container(&self, id: &str) -> Result<bool, DeployError> {
        let inspect = match self.docker.inspect_container(id, None).await {
            Ok(inspect) => inspect,
            // Removed since it crashed (a retirement, a failed deploy).
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => return Ok(false),
            // Podman's `stopped` state, between an exit and its cleanup,
            // which bollard cannot decode: the next crash tries again.
            Err(bollard::errors::Error::JsonDataError { .. }) => return Ok(false),
            Err(error) => return Err(error.into()),
        };
        if inspect.state.as_ref().and_then(|s| s.running) == Some(true) {
            return Ok(false);
        }
        let labels = inspect.config.and_then(|c| c.labels).unwrap_or_default();
        let id_of = |key: &str| labels.get(key)?.parse::<Uuid>().ok();
        let (Some(app_id), Some(deployment)) = (id_of(labels::APP), id_of(labels::DEPLOYMENT))
        else {
            return Ok(false);
        };
        let replaced = self.app_containers(app_id).await?.iter().any(|c| {
            c.state == Some(ContainerSummaryStateEnum::RUNNING)
                && super::spec::deployment_of(c).is_some_and(|other| other > deployment)
        });
        if replaced {
            return Ok(false);
        }
        self.docker.start_container(id, None).await?;
        Ok(true)
    }
}
