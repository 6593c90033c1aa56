//! The backend's configuration: flags, each with a `BERTH_` environment
//! variable.

use berth_common::config::{BrokerConfig, KafkaConfig, SecretKeyConfig};
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, Parser)]
#[command(name = "berth-backend", version, about = "berth's API server")]
pub struct Config {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Address the API, /healthz, /readyz and /metrics are served on.
    #[arg(long, env = "BERTH_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// PostgreSQL URL, e.g. postgres://berth:pass@127.0.0.1:5432/berth
    #[arg(long, env = "BERTH_DATABASE_URL", hide_env_values = true)]
    pub database_url: String,

    /// Most connections the pool opens to PostgreSQL.
    #[arg(long, env = "BERTH_DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    pub database_max_connections: u32,

    #[command(flatten)]
    pub broker: BrokerConfig,

    #[command(flatten)]
    pub kafka: KafkaConfig,

    #[command(flatten)]
    pub secret: SecretKeyConfig,

    /// Secret that signs access tokens (HS256); at least 32 bytes. Required by `serve`.
    #[arg(long, env = "BERTH_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// How long a refresh token stays valid, in days.
    #[arg(long, env = "BERTH_REFRESH_TOKEN_DAYS", default_value_t = 30)]
    pub refresh_token_days: u32,

    /// The URL users reach berth at, e.g. https://berth.example.com; its
    /// origin may open log WebSockets.
    #[arg(long, env = "BERTH_PUBLIC_URL")]
    pub public_url: Option<url::Url>,

    /// More origins allowed to open log WebSockets, comma separated.
    #[arg(long, env = "BERTH_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Most log WebSockets one user may hold open at once (per process).
    #[arg(long, env = "BERTH_MAX_SOCKETS_PER_USER", default_value_t = 20)]
    pub max_sockets_per_user: usize,

    /// Accept file:// URLs and absolute local paths as repositories (local
    /// development only: the build-worker reads them from its own disk).
    #[arg(long, env = "BERTH_ALLOW_LOCAL_REPOS")]
    pub allow_local_repos: bool,

    /// Folder with the web UI's static files, served with an index.html fallback.
    /// Proxies (IPs or CIDRs, comma-separated) whose X-Forwarded-For gives
    /// the client address recorded in the audit log; by default none.
    #[arg(long, env = "BERTH_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,

    #[arg(long, env = "BERTH_FRONTEND_DIR")]
    pub frontend_dir: Option<PathBuf>,

    /// Multiplies every deployment state's deadline (0.01 makes them 100
    /// times shorter, for tests).
    #[arg(long, env = "BERTH_DEADLINE_SCALE", default_value_t = 1.0)]
    pub deadline_scale: f64,

    /// How often the reaper looks for overdue deployments, in seconds.
    #[arg(long, env = "BERTH_REAPER_INTERVAL_SECS", default_value_t = 15)]
    pub reaper_interval_secs: u64,

    /// GitHub's REST API, used to register webhooks on repositories
    /// (GitHub Enterprise: https://<host>/api/v3).
    #[arg(long, env = "BERTH_GITHUB_API_URL", default_value = crate::webhooks::github::DEFAULT_API_URL)]
    pub github_api_url: url::Url,

    /// Inform messages handled at once.
    #[arg(long, env = "BERTH_INFORM_CONCURRENCY", default_value_t = 8)]
    pub inform_concurrency: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Serve the API and run the background loops (the default).
    Serve,
    /// Apply database migrations and declare the broker topology, then exit.
    Migrate,
}

/// An HS256 secret must carry at least 256 bits.
pub const MIN_JWT_SECRET_BYTES: usize = 32;

impl Config {
    /// The JWT secret, refused when missing or shorter than 32 bytes.
    pub fn jwt_secret(&self) -> anyhow::Result<&[u8]> {
        match self.jwt_secret.as_deref() {
            None => anyhow::bail!("BERTH_JWT_SECRET is required to serve"),
            Some(secret) if secret.len() < MIN_JWT_SECRET_BYTES => anyhow::bail!(
                "BERTH_JWT_SECRET must be at least {MIN_JWT_SECRET_BYTES} bytes (it has {})",
                secret.len()
            ),
            Some(secret) => Ok(secret.as_bytes()),
        }
    }

    /// Checks what clap cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(self.deadline_scale.is_finite() && self.deadline_scale > 0.0) {
            anyhow::bail!("BERTH_DEADLINE_SCALE must be a positive number");
        }
        self.trusted_proxies()
            .map_err(|e| anyhow::anyhow!("BERTH_TRUSTED_PROXIES: {e}"))?;
        self.jwt_secret().map(drop)
    }

    pub fn trusted_proxies(&self) -> Result<Vec<crate::audit::source::Cidr>, String> {
        crate::audit::source::parse_list(&self.trusted_proxies)
    }

    /// Origins that may open WebSockets: the public URL's and the listed ones.
    pub fn websocket_origins(&self) -> Vec<String> {
        self.public_url
            .iter()
            .map(|url| url.origin().ascii_serialization())
            .chain(
                self.allowed_origins
                    .iter()
                    .map(|origin| origin.trim().trim_end_matches('/').to_owned())
                    .filter(|origin| !origin.is_empty()),
            )
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Config {
        let base = [
            "berth-backend",
            "--database-url",
            "postgres://x",
            "--amqp-url",
            "amqp://x",
            "--secret-key",
            "k",
        ];
        Config::try_parse_from(base.iter().chain(args)).unwrap()
    }

    #[test]
    fn serve_is_the_default_and_defaults_are_sane() {
        let config = parse(&[]);
        assert_eq!(config.command, None);
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert!(!config.allow_local_repos);
        assert_eq!(parse(&["migrate"]).command, Some(Command::Migrate));
    }

    #[test]
    fn trusted_proxies_are_ips_or_cidrs() {
        let config = parse(&["--trusted-proxies", "10.0.0.0/8, ::1"]);
        assert_eq!(config.trusted_proxies().unwrap().len(), 2);
        assert!(parse(&["--trusted-proxies", "10.0.0.0/40"])
            .trusted_proxies()
            .is_err());
    }

    #[test]
    fn short_jwt_secrets_are_refused() {
        assert!(parse(&["--jwt-secret", "short"]).jwt_secret().is_err());
        let long = "x".repeat(32);
        assert!(parse(&["--jwt-secret", &long]).jwt_secret().is_ok());
    }

    #[test]
    fn websocket_origins_come_from_the_public_url_and_the_list() {
        let config = parse(&[
            "--public-url",
            "https://berth.example.com/app/",
            "--allowed-origins",
            "http://localhost:5173/, http://127.0.0.1:5173",
        ]);
        assert_eq!(
            config.websocket_origins(),
            [
                "https://berth.example.com",
                "http://localhost:5173",
                "http://127.0.0.1:5173"
            ]
        );
    }
}
