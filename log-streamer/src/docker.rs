//! The `docker` driver's log source: containers carrying the berth labels on
//! a Docker Engine API (Docker, or Podman's compatible socket), their
//! lifecycle events, and their logs with timestamps.

use async_trait::async_trait;
use berth_proto::labels;
use bollard::models::{ContainerSummary, ContainerSummaryStateEnum, EventMessage};
use bollard::query_parameters::{
    EventsOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder,
};
use bollard::Docker;
use chrono::{DateTime, Utc};
use futures::stream::{self, BoxStream};
use futures::StreamExt;
use std::collections::HashMap;
use uuid::Uuid;

use crate::error::StreamError;
use crate::frames::{fragment, LineJoiner};
use crate::source::{Lifecycle, LogLine, LogSource, Workload, WorkloadEvent};

#[derive(Clone)]
pub struct DockerLogSource {
    docker: Docker,
    /// The label (`key`, `value`) of the workloads to follow.
    selector: (String, String),
}

impl DockerLogSource {
    /// Follows every workload berth runs (`app.kubernetes.io/managed-by=berth`).
    pub fn new(docker: Docker) -> Self {
        Self {
            docker,
            selector: (
                labels::MANAGED_BY.to_owned(),
                labels::MANAGED_BY_VALUE.to_owned(),
            ),
        }
    }

    /// Follows the workloads labelled `key=value` instead (they still need
    /// a `berth.dev/app` label to have a topic).
    pub fn with_selector(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.selector = (key.into(), value.into());
        self
    }

    fn label_filter(&self) -> HashMap<&'static str, Vec<String>> {
        let (key, value) = &self.selector;
        HashMap::from([("label", vec![format!("{key}={value}")])])
    }
}

/// A workload from its labels, if berth runs it for an app: its name must
/// be the one the deploy-worker gives it for those labels. A container a
/// build step made (Docker's classic builder copies the image's labels onto
/// it, berth's too if a Dockerfile sets them) has a name of the engine's and
/// is ignored, so it cannot write into another app's log.
fn workload(
    id: &str,
    name: &str,
    labels: &HashMap<String, String>,
    running: bool,
) -> Option<Workload> {
    if !labels::named_by_berth(name, labels) {
        tracing::debug!(
            container = id,
            name,
            "berth labels on a container berth did not name; ignored"
        );
        return None;
    }
    let app_id = labels.get(labels::APP)?.parse::<Uuid>().ok()?;
    Some(Workload {
        id: id.to_owned(),
        name: name.trim_start_matches('/').to_owned(),
        app_id,
        key: labels
            .get(labels::DEPLOYMENT)
            .cloned()
            .unwrap_or_else(|| id.to_owned()),
        running,
    })
}

fn from_summary(summary: ContainerSummary) -> Option<Workload> {
    let id = summary.id?;
    let name = summary
        .names
        .unwrap_or_default()
        .into_iter()
        .next()
        .unwrap_or(id.clone());
    let running = summary.state == Some(ContainerSummaryStateEnum::RUNNING);
    workload(&id, &name, &summary.labels.unwrap_or_default(), running)
}

/// A Docker event as a workload event; `None` for events berth ignores.
fn from_event(event: EventMessage) -> Option<WorkloadEvent> {
    let actor = event.actor?;
    let id = actor.id?;
    let attributes = actor.attributes.unwrap_or_default();
    let kind = match event.action.as_deref()? {
        "start" | "restart" => Lifecycle::Started,
        "die" => Lifecycle::Died {
            exit_code: attributes
                .get("exitCode")
                .and_then(|code| code.parse().ok()),
        },
        "oom" => Lifecycle::OutOfMemory,
        // Docker says `destroy`, Podman `remove`.
        "destroy" | "remove" => Lifecycle::Removed,
        _ => return None,
    };
    let name = attributes
        .get("name")
        .cloned()
        .unwrap_or_else(|| id.clone());
    let cursor = event
        .time_nano
        .or(event.time.map(|seconds| seconds * 1_000_000_000))?;
    let at = DateTime::<Utc>::from_timestamp_nanos(cursor);
    Some(WorkloadEvent {
        workload: workload(&id, &name, &attributes, kind == Lifecycle::Started)?,
        kind,
        at,
        cursor,
    })
}

#[async_trait]
impl LogSource for DockerLogSource {
    async fn workloads(&self) -> Result<Vec<Workload>, StreamError> {
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&self.label_filter())
            .build();
        let containers = self.docker.list_containers(Some(options)).await?;
        Ok(containers.into_iter().filter_map(from_summary).collect())
    }

    async fn is_running(&self, id: &str) -> Result<Option<bool>, StreamError> {
        // Listing, not inspecting: Podman's inspect reports a transient
        // `stopped` state the Docker API (and bollard) does not know.
        let filters = HashMap::from([("id", vec![id.to_owned()])]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let containers = self.docker.list_containers(Some(options)).await?;
        Ok(containers
            .into_iter()
            .find(|c| c.id.as_deref() == Some(id))
            .map(|c| c.state == Some(ContainerSummaryStateEnum::RUNNING)))
    }

    fn events(&self, since: Option<i64>) -> BoxStream<'static, Result<WorkloadEvent, StreamError>> {
        let mut options = EventsOptionsBuilder::default().filters(&self.label_filter());
        if let Some(since) = since {
            options = options.since(&since.div_euclid(1_000_000_000).to_string());
        }
        self.docker
            .events(Some(options.build()))
            .filter_map(|event| {
                futures::future::ready(match event {
                    Ok(event) => from_event(event).map(Ok),
                    Err(error) => Some(Err(error.into())),
                })
            })
            .boxed()
    }

    fn logs(&self, id: &str, since: i64) -> BoxStream<'static, Result<LogLine, StreamError>> {
        let options = LogsOptionsBuilder::default()
            .follow(true)
            .stdout(true)
            .stderr(true)
            .timestamps(true)
            .since(i32::try_from(since).unwrap_or(0))
            .build();
        let frames = self.docker.logs(id, Some(options));
        stream::unfold(Some((frames, LineJoiner::default())), |state| async move {
            let (mut frames, mut joiner) = state?;
            loop {
                match frames.next().await {
                    Some(Ok(frame)) => {
                        let lines = fragment(frame)
                            .map(|fragment| joiner.push(fragment))
                            .unwrap_or_default();
                        if !lines.is_empty() {
                            let lines = stream::iter(lines.into_iter().map(Ok));
                            return Some((lines.boxed(), Some((frames, joiner))));
                        }
                    }
                    // A piece of a line read before the error is read again.
                    Some(Err(error)) => {
                        let failed = stream::iter([Err(StreamError::from(error))]);
                        return Some((failed.boxed(), None));
                    }
                    None => {
                        let rest = joiner.finish(Utc::now());
                        return Some((stream::iter(rest.into_iter().map(Ok)).boxed(), None));
                    }
                }
            }
        })
        .flatten()
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::EventActor;

    fn berth_labels(app: Uuid, deployment: Uuid) -> HashMap<String, String> {
        HashMap::from([
            (labels::APP.to_owned(), app.to_string()),
            (labels::APP_NAME.to_owned(), "web".to_owned()),
            (labels::TENANT.to_owned(), "t".to_owned()),
            (labels::DEPLOYMENT.to_owned(), deployment.to_string()),
            (labels::MANAGED_BY.to_owned(), "berth".to_owned()),
        ])
    }

    #[test]
    fn lifecycle_events_carry_the_workload_and_exit_code() {
        let (app, deployment) = (Uuid::now_v7(), Uuid::now_v7());
        let name = labels::container_name("t", "web", deployment);
        let mut attributes = berth_labels(app, deployment);
        attributes.extend([
            ("name".to_owned(), name.clone()),
            ("exitCode".to_owned(), "137".to_owned()),
        ]);
        let event = |action: &str| EventMessage {
            action: Some(action.into()),
            actor: Some(EventActor {
                id: Some("c0ffee".into()),
                attributes: Some(attributes.clone()),
            }),
            time_nano: Some(1_795_313_598_000_000_001),
            ..Default::default()
        };
        let died = from_event(event("die")).unwrap();
        assert_eq!(
            died.kind,
            Lifecycle::Died {
                exit_code: Some(137)
            }
        );
        assert_eq!(died.workload.app_id, app);
        assert_eq!(died.workload.key, deployment.to_string());
        assert_eq!(died.workload.name, name);
        assert_eq!(died.cursor, 1_795_313_598_000_000_001);
        assert_eq!(
            from_event(event("restart")).unwrap().kind,
            Lifecycle::Started
        );
        assert_eq!(
            from_event(event("remove")).unwrap().kind,
            Lifecycle::Removed
        );
        assert!(from_event(event("exec_create")).is_none());
    }

    /// S3: Docker's classic builder runs each build step in a container
    /// that carries the image's labels so far: a Dockerfile that sets
    /// berth's labels with another app's id makes containers that look like
    /// that app's. Their names are the engine's, so they are not followed,
    /// as events or when listed. (Before, labels alone decided.)
    #[test]
    fn containers_with_berth_labels_but_not_berths_name_are_ignored() {
        let (victim, deployment) = (Uuid::now_v7(), Uuid::now_v7());
        let labels = berth_labels(victim, deployment);
        let summary = |name: &str| ContainerSummary {
            id: Some("c0ffee".into()),
            names: Some(vec![format!("/{name}")]),
            labels: Some(labels.clone()),
            state: Some(ContainerSummaryStateEnum::RUNNING),
            ..Default::default()
        };
        let named = labels::container_name("t", "web", deployment);
        assert_eq!(from_summary(summary(&named)).unwrap().app_id, victim);
        for impostor in ["pensive_hopper", "berth-t-web", "berth-t-api-0123456789ab"] {
            assert!(from_summary(summary(impostor)).is_none(), "{impostor}");
            let mut attributes = labels.clone();
            attributes.insert("name".into(), impostor.into());
            let event = EventMessage {
                action: Some("start".into()),
                actor: Some(EventActor {
                    id: Some("c0ffee".into()),
                    attributes: Some(attributes),
                }),
                time_nano: Some(1),
                ..Default::default()
            };
            assert!(from_event(event).is_none(), "{impostor}");
        }
    }
}
