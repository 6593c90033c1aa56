//! Custom domains below the HTTP layer: the hostname rules, the DNS check
//! that proves a user controls a domain, the certificate the edge router
//! serves for it, and their rows. The API is `crate::domains`; the check
//! loop is `crate::background::domain_checks`.
//!
//! A domain goes through two steps before it serves: the user creates a
//! TXT record holding the domain's random token (`_berth-challenge.<host>`),
//! berth sees it and marks the domain verified, and only then does the
//! router answer for it and may ask for a certificate (its on-demand TLS
//! asks berth first, `crate::domains::tls_ask`). So no one gets traffic or
//! a certificate for a name they do not control, and a name verified by
//! one app cannot be claimed by another.

pub mod certificate;
pub mod dns;
pub mod hostname;
pub mod store;

use clap::Args;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Where the TXT record of a domain's proof lives.
pub const CHALLENGE_LABEL: &str = "_berth-challenge";
/// What the TXT record holds before the token.
pub const CHALLENGE_PREFIX: &str = "berth-verification=";
/// Domains one app may have.
pub const MAX_PER_APP: i64 = 20;

#[derive(Debug, Clone, Args)]
pub struct DomainConfig {
    /// Apps answer on `<app>.<tenant>.<apps domain>` (the deploy-worker's
    /// setting too): custom domains may not be under it.
    #[arg(long, env = "BERTH_APPS_DOMAIN", default_value = "localhost")]
    pub apps_domain: String,
    /// What users point their domains at: an IP address (an `A`/`AAAA`
    /// record) or a hostname (a `CNAME`). Unset: the app's own hostname.
    #[arg(long, env = "BERTH_DOMAIN_TARGET")]
    pub domain_target: Option<String>,
    /// The DNS server that answers the TXT check (`ip:port`); unset: the
    /// system's resolvers (`/etc/resolv.conf`).
    #[arg(long, env = "BERTH_DNS_RESOLVER")]
    pub dns_resolver: Option<SocketAddr>,
    /// The router's HTTPS listener (the deploy-worker's setting too); set,
    /// verified domains are served over HTTPS and berth looks at the
    /// certificate the router serves for each.
    #[arg(long, env = "BERTH_ROUTER_TLS_LISTEN")]
    pub router_tls_listen: Option<String>,
    /// How often unverified domains are checked again, and certificates
    /// looked at.
    #[arg(long, env = "BERTH_DOMAIN_CHECK_INTERVAL_SECS", default_value_t = 30)]
    pub domain_check_interval_secs: u64,
}

/// What the domain handlers and the check loop share.
#[derive(Clone)]
pub struct Domains {
    pub apps_domain: String,
    pub console_host: Option<String>,
    pub target: Option<String>,
    pub dns: Arc<dyn dns::TxtLookup>,
    /// The router's HTTPS port on this machine, when it serves HTTPS.
    pub tls: Option<SocketAddr>,
    pub interval: Duration,
    /// Wakes the check loop (a domain was added or asked to be checked).
    pub check_now: Arc<Notify>,
    /// Wakes the desired-state sender: the routes must change.
    pub routes_changed: Arc<Notify>,
}

impl Domains {
    pub fn new(config: &DomainConfig, console_host: Option<String>) -> anyhow::Result<Self> {
        let tls = match config.router_tls_listen.as_deref() {
            Some(listen) if !listen.trim().is_empty() => Some(local_address(listen)?),
            _ => None,
        };
        Ok(Self {
            apps_domain: config.apps_domain.trim_matches('.').to_ascii_lowercase(),
            console_host,
            target: config
                .domain_target
                .clone()
                .filter(|t| !t.trim().is_empty()),
            dns: Arc::new(dns::SystemDns::new(config.dns_resolver)?),
            tls,
            interval: Duration::from_secs(config.domain_check_interval_secs.max(1)),
            check_now: Arc::new(Notify::new()),
            routes_changed: Arc::new(Notify::new()),
        })
    }

    /// Settings for tests and tools: no TLS, this DNS.
    pub fn with_dns(apps_domain: &str, dns: Arc<dyn dns::TxtLookup>) -> Self {
        Self {
            apps_domain: apps_domain.to_owned(),
            console_host: None,
            target: None,
            dns,
            tls: None,
            interval: Duration::from_secs(30),
            check_now: Arc::new(Notify::new()),
            routes_changed: Arc::new(Notify::new()),
        }
    }

    /// The app's own hostname on the router.
    pub fn app_host(&self, app: &str, tenant: &str) -> String {
        format!("{app}.{tenant}.{}", self.apps_domain)
    }

    /// Whether the apps' own hostnames and the console get certificates
    /// too: with HTTPS on and a real apps domain (names under `localhost`
    /// cannot get one).
    pub fn apps_domain_has_tls(&self) -> bool {
        self.tls.is_some() && berth_common::names::public_domain(&self.apps_domain)
    }
}

/// `:443`, `0.0.0.0:443` or `127.0.0.1:8443` as an address on this
/// machine to connect to.
fn local_address(listen: &str) -> anyhow::Result<SocketAddr> {
    let port = listen
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse::<u16>().ok())
        .ok_or_else(|| anyhow::anyhow!("BERTH_ROUTER_TLS_LISTEN={listen} names no port"))?;
    Ok(SocketAddr::from(([127, 0, 0, 1], port)))
}

/// The name of the domain's proof record.
pub fn challenge_name(hostname: &str) -> String {
    format!("{CHALLENGE_LABEL}.{hostname}")
}

/// What the domain's proof record must hold.
pub fn challenge_value(token: &str) -> String {
    format!("{CHALLENGE_PREFIX}{token}")
}

/// Looks for the domain's TXT record and records what was found; returns
/// whether this check verified the domain.
pub async fn check_ownership(
    db: &sqlx::PgPool,
    dns: &dyn dns::TxtLookup,
    domain: &store::DomainRow,
) -> crate::error::Result<bool> {
    let name = challenge_name(&domain.hostname);
    let wanted = challenge_value(&domain.verification_token);
    let found = match dns.txt(&name).await {
        Ok(records) if records.iter().any(|r| r.trim() == wanted) => Ok(()),
        Ok(records) if records.is_empty() => Err(format!(
            "no TXT record at {name} yet; DNS changes can take a few minutes to be seen"
        )),
        Ok(records) => Err(format!(
            "the TXT record at {name} holds {}, not {wanted}",
            records
                .iter()
                .take(3)
                .map(|r| format!("\"{}\"", r.chars().take(100).collect::<String>()))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Err(why) => Err(why),
    };
    let verified = store::record_check(db, domain.id, found).await?;
    if verified {
        tracing::info!(app_id = %domain.app_id, hostname = %domain.hostname, "domain verified");
        metrics::counter!("berth_domains_verified_total").increment(1);
    }
    Ok(verified)
}
