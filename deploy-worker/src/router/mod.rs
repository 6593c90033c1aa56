//! The edge router of the `docker` driver: one reverse proxy in front of
//! every app, so an app answers on a stable hostname,
//! `<app>.<tenant>.<apps domain>`, whatever port its current container
//! was published on.
//!
//! [`Router`] is the seam; [`caddy::CaddyRouter`] drives Caddy through its
//! admin API. The router holds no state of berth's that is not derived: a
//! deploy points the app's route at its new container before the old one
//! stops, and the reconciler rebuilds every route from the desired state
//! and what the engine runs ([`Router::converge`]), so a router that
//! restarted empty, or a route someone edited, is repaired on its next pass.

pub mod caddy;
pub mod caddy_config;
pub mod tls;

use async_trait::async_trait;
use berth_proto::AppRef;
use clap::Args;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

use crate::error::DeployError;

/// How long an instance has to answer its health check. Healthy is a 2xx
/// answer on the release's health check path within this time, both for
/// the deploy that waits before moving traffic and for the router after.
pub const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Where one app's hostname sends its requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRoute {
    pub app_id: Uuid,
    pub host: String,
    pub target: Target,
    /// The release's HTTP health check: the router sends requests only to
    /// instances answering 2xx there.
    pub health_check_path: Option<String>,
    /// The app's verified custom domains; `None`: keep those the router
    /// has (a deploy moves traffic, it does not change names).
    pub domains: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Proxied to these instances (`host:port`), balanced between them.
    Instances(Vec<String>),
    /// Answered by the router itself with a 503 page saying why.
    Unavailable(Unavailable),
}

/// Why an app that exists serves nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// Scaled to 0.
    Stopped,
    /// No release went live yet, or its instances are being started again.
    NotRunning,
}

impl Unavailable {
    pub fn page(self) -> &'static str {
        match self {
            Self::Stopped => {
                "This app is stopped. Its owner can start it again by scaling it up in berth."
            }
            Self::NotRunning => {
                "This app is not running yet. If it was just deployed, try again in a moment."
            }
        }
    }
}

#[async_trait]
pub trait Router: Send + Sync + 'static {
    /// Adds or replaces the app's route.
    async fn set(&self, route: &AppRoute) -> Result<(), DeployError>;

    /// Removes the app's route; `false` when it had none.
    async fn remove(&self, app_id: Uuid) -> Result<bool, DeployError>;

    /// Makes the router's app routes exactly `routes`, except those of the
    /// apps `keep` names, which stay as they are (an app with a deploy in
    /// progress, or one newer than the desired state the routes come from).
    /// Also puts back what every route needs around it (the server, the
    /// console's route, the 404 for unknown hosts). Returns the apps whose
    /// route changed.
    async fn converge(
        &self,
        routes: &[AppRoute],
        keep: &(dyn Fn(Uuid) -> bool + Send + Sync),
    ) -> Result<BTreeSet<Uuid>, DeployError>;
}

/// The router's settings; unset `BERTH_ROUTER_ADMIN_SOCKET` means no router
/// (apps answer only on their published ports, as the Kubernetes driver's
/// answer through its Ingress).
#[derive(Debug, Clone, Args)]
pub struct RouterConfig {
    /// The edge router's admin API, a unix socket (Caddy's `admin.listen`).
    /// Only berth may open it: whoever can, controls every app's traffic.
    #[arg(long, env = "BERTH_ROUTER_ADMIN_SOCKET")]
    pub router_admin_socket: Option<PathBuf>,
    /// Where the router takes apps' traffic (Caddy's listener address).
    #[arg(long, env = "BERTH_ROUTER_LISTEN", default_value = ":80")]
    pub router_listen: String,
    /// Apps answer on `<app>.<tenant>.<apps domain>`. Names under
    /// `localhost` reach this machine in browsers without any DNS; on a
    /// public server use a wildcard domain, or `<ip>.sslip.io`.
    #[arg(long, env = "BERTH_APPS_DOMAIN", default_value = "localhost")]
    pub apps_domain: String,
    /// The hostname berth's own web UI and API answer on through the router.
    #[arg(long, env = "BERTH_CONSOLE_HOST")]
    pub console_host: Option<String>,
    /// The backend's address (`host:port`) the console's route proxies to.
    #[arg(long, env = "BERTH_CONSOLE_UPSTREAM")]
    pub console_upstream: Option<String>,
    /// Seconds a replaced release keeps running after traffic moved to the
    /// new one, so requests it is answering finish.
    #[arg(long, env = "BERTH_DRAIN_SECS", default_value_t = 5)]
    pub drain_secs: u64,
    #[command(flatten)]
    pub tls: tls::TlsConfig,
    /// Where the router writes its access log (JSON lines, one per request
    /// to an app, under a logger named after the app); the log-streamer
    /// ships it into each app's log. Unset: no access log.
    #[arg(long, env = "BERTH_ROUTER_ACCESS_LOG")]
    pub router_access_log: Option<PathBuf>,
}

impl RouterConfig {
    /// The port apps' own hostnames (and the console) are served over
    /// HTTPS on: only with the HTTPS listener on and a real apps domain,
    /// since names under `localhost` cannot get a certificate.
    pub fn apps_https_port(&self) -> Option<u16> {
        self.tls
            .router_tls_listen
            .as_deref()
            .filter(|_| berth_common::names::public_domain(&self.apps_domain))
            .and_then(listen_port)
    }
}

/// The port of a listener address (`:80`, `0.0.0.0:443`, `127.0.0.1:8080`).
pub fn listen_port(listen: &str) -> Option<u16> {
    listen
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
}

/// The router and how apps are named on it, as the docker driver uses them.
#[derive(Clone)]
pub struct Routing {
    pub router: Arc<dyn Router>,
    pub apps_domain: String,
    /// The router's port in app URLs, when it is not 80.
    pub url_port: Option<u16>,
    /// Apps' own hostnames are served over HTTPS (on this port).
    pub https_port: Option<u16>,
    pub drain: Duration,
}

impl Routing {
    pub fn new(router: Arc<dyn Router>, config: &RouterConfig) -> Self {
        Self {
            router,
            apps_domain: config.apps_domain.trim_matches('.').to_owned(),
            https_port: config.apps_https_port(),
            url_port: listen_port(&config.router_listen).filter(|port| *port != 80),
            drain: Duration::from_secs(config.drain_secs),
        }
    }

    pub fn host(&self, app: &AppRef) -> String {
        format!("{}.{}.{}", app.name, app.tenant, self.apps_domain)
    }

    /// The app's stable URL.
    pub fn url(&self, app: &AppRef) -> String {
        if let Some(port) = self.https_port {
            return match port {
                443 => format!("https://{}", self.host(app)),
                port => format!("https://{}:{port}", self.host(app)),
            };
        }
        match self.url_port {
            Some(port) => format!("http://{}:{port}", self.host(app)),
            None => format!("http://{}", self.host(app)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(listen: &str, domain: &str) -> RouterConfig {
        RouterConfig {
            router_admin_socket: None,
            router_listen: listen.into(),
            apps_domain: domain.into(),
            console_host: None,
            console_upstream: None,
            drain_secs: 5,
            tls: Default::default(),
            router_access_log: None,
        }
    }

    struct Nothing;

    #[async_trait]
    impl Router for Nothing {
        async fn set(&self, _: &AppRoute) -> Result<(), DeployError> {
            Ok(())
        }
        async fn remove(&self, _: Uuid) -> Result<bool, DeployError> {
            Ok(false)
        }
        async fn converge(
            &self,
            _: &[AppRoute],
            _: &(dyn Fn(Uuid) -> bool + Send + Sync),
        ) -> Result<BTreeSet<Uuid>, DeployError> {
            Ok(BTreeSet::new())
        }
    }

    #[test]
    fn apps_are_named_under_the_apps_domain_with_the_routers_port() {
        let app = AppRef {
            id: Uuid::nil(),
            name: "shop".into(),
            tenant: "acme".into(),
        };
        let local = Routing::new(Arc::new(Nothing), &config(":8088", "localhost"));
        assert_eq!(local.host(&app), "shop.acme.localhost");
        assert_eq!(local.url(&app), "http://shop.acme.localhost:8088");
        let public = Routing::new(
            Arc::new(Nothing),
            &config("0.0.0.0:80", ".apps.example.com."),
        );
        assert_eq!(public.url(&app), "http://shop.acme.apps.example.com");
    }
}
