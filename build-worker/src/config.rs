//! The worker's flags; every one can be set from a `BERTH_` env var.

use crate::buildlog::LogSettings;
use crate::detect::StackImages;
use crate::kaniko::KanikoConfig;
use crate::sandbox::SandboxConfig;
use anyhow::Context;
use berth_common::config::{BrokerConfig, KafkaConfig, OpsConfig, SecretKeyConfig};
use clap::{ArgAction, Args, Parser, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "berth-build-worker",
    version,
    about = "Clones, builds and pushes images for berth deployments."
)]
pub struct Config {
    #[command(flatten)]
    pub broker: BrokerConfig,
    #[command(flatten)]
    pub kafka: KafkaConfig,
    #[command(flatten)]
    pub secret: SecretKeyConfig,
    #[command(flatten)]
    pub ops: OpsConfig,
    #[command(flatten)]
    pub build: BuildConfig,
    #[command(flatten)]
    pub kaniko: KanikoConfig,
    #[command(flatten)]
    pub sandbox: SandboxConfig,
}

/// What builds images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BuilderKind {
    /// Rootless podman as BERTH_BUILD_USER, in a network namespace and a
    /// control group per build (see the BERTH_BUILD_* sandbox flags): the
    /// single-host builder for code berth does not trust.
    Sandbox,
    /// The Docker Engine API at BERTH_DOCKER_HOST, as the engine's user:
    /// a Dockerfile's steps run there unfenced, so only for code you trust.
    Docker,
    /// A Kaniko Pod per build in the tenant's build namespace (Kubernetes).
    Kaniko,
}

#[derive(Debug, Clone, Args)]
pub struct BuildConfig {
    /// How many builds run at once. The worker takes up to four times as
    /// many messages, so builds waiting for their tenant's share (below)
    /// do not keep other tenants' builds in the queue.
    #[arg(long, env = "BERTH_BUILD_CONCURRENCY", default_value_t = 2)]
    pub concurrency: u16,

    /// How many of those one tenant's builds may take at once; more wait.
    #[arg(long, env = "BERTH_BUILD_TENANT_CONCURRENCY", default_value_t = 1)]
    pub tenant_concurrency: u16,

    /// What builds images: `sandbox` (rootless podman in a sandbox per
    /// build, single host), `kaniko` (a Kaniko Pod per build, see the
    /// BERTH_KANIKO_* flags) or `docker` (the Docker Engine API at
    /// BERTH_DOCKER_HOST, unfenced: trusted code only).
    #[arg(long, env = "BERTH_BUILDER", value_enum, default_value_t = BuilderKind::Sandbox)]
    pub builder: BuilderKind,

    /// Docker Engine API endpoint: unix:///path/to.sock (Docker, or Podman's
    /// Docker-compatible socket) or tcp://host:port.
    #[arg(
        long,
        env = "BERTH_DOCKER_HOST",
        default_value = "unix:///var/run/docker.sock"
    )]
    pub docker_host: String,

    /// Registry images are pushed to, as host[:port][/prefix]; an app's
    /// images are <registry>/<tenant>/<app>:<commit>. It must use berth's
    /// token service (the backend's /api/v1/registry/token): pushes and
    /// lookups present grants of the build's tenant, minted with
    /// BERTH_SECRET_KEY.
    #[arg(long, env = "BERTH_REGISTRY")]
    pub registry: String,

    /// Speak plain http to the registry's API. Default: true for a
    /// registry on 127.0.0.1 or localhost, false otherwise.
    #[arg(long, env = "BERTH_REGISTRY_INSECURE")]
    pub registry_insecure: Option<bool>,

    /// Base image of generated Dockerfiles for Python apps (needs python3 with venv).
    #[arg(
        long,
        env = "BERTH_BASE_IMAGE_PYTHON",
        default_value = "docker.io/library/python:3.12-slim"
    )]
    pub base_image_python: String,

    /// Base image of generated Dockerfiles for Node.js apps (needs node and npm).
    #[arg(
        long,
        env = "BERTH_BASE_IMAGE_NODE",
        default_value = "docker.io/library/node:22-slim"
    )]
    pub base_image_node: String,

    /// Base image of generated Dockerfiles for Go apps (needs go).
    #[arg(
        long,
        env = "BERTH_BASE_IMAGE_GO",
        default_value = "docker.io/library/golang:1.23-bookworm"
    )]
    pub base_image_go: String,

    /// Base image of generated Dockerfiles for Rust apps (needs cargo).
    #[arg(
        long,
        env = "BERTH_BASE_IMAGE_RUST",
        default_value = "docker.io/library/rust:1-slim-bookworm"
    )]
    pub base_image_rust: String,

    /// Base image of generated Dockerfiles for static sites (needs busybox httpd).
    #[arg(
        long,
        env = "BERTH_BASE_IMAGE_STATIC",
        default_value = "docker.io/library/busybox:1.37"
    )]
    pub base_image_static: String,

    /// A CA bundle (PEM) that builds must trust, e.g. a corporate TLS
    /// proxy's: generated images get it at /etc/ssl/certs/berth-extra-ca.crt
    /// with SSL_CERT_FILE, PIP_CERT, REQUESTS_CA_BUNDLE, NODE_EXTRA_CA_CERTS,
    /// CARGO_HTTP_CAINFO and GIT_SSL_CAINFO pointing at it, so give a full
    /// bundle (system CAs plus yours). Repositories with their own Dockerfile
    /// find it in the build context as .berth-ca.crt.
    #[arg(long, env = "BERTH_BUILD_CA_BUNDLE")]
    pub build_ca_bundle: Option<PathBuf>,

    /// Local development and tests only: accept file:// URLs and paths
    /// inside BERTH_LOCAL_REPO_ROOT, plain http:// and repository hosts on
    /// loopback or private addresses. Off, only https:// on public hosts.
    #[arg(long, env = "BERTH_ALLOW_LOCAL_REPOS", default_value_t = false,
          action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub allow_local_repos: bool,

    /// The one folder local repositories may be in (with
    /// BERTH_ALLOW_LOCAL_REPOS), after following symlinks; unset, no local
    /// folder is built. Must match the backend's.
    #[arg(long, env = "BERTH_LOCAL_REPO_ROOT")]
    pub local_repo_root: Option<PathBuf>,

    /// The GitHub whose tokens the backend hands to builds (the backend's
    /// BERTH_GITHUB_URL): a build sends its token only to this scheme, host
    /// and port, and only over https unless local repositories are allowed.
    #[arg(long, env = "BERTH_GITHUB_URL", default_value = "https://github.com")]
    pub github_url: url::Url,

    /// Folder for clones and build contexts (a `builds` folder is made in
    /// it); default: the system's temporary folder.
    #[arg(long, env = "BERTH_WORK_DIR")]
    pub work_dir: Option<PathBuf>,

    /// Deadline for one build, from clone to push, in seconds. 25 minutes
    /// by default: with the reports, the log flush and the hand-over around
    /// it, a build must end well inside RabbitMQ's `consumer_timeout` (30
    /// minutes by default), or the broker closes the channel and the build
    /// runs again.
    #[arg(long, env = "BERTH_BUILD_TIMEOUT_SECS", default_value_t = 1500)]
    pub build_timeout_secs: u64,
}

/// What the service needs, resolved from flags (tests build it directly).
#[derive(Debug, Clone)]
pub struct Settings {
    /// host[:port][/prefix] of the registry.
    pub registry: String,
    pub images: StackImages,
    /// Contents of the extra CA bundle, if one is configured.
    pub extra_ca: Option<Vec<u8>>,
    pub allow_local_repos: bool,
    /// The folder local repositories must be in.
    pub local_repo_root: Option<PathBuf>,
    /// The GitHub the owners' tokens are for.
    pub github_url: url::Url,
    /// Where each build gets its temporary folder.
    pub work_dir: PathBuf,
    pub deadline: Duration,
    pub log: LogSettings,
}

impl Settings {
    /// What a build may fetch, and where its token may go.
    pub fn source_policy(&self) -> crate::source_policy::SourcePolicy {
        crate::source_policy::SourcePolicy {
            repos: berth_common::repo_policy::RepoPolicy {
                allow_local: self.allow_local_repos,
                local_root: self.local_repo_root.clone(),
            },
            github: self.github_url.clone(),
        }
    }
}

impl BuildConfig {
    pub fn images(&self) -> StackImages {
        StackImages {
            python: self.base_image_python.clone(),
            node: self.base_image_node.clone(),
            go: self.base_image_go.clone(),
            rust: self.base_image_rust.clone(),
            static_site: self.base_image_static.clone(),
        }
    }

    /// Reads the CA bundle and prepares the work folder.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let extra_ca = match self
            .build_ca_bundle
            .as_ref()
            .filter(|p| !p.as_os_str().is_empty())
        {
            None => None,
            Some(path) => {
                let bytes = std::fs::read(path)
                    .with_context(|| format!("BERTH_BUILD_CA_BUNDLE {}", path.display()))?;
                anyhow::ensure!(
                    String::from_utf8_lossy(&bytes).contains("-----BEGIN CERTIFICATE-----"),
                    "BERTH_BUILD_CA_BUNDLE {} holds no PEM certificate",
                    path.display()
                );
                Some(bytes)
            }
        };
        let work_dir = self
            .work_dir
            .clone()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(std::env::temp_dir)
            .join("builds");
        std::fs::create_dir_all(&work_dir)
            .with_context(|| format!("cannot create the work folder {}", work_dir.display()))?;
        anyhow::ensure!(
            self.concurrency > 0,
            "BERTH_BUILD_CONCURRENCY must be at least 1"
        );
        Ok(Settings {
            registry: self.registry.trim_end_matches('/').to_owned(),
            images: self.images(),
            extra_ca,
            allow_local_repos: self.allow_local_repos,
            local_repo_root: self.local_repo_root.clone(),
            github_url: self.github_url.clone(),
            work_dir,
            deadline: Duration::from_secs(self.build_timeout_secs.max(1)),
            log: LogSettings::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_flags_are_consistent_and_every_one_has_an_env_var_and_help() {
        Config::command().debug_assert();
        for arg in Config::command().get_arguments() {
            if arg.get_id() == "help" || arg.get_id() == "version" {
                continue;
            }
            let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
            assert!(
                env.as_deref().is_some_and(|e| e.starts_with("BERTH_")),
                "{} has no BERTH_ env var",
                arg.get_id()
            );
            assert!(arg.get_help().is_some(), "{} has no help", arg.get_id());
        }
    }

    #[test]
    fn flags_parse_with_defaults() {
        let config = Config::try_parse_from([
            "berth-build-worker",
            "--amqp-url=amqp://x",
            "--secret-key=k",
            "--registry=127.0.0.1:5000/",
            "--allow-local-repos",
            "--work-dir=/tmp/berth-build-worker-test",
        ])
        .unwrap();
        assert!(config.build.allow_local_repos);
        let settings = config.build.settings().unwrap();
        assert_eq!(settings.registry, "127.0.0.1:5000");
        // Defaults, unless the environment running the tests sets them.
        if std::env::var_os("BERTH_BASE_IMAGE_PYTHON").is_none() {
            assert_eq!(settings.images.python, "docker.io/library/python:3.12-slim");
        }
        if std::env::var_os("BERTH_BUILD_CONCURRENCY").is_none() {
            assert_eq!(config.build.concurrency, 2);
        }
        if std::env::var_os("BERTH_BUILD_TIMEOUT_SECS").is_none() {
            assert_eq!(settings.deadline, Duration::from_secs(1500));
        }
        assert_eq!(
            settings.work_dir,
            PathBuf::from("/tmp/berth-build-worker-test/builds")
        );
        assert!(settings.extra_ca.is_none());

        let config = Config::try_parse_from([
            "berth-build-worker",
            "--amqp-url=amqp://x",
            "--secret-key=k",
            "--registry=r",
            "--allow-local-repos=false",
            "--build-ca-bundle=/nonexistent/ca.pem",
        ])
        .unwrap();
        assert!(!config.build.allow_local_repos);
        let error = config.build.settings().unwrap_err();
        assert!(
            format!("{error:#}").contains("BERTH_BUILD_CA_BUNDLE"),
            "{error:#}"
        );
    }
}
