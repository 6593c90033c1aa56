//! berth's deploy-worker: consumes `berth.deploys`, makes the runtime run
//! the release, waits until it serves, retires the previous one, and reports
//! each step on `berth.inform`; reconciles what runs with the snapshots on
//! `berth.reconcile` (one worker at a time).
//!
//! * [`runtime::Runtime`] is the seam to what runs containers;
//!   [`docker::DockerRuntime`] is the `docker` driver,
//!   [`kubernetes::KubeRuntime`] the `kubernetes` one (`BERTH_RUNTIME`).
//! * [`kubernetes::plan`] renders every object the `kubernetes` driver
//!   applies for a release; `berth-deploy-worker render` prints it as YAML.
//! * [`service::DeployService`] is the logic (idempotency, stale deploys,
//!   reports), generic over the runtime and the publisher.

pub mod config;
pub mod crash_loop;
pub mod docker;
pub mod error;
#[cfg(test)]
mod fixture;
pub mod kubernetes;
pub mod registry;
pub mod restart;
pub mod router;
pub mod runtime;
pub mod service;

pub use config::{AppLimits, Config, DockerConfig, Invocation, RestartPolicySetting, RuntimeKind};
pub use error::DeployError;
pub use runtime::{DeploySpec, Endpoint, Instance, RouteWant, Runtime};
pub use service::DeployService;

use berth_common::registry_auth::Grants;
use berth_common::Broker;
use berth_proto::names::{DEPLOYS_QUEUE, RECONCILE_QUEUE};
use registry::{RegistryPull, ENGINE_PULL_GRANT};
use router::Router as _;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Runs the worker until `shutdown`: ops endpoints, then the consumer loop.
/// In-flight deploys finish before it returns.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let key = config.secret_key.key()?;
    let grants = Grants::from_secret_key(&config.secret_key.secret_key)
        .map_err(|e| anyhow::anyhow!("BERTH_SECRET_KEY: {e}"))?;
    let registry = config
        .registry
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty());
    if registry.is_none() {
        tracing::warn!("BERTH_REGISTRY is not set: release images are pulled without credentials");
    }
    let broker = config.broker.broker("deploy-worker");
    let ready_broker = broker.clone();
    berth_common::ops::serve(
        config.ops.ops_addr,
        Arc::new(move || ready_broker.consumers_connected()),
    )
    .await?;
    match config.runtime {
        RuntimeKind::Docker => {
            let docker =
                match berth_common::engine::connect_until_up(&config.docker.docker_host, &shutdown)
                    .await
                {
                    Some(docker) => docker,
                    None => return Ok(()),
                };
            tracing::info!(docker_host = config.docker.docker_host, "docker driver");
            if config.docker.limits.app_fence {
                docker::network::fence(&config.docker.limits).await?;
            } else {
                tracing::warn!(
                    "BERTH_APP_FENCE=false: tenants' apps are not fenced by this host's firewall"
                );
            }
            let pull = registry.map(|registry| {
                RegistryPull::new(
                    registry,
                    Arc::new(grants.clone().pull_for(ENGINE_PULL_GRANT)),
                )
            });
            let mut runtime = docker::DockerRuntime::new(docker, config.docker.clone(), pull);
            match &config.router.router_admin_socket {
                Some(socket) => {
                    tracing::info!(socket = %socket.display(), apps_domain = config.router.apps_domain,
                        listen = config.router.router_listen, "edge router");
                    let router = router::caddy::CaddyRouter::new(socket.clone(), &config.router)?;
                    if router.apps_tls() {
                        tracing::info!("apps' own hostnames and the console are served over HTTPS");
                    }
                    // The server, the console's route and the 404 for
                    // unknown hosts at once, before any app's deploy or
                    // the first reconciler pass (app routes are kept).
                    if let Err(error) = router.converge(&[], &|_| true).await {
                        tracing::warn!(%error, "the edge router is not ready; the reconciler tries again");
                    }
                    runtime = runtime
                        .with_routing(router::Routing::new(Arc::new(router), &config.router));
                }
                None => tracing::warn!(
                    "BERTH_ROUTER_ADMIN_SOCKET is not set: no edge router; apps answer only on their published ports"
                ),
            }
            consume(runtime, broker, key, &config, shutdown).await
        }
        RuntimeKind::Kubernetes => {
            let client = berth_common::kubernetes::connect().await.map_err(|error| {
                anyhow::anyhow!(
                    "BERTH_RUNTIME=kubernetes needs a cluster (KUBECONFIG, ~/.kube/config or in-cluster): {error}"
                )
            })?;
            tracing::info!(
                base_domain = config.kubernetes.base_domain,
                "kubernetes driver"
            );
            let days = u64::from(config.k8s_pull_grant_days.max(1));
            let pull = registry.map(|registry| {
                RegistryPull::new(
                    registry,
                    Arc::new(grants.pull_for(Duration::from_secs(days * 86_400))),
                )
            });
            let runtime = kubernetes::KubeRuntime::new(
                client,
                config.kubernetes.clone(),
                config.rollout.clone(),
            )
            .with_image_pull(pull);
            consume(runtime, broker, key, &config, shutdown).await
        }
    }
}

/// The consumer loop, the same for every runtime.
async fn consume<R: Runtime>(
    runtime: R,
    broker: Broker,
    key: berth_proto::SecretKey,
    config: &Config,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let cancellations = berth_common::control::Cancellations::new();
    tokio::spawn(berth_common::control::listen(
        config.broker.amqp_url.clone(),
        "deploy-worker",
        cancellations.clone(),
        shutdown.clone(),
    ));
    let events = Arc::new(berth_common::LogProducer::new(
        &config.kafka.kafka_brokers,
        config.kafka.log_retention_hours,
    )?);
    let service = Arc::new(
        DeployService::new(runtime, broker.clone(), key)
            .with_cancellations(cancellations)
            .with_events(events),
    );
    tracing::info!(concurrency = config.concurrency, "deploy-worker started");
    tokio::spawn({
        let (service, shutdown) = (service.clone(), shutdown.clone());
        async move { service.watch_failures(shutdown).await }
    });
    // One snapshot at a time, and only on the worker the broker made the
    // queue's active consumer.
    tokio::join!(
        broker.consume(
            DEPLOYS_QUEUE,
            config.concurrency,
            service.clone(),
            shutdown.clone()
        ),
        broker.consume(RECONCILE_QUEUE, 1, service, shutdown),
    );
    tracing::info!("deploy-worker stopped");
    Ok(())
}
