//! The log-streamer's flags; every one can come from a `BERTH_` variable.

use berth_common::config::{KafkaConfig, OpsConfig};
use clap::{Parser, ValueEnum};
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
    /// Which runtime runs the apps whose logs to follow.
    #[arg(long, env = "BERTH_RUNTIME", value_enum, default_value_t = RuntimeKind::Docker)]
    pub runtime: RuntimeKind,
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
    /// `berth.dev/installation` the deploy-worker sets on containers;
    /// `docker` runtime only).
    #[arg(long, env = "BERTH_INSTALLATION", default_value = "berth")]
    pub installation: String,
    /// Follow the workloads carrying this label (`key=value`): instead of
    /// the installation's (`docker`), or besides `berth.dev/app`
    /// (`kubernetes`), e.g. to split the work between streamers (each with
    /// its own state dir).
    #[arg(long, env = "BERTH_LOG_STREAMER_SELECTOR", value_parser = parse_selector)]
    pub selector: Option<(String, String)>,
    /// Most lines per container handed to Kafka and not yet confirmed.
    #[arg(long, env = "BERTH_LOG_MAX_IN_FLIGHT", default_value_t = 1000)]
    pub max_in_flight: usize,
    /// The edge router's access log (JSON lines), shipped into each app's
    /// log as `source: router`; the deploy-worker's setting too.
    #[arg(long, env = "BERTH_ROUTER_ACCESS_LOG")]
    pub router_access_log: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RuntimeKind {
    /// Containers on a Docker Engine API (Docker, or Podman's compatible socket).
    Docker,
    /// Pods labelled `berth.dev/app` in the tenants' namespaces, through the
    /// API server of the kubeconfig or the in-cluster service account.
    Kubernetes,
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
        assert_eq!(config.runtime, RuntimeKind::Docker);
        let config = Config::try_parse_from([
            "berth-log-streamer",
            "--state-dir",
            "/tmp/x",
            "--runtime",
            "kubernetes",
        ])
        .unwrap();
        assert_eq!(config.runtime, RuntimeKind::Kubernetes);
        assert_eq!(
            parse_selector("berth.dev/tenant=acme"),
            Ok(("berth.dev/tenant".into(), "acme".into()))
        );
        assert!(parse_selector("acme").is_err());
    }
}
