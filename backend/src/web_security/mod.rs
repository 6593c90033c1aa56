//! What every answer says to browsers, and which Host names are answered.
//!
//! * A Content-Security-Policy for the web UI: its own scripts, styles and
//!   connections only, no framing (`frame-ancestors 'none'`, and the older
//!   `X-Frame-Options: DENY`), no plugins, no `<base>` rewriting.
//! * `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`
//!   (tokens ride in URL fragments, but page URLs name apps and
//!   deployments), and `Strict-Transport-Security` when `BERTH_PUBLIC_URL`
//!   is https.
//! * With a public URL, a request whose Host is another name is refused
//!   (`421`): a page on a rebinding domain that resolves to a local install
//!   sends its own name. IP addresses and `localhost` always pass (no
//!   rebinding page can send them), so probes and the dev proxy work;
//!   `BERTH_ALLOWED_HOSTS` adds names.
//! * Which peers are proxies whose `X-Forwarded-For` is believed
//!   (`proxies`).

pub mod proxies;

use crate::error::Problem;
use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::net::IpAddr;
use std::sync::Arc;
use tower_http::set_header::SetResponseHeaderLayer;

/// A year, with subdomains left alone: apps may live under the same
/// domain and serve plain http.
const HSTS: &str = "max-age=31536000";

/// The policy for the web UI (and harmless on JSON): `public_origin` is the
/// public URL's origin, whose WebSocket scheme is allowed explicitly for
/// browsers whose `'self'` does not cover ws:/wss:.
pub fn content_security_policy(public_origin: Option<&url::Url>) -> String {
    let mut connect = String::from("'self'");
    if let Some(url) = public_origin {
        let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
        if let Some(host) = url.host_str() {
            connect.push_str(&format!(" {scheme}://{host}"));
            if let Some(port) = url.port() {
                connect.push_str(&format!(":{port}"));
            }
        }
    }
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         font-src 'self'; connect-src {connect}; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    )
}

/// The headers every answer carries.
pub fn headers(public_url: Option<&url::Url>) -> Vec<(HeaderName, HeaderValue)> {
    let mut headers = vec![
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_str(&content_security_policy(public_url))
                .expect("the policy is ASCII"),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
    ];
    if public_url.is_some_and(|url| url.scheme() == "https") {
        headers.push((
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        ));
    }
    headers
}

/// The Host names answered besides IP addresses and `localhost`.
#[derive(Debug, Clone)]
pub struct AllowedHosts(Vec<String>);

impl AllowedHosts {
    /// The public URL's host and `extra`; `None` (no check) without a
    /// public URL.
    pub fn new(public_url: Option<&url::Url>, extra: &[String]) -> Option<Self> {
        let public = public_url?.host_str()?.to_ascii_lowercase();
        let names = std::iter::once(public)
            .chain(extra.iter().map(|name| name.trim().to_ascii_lowercase()))
            .filter(|name| !name.is_empty())
            .collect();
        Some(Self(names))
    }

    /// Whether a request naming `host` (a Host header's value, port and all)
    /// is answered.
    pub fn allows(&self, host: &str) -> bool {
        let name = strip_port(host.trim()).to_ascii_lowercase();
        let name = name.trim_end_matches('.');
        let literal = name.trim_start_matches('[').trim_end_matches(']');
        literal.parse::<IpAddr>().is_ok()
            || name == "localhost"
            || self.0.iter().any(|allowed| allowed == name)
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        // [v6]:port
        return host
            .split_once("]:")
            .map_or(host, |(v6, _)| &host[..=v6.len()]);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !name.contains(':') => {
            name
        }
        _ => host,
    }
}

async fn check_host(
    State(allowed): State<Arc<AllowedHosts>>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.as_str().to_owned()));
    match host {
        Some(host) if !allowed.allows(&host) => {
            metrics::counter!("berth_unknown_host_refused_total").increment(1);
            misdirected().into_response()
        }
        _ => next.run(request).await,
    }
}

fn misdirected() -> Problem {
    Problem {
        kind: "https://berth.dev/problems/unknown-host".into(),
        title: "Unknown host".into(),
        status: StatusCode::MISDIRECTED_REQUEST.as_u16(),
        detail: "this server does not answer to this host name; use berth's public URL".into(),
        errors: None,
        error_id: None,
        limit: None,
    }
}

/// `router` with the headers on every answer and, when `allowed` is set,
/// the Host check in front.
pub fn apply(
    mut router: Router,
    public_url: Option<&url::Url>,
    allowed: Option<AllowedHosts>,
) -> Router {
    if let Some(allowed) = allowed {
        router = router.layer(axum::middleware::from_fn_with_state(
            Arc::new(allowed),
            check_host,
        ));
    }
    for (name, value) in headers(public_url) {
        router = router.layer(SetResponseHeaderLayer::if_not_present(name, value));
    }
    router
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> url::Url {
        s.parse().unwrap()
    }

    #[test]
    fn hsts_only_behind_https() {
        let names = |public: Option<&url::Url>| -> Vec<HeaderName> {
            headers(public).into_iter().map(|(name, _)| name).collect()
        };
        assert!(names(Some(&url("https://berth.example.com")))
            .contains(&header::STRICT_TRANSPORT_SECURITY));
        assert!(!names(Some(&url("http://127.0.0.1:8080")))
            .contains(&header::STRICT_TRANSPORT_SECURITY));
        assert!(!names(None).contains(&header::STRICT_TRANSPORT_SECURITY));
    }

    #[test]
    fn the_policy_forbids_framing_and_allows_the_public_socket() {
        let policy = content_security_policy(Some(&url("https://berth.example.com")));
        assert!(policy.contains("frame-ancestors 'none'"));
        assert!(policy.contains("script-src 'self';"));
        assert!(policy.contains("connect-src 'self' wss://berth.example.com;"));
        let local = content_security_policy(Some(&url("http://127.0.0.1:8080/")));
        assert!(local.contains("connect-src 'self' ws://127.0.0.1:8080;"));
    }

    #[test]
    fn hosts_other_than_the_public_name_are_refused() {
        let allowed = AllowedHosts::new(
            Some(&url("https://Berth.example.com")),
            &["berth.internal".into()],
        )
        .unwrap();
        for host in [
            "berth.example.com",
            "BERTH.example.com:443",
            "berth.example.com.",
            "berth.internal:8080",
            "127.0.0.1:8080",
            "10.1.2.3",
            "[::1]:8080",
            "[fd00::1]",
            "localhost:5173",
        ] {
            assert!(allowed.allows(host), "{host}");
        }
        for host in [
            "rebind.attacker.example",
            "berth.example.com.attacker.example:8080",
            "127.0.0.1.nip.io",
        ] {
            assert!(!allowed.allows(host), "{host}");
        }
        assert!(AllowedHosts::new(None, &[]).is_none());
    }
}
