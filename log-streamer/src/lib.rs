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

pub mod checkpoint;
pub mod config;
pub mod docker;
pub mod error;
pub mod follower;
pub mod frames;
pub mod kubernetes;
pub mod service;
pub mod sink;
pub mod source;
#[cfg(test)]
mod test_sink;

pub use checkpoint::{CheckpointStore, Position};
pub use config::Config;
pub use error::StreamError;
pub use service::Streamer;
pub use sink::RecordSink;
pub use source::{LogSource, Workload};

use berth_common::LogProducer;
use std::sync::{Arc, OnceLock};
use tokio_util::sync::CancellationToken;

/// Runs the streamer until `shutdown`; returns after every follower
/// delivered and checkpointed what it read.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let store = CheckpointStore::open(&config.state_dir)?;
    // Ready once the streamer follows the engine's events.
    let slot: Arc<OnceLock<Arc<Streamer<docker::DockerLogSource, LogProducer>>>> = Arc::default();
    let ready = slot.clone();
    berth_common::ops::serve(
        config.ops.ops_addr,
        Arc::new(move || ready.get().is_some_and(|streamer| streamer.is_ready())),
    )
    .await?;
    let Some(docker) = berth_common::engine::connect_until_up(&config.docker_host, &shutdown).await
    else {
        return Ok(());
    };
    let source = match &config.selector {
        Some((key, value)) => docker::DockerLogSource::new(docker).with_selector(key, value),
        None => docker::DockerLogSource::new(docker)
            .with_selector(berth_proto::labels::INSTALLATION, &config.installation),
    };
    let source = Arc::new(source);
    let producer = Arc::new(LogProducer::new(
        &config.kafka.kafka_brokers,
        config.kafka.log_retention_hours,
    )?);
    let streamer = Streamer::new(source, producer, store, config.max_in_flight, shutdown);
    let _ = slot.set(streamer.clone());
    tracing::info!(
        docker_host = config.docker_host,
        state_dir = %config.state_dir.display(),
        "log-streamer started"
    );
    streamer.run().await;
    Ok(())
}
