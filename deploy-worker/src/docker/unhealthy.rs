//! Deployments whose instances all fail their health check, found by
//! checking every running instance with a health check path each
//! [`POLL`]. The router stops sending such instances requests within a
//! second or two; this is what tells automatic rollback that a release
//! stays unhealthy ([`UNHEALTHY_FOR`]).

use berth_proto::{labels, AppRef};
use bollard::models::ContainerSummary;
use bollard::query_parameters::ListContainersOptionsBuilder;
use bollard::Docker;
use futures::stream::{self, BoxStream};
use futures::StreamExt;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};
use uuid::Uuid;

use super::{health, spec, DockerRuntime};
use crate::crash_loop::{Failure, FailureKind, UNHEALTHY_FOR};

const POLL: Duration = Duration::from_secs(5);

/// What the checks found so far.
struct HealthWatch {
    docker: Docker,
    installation: String,
    connect_host: String,
    /// Per container: since when it fails, and what its last check got.
    failing: HashMap<String, (Instant, String)>,
    pending: VecDeque<Failure>,
}

impl DockerRuntime {
    pub(super) fn unhealthy_stream(&self) -> BoxStream<'static, Failure> {
        let watch = HealthWatch {
            docker: self.docker.clone(),
            installation: self.config.installation.clone(),
            connect_host: self.connect_host().to_owned(),
            failing: HashMap::new(),
            pending: VecDeque::new(),
        };
        stream::unfold(watch, |mut watch| async move {
            loop {
                if let Some(failure) = watch.pending.pop_front() {
                    return Some((failure, watch));
                }
                tokio::time::sleep(POLL).await;
                if let Err(error) = watch.check_all().await {
                    tracing::warn!(%error, "could not check the instances' health");
                }
            }
        })
        .boxed()
    }
}

impl HealthWatch {
    async fn check_all(&mut self) -> Result<(), bollard::errors::Error> {
        let filters = HashMap::from([(
            "label",
            vec![
                format!("{}={}", labels::INSTALLATION, self.installation),
                labels::HEALTH_CHECK_PATH.to_owned(),
            ],
        )]);
        let options = ListContainersOptionsBuilder::default()
            .filters(&filters)
            .build();
        let running = self.docker.list_containers(Some(options)).await?;
        let checks = running.iter().filter_map(|container| {
            let id = container.id.clone()?;
            let path = spec::health_check_path_of(container.labels.as_ref())?;
            let port = container
                .ports
                .iter()
                .flatten()
                .find_map(|p| p.public_port)?;
            let host = self.connect_host.clone();
            Some(async move {
                (
                    id,
                    health::check(&host, port, &path)
                        .await
                        .map_err(|said| format!("GET {path} {said}")),
                )
            })
        });
        let results: HashMap<String, Result<(), String>> = futures::future::join_all(checks)
            .await
            .into_iter()
            .collect();
        let now = Instant::now();
        self.failing.retain(|id, _| results.contains_key(id));
        for (id, result) in &results {
            match result {
                Ok(()) => {
                    self.failing.remove(id);
                }
                Err(said) => {
                    let entry = self
                        .failing
                        .entry(id.clone())
                        .or_insert((now, String::new()));
                    entry.1 = said.clone();
                }
            }
        }
        let mut deployments: BTreeMap<Uuid, (AppRef, Vec<&ContainerSummary>)> = BTreeMap::new();
        for container in &running {
            let app = container.labels.as_ref().and_then(spec::app_of);
            let (Some(deployment), Some(app)) = (spec::deployment_of(container), app) else {
                continue;
            };
            deployments
                .entry(deployment)
                .or_insert((app, Vec::new()))
                .1
                .push(container);
        }
        for (deployment_id, (app, containers)) in deployments {
            let long = containers.iter().map(|c| {
                c.id.as_ref()
                    .and_then(|id| self.failing.get(id))
                    .filter(|(since, _)| now.duration_since(*since) >= UNHEALTHY_FOR)
            });
            let all: Option<Vec<&(Instant, String)>> = long.collect();
            if let Some(said) = all.and_then(|all| all.first().map(|(_, said)| said.clone())) {
                self.pending.push_back(Failure {
                    app,
                    deployment_id,
                    kind: FailureKind::Unhealthy { said },
                    at: chrono::Utc::now(),
                });
            }
        }
        Ok(())
    }
}
