//! HTTPS on the edge router: certificates from an ACME certificate
//! authority (Let's Encrypt by default), each obtained on demand the first
//! time a name is visited over HTTPS, and only for names berth approves
//! (the router asks the backend first: verified custom domains, and with
//! a real apps domain, apps' own hostnames and the console's).

use clap::Args;
use serde_json::{json, Value};
use std::path::PathBuf;

pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

#[derive(Debug, Clone, Default, Args)]
pub struct TlsConfig {
    /// The router's HTTPS listener (e.g. `:443`); unset, the router serves
    /// plain HTTP only and custom domains answer over HTTP.
    #[arg(long, env = "BERTH_ROUTER_TLS_LISTEN")]
    pub router_tls_listen: Option<String>,
    /// The ACME directory certificates come from.
    #[arg(long, env = "BERTH_ACME_DIRECTORY", default_value = LETS_ENCRYPT)]
    pub acme_directory: Option<String>,
    /// The contact address given to the certificate authority (expiry
    /// warnings).
    #[arg(long, env = "BERTH_ACME_EMAIL")]
    pub acme_email: Option<String>,
    /// A PEM file of roots to trust for the ACME directory's own HTTPS
    /// (a test authority such as Pebble; not needed for Let's Encrypt).
    #[arg(long, env = "BERTH_ACME_TRUSTED_ROOTS")]
    pub acme_trusted_roots: Option<PathBuf>,
    /// Where the router asks whether a name may get a certificate; default:
    /// the backend's `/internal/router/tls-ask` at the console's upstream.
    #[arg(long, env = "BERTH_ROUTER_TLS_ASK_URL")]
    pub router_tls_ask_url: Option<String>,
}

/// What the router needs to serve HTTPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub listen: String,
    pub http_port: u16,
    pub https_port: u16,
    pub ask: String,
    pub issuer: Value,
}

impl TlsConfig {
    /// `None` when HTTPS is off; an error when it is on but cannot work.
    pub fn resolve(
        &self,
        http_listen: &str,
        console_upstream: Option<&str>,
    ) -> Result<Option<Tls>, String> {
        let Some(listen) = self
            .router_tls_listen
            .as_deref()
            .filter(|l| !l.trim().is_empty())
        else {
            return Ok(None);
        };
        let https_port = super::listen_port(listen)
            .ok_or_else(|| format!("BERTH_ROUTER_TLS_LISTEN={listen} names no port"))?;
        let http_port = super::listen_port(http_listen)
            .ok_or_else(|| format!("BERTH_ROUTER_LISTEN={http_listen} names no port"))?;
        let ask = match (&self.router_tls_ask_url, console_upstream) {
            (Some(url), _) if !url.is_empty() => url.clone(),
            (_, Some(upstream)) if !upstream.is_empty() => {
                format!("http://{upstream}/internal/router/tls-ask")
            }
            _ => {
                return Err(
                    "HTTPS needs BERTH_ROUTER_TLS_ASK_URL or BERTH_CONSOLE_UPSTREAM: \
                            the router asks the backend before getting any certificate"
                        .into(),
                )
            }
        };
        let mut issuer = json!({
            "module": "acme",
            "ca": self.acme_directory.as_deref().unwrap_or(LETS_ENCRYPT),
        });
        if let Some(email) = self.acme_email.as_deref().filter(|e| !e.is_empty()) {
            issuer["email"] = json!(email);
        }
        if let Some(roots) = &self.acme_trusted_roots {
            issuer["trusted_roots_pem_files"] = json!([roots]);
        }
        Ok(Some(Tls {
            listen: listen.to_owned(),
            http_port,
            https_port,
            ask,
            issuer,
        }))
    }
}

impl Tls {
    /// Caddy's `tls` app: one on-demand policy for every name, gated by
    /// the ask URL.
    pub fn automation(&self) -> Value {
        json!({
            "policies": [{"issuers": [self.issuer], "on_demand": true}],
            "on_demand": {"ask": self.ask},
        })
    }

    /// `https://<the request's host>[:port]<uri>`, as a Caddy placeholder.
    pub fn redirect_location(&self) -> String {
        let port = if self.https_port == 443 {
            String::new()
        } else {
            format!(":{}", self.https_port)
        };
        format!("https://{{http.request.host}}{port}{{http.request.uri}}")
    }
}
