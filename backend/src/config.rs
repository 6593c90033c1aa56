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

    /// Proxies (IPs or CIDRs, comma-separated) whose X-Forwarded-For gives
    /// the client address recorded in the audit log and rate-limited; by
    /// default none.
    #[arg(long, env = "BERTH_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,

    /// Requests a minute one client address may make to each of login,
    /// register and password reset.
    #[arg(long, env = "BERTH_AUTH_RATE_LIMIT", default_value_t = 20)]
    pub auth_rate_limit: u32,

    /// The SMTP server account mail goes through (sign-up and email
    /// confirmation, password reset): smtp://host:25 (plain),
    /// smtp://user:pass@host:587?tls=required (STARTTLS) or
    /// smtps://user:pass@host (TLS). Without it password reset is off and
    /// sign-ups and email changes are not confirmed.
    #[arg(long, env = "BERTH_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,

    /// The sender of berth's mail.
    #[arg(
        long,
        env = "BERTH_MAIL_FROM",
        default_value = "berth <berth@localhost>"
    )]
    pub mail_from: String,

    /// How long a password reset link works, in minutes.
    #[arg(long, env = "BERTH_PASSWORD_RESET_TTL_MINUTES", default_value_t = 30)]
    pub password_reset_ttl_minutes: u32,

    /// Folder with the web UI's static files, served with an index.html fallback.
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

    /// GitHub's web site, where users authorize berth (GitHub Enterprise: https://<host>).
    #[arg(long, env = "BERTH_GITHUB_URL", default_value = "https://github.com")]
    pub github_url: url::Url,

    /// The client id of berth's GitHub OAuth app; GitHub sign-in is off without it.
    /// Its callback URL is <BERTH_PUBLIC_URL>/api/v1/auth/github/callback.
    #[arg(long, env = "BERTH_GITHUB_CLIENT_ID")]
    pub github_client_id: Option<String>,

    /// The client secret of berth's GitHub OAuth app.
    #[arg(long, env = "BERTH_GITHUB_CLIENT_SECRET", hide_env_values = true)]
    pub github_client_secret: Option<String>,

    /// Attempts at one GitHub deployment or commit status report before it
    /// is abandoned (GitHub down or rate limiting).
    #[arg(long, env = "BERTH_GITHUB_STATUS_MAX_ATTEMPTS", default_value_t = 8)]
    pub github_status_max_attempts: u16,

    /// Minutes after which a GitHub status report that still fails is abandoned.
    #[arg(
        long,
        env = "BERTH_GITHUB_STATUS_MAX_AGE_MINUTES",
        default_value_t = 60
    )]
    pub github_status_max_age_minutes: u64,

    /// Inform messages handled at once.
    #[arg(long, env = "BERTH_INFORM_CONCURRENCY", default_value_t = 8)]
    pub inform_concurrency: u16,

    /// The P-256 private key (PKCS#8 PEM file) registry tokens are signed
    /// with. With it, this backend is the image registry's token service
    /// (its realm): GET /api/v1/registry/token turns the per-tenant grants
    /// berth's processes mint into tokens for that tenant's repositories.
    #[arg(long, env = "BERTH_REGISTRY_TOKEN_KEY")]
    pub registry_token_key: Option<PathBuf>,

    /// The certificate (PEM file) of BERTH_REGISTRY_TOKEN_KEY: the registry's
    /// auth.token.rootcertbundle, sent in every token's x5c header.
    #[arg(long, env = "BERTH_REGISTRY_TOKEN_CERT")]
    pub registry_token_cert: Option<PathBuf>,

    /// The registry's auth.token.service: the audience of every token.
    #[arg(long, env = "BERTH_REGISTRY_SERVICE", default_value = "berth-registry")]
    pub registry_service: String,

    /// The registry's auth.token.issuer: the issuer of every token.
    #[arg(long, env = "BERTH_REGISTRY_TOKEN_ISSUER", default_value = "berth")]
    pub registry_token_issuer: String,

    /// The registry images go to, host[:port][/prefix], as the workers have
    /// it: its path is the prefix of every repository a token names.
    #[arg(long, env = "BERTH_REGISTRY")]
    pub registry: Option<String>,
}

/// How long a registry token lives (never past its grant): long enough for
/// a push of large layers, which reuses one token.
pub const REGISTRY_TOKEN_TTL: std::time::Duration = std::time::Duration::from_secs(10 * 60);

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

    /// The registry token service, when its key and certificate are set.
    pub fn registry_tokens(
        &self,
    ) -> anyhow::Result<Option<berth_common::registry_auth::TokenIssuer>> {
        use berth_common::registry_auth::{
            GrantKey, IssuerSettings, RepositoryLayout, TokenIssuer,
        };
        let non_empty = |path: &Option<PathBuf>| path.clone().filter(|p| !p.as_os_str().is_empty());
        let (key, certificate) = match (
            non_empty(&self.registry_token_key),
            non_empty(&self.registry_token_cert),
        ) {
            (None, None) => return Ok(None),
            (Some(key), Some(certificate)) => (key, certificate),
            _ => {
                anyhow::bail!("BERTH_REGISTRY_TOKEN_KEY and BERTH_REGISTRY_TOKEN_CERT go together")
            }
        };
        let grants = GrantKey::from_secret_key(&self.secret.secret_key)
            .map_err(|e| anyhow::anyhow!("BERTH_SECRET_KEY: {e}"))?;
        let settings = IssuerSettings {
            issuer: self.registry_token_issuer.trim().to_owned(),
            service: self.registry_service.trim().to_owned(),
            layout: RepositoryLayout::from_registry(self.registry.as_deref().unwrap_or("")),
            token_ttl: REGISTRY_TOKEN_TTL,
        };
        anyhow::ensure!(
            !settings.issuer.is_empty(),
            "BERTH_REGISTRY_TOKEN_ISSUER must not be empty"
        );
        anyhow::ensure!(
            !settings.service.is_empty(),
            "BERTH_REGISTRY_SERVICE must not be empty"
        );
        TokenIssuer::from_files(grants, &key, &certificate, settings)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("BERTH_REGISTRY_TOKEN_KEY/_CERT: {e}"))
    }

    /// Checks what clap cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(self.deadline_scale.is_finite() && self.deadline_scale > 0.0) {
            anyhow::bail!("BERTH_DEADLINE_SCALE must be a positive number");
        }
        self.trusted_proxies()
            .map_err(|e| anyhow::anyhow!("BERTH_TRUSTED_PROXIES: {e}"))?;
        self.github_oauth()?;
        self.registry_tokens()?;
        self.jwt_secret().map(drop)
    }

    /// berth's GitHub OAuth app, when a client id is set (then the secret
    /// and BERTH_PUBLIC_URL, which makes the callback URL, are required).
    pub fn github_oauth(&self) -> anyhow::Result<Option<crate::github::types::OAuthApp>> {
        let Some(client_id) = self.github_client_id.as_deref().map(str::trim) else {
            return Ok(None);
        };
        let Some(client_secret) = self.github_client_secret.as_deref().map(str::trim) else {
            anyhow::bail!("BERTH_GITHUB_CLIENT_SECRET is required with BERTH_GITHUB_CLIENT_ID");
        };
        if self.public_url.is_none() {
            anyhow::bail!("BERTH_PUBLIC_URL is required with BERTH_GITHUB_CLIENT_ID");
        }
        Ok(Some(crate::github::types::OAuthApp {
            web_url: self.github_url.as_str().trim_end_matches('/').to_owned(),
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
        }))
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
        assert_eq!(config.github_status_max_attempts, 8);
        assert_eq!(config.github_status_max_age_minutes, 60);
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
    fn github_sign_in_needs_the_secret_and_the_public_url() {
        assert!(parse(&[]).github_oauth().unwrap().is_none());
        assert!(parse(&["--github-client-id", "Iv1.x"])
            .github_oauth()
            .is_err());
        let app = parse(&[
            "--github-client-id",
            "Iv1.x",
            "--github-client-secret",
            "s",
            "--public-url",
            "https://berth.example.com",
            "--github-url",
            "https://ghe.example.com/",
        ])
        .github_oauth()
        .unwrap()
        .unwrap();
        assert_eq!(app.web_url, "https://ghe.example.com");
    }

    #[test]
    fn the_registry_token_service_needs_a_key_and_its_certificate() {
        assert!(parse(&[]).registry_tokens().unwrap().is_none());
        let error = parse(&["--registry-token-key", "/k.pem"])
            .registry_tokens()
            .unwrap_err();
        assert!(error.to_string().contains("go together"), "{error}");
        let dir = tempfile::tempdir().unwrap();
        let files = berth_common::testing::registry::SigningFiles::generate(dir.path());
        let secret = berth_proto::SecretKey::generate_base64();
        let key = files.key.to_str().unwrap();
        let cert = files.certificate.to_str().unwrap();
        let config = Config::try_parse_from([
            "berth-backend",
            "--database-url=postgres://x",
            "--amqp-url=amqp://x",
            &format!("--secret-key={secret}"),
            &format!("--registry-token-key={key}"),
            &format!("--registry-token-cert={cert}"),
            "--registry=registry.example.com/berth",
        ])
        .unwrap();
        let issuer = config.registry_tokens().unwrap().unwrap();
        assert_eq!(issuer.settings().service, "berth-registry");
        assert_eq!(issuer.settings().issuer, "berth");
        assert_eq!(
            issuer.settings().layout,
            berth_common::registry_auth::RepositoryLayout::with_prefix("berth")
        );
        // The key of another certificate is refused at start.
        let other = tempfile::tempdir().unwrap();
        let other = berth_common::testing::registry::SigningFiles::generate(other.path());
        let mismatched = Config {
            registry_token_cert: Some(other.certificate),
            ..config
        };
        assert!(mismatched.registry_tokens().is_err());
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
