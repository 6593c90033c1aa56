//! What certificate the edge router serves for a domain: berth opens a TLS
//! connection to the router's HTTPS port with the domain's name, the way a
//! browser would. The router gets a certificate on demand during that
//! handshake, so looking also makes the first certificate come sooner.
//!
//! The chain is not judged here (a test CA such as Pebble's is not in the
//! system's roots); berth reads who issued the certificate, until when,
//! and whether it names the domain.

use chrono::{DateTime, Utc};
use std::net::SocketAddr;
use std::time::Duration;

/// How long the router may take to get a certificate during the handshake.
const HANDSHAKE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// The issuer's common name (or whole name), e.g. `R11`.
    pub issuer: String,
    pub expires_at: DateTime<Utc>,
}

/// The certificate `router` serves for `hostname`, or why there is none to
/// show the user.
pub async fn served(router: SocketAddr, hostname: &str) -> Result<Served, String> {
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .tls_info(true)
        .resolve(hostname, router)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(HANDSHAKE)
        .user_agent("berth-certificate-check")
        .build()
        .map_err(|e| format!("cannot make a TLS client: {e}"))?;
    let url = format!("https://{hostname}:{}/", router.port());
    let response = client.head(&url).send().await.map_err(|error| {
        format!(
            "the router served no certificate for {hostname} yet ({}); it asks the certificate \
             authority when the domain is first visited over HTTPS and keeps trying",
            root_cause(&error)
        )
    })?;
    let der = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .ok_or_else(|| "the router's TLS handshake showed no certificate".to_owned())?;
    read(der, hostname)
}

fn read(der: &[u8], hostname: &str) -> Result<Served, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("the router served a certificate berth cannot read: {e}"))?;
    let names: Vec<String> = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    x509_parser::extensions::GeneralName::DNSName(dns) => {
                        Some(dns.to_ascii_lowercase())
                    }
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    if !names.iter().any(|name| name == hostname) {
        return Err(format!(
            "the router served a certificate for {} instead of {hostname}",
            if names.is_empty() {
                "no name".to_owned()
            } else {
                names.join(", ")
            }
        ));
    }
    let issuer = cert
        .issuer()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| cert.issuer().to_string());
    let expires_at = DateTime::from_timestamp(cert.validity().not_after.timestamp(), 0)
        .ok_or_else(|| "the certificate's expiry is out of range".to_owned())?;
    Ok(Served { issuer, expires_at })
}

fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
