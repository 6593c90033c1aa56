//! The deploy-worker's flags; every one can come from a `BERTH_` variable.

use berth_common::config::{BrokerConfig, KafkaConfig, OpsConfig, SecretKeyConfig};
use bollard::models::RestartPolicyNameEnum;
use clap::{Args, CommandFactory, FromArgMatches, Parser, ValueEnum};
use std::str::FromStr;

use crate::kubernetes::render::RenderArgs;
use crate::kubernetes::{KubernetesSettings, RolloutSettings};

/// What the command line asks for: the worker (no subcommand; configured
/// by flags or `BERTH_` variables, as always), or one of its tools.
#[derive(Debug)]
pub enum Invocation {
    Worker(Box<Config>),
    /// `render`: prints, as YAML, exactly the objects the kubernetes driver
    /// applies for a release.
    Render(Box<RenderArgs>),
}

/// The worker's flags plus the `render` subcommand, which needs none of
/// them (no broker, no key).
pub fn command() -> clap::Command {
    let render = clap::Command::new("render").about(
        "Prints, as YAML, exactly the objects the kubernetes driver applies for a release \
         (like `helm template`), for an operator to review",
    );
    Config::command()
        .args_conflicts_with_subcommands(true)
        .subcommand_negates_reqs(true)
        .subcommand(RenderArgs::augment_args(render))
}

impl Invocation {
    /// From the process's arguments; prints clap's message and exits on a
    /// bad one (or on `--help`).
    pub fn from_env() -> Self {
        Self::try_from_args(std::env::args_os()).unwrap_or_else(|error| error.exit())
    }

    pub fn try_from_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = command().try_get_matches_from(args)?;
        match matches.subcommand() {
            Some(("render", render)) => Ok(Self::Render(Box::new(RenderArgs::from_arg_matches(
                render,
            )?))),
            _ => Ok(Self::Worker(Box::new(Config::from_arg_matches(&matches)?))),
        }
    }
}

#[derive(Debug, Clone, Parser)]
#[command(
    name = "berth-deploy-worker",
    version,
    about = "Makes the runtime run berth releases."
)]
pub struct Config {
    #[command(flatten)]
    pub broker: BrokerConfig,
    #[command(flatten)]
    pub secret_key: SecretKeyConfig,
    #[command(flatten)]
    pub ops: OpsConfig,
    /// Where the reconciler writes its repairs into apps' logs.
    #[command(flatten)]
    pub kafka: KafkaConfig,
    /// Which runtime runs the apps.
    #[arg(long, env = "BERTH_RUNTIME", value_enum, default_value_t = RuntimeKind::Docker)]
    pub runtime: RuntimeKind,
    /// How many deploy messages are handled at once.
    #[arg(long, env = "BERTH_DEPLOY_CONCURRENCY", default_value_t = 4)]
    pub concurrency: u16,
    #[command(flatten)]
    pub docker: DockerConfig,
    /// The docker driver's edge router.
    #[command(flatten)]
    pub router: crate::router::RouterConfig,
    #[command(flatten)]
    pub kubernetes: KubernetesSettings,
    #[command(flatten)]
    pub rollout: RolloutSettings,
    /// berth's registry, host[:port][/prefix], as the build-worker has it.
    /// Release images there are pulled with a pull grant of the release's
    /// tenant (minted with BERTH_SECRET_KEY, checked by the registry's token
    /// service); grants go to this host only. Unset, images are pulled
    /// without credentials.
    #[arg(long, env = "BERTH_REGISTRY")]
    pub registry: Option<String>,
    /// Days a tenant's image pull Secret (kubernetes driver) works. Kubelet
    /// pulls whenever a pod lands on a node without the image, long after a
    /// deploy; every deploy and scale-up of the tenant's apps renews it.
    #[arg(long, env = "BERTH_K8S_PULL_GRANT_DAYS", default_value_t = 30)]
    pub k8s_pull_grant_days: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RuntimeKind {
    /// Containers on a Docker Engine API (Docker, or Podman's compatible socket).
    Docker,
    /// Deployments on a Kubernetes cluster (`KUBECONFIG`, `~/.kube/config`
    /// or the in-cluster service account).
    Kubernetes,
}

/// Settings of the `docker` driver.
#[derive(Debug, Clone, Args)]
pub struct DockerConfig {
    /// The Docker Engine API, e.g. unix:///run/podman/podman.sock or tcp://127.0.0.1:2375.
    #[arg(
        long,
        env = "BERTH_DOCKER_HOST",
        default_value = "unix:///var/run/docker.sock"
    )]
    pub docker_host: String,
    /// Names this berth installation in the label `berth.dev/installation`
    /// on every container it starts, so installations sharing an engine
    /// (a developer's platform beside test runs) never touch each other's.
    #[arg(long, env = "BERTH_INSTALLATION", default_value = "berth")]
    pub installation: String,
    /// Host address app ports are published on.
    #[arg(long, env = "BERTH_PUBLISH_ADDR", default_value = "127.0.0.1")]
    pub publish_addr: String,
    /// Host name in the endpoints berth reports (`http://<host>:<port>`).
    #[arg(long, env = "BERTH_PUBLIC_HOST", default_value = "127.0.0.1")]
    pub public_host: String,
    /// Seconds a new container has to accept connections on its port.
    #[arg(long, env = "BERTH_READY_TIMEOUT_SECS", default_value_t = 60)]
    pub ready_timeout_secs: u64,
    /// Seconds a replaced container gets to stop before it is killed.
    #[arg(long, env = "BERTH_STOP_TIMEOUT_SECS", default_value_t = 10)]
    pub stop_timeout_secs: u64,
    /// Seconds a replaced container stays, stopped, before it is removed,
    /// so that the log-streamer reads the last lines of its log even after
    /// being down or behind for that long; 0 removes it at once.
    #[arg(long, env = "BERTH_RETIRED_KEEP_SECS", default_value_t = 600)]
    pub retired_keep_secs: u64,
    /// Restart policy of app containers: `no` (the default: berth restarts
    /// a crashed instance itself, after a pause that doubles with each
    /// crash, see `restart.rs`), or the engine's `on-failure:<max retries>`,
    /// `on-failure`, `unless-stopped` or `always`. Podman restarts without
    /// a pause, so an unbounded engine policy lets a crashing app spin.
    #[arg(long, env = "BERTH_RESTART_POLICY", default_value = "no")]
    pub restart_policy: RestartPolicySetting,
    #[command(flatten)]
    pub limits: AppLimits,
}

/// What every app container may use, and where its traffic may go. The
/// defaults hold a small app (a web server with a few workers) and keep a
/// runaway one from taking the host: memory without swap, a CPU share,
/// a process cap that stops a fork bomb, a capped log file.
#[derive(Debug, Clone, Args)]
pub struct AppLimits {
    /// Memory of an app instance whose release names none, in MiB.
    #[arg(long, env = "BERTH_APP_DEFAULT_MEMORY_MB", default_value_t = 512)]
    pub app_default_memory_mb: u32,
    /// CPU of an app instance whose release names none, in thousandths of a CPU.
    #[arg(long, env = "BERTH_APP_DEFAULT_CPU_MILLIS", default_value_t = 1000)]
    pub app_default_cpu_millis: u32,
    /// Processes (and threads) an app instance may run at once.
    #[arg(long, env = "BERTH_APP_PIDS_LIMIT", default_value_t = 512)]
    pub app_pids_limit: i64,
    /// Size at which an app instance's log file on the host is cut (the
    /// engine keeps the newest part), e.g. 10m.
    #[arg(long, env = "BERTH_APP_LOG_MAX_SIZE", default_value = "10m")]
    pub app_log_max_size: String,
    /// Fence the tenants' app networks with host firewall rules (needs
    /// root and iptables on the engine's host; turn off only when the
    /// engine runs elsewhere and is fenced there).
    #[arg(long, env = "BERTH_APP_FENCE", default_value_t = true,
          action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub app_fence: bool,
    /// DNS servers apps may query, comma-separated (default: the host's
    /// nameservers from /etc/resolv.conf).
    #[arg(long, env = "BERTH_APP_DNS", value_delimiter = ',')]
    pub app_dns: Vec<std::net::Ipv4Addr>,
    /// Destinations apps may never reach, comma-separated CIDRs; the
    /// host's own addresses and networks are always refused too.
    #[arg(long, env = "BERTH_APP_EGRESS_DENY", value_delimiter = ',',
          default_value = berth_common::fence::DEFAULT_EGRESS_DENY)]
    pub app_egress_deny: Vec<ipnet::Ipv4Net>,
}

/// A parsed `BERTH_RESTART_POLICY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartPolicySetting {
    pub policy: RestartPolicyNameEnum,
    pub max_retries: Option<i64>,
}

impl FromStr for RestartPolicySetting {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let (name, max) = match value.split_once(':') {
            Some((name, max)) => (name, Some(max)),
            None => (value, None),
        };
        let policy = match name {
            "no" => RestartPolicyNameEnum::NO,
            "always" => RestartPolicyNameEnum::ALWAYS,
            "unless-stopped" => RestartPolicyNameEnum::UNLESS_STOPPED,
            "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
            other => {
                return Err(format!(
                    "`{other}` is not a restart policy (no, always, unless-stopped, on-failure[:N])"
                ))
            }
        };
        let max_retries = match max {
            None => None,
            Some(_) if policy != RestartPolicyNameEnum::ON_FAILURE => {
                return Err("only on-failure takes a retry count".into())
            }
            Some(max) => Some(
                max.parse::<u16>()
                    .map_err(|_| format!("`{max}` is not a retry count"))?
                    .into(),
            ),
        };
        Ok(Self {
            policy,
            max_retries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_flags_are_consistent() {
        Config::command().debug_assert();
    }

    #[test]
    fn defaults_apply() {
        let config = Config::try_parse_from([
            "berth-deploy-worker",
            "--amqp-url",
            "amqp://x",
            "--secret-key",
            "k",
        ])
        .unwrap();
        assert_eq!(config.concurrency, 4);
        assert_eq!(config.docker.ready_timeout_secs, 60);
        assert_eq!(config.docker.public_host, "127.0.0.1");
        assert_eq!(config.runtime, RuntimeKind::Docker);
        assert_eq!(config.kubernetes, KubernetesSettings::default());
        assert_eq!(config.rollout, RolloutSettings::default());
        if std::env::var_os("BERTH_K8S_PULL_GRANT_DAYS").is_none() {
            assert_eq!(config.k8s_pull_grant_days, 30);
        }
        assert_eq!(
            config.docker.restart_policy,
            RestartPolicySetting {
                policy: RestartPolicyNameEnum::NO,
                max_retries: None
            }
        );
    }

    #[test]
    fn the_kubernetes_driver_is_chosen_with_its_flags() {
        let config = Config::try_parse_from([
            "berth-deploy-worker",
            "--amqp-url",
            "amqp://x",
            "--secret-key",
            "k",
            "--runtime",
            "kubernetes",
            "--base-domain",
            "apps.example",
            "--rollout-timeout-secs",
            "60",
        ])
        .unwrap();
        assert_eq!(config.runtime, RuntimeKind::Kubernetes);
        assert_eq!(config.kubernetes.base_domain, "apps.example");
        assert_eq!(config.rollout.rollout_timeout_secs, 60);
    }

    #[test]
    fn without_a_subcommand_the_worker_runs_and_render_needs_no_broker() {
        command().debug_assert();
        let worker = Invocation::try_from_args([
            "berth-deploy-worker",
            "--amqp-url",
            "amqp://x",
            "--secret-key",
            "k",
        ])
        .unwrap();
        assert!(matches!(worker, Invocation::Worker(config) if config.concurrency == 4));
        let render = Invocation::try_from_args([
            "berth-deploy-worker",
            "render",
            "--tenant",
            "acme",
            "--app",
            "web",
            "--image",
            "registry.example/acme/web@sha256:00",
        ])
        .unwrap();
        assert!(
            matches!(render, Invocation::Render(args) if args.tenant.as_deref() == Some("acme"))
        );
    }

    #[test]
    fn restart_policies_parse() {
        let always: RestartPolicySetting = "unless-stopped".parse().unwrap();
        assert_eq!(always.policy, RestartPolicyNameEnum::UNLESS_STOPPED);
        assert_eq!(always.max_retries, None);
        assert!("always:3".parse::<RestartPolicySetting>().is_err());
        assert!("sometimes".parse::<RestartPolicySetting>().is_err());
        assert!("on-failure:x".parse::<RestartPolicySetting>().is_err());
    }
}
