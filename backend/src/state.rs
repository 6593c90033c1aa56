//! What every request handler shares.

use crate::credentials::throttle::AuthLimiter;
use crate::credentials::tokens::TokenKeys;
use crate::custom_domains::Domains;
use crate::event_hub::EventHub;
use crate::github_api::{GitHubClient, ReqwestGitHub, DEFAULT_API_URL};
use crate::logs::LogReader;
use crate::mail::Mailer;
use crate::quota::slots::OpenSlots;
use crate::quota::Quotas;
use crate::session_ends::SessionEnds;
use crate::web_security::proxies::Cidr;
use crate::webhook_guard::WebhookGuard;
use berth_common::registry_auth::TokenIssuer;
use berth_proto::SecretKey;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Policy knobs of the HTTP API.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Local development: accept `file://` URLs and absolute paths inside
    /// `local_repo_root`, plain http and hosts on internal addresses.
    pub allow_local_repos: bool,
    /// The folder local repositories must be in (BERTH_LOCAL_REPO_ROOT).
    pub local_repo_root: Option<std::path::PathBuf>,
    /// Origins allowed to open WebSockets; when empty, only an Origin whose
    /// host is the request's Host is accepted.
    pub websocket_origins: Vec<String>,
    /// Host names answered besides the public URL's, IP addresses and
    /// localhost (BERTH_ALLOWED_HOSTS); checked only with a public URL.
    pub allowed_hosts: Vec<String>,
    /// Per-tenant quotas and per-app resources.
    pub quotas: Quotas,
    pub refresh_token_ttl: Duration,
    /// How often an open log socket pings its client; also how often open
    /// log sockets and event streams re-check their session (ended
    /// sessions are announced at once; this is the backstop).
    pub websocket_ping: Duration,
    /// Where users reach berth (BERTH_PUBLIC_URL, no trailing `/`): the base
    /// of the webhook payload URLs berth shows.
    pub public_url: Option<String>,
    /// Proxies whose `X-Forwarded-For` is believed (BERTH_TRUSTED_PROXIES).
    pub trusted_proxies: Vec<Cidr>,
    /// How long a password reset token works.
    pub password_reset_ttl: Duration,
    /// Requests a minute per client (an IPv4 address or an IPv6 /64) on
    /// login, register and password reset (each its own budget), counted
    /// in PostgreSQL for every replica.
    pub auth_rate_per_minute: u32,
    /// Requests a minute per client address on the webhook endpoints.
    pub webhook_rate_per_minute: u32,
    /// Webhook signature checks at once (each hashes a whole body).
    pub webhook_verify_concurrency: usize,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            allow_local_repos: false,
            local_repo_root: None,
            websocket_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            quotas: Quotas::default(),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            websocket_ping: Duration::from_secs(20),
            public_url: None,
            trusted_proxies: Vec::new(),
            password_reset_ttl: Duration::from_secs(30 * 60),
            auth_rate_per_minute: 20,
            webhook_rate_per_minute: 120,
            webhook_verify_concurrency: 2,
        }
    }
}

impl ApiSettings {
    /// Where repositories may come from (the build-worker's rules too).
    pub fn repo_policy(&self) -> berth_common::repo_policy::RepoPolicy {
        berth_common::repo_policy::RepoPolicy {
            allow_local: self.allow_local_repos,
            local_root: self.local_repo_root.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    /// Seals env vars at rest and in messages.
    pub key: SecretKey,
    pub tokens: Arc<TokenKeys>,
    /// Wakes the outbox relay right after a message is written.
    pub outbox: Arc<Notify>,
    /// Wakes the GitHub status reporter right after reports are queued.
    pub github_status: Arc<Notify>,
    pub logs: Arc<dyn LogReader>,
    /// Log sockets, event streams and log reads held, across processes.
    pub slots: Arc<OpenSlots>,
    /// The unauthenticated webhook endpoints' rate limit and signature
    /// check bound.
    pub webhooks: Arc<WebhookGuard>,
    pub settings: Arc<ApiSettings>,
    /// Cancelled when the process stops; open sockets close on it.
    pub shutdown: CancellationToken,
    /// GitHub's API, to register webhooks on repositories.
    pub github: Arc<dyn GitHubClient>,
    /// Outgoing mail; password reset is off without it.
    pub mailer: Option<Arc<dyn Mailer>>,
    pub limiter: Arc<AuthLimiter>,
    /// Deployment state changes for the live event streams.
    pub events: Arc<EventHub>,
    /// Ended sessions, so their log sockets and event streams close.
    pub sessions: Arc<SessionEnds>,
    /// Issues image registry tokens; `None` when no signing key is set.
    pub registry_tokens: Option<Arc<TokenIssuer>>,
    /// Custom domains' settings and checks; `None`: the API answers 503.
    pub domains: Option<Arc<Domains>>,
}

impl AppState {
    pub fn new(
        db: PgPool,
        key: SecretKey,
        tokens: TokenKeys,
        logs: Arc<dyn LogReader>,
        settings: ApiSettings,
    ) -> Self {
        let limiter = Arc::new(AuthLimiter::new(db.clone(), settings.auth_rate_per_minute));
        let slots = Arc::new(OpenSlots::new(db.clone()));
        Self {
            db,
            key,
            tokens: Arc::new(tokens),
            outbox: Arc::new(Notify::new()),
            github_status: Arc::new(Notify::new()),
            logs,
            slots,
            webhooks: Arc::new(WebhookGuard::new(
                settings.webhook_rate_per_minute,
                settings.webhook_verify_concurrency,
            )),
            limiter,
            mailer: None,
            events: Arc::new(EventHub::default()),
            sessions: Arc::new(SessionEnds::default()),
            registry_tokens: None,
            domains: None,
            settings: Arc::new(settings),
            shutdown: CancellationToken::new(),
            github: Arc::new(
                ReqwestGitHub::new(DEFAULT_API_URL).expect("the default GitHub API URL is valid"),
            ),
        }
    }

    /// Sends mail (password reset links) through `mailer`.
    pub fn with_mailer(mut self, mailer: Arc<dyn Mailer>) -> Self {
        self.mailer = Some(mailer);
        self
    }

    /// Serves the image registry's token service with `issuer`.
    pub fn with_registry_tokens(mut self, issuer: Arc<TokenIssuer>) -> Self {
        self.registry_tokens = Some(issuer);
        self
    }

    /// Serves custom domains with these settings.
    pub fn with_domains(mut self, domains: Arc<Domains>) -> Self {
        self.domains = Some(domains);
        self
    }

    /// Talks to this GitHub API instead of api.github.com.
    pub fn with_github(mut self, github: Arc<dyn GitHubClient>) -> Self {
        self.github = github;
        self
    }
}
