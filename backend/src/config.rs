//! The backend's configuration: flags, each with a `BERTH_` environment
//! variable.

use berth_common::config::{BrokerConfig, KafkaConfig, OpsConfig, SecretKeyConfig};
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, Parser)]
#[command(name = "berth-backend", version, about = "berth's API server")]
pub struct Config {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Address the API, the web UI, /healthz and /readyz are served on.
    #[arg(long, env = "BERTH_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// The ops listener (/metrics, /healthz, /readyz), kept off the public
    /// one.
    #[command(flatten)]
    pub ops: OpsConfig,

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

    /// Secret that signs access tokens (HS256): at least 32 random bytes,
    /// e.g. `openssl rand -hex 32` (hex and base64 count as the bytes they
    /// encode; repetitive secrets are refused). Required by `serve`.
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

    /// More host names the API answers to, comma separated. With
    /// BERTH_PUBLIC_URL set, a request whose Host is another name (not an
    /// IP address or localhost) is refused: a DNS-rebinding page cannot
    /// reach a local install.
    #[arg(long, env = "BERTH_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,

    /// The hostname the edge router serves berth's web UI and API on (the
    /// deploy-worker routes it to this backend): the API answers to it, and
    /// its pages may open log WebSockets.
    #[arg(long, env = "BERTH_CONSOLE_HOST")]
    pub console_host: Option<String>,

    #[command(flatten)]
    pub quota: QuotaConfig,

    #[command(flatten)]
    pub domains: crate::custom_domains::DomainConfig,

    /// Requests a minute one client address may make to the webhook
    /// endpoints (per process). GitHub delivers from a few addresses: keep
    /// it above the installation's push rate.
    #[arg(long, env = "BERTH_WEBHOOK_RATE_LIMIT", default_value_t = 120)]
    pub webhook_rate_limit: u32,

    /// Webhook signature checks running at once (per process); each hashes
    /// a whole body on a blocking thread.
    #[arg(long, env = "BERTH_WEBHOOK_VERIFY_CONCURRENCY", default_value_t = 2)]
    pub webhook_verify_concurrency: u16,

    /// Local development only: accept file:// URLs and absolute paths inside
    /// BERTH_LOCAL_REPO_ROOT (the build-worker reads them from its own
    /// disk), plain http:// and repository hosts on loopback or private
    /// addresses. Off, only https:// on public hosts is accepted.
    #[arg(long, env = "BERTH_ALLOW_LOCAL_REPOS")]
    pub allow_local_repos: bool,

    /// The one folder local repositories may be in (with
    /// BERTH_ALLOW_LOCAL_REPOS); symlinks out of it are refused. Unset, no
    /// local folder is accepted. Must match the build-worker's.
    #[arg(long, env = "BERTH_LOCAL_REPO_ROOT")]
    pub local_repo_root: Option<std::path::PathBuf>,

    /// Proxies (IPs or CIDRs, comma-separated) whose X-Forwarded-For gives
    /// the client address recorded in the audit log and rate-limited; by
    /// default none.
    #[arg(long, env = "BERTH_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,

    /// Requests a minute one client (an IPv4 address or an IPv6 /64) may
    /// make to each of login, register and password reset, counted in
    /// PostgreSQL across every backend replica.
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

    /// How many builds are handed to the build-workers at once: the sum of
    /// their `BERTH_BUILD_CONCURRENCY`. More builds wait in the database,
    /// where they are ordered fairly across tenants and never time out.
    #[arg(long, env = "BERTH_BUILD_SLOTS", default_value_t = 2)]
    pub build_slots: u32,

    /// How many of one tenant's builds are handed out at once (at most the
    /// build-workers' `BERTH_BUILD_TENANT_CONCURRENCY`, summed).
    #[arg(long, env = "BERTH_TENANT_BUILD_SLOTS", default_value_t = 1)]
    pub tenant_build_slots: u32,

    /// How often the reaper looks for overdue deployments, in seconds.
    #[arg(long, env = "BERTH_REAPER_INTERVAL_SECS", default_value_t = 15)]
    pub reaper_interval_secs: u64,

    /// How often the deploy-workers get what should run, to repair what
    /// drifted (a container gone after a reboot, a deleted app's leftovers),
    /// in seconds; 0 turns the reconciler off.
    #[arg(long, env = "BERTH_CONVERGE_INTERVAL_SECS", default_value_t = 60)]
    pub converge_interval_secs: u64,

    /// A release whose instances crash-loop within this many seconds after
    /// it went live is rolled back by berth to the previous release that
    /// did not fail (or the app is stopped); 0 turns automatic rollback off.
    #[arg(long, env = "BERTH_ROLLBACK_WINDOW_SECS", default_value_t = 300)]
    pub rollback_window_secs: u64,

    /// How many of an app's newest releases rollback reaches besides the
    /// current one; older releases are pruned and their images deleted
    /// from the registry.
    #[arg(long, env = "BERTH_ROLLBACK_RELEASES", default_value_t = 10)]
    pub rollback_releases: u32,

    /// How often retention prunes releases and deleted apps' log topics,
    /// in seconds; 0 turns it off.
    #[arg(long, env = "BERTH_RETENTION_INTERVAL_SECS", default_value_t = 3600)]
    pub retention_interval_secs: u64,

    /// Whether retention deletes the log topics of deleted apps. Off for a
    /// broker that cannot delete one topic alone (tansu 0.6 deletes them
    /// all); their records then expire with BERTH_LOG_RETENTION_HOURS.
    #[arg(long, env = "BERTH_LOG_TOPIC_DELETE", default_value_t = true, action = clap::ArgAction::Set)]
    pub log_topic_delete: bool,

    /// GitHub's REST API, used to register webhooks on repositories
    /// (GitHub Enterprise: https://<host>/api/v3).
    #[arg(long, env = "BERTH_GITHUB_API_URL", default_value = crate::github_api::DEFAULT_API_URL)]
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

/// Per-tenant quotas and per-app resources.
#[derive(Debug, Clone, Args)]
pub struct QuotaConfig {
    /// Live apps one tenant may have.
    #[arg(long, env = "BERTH_QUOTA_APPS", default_value_t = 20)]
    pub quota_apps: u32,

    /// Deployments of one tenant that may wait to start (queued, not yet
    /// building); more answer 429.
    #[arg(long, env = "BERTH_QUOTA_QUEUED_DEPLOYMENTS", default_value_t = 10)]
    pub quota_queued_deployments: u32,

    /// Log WebSockets and event streams one tenant may hold open at once,
    /// together, across every backend process.
    #[arg(long, env = "BERTH_QUOTA_STREAMS", default_value_t = 20)]
    pub quota_streams: u32,

    /// REST log reads of one tenant in progress at once, across every
    /// backend process.
    #[arg(long, env = "BERTH_QUOTA_LOG_READS", default_value_t = 4)]
    pub quota_log_reads: u32,

    /// Memory of all of a tenant's apps times their replicas, in MB.
    #[arg(long, env = "BERTH_QUOTA_MEMORY_MB", default_value_t = 10_240)]
    pub quota_memory_mb: u64,

    /// CPU of all of a tenant's apps times their replicas, in millicores.
    #[arg(long, env = "BERTH_QUOTA_CPU_MILLIS", default_value_t = 20_000)]
    pub quota_cpu_millis: u64,

    /// Memory limit of each instance of an app that sets none, in MB.
    #[arg(long, env = "BERTH_APP_DEFAULT_MEMORY_MB", default_value_t = 512)]
    pub app_default_memory_mb: u32,

    /// CPU limit of each instance of an app that sets none, in millicores.
    #[arg(long, env = "BERTH_APP_DEFAULT_CPU_MILLIS", default_value_t = 1000)]
    pub app_default_cpu_millis: u32,

    /// The most memory one app's instance may ask for, in MB.
    #[arg(long, env = "BERTH_APP_MAX_MEMORY_MB", default_value_t = 4096)]
    pub app_max_memory_mb: u32,

    /// The most CPU one app's instance may ask for, in millicores.
    #[arg(long, env = "BERTH_APP_MAX_CPU_MILLIS", default_value_t = 4000)]
    pub app_max_cpu_millis: u32,
}

impl QuotaConfig {
    /// The quotas, refused when an app default is outside its bounds.
    pub fn quotas(&self) -> anyhow::Result<crate::quota::Quotas> {
        use crate::quota::{AppBounds, Quotas, MIN_CPU_MILLIS, MIN_MEMORY_MB};
        let bounds = [
            (
                "BERTH_APP_DEFAULT_MEMORY_MB",
                self.app_default_memory_mb,
                MIN_MEMORY_MB,
                self.app_max_memory_mb,
            ),
            (
                "BERTH_APP_DEFAULT_CPU_MILLIS",
                self.app_default_cpu_millis,
                MIN_CPU_MILLIS,
                self.app_max_cpu_millis,
            ),
        ];
        for (name, value, min, max) in bounds {
            if !(min..=max).contains(&value) {
                anyhow::bail!("{name} must be between {min} and the matching BERTH_APP_MAX_* ({max}), not {value}");
            }
        }
        Ok(Quotas {
            apps: self.quota_apps,
            queued_deployments: self.quota_queued_deployments,
            streams: self.quota_streams,
            log_reads: self.quota_log_reads,
            memory_mb: self.quota_memory_mb,
            cpu_millis: self.quota_cpu_millis,
            app: AppBounds {
                default_memory_mb: self.app_default_memory_mb,
                default_cpu_millis: self.app_default_cpu_millis,
                max_memory_mb: self.app_max_memory_mb,
                max_cpu_millis: self.app_max_cpu_millis,
            },
        })
    }
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
/// However long it is, a secret whose characters carry less than this
/// (by their Shannon entropy) is a repetition or a pattern, not a secret.
const MIN_JWT_SECRET_ENTROPY_BITS: f64 = 128.0;

/// What a secret holds: the bytes it decodes to (hex and base64 are read as
/// such, anything else byte for byte) and an estimate of its entropy in
/// bits (Shannon's, over its characters). The estimate catches repetition
/// and short alphabets, not a guessable phrase: generate secrets.
pub fn secret_strength(secret: &str) -> (usize, f64) {
    let chars = secret.len();
    let decoded = if chars.is_multiple_of(2) && secret.bytes().all(|b| b.is_ascii_hexdigit()) {
        chars / 2
    } else if secret
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_' | b'='))
    {
        secret.trim_end_matches('=').len() * 6 / 8
    } else {
        chars
    };
    let mut counts = std::collections::HashMap::<u8, usize>::new();
    for byte in secret.bytes() {
        *counts.entry(byte).or_default() += 1;
    }
    let per_char: f64 = counts
        .values()
        .map(|&n| {
            let p = n as f64 / chars as f64;
            -p * p.log2()
        })
        .sum();
    (decoded, per_char * chars as f64)
}

impl Config {
    /// The JWT secret, refused when missing, when it decodes to less than
    /// 32 bytes (64 hex digits, 43 base64 characters) or when its
    /// characters carry too little entropy.
    pub fn jwt_secret(&self) -> anyhow::Result<&[u8]> {
        let Some(secret) = self.jwt_secret.as_deref() else {
            anyhow::bail!("BERTH_JWT_SECRET is required to serve");
        };
        let (bytes, bits) = secret_strength(secret);
        if bytes < MIN_JWT_SECRET_BYTES || bits < MIN_JWT_SECRET_ENTROPY_BITS {
            anyhow::bail!(
                "BERTH_JWT_SECRET must hold at least {MIN_JWT_SECRET_BYTES} random bytes (it \
                 decodes to {bytes} bytes with about {bits:.0} bits of entropy); generate one \
                 with `openssl rand -hex 32`"
            );
        }
        Ok(secret.as_bytes())
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
        if self.build_slots == 0 || self.tenant_build_slots == 0 {
            anyhow::bail!(
                "BERTH_BUILD_SLOTS and BERTH_TENANT_BUILD_SLOTS must be at least 1, or no build ever starts"
            );
        }
        self.trusted_proxies()
            .map_err(|e| anyhow::anyhow!("BERTH_TRUSTED_PROXIES: {e}"))?;
        self.github_oauth()?;
        self.quota.quotas()?;
        if self.ops.ops_addr.port() != 0 && self.ops.ops_addr == self.listen {
            anyhow::bail!("BERTH_OPS_ADDR must differ from BERTH_LISTEN: /metrics is not public");
        }
        self.registry_tokens()?;
        self.jwt_secret().map(drop)
    }

    /// berth's GitHub OAuth app, when a client id is set (then the secret
    /// and BERTH_PUBLIC_URL, which makes the callback URL, are required).
    pub fn github_oauth(&self) -> anyhow::Result<Option<crate::github_api::OAuthApp>> {
        let Some(client_id) = self.github_client_id.as_deref().map(str::trim) else {
            return Ok(None);
        };
        let Some(client_secret) = self.github_client_secret.as_deref().map(str::trim) else {
            anyhow::bail!("BERTH_GITHUB_CLIENT_SECRET is required with BERTH_GITHUB_CLIENT_ID");
        };
        if self.public_url.is_none() {
            anyhow::bail!("BERTH_PUBLIC_URL is required with BERTH_GITHUB_CLIENT_ID");
        }
        Ok(Some(crate::github_api::OAuthApp {
            web_url: self.github_url.as_str().trim_end_matches('/').to_owned(),
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
        }))
    }

    pub fn trusted_proxies(&self) -> Result<Vec<crate::web_security::proxies::Cidr>, String> {
        crate::web_security::proxies::parse_list(&self.trusted_proxies)
    }

    /// Origins that may open WebSockets: the public URL's, the console
    /// host's and the listed ones.
    pub fn websocket_origins(&self) -> Vec<String> {
        self.public_url
            .iter()
            .map(|url| url.origin().ascii_serialization())
            .chain(
                self.console_host()
                    .into_iter()
                    .flat_map(|host| [format!("http://{host}"), format!("https://{host}")]),
            )
            .chain(
                self.allowed_origins
                    .iter()
                    .map(|origin| origin.trim().trim_end_matches('/').to_owned())
                    .filter(|origin| !origin.is_empty()),
            )
            .collect()
    }

    /// The host names the API answers to besides the public URL's.
    pub fn allowed_host_names(&self) -> Vec<String> {
        self.allowed_hosts
            .iter()
            .cloned()
            .chain(self.console_host().map(str::to_owned))
            .collect()
    }

    fn console_host(&self) -> Option<&str> {
        self.console_host
            .as_deref()
            .map(str::trim)
            .filter(|host| !host.is_empty())
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
        assert_eq!(
            config.quota.quotas().unwrap(),
            crate::quota::Quotas::default()
        );
        assert_ne!(config.ops.ops_addr, config.listen);
    }

    #[test]
    fn app_defaults_must_fit_their_bounds() {
        assert!(parse(&["--app-default-memory-mb", "8192"])
            .quota
            .quotas()
            .is_err());
        assert!(parse(&["--app-default-cpu-millis", "10"])
            .quota
            .quotas()
            .is_err());
        let quotas = parse(&["--quota-apps", "3", "--app-max-memory-mb", "1024"])
            .quota
            .quotas()
            .unwrap();
        assert_eq!((quotas.apps, quotas.app.max_memory_mb), (3, 1024));
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

    /// L10: what counts is the key material, not the characters typed.
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
    fn weak_jwt_secrets_are_refused_by_what_they_hold() {
        let refused = |secret: &str| parse(&["--jwt-secret", secret]).jwt_secret().is_err();
        assert!(refused("short"));
        // 32 characters, but next to no entropy.
        assert!(refused(&"x".repeat(32)));
        assert!(refused(&"ab".repeat(32)));
        // 32 hex digits are 16 bytes, not 32.
        assert!(refused("3f9a1c0e7b2d4f6a8c1e3b5d7f9a0c2e"));
        // The local stack's secret (`gen_hex 64`: 64 random bytes as hex),
        // 32 random bytes as hex, and 48 as base64 (the Kubernetes README's).
        let accepted = |secret: &str| parse(&["--jwt-secret", secret]).jwt_secret().is_ok();
        assert!(accepted(
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\
             60e3f3a1a6b1c2d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5"
        ));
        assert!(accepted(
            "60e3f3a1a6b1c2d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5"
        ));
        assert!(accepted(
            "q2Vh3T0pZk9yXw8Lr5Nc1Bm4Fd7Gs6Ja+Ue2Oi3Py/Qt0Rv9Wx8Yz7Ab6Cd5Ef4Gh"
        ));
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

    #[test]
    fn the_console_host_is_answered_and_may_open_websockets() {
        let config = parse(&[
            "--public-url",
            "https://berth.example.com",
            "--console-host",
            "console.example.com",
            "--allowed-hosts",
            "other.example.com",
        ]);
        assert_eq!(
            config.allowed_host_names(),
            ["other.example.com", "console.example.com"]
        );
        assert_eq!(
            config.websocket_origins(),
            [
                "https://berth.example.com",
                "http://console.example.com",
                "https://console.example.com"
            ]
        );
    }
}
