//! `berth-build-worker`: see the crate docs of `berth_build_worker`.

use anyhow::Context;
use berth_build_worker::registry::{build_grants, default_insecure};
use berth_build_worker::slots::BuildSlots;
use berth_build_worker::{
    BuildService, BuilderKind, Config, DockerBuilder, GitFetcher, HttpRegistry, ImageBuilder,
    KanikoBuilder, RegistryAuth, SandboxBuilder,
};
use berth_common::registry_auth::{Grants, RegistryCredentials};
use berth_common::{ops, LogProducer};
use berth_proto::names::BUILDS_QUEUE;
use clap::Parser;
use std::sync::Arc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    ops::init_tracing();
    let config = Config::parse();
    let build = &config.build;
    let settings = build.settings()?;
    let key = config.secret.key()?;

    let broker = config.broker.broker("build-worker");
    let logs = Arc::new(LogProducer::new(
        &config.kafka.kafka_brokers,
        config.kafka.log_retention_hours,
    )?);
    // Per-tenant grants, never a platform-wide registry user.
    let grants = Grants::from_secret_key(&config.secret.secret_key)
        .map_err(|e| anyhow::anyhow!("BERTH_SECRET_KEY: {e}"))?;
    let credentials: Arc<dyn RegistryCredentials> =
        Arc::new(build_grants(grants.clone(), settings.deadline));
    let registry = HttpRegistry::new(
        &settings.registry,
        build.registry_insecure,
        credentials.clone(),
    )?;
    let insecure = build
        .registry_insecure
        .unwrap_or_else(|| default_insecure(&settings.registry));
    let auth = RegistryAuth {
        registry: settings.registry.clone(),
        credentials,
    };
    // Builds in progress when it fires are requeued and redelivered.
    let shutdown = berth_common::shutdown::on_signal();
    // Past the deadline a folder belongs to no build, not even a slow one.
    tokio::spawn(berth_build_worker::work_dirs::run(
        settings.work_dir.clone(),
        settings.deadline + std::time::Duration::from_secs(300),
        shutdown.clone(),
    ));
    let builder: Box<dyn ImageBuilder> = match build.builder {
        BuilderKind::Sandbox => {
            let builder = SandboxBuilder::start(&config.sandbox, auth, insecure).await?;
            tracing::info!(user = %config.sandbox.build_user, "building in sandboxes");
            Box::new(builder)
        }
        BuilderKind::Docker => {
            tracing::warn!(
                "BERTH_BUILDER=docker: Dockerfile steps run on the engine unfenced; \
                 build only code you trust this way"
            );
            let builder = DockerBuilder::new(&build.docker_host, auth);
            if let Err(error) = builder.docker().await {
                tracing::warn!(%error, "the container engine is not reachable yet; builds will retry it");
            }
            Box::new(builder)
        }
        BuilderKind::Kaniko => {
            let kaniko = config
                .kaniko
                .settings(&settings.registry, grants, insecure)?;
            if kaniko.deadline >= settings.deadline {
                tracing::warn!(
                    kaniko_deadline_secs = kaniko.deadline.as_secs(),
                    build_timeout_secs = settings.deadline.as_secs(),
                    "BERTH_KANIKO_DEADLINE_SECS is not under BERTH_BUILD_TIMEOUT_SECS: \
                     the worker's own deadline will stop builds first"
                );
            }
            let client = berth_common::kubernetes::connect().await.context(
                "no Kubernetes client configuration (KUBECONFIG, ~/.kube/config or in-cluster)",
            )?;
            tracing::info!(image = %kaniko.image, "building with Kaniko pods");
            tokio::spawn(berth_build_worker::kaniko::janitor::run(
                client.clone(),
                kaniko.clone(),
                shutdown.clone(),
            ));
            Box::new(KanikoBuilder::new(client, kaniko))
        }
    };

    let ready = broker.clone();
    ops::serve(
        config.ops.ops_addr,
        Arc::new(move || ready.consumers_connected()),
    )
    .await?;

    let cancellations = berth_common::control::Cancellations::new();
    tokio::spawn(berth_common::control::listen(
        config.broker.amqp_url.clone(),
        "build-worker",
        cancellations.clone(),
        shutdown.clone(),
    ));
    let service = BuildService::new(
        settings,
        key,
        builder,
        GitFetcher,
        registry,
        logs,
        broker.clone(),
    )
    .with_shutdown(shutdown.clone())
    .with_cancellations(cancellations)
    .with_slots(BuildSlots::new(
        usize::from(build.concurrency),
        usize::from(build.tenant_concurrency),
    ));
    tracing::info!(concurrency = build.concurrency, registry = %build.registry, "build worker starting");
    broker
        .consume(
            BUILDS_QUEUE,
            build.concurrency.saturating_mul(4),
            Arc::new(service),
            shutdown,
        )
        .await;
    tracing::info!("build worker stopped");
    Ok(())
}
