//! What every request handler shares.

use crate::audit::source::Cidr;
use crate::auth::throttle::AuthLimiter;
use crate::auth::tokens::TokenKeys;
use crate::events::EventHub;
use crate::log_api::limiter::SocketLimiter;
use crate::logs::LogReader;
use crate::mail::Mailer;
use crate::webhooks::github::{GitHubClient, ReqwestGitHub, DEFAULT_API_URL};
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
    /// Accept `file://` URLs and absolute paths as repositories.
    pub allow_local_repos: bool,
    /// Origins allowed to open WebSockets; when empty, only an Origin whose
    /// host is the request's Host is accepted.
    pub websocket_origins: Vec<String>,
    pub max_sockets_per_user: usize,
    pub refresh_token_ttl: Duration,
    /// How often an open log socket pings its client.
    pub websocket_ping: Duration,
    /// Where users reach berth (BERTH_PUBLIC_URL, no trailing `/`): the base
    /// of the webhook payload URLs berth shows.
    pub public_url: Option<String>,
    /// Proxies whose `X-Forwarded-For` is believed (BERTH_TRUSTED_PROXIES).
    pub trusted_proxies: Vec<Cidr>,
    /// How long a password reset token works.
    pub password_reset_ttl: Duration,
    /// Requests a minute per client address on login, register and
    /// password reset (each its own budget).
    pub auth_rate_per_minute: u32,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            allow_local_repos: false,
            websocket_origins: Vec::new(),
            max_sockets_per_user: 20,
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            websocket_ping: Duration::from_secs(20),
            public_url: None,
            trusted_proxies: Vec::new(),
            password_reset_ttl: Duration::from_secs(30 * 60),
            auth_rate_per_minute: 20,
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
    pub sockets: Arc<SocketLimiter>,
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
    /// Issues image registry tokens; `None` when no signing key is set.
    pub registry_tokens: Option<Arc<TokenIssuer>>,
}

impl AppState {
    pub fn new(
        db: PgPool,
        key: SecretKey,
        tokens: TokenKeys,
        logs: Arc<dyn LogReader>,
        settings: ApiSettings,
    ) -> Self {
        Self {
            db,
            key,
            tokens: Arc::new(tokens),
            outbox: Arc::new(Notify::new()),
            github_status: Arc::new(Notify::new()),
            logs,
            sockets: Arc::new(SocketLimiter::new(settings.max_sockets_per_user)),
            limiter: Arc::new(AuthLimiter::new(settings.auth_rate_per_minute)),
            mailer: None,
            events: Arc::new(EventHub::default()),
            registry_tokens: None,
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

    /// Talks to this GitHub API instead of api.github.com.
    pub fn with_github(mut self, github: Arc<dyn GitHubClient>) -> Self {
        self.github = github;
        self
    }
}
