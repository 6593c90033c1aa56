//! A deploy and a scale on the docker driver: a deployment runs
//! `replicas` containers, `<name>`, `<name>-1`, … (label
//! `berth.dev/replica`), each published on a port of its own, and the edge
//! router balances the app's host over those that run.

use berth_proto::{labels, AppRef};
use bollard::models::{
    ContainerCreateBody, ContainerSummary, ContainerSummaryStateEnum, PortBinding,
};
use bollard::query_parameters::CreateContainerOptionsBuilder;
use std::time::{Duration, Instant};
use uuid::Uuid;

use super::{image, ready, spec, starting_elsewhere, DockerRuntime};
use crate::error::DeployError;
use crate::router::{AppRoute, Routing, Target};
use crate::runtime::{DeploySpec, Endpoint};

fn name_of(container: &ContainerSummary) -> Option<&str> {
    container
        .names
        .iter()
        .flatten()
        .next()
        .map(|name| name.trim_start_matches('/'))
}

fn running(container: &ContainerSummary) -> bool {
    container.state == Some(ContainerSummaryStateEnum::RUNNING)
}

impl DockerRuntime {
    pub(super) async fn deploy_release(&self, spec: &DeploySpec) -> Result<Endpoint, DeployError> {
        let started = Instant::now();
        let app = &spec.release.app;
        let deployment_id = spec.deployment_id;
        spec::validate_image(&spec.release.image)?;
        let replicas = spec.release.config.replicas.max(1);
        let names: Vec<String> = (0..replicas)
            .map(|n| spec::replica_name(app, deployment_id, n))
            .collect();
        let ours: Vec<ContainerSummary> = self
            .app_containers(app.id)
            .await?
            .into_iter()
            .filter(|c| spec::deployment_of(c) == Some(deployment_id))
            .collect();

        let rollout = async {
            image::ensure_image(
                &self.docker,
                &spec.release.image,
                self.credentials(&spec.release.image, &app.tenant),
            )
            .await?;
            let attempts = names.iter().zip(0..).map(|(name, replica)| {
                let existing = ours.iter().find(|c| name_of(c) == Some(name.as_str()));
                self.serve_replica(spec, name, replica, existing)
            });
            let served = futures::future::join_all(attempts).await;
            let mut ports = Vec::new();
            let mut failed = None;
            for (served, name) in served.into_iter().zip(&names) {
                match served {
                    Ok((port, _)) => ports.push((name, port)),
                    Err(error) => failed = failed.or(Some(error)),
                }
            }
            match failed {
                None => Ok(ports.into_iter().map(|(_, port)| port).collect::<Vec<_>>()),
                Some(error) => {
                    // The instances this attempt started go with it; the
                    // previous release never stopped serving.
                    for (name, _) in ports {
                        if let Err(cleanup) = self.remove(name).await {
                            tracing::warn!(container = name, %cleanup, "could not remove an instance of a failed rollout");
                        }
                    }
                    Err(error)
                }
            }
        };
        let ports = tokio::select! {
            biased;
            _ = spec.cancelled.cancelled() => return self.undo(&names).await,
            served = rollout => match served {
                Ok(ports) => ports,
                Err(error) => return Err(self.overtaken(app.id, deployment_id, &names, error).await),
            },
        };
        if let Some(newer) = self.newer_running(app.id, deployment_id).await? {
            for name in &names {
                self.remove(name).await?;
            }
            return Err(DeployError::Superseded { newer });
        }
        // The last moment to back out: past it the older containers go.
        if spec.cancelled.is_cancelled() {
            return self.undo(&names).await;
        }
        // Instances of an earlier attempt with more replicas.
        for extra in ours.iter().filter(|c| spec::replica_of(c) >= replicas) {
            self.retire(extra).await?;
        }
        let endpoint = match &self.routing {
            Some(routing) => {
                self.move_traffic(routing, spec, &ports).await?;
                routing.url(app)
            }
            None => spec::endpoint(&self.config.public_host, ports[0]),
        };
        let retired = self.retire_older(app.id, deployment_id).await?;
        tracing::info!(%deployment_id, app_id = %app.id, endpoint, replicas, retired,
            elapsed_ms = started.elapsed().as_millis() as u64, "deployment serves");
        Ok(endpoint)
    }

    /// Makes one instance of the deployment serve: a running one that
    /// answers is kept, a crashed attempt's leftover is replaced. Returns
    /// its port, and whether this attempt started it.
    async fn serve_replica(
        &self,
        spec: &DeploySpec,
        name: &str,
        replica: u32,
        existing: Option<&ContainerSummary>,
    ) -> Result<(u16, bool), DeployError> {
        if let Some(container) = existing {
            if let Some(port) = self
                .healthy_existing(container, spec.release.config.port)
                .await
            {
                tracing::info!(deployment_id = %spec.deployment_id, container = name, "the instance already serves");
                return Ok((port, false));
            }
            // Another attempt of this deployment (a duplicate delivery on
            // another worker) may be waiting for it to serve: removing it
            // would fail that attempt.
            if self.may_be_starting(container) {
                return Err(starting_elsewhere(name));
            }
            if let Some(stale) = &container.id {
                self.remove(stale).await?;
            }
        }
        let (_, port) = self.start_new(spec, name, replica).await?;
        Ok((port, true))
    }

    /// Undoes a cancelled rollout: the new containers go (by name, since
    /// they may be half made; a create still in flight leaves one the
    /// reconciler retires), the older ones were never touched and keep
    /// serving.
    async fn undo(&self, names: &[String]) -> Result<Endpoint, DeployError> {
        for name in names {
            self.remove(name).await?;
        }
        tracing::info!(containers = ?names, "rollout cancelled; removed its containers");
        Err(DeployError::Cancelled)
    }

    /// Why a rollout that did not come to serve ended: when a newer
    /// deployment of the app serves meanwhile (a rollout on another worker
    /// that retired this one's starting containers), it was superseded, not
    /// broken; its containers, if any are left, go.
    async fn overtaken(
        &self,
        app_id: Uuid,
        deployment_id: Uuid,
        names: &[String],
        error: DeployError,
    ) -> DeployError {
        let Ok(Some(newer)) = self.newer_running(app_id, deployment_id).await else {
            return error;
        };
        tracing::info!(%deployment_id, %app_id, %newer, %error, "rollout overtaken by a newer deployment");
        for name in names {
            if let Err(leftover) = self.remove(name).await {
                tracing::warn!(%deployment_id, container = name, %leftover, "could not remove an overtaken container");
            }
        }
        DeployError::Superseded { newer }
    }

    /// Sends the app's traffic to the deployment's instances on `ports`,
    /// then gives the older containers still running the drain time to
    /// answer the requests they hold before they are stopped.
    async fn move_traffic(
        &self,
        routing: &Routing,
        spec: &DeploySpec,
        ports: &[u16],
    ) -> Result<(), DeployError> {
        let app = &spec.release.app;
        let route = AppRoute {
            app_id: app.id,
            host: routing.host(app),
            target: Target::Instances(ports.iter().map(|port| self.dial(*port)).collect()),
            health_check_path: spec.release.config.health_check_path.clone(),
            domains: None,
        };
        routing.router.set(&route).await?;
        let older_running =
            self.app_containers(app.id).await?.iter().any(|c| {
                running(c) && spec::deployment_of(c).is_none_or(|id| id < spec.deployment_id)
            });
        if older_running && !routing.drain.is_zero() {
            tracing::info!(deployment_id = %spec.deployment_id, drain_secs = routing.drain.as_secs(),
                "traffic moved to the new instances; draining the older ones");
            tokio::time::sleep(routing.drain).await;
        }
        Ok(())
    }

    /// Runs `replicas` instances of the live (else the newest) deployment:
    /// stopped ones start again, missing ones are made like its first, and
    /// those above the count stop (kept, with their logs, for a later scale
    /// up). `0` stops every instance. With `live`, other deployments'
    /// containers are left alone: one may be a deploy in progress on
    /// another worker; without it, every other deployment's are stopped.
    pub(super) async fn scale_app(
        &self,
        app: &AppRef,
        replicas: u32,
        live: Option<Uuid>,
    ) -> Result<usize, DeployError> {
        let containers = self.app_containers(app.id).await?;
        let deployment_of = spec::deployment_of;
        let kept = match live {
            Some(live) => containers
                .iter()
                .any(|c| deployment_of(c) == Some(live))
                .then_some(live),
            None => containers.iter().filter_map(deployment_of).max(),
        };
        let mut changed = 0;
        if live.is_none() {
            for other in containers
                .iter()
                .filter(|c| running(c) && deployment_of(c) != kept)
            {
                if let Some(id) = other.id.as_deref() {
                    self.stop(id).await?;
                    changed += 1;
                }
            }
        }
        let Some(kept) = kept else {
            tracing::info!(app_id = %app.id, replicas, "nothing deployed to scale");
            return Ok(changed);
        };
        let mut ours: Vec<&ContainerSummary> = containers
            .iter()
            .filter(|c| deployment_of(c) == Some(kept))
            .collect();
        // Running ones first: of two containers with one instance number
        // (one made under an earlier naming), the running one is kept.
        ours.sort_by_key(|c| !running(c));
        let mut numbers = std::collections::BTreeSet::new();
        for container in &ours {
            let Some(id) = container.id.as_deref() else {
                continue;
            };
            let number = spec::replica_of(container);
            let wanted = number < replicas && numbers.insert(number);
            if running(container) && !wanted {
                self.stop(id).await?;
                changed += 1;
            } else if !running(container) && wanted {
                self.docker.start_container(id, None).await?;
                // Started again, it serves as it did; one that does not is
                // left to the router's health check and the reconciler.
                if let Err(error) = self.until_ready(id).await {
                    tracing::warn!(app_id = %app.id, container = id, %error, "a restarted instance does not serve");
                }
                changed += 1;
            }
        }
        if let Some(template) = ours.iter().find_map(|c| c.id.as_deref()) {
            for replica in (0..replicas).filter(|n| ours.iter().all(|c| spec::replica_of(c) != *n))
            {
                self.add_replica(app, kept, template, replica).await?;
                changed += 1;
            }
        }
        self.reroute(app, Some(kept), replicas > 0).await?;
        tracing::info!(app_id = %app.id, replicas, changed, "scaled the app");
        Ok(changed)
    }

    /// Waits until a started container serves on its app port (the one
    /// berth published) and passes its release's health check, so the
    /// router gets it only once it does. An instance that stops, stays
    /// silent or stays unhealthy fails the wait.
    async fn until_ready(&self, id: &str) -> Result<(), DeployError> {
        let deadline = Instant::now() + Duration::from_secs(self.config.ready_timeout_secs);
        let mut unhealthy = None;
        loop {
            let Some(inspect) = ready::inspect(&self.docker, id).await? else {
                return Err(DeployError::Engine(format!("the instance {id} is gone")));
            };
            let app_port = inspect
                .host_config
                .as_ref()
                .and_then(|h| h.port_bindings.as_ref())
                .and_then(|bindings| bindings.keys().next().cloned());
            let Some(app_port) = app_port else {
                return Ok(());
            };
            let running = inspect.state.as_ref().and_then(|s| s.running) == Some(true);
            if !running {
                return Err(DeployError::Engine(format!(
                    "the instance {id} stopped before it served on {app_port}"
                )));
            }
            let health =
                spec::health_check_path_of(inspect.config.as_ref().and_then(|c| c.labels.as_ref()));
            if let (Some(host_port), Some(port)) = (
                ready::published_port(&inspect, &app_port),
                app_port.trim_end_matches("/tcp").parse::<u16>().ok(),
            ) {
                let host = self.connect_host();
                match ready::serves_healthy(&inspect, host, host_port, port, health.as_deref())
                    .await
                {
                    Ok(true) => return Ok(()),
                    Ok(false) => {}
                    Err(said) => {
                        let path = health.as_deref().unwrap_or_default();
                        unhealthy = Some(format!("GET {path} {said}"));
                    }
                }
            }
            if Instant::now() > deadline {
                return Err(DeployError::Engine(format!(
                    "the instance {id} did not serve on {app_port} within {}s{}",
                    self.config.ready_timeout_secs,
                    unhealthy
                        .map(|said| format!(": {said}"))
                        .unwrap_or_default()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Makes instance `replica` of the deployment from another of its
    /// containers (same image, env, limits and fences; a port of its own),
    /// starts it and waits until it serves.
    async fn add_replica(
        &self,
        app: &AppRef,
        deployment_id: Uuid,
        template: &str,
        replica: u32,
    ) -> Result<(), DeployError> {
        let inspect = self.docker.inspect_container(template, None).await?;
        let config = inspect.config.unwrap_or_default();
        let mut host_config = inspect.host_config.unwrap_or_default();
        // The engine reports berth's CPU limit both as NanoCpus and as the
        // period and quota it made of them, and refuses to be given both.
        if host_config.nano_cpus.is_some_and(|n| n > 0) {
            host_config.cpu_period = None;
            host_config.cpu_quota = None;
        }
        host_config.port_bindings = host_config.port_bindings.map(|bindings| {
            bindings
                .into_iter()
                .map(|(port, binds)| {
                    let fresh = binds.map(|binds| {
                        binds
                            .into_iter()
                            .map(|bind| PortBinding {
                                host_ip: bind.host_ip,
                                host_port: Some(String::new()),
                            })
                            .collect()
                    });
                    (port, fresh)
                })
                .collect()
        });
        let mut labels = config.labels.unwrap_or_default();
        labels.insert(labels::REPLICA.to_owned(), replica.to_string());
        let body = ContainerCreateBody {
            image: config.image,
            env: config.env,
            cmd: config.cmd,
            entrypoint: config.entrypoint,
            working_dir: config.working_dir,
            user: config.user,
            labels: Some(labels),
            exposed_ports: config.exposed_ports,
            host_config: Some(host_config),
            ..Default::default()
        };
        let name = spec::replica_name(app, deployment_id, replica);
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        let created = self.docker.create_container(Some(options), body).await?;
        let outcome = async {
            self.docker.start_container(&created.id, None).await?;
            self.until_ready(&created.id).await
        }
        .await;
        if let Err(error) = outcome {
            if let Err(cleanup) = self.remove(&created.id).await {
                tracing::warn!(container = name, %cleanup, "could not remove a failed instance");
            }
            return Err(error);
        }
        tracing::info!(app_id = %app.id, container = name, "started another instance");
        Ok(())
    }
}
