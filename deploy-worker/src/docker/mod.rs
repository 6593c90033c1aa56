//! The `docker` driver: containers on a Docker Engine API (Docker, or
//! Podman's Docker-compatible socket), `replicas` of them per deployment
//! ([`deploy`]).
//!
//! A deploy pulls the release's image by digest, starts a new container
//! labelled with the berth labels and the app port published on the host
//! (the engine picks the host port), waits until it accepts connections,
//! then moves the app's route on the edge router to it ([`routes`]), lets
//! the older containers finish the requests they hold, and only then stops
//! them ([`retire`] says why they stay a while). Containers are found by
//! label, so the worker keeps no state of its own.

mod crashes;
mod deploy;
mod health;
mod image;
mod instances;
pub mod network;
mod ready;
mod retire;
mod routes;
pub mod spec;
mod unhealthy;

use async_trait::async_trait;
use berth_proto::{labels, AppRef};
use bollard::auth::DockerCredentials;
use bollard::models::{ContainerSummary, ContainerSummaryStateEnum};
use bollard::query_parameters::{CreateContainerOptionsBuilder, ListContainersOptionsBuilder};
use bollard::Docker;
use futures::stream::BoxStream;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;
use uuid::Uuid;

use crate::config::DockerConfig;
use crate::crash_loop::Failure;
use crate::error::DeployError;
use crate::registry::RegistryPull;
use crate::router::Routing;
use crate::runtime::{DeploySpec, Endpoint, Instance, RouteWant, Runtime};

pub struct DockerRuntime {
    docker: Docker,
    config: DockerConfig,
    /// berth's registry and its pull grants; `None`: anonymous pulls.
    pull: Option<RegistryPull>,
    /// The edge router apps answer behind; `None`: on their ports only.
    routing: Option<Routing>,
}

impl DockerRuntime {
    pub fn new(docker: Docker, config: DockerConfig, pull: Option<RegistryPull>) -> Self {
        Self {
            docker,
            config,
            pull,
            routing: None,
        }
    }

    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// A pull grant of the release's tenant, for an image in berth's
    /// registry: the engine can pull that tenant's images and no other's.
    fn credentials(&self, image: &str, tenant: &str) -> Option<DockerCredentials> {
        let pull = self.pull.as_ref()?;
        let grant = pull.for_image(image, tenant)?;
        Some(DockerCredentials {
            username: Some(grant.username),
            password: Some(grant.password),
            serveraddress: Some(pull.host().to_owned()),
            ..Default::default()
        })
    }

    /// The host address a health check connects to.
    fn connect_host(&self) -> &str {
        match self.config.publish_addr.as_str() {
            "0.0.0.0" | "" => "127.0.0.1",
            "::" => "::1",
            other => other,
        }
    }

    async fn app_containers(&self, app_id: Uuid) -> Result<Vec<ContainerSummary>, DeployError> {
        let filters = HashMap::from([("label", vec![format!("{}={app_id}", labels::APP)])]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        Ok(self.docker.list_containers(Some(options)).await?)
    }

    /// Whether a container of the deployment that does not serve yet may
    /// still be another attempt's, waiting for it to serve: just made or
    /// running, and younger than the readiness wait (and some grace). An
    /// older one, or one that exited, is a crashed attempt's leftover.
    fn may_be_starting(&self, container: &ContainerSummary) -> bool {
        let starting = matches!(
            container.state,
            Some(ContainerSummaryStateEnum::RUNNING | ContainerSummaryStateEnum::CREATED)
        );
        let window = self.config.ready_timeout_secs as i64 + 30;
        let age = chrono::Utc::now().timestamp() - container.created.unwrap_or_default();
        starting && age < window
    }

    /// The newest running deployment of the app that is newer than `than`.
    async fn newer_running(&self, app_id: Uuid, than: Uuid) -> Result<Option<Uuid>, DeployError> {
        Ok(self
            .app_containers(app_id)
            .await?
            .iter()
            .filter(|c| c.state == Some(ContainerSummaryStateEnum::RUNNING))
            .filter_map(spec::deployment_of)
            .filter(|id| *id > than)
            .max())
    }

    /// A running container of this deployment that still answers, if any.
    async fn healthy_existing(&self, container: &ContainerSummary, port: u16) -> Option<u16> {
        let id = container.id.as_deref()?;
        let inspect = ready::inspect(&self.docker, id).await.ok()??;
        let running = inspect.state.as_ref()?.running == Some(true);
        let host_port = ready::published_port(&inspect, &format!("{port}/tcp"))?;
        let answers = ready::serves(&inspect, self.connect_host(), host_port, port).await;
        (running && answers).then_some(host_port)
    }

    /// Creates and starts the deployment's container, waits until it serves.
    async fn start_new(
        &self,
        spec: &DeploySpec,
        name: &str,
        replica: u32,
    ) -> Result<(String, u16), DeployError> {
        let options = CreateContainerOptionsBuilder::default().name(name).build();
        let network = network::ensure(
            &self.docker,
            &self.config.installation,
            &spec.release.app.tenant,
        )
        .await?;
        let body = spec::container_body(spec, &self.config, &network, replica);
        let created = match self
            .docker
            .create_container(Some(options.clone()), body.clone())
            .await
        {
            // Another attempt made it between this one's look and now.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => return Err(starting_elsewhere(name)),
            // Another deploy's retirement removed the image between this
            // deploy's pull and now: pull it again.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => {
                let credentials = self.credentials(&spec.release.image, &spec.release.app.tenant);
                image::ensure_image(&self.docker, &spec.release.image, credentials).await?;
                self.docker.create_container(Some(options), body).await?
            }
            created => created?,
        };
        let id = created.id;
        let port = spec.release.config.port;
        let events = ready::exit_events(&self.docker, &id);
        let outcome = async {
            self.docker.start_container(&id, None).await?;
            ready::wait_until_ready(
                &self.docker,
                &id,
                port,
                spec.release.config.health_check_path.as_deref(),
                self.connect_host(),
                Duration::from_secs(self.config.ready_timeout_secs),
                events,
            )
            .await
        }
        .await;
        match outcome {
            Ok(ready) => Ok((id, ready.host_port)),
            Err(error) => {
                if let Err(cleanup) = self.remove(&id).await {
                    tracing::warn!(container = name, %cleanup, "could not remove a failed container");
                }
                Err(error)
            }
        }
    }
}

/// Another attempt of the deployment (a duplicate delivery on another
/// worker) owns its container and may be waiting for it to serve: this one
/// tries again later rather than disturb it.
fn starting_elsewhere(name: &str) -> DeployError {
    DeployError::Engine(format!(
        "another attempt is starting this deployment's container {name}; \
         trying again once it serves or gives up"
    ))
}

#[async_trait]
impl Runtime for DockerRuntime {
    async fn instances(&self, app: &AppRef) -> Result<Vec<Instance>, DeployError> {
        Ok(self
            .app_containers(app.id)
            .await?
            .iter()
            .map(|container| spec::instance_of(container, &self.config.public_host))
            .collect())
    }

    async fn deploy(&self, spec: &DeploySpec) -> Result<Endpoint, DeployError> {
        self.deploy_release(spec).await
    }

    async fn scale(
        &self,
        app: &AppRef,
        replicas: u32,
        live: Option<Uuid>,
    ) -> Result<usize, DeployError> {
        self.scale_app(app, replicas, live).await
    }

    fn runs_an_instance_per_replica(&self) -> bool {
        true
    }

    async fn apps(&self) -> Result<Option<Vec<AppRef>>, DeployError> {
        let containers = self.installation_containers().await?;
        Ok(Some(crate::runtime::apps_of(
            containers,
            |container, key| container.labels.as_ref()?.get(key).cloned(),
        )))
    }

    async fn retire_deployment(
        &self,
        app: &AppRef,
        deployment_id: Option<Uuid>,
    ) -> Result<usize, DeployError> {
        let mut retired = Vec::new();
        for container in self.app_containers(app.id).await? {
            let instance = spec::instance_of(&container, &self.config.public_host);
            if instance.deployment_id == deployment_id && self.retire(&container).await? {
                retired.push(container);
            }
        }
        Ok(self.retired(retired).await)
    }

    async fn remove_app(&self, app: &AppRef) -> Result<usize, DeployError> {
        let containers = self.app_containers(app.id).await?;
        for container in &containers {
            if let Some(id) = &container.id {
                self.stop_and_remove(id).await?;
            }
        }
        if let Some(routing) = &self.routing {
            routing.router.remove(app.id).await?;
        }
        tracing::info!(app_id = %app.id, removed = containers.len(), "removed the app's containers");
        let count = containers.len();
        self.remove_images_of(containers).await;
        Ok(count)
    }

    async fn prune_retired(&self, app: &AppRef, live: Option<Uuid>) -> Result<usize, DeployError> {
        self.prune_retired_containers(app.id, live).await
    }

    async fn instance_health(
        &self,
        app: &AppRef,
        live: Uuid,
    ) -> Result<Vec<berth_proto::InstanceHealth>, DeployError> {
        self.live_instance_health(app, live).await
    }

    fn restarts_crashed_instances(&self) -> bool {
        self.config.restart_policy.policy == bollard::models::RestartPolicyNameEnum::NO
    }

    async fn restart_crashed(&self, instance: &str) -> Result<bool, DeployError> {
        self.restart_crashed_container(instance).await
    }

    async fn failures(&self) -> Result<Option<BoxStream<'static, Failure>>, DeployError> {
        use futures::StreamExt;
        // Ends when the engine's event stream ends, so it is followed again.
        let crashes = self
            .crash_stream()
            .map(Some)
            .chain(futures::stream::once(async { None }));
        let failures = futures::stream::select(crashes, self.unhealthy_stream().map(Some))
            .take_while(|failure| std::future::ready(failure.is_some()))
            .filter_map(std::future::ready);
        Ok(Some(failures.boxed()))
    }

    async fn converge_routes(
        &self,
        wants: &[RouteWant],
        keep: &(dyn Fn(Uuid) -> bool + Send + Sync),
    ) -> Result<BTreeSet<Uuid>, DeployError> {
        self.converge_app_routes(wants, keep).await
    }
}
