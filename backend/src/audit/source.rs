//! `SourceAddr`: the address a request came from. The TCP peer, unless the
//! peer is a trusted proxy (BERTH_TRUSTED_PROXIES): then the nearest
//! untrusted address of `X-Forwarded-For` (`web_security::proxies`).
//! Requests without a peer (tests driving the router directly) have none.

use crate::state::AppState;
use crate::web_security::proxies::client_ip;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

/// Where the request came from, if known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SourceAddr(pub Option<IpAddr>);

impl FromRequestParts<AppState> for SourceAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        Ok(Self(client_ip(
            peer,
            &parts.headers,
            &state.settings.trusted_proxies,
        )))
    }
}
