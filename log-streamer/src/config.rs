//! The log-streamer's flags; every one can come from a `BERTH_` variable.

use berth_common::config::{KafkaConfig, OpsConfig};
use clap::Parser;
use std::path::PathBuf;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "berth-log-streamer",
    version,
    about = "Follows the logs of every workload berth runs into Kafka."
)]
pub struct Config {
    #[command(flatten)]
    pub kafka: KafkaConfig,
    #[command(flatten)]
    pub ops: OpsConfig,
    /// The Docker Engine API, e.g. unix:///run/podman/podman.sock or tcp://127.0.0.1:2375.
    #[arg(
        long,
        env = "BERTH_DOCKER_HOST",
        default_value = "unix:///var/run/docker.sock"
    )]
    pub docker_host: String,
    /// Folder for the per-container checkpoints; must survive restarts of the streamer.
    #[arg(long, env = "BERTH_LOG_STREAMER_STATE_DIR")]
    pub state_dir: PathBuf,
    /// The berth installation whose workloads to follow (the label
    /// `berth.dev/installation` the deploy-worker sets).
    #[arg(long, env = "BERTH_INSTALLATION", default_value = "berth")]
    pub installation: String,
    /// Follow the workloads carrying this label (`key=value`) instead of
    /// the installation's, e.g. to split the work between streamers (each
    /// with its own state dir).
    #[arg(long, env = "BERTH_LOG_STREAMER_SELECTOR", value_parser = parse_selector)]
    pub selector: Option<(String, String)>,
    /// Most lines per container handed to Kafka and not yet confirmed.
    #[arg(long, env = "BERTH_LOG_MAX_IN_FLIGHT", default_value_t = 1000)]
    pub max_in_flight: usize,
}

fn parse_selector(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!(
            "`{value}` is not a label selector of the form key=value"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_flags_are_consistent() {
        Config::command().debug_assert();
        let config =
            Config::try_parse_from(["berth-log-streamer", "--state-dir", "/tmp/x"]).unwrap();
        assert_eq!(config.max_in_flight, 1000);
        assert_eq!(config.selector, None);
        assert_eq!(
            parse_selector("berth.dev/tenant=acme"),
            Ok(("berth.dev/tenant".into(), "acme".into()))
        );
        assert!(parse_selector("acme").is_err());
    }
}
