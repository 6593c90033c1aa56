//! Per-tenant registry credentials. The registry (Distribution v2) uses
//! token authentication with berth as the issuer: a client presents a
//! short-lived [grant](grant) as basic credentials to berth's token service,
//! which answers a token (a JWT) whose `access` names only that tenant's
//! repositories; the registry refuses everything else.
//!
//! [`RegistryCredentials`] is the seam every registry client goes through:
//! the build-worker's pushes and digest lookups, the deploy-worker's engine
//! pulls and Kubernetes image pull secrets, Kaniko's per-build Secrets.
//! [`TokenIssuer`] and [`router`] are the token service the backend serves
//! at `GET /api/v1/registry/token`.

pub mod grant;
pub mod router;
pub mod scope;
pub mod token;

pub use grant::{
    unix_now, Access, Credentials, Grant, GrantError, GrantKey, Grants, RegistryCredentials,
};
pub use router::{router, TOKEN_PATH};
pub use scope::{RepositoryLayout, ResourceActions, Scope};
pub use token::{Claims, IssuerSettings, TokenError, TokenIssuer, TokenResponse};

/// Plain http by default only for a registry on this machine.
pub fn default_insecure(registry: &str) -> bool {
    let host = registry.split('/').next().unwrap_or("");
    let host = host
        .rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map(|(host, _)| host)
        .unwrap_or(host);
    matches!(host, "localhost" | "127.0.0.1" | "[::1]") || host.starts_with("127.")
}

#[cfg(test)]
mod token_tests;
