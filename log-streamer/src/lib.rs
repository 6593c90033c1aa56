//! berth's log-streamer: follows the logs of every workload berth labelled
//! into the app's Kafka topic (`berth.logs.<app-id>`), one record per line,
//! plus `source: event` records for starts, exits, OOM kills and (on
//! Kubernetes) the Events about an app's pods.
//!
//! * [`source::LogSource`] is the seam to the runtime:
//!   [`docker::DockerLogSource`] is the `docker` driver,
//!   [`kubernetes::KubeLogSource`] the `kubernetes` one.
//! * [`sink::RecordSink`] is the seam to Kafka ([`berth_common::LogProducer`]).
//! * [`checkpoint`] explains how a restart neither loses nor repeats lines.
//! * [`service::Streamer`] ties them together, generic over both seams.

pub mod access_log;
pub mod checkpoint;
pub mod config;
pub mod docker;
pub mod error;
pub mod follower;
pub mod frames;
#[cfg(test)]
mod frames_props;
pub mod kubernetes;
pub mod service;
pub mod sink;
pub mod source;
#[cfg(test)]
mod test_sink;

pub use checkpoint::{CheckpointStore, Position};
pub use config::{Config, RuntimeKind};
pub use error::StreamError;
pub use service::Streamer;
pub use sink::RecordSink;
pub use source::{LogSource, Workload};

use berth_common::LogProducer;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use tokio_util::sync::CancellationToken;

/// Runs the streamer until `shutdown`; returns after every follower
/// delivered and checkpointed what it read.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let selector = config.selector.clone();
    match config.runtime {
        RuntimeKind::Docker => {
            let connect = async {
                let engine = &config.docker_host;
                let Some(docker) = berth_common::engine::connect_until_up(engine, &shutdown).await
                else {
                    return Ok(None);
                };
                let source = docker::DockerLogSource::new(docker);
                Ok(Some(match &selector {
                    Some((key, value)) => source.with_selector(key, value),
                    None => source
                        .with_selector(berth_proto::labels::INSTALLATION, &config.installation),
                }))
            };
            stream_from(&config, shutdown.clone(), connect).await
        }
        RuntimeKind::Kubernetes => {
            let connect = async {
                let source =
                    kubernetes::KubeLogSource::new(berth_common::kubernetes::connect().await?);
                Ok(Some(match &selector {
                    Some((key, value)) => source.with_selector(key, value),
                    None => source,
                }))
            };
            stream_from(&config, shutdown.clone(), connect).await
        }
    }
}

/// Serves the ops endpoints, then streams from the source `connect` gives
/// (`None`: shutdown came first).
async fn stream_from<S: LogSource>(
    config: &Config,
    shutdown: CancellationToken,
    connect: impl Future<Output = anyhow::Result<Option<S>>>,
) -> anyhow::Result<()> {
    let store = CheckpointStore::open(&config.state_dir)?;
    // Ready once the streamer follows the runtime's events.
    let slot: Arc<OnceLock<Arc<Streamer<S, LogProducer>>>> = Arc::default();
    let ready = slot.clone();
    berth_common::ops::serve(
        config.ops.ops_addr,
        Arc::new(move || ready.get().is_some_and(|streamer| streamer.is_ready())),
    )
    .await?;
    let Some(source) = connect.await? else {
        return Ok(());
    };
    let producer = Arc::new(LogProducer::new(
        &config.kafka.kafka_brokers,
        config.kafka.log_retention_hours,
    )?);
    if let Some(path) = &config.router_access_log {
        let access = access_log::AccessLog::new(path.clone(), &config.state_dir, producer.clone());
        tokio::spawn(access.run(shutdown.clone()));
    }
    let streamer = Streamer::new(
        Arc::new(source),
        producer,
        store,
        config.max_in_flight,
        shutdown,
    );
    let _ = slot.set(streamer.clone());
    tracing::info!(
        runtime = ?config.runtime,
        state_dir = %config.state_dir.display(),
        "log-streamer started"
    );
    streamer.run().await;
    Ok(())
}
