//! The image registry's token service (its `realm`), served at
//! `GET /api/v1/registry/token`: berth's processes present per-tenant
//! grants as basic credentials and get registry tokens holding only that
//! tenant's repositories. The logic lives in
//! `berth_common::registry_auth`, so tests serve the very same code.

use crate::error::Error;
use axum::routing::get;
use axum::Router;
use berth_common::registry_auth::{self, TokenIssuer, TOKEN_PATH};
use std::sync::Arc;

/// The token endpoint, or, when this backend has no signing key, an answer
/// that says so.
pub fn router(issuer: Option<Arc<TokenIssuer>>) -> Router {
    match issuer {
        Some(issuer) => registry_auth::router(issuer),
        None => Router::new().route(TOKEN_PATH, get(token)),
    }
}

/// Docker's token protocol for the image registry: basic credentials (a
/// registry grant a berth process minted from BERTH_SECRET_KEY), `service`
/// and any number of `scope` parameters (`repository:<name>:<actions>`),
/// answered `{token, access_token, expires_in, issued_at}`. The token holds
/// only what the grant allows of what was asked: a push grant pushes and
/// pulls its tenant's app images and layer cache, a pull grant pulls its
/// tenant's app images. Not for people: for the registry's clients.
#[utoipa::path(get, path = "/api/v1/registry/token", tag = "registry",
    params(
        ("service" = Option<String>, Query, description = "the registry's auth.token.service"),
        ("scope" = Option<Vec<String>>, Query, description = "`repository:<name>:<actions>`, repeatable"),
    ),
    responses(
        (status = 200, description = "a registry token: {token, access_token, expires_in, issued_at}"),
        (status = 400, description = "an unknown service or a malformed scope", body = crate::error::Problem),
        (status = 401, description = "no grant, a forged or an expired one", body = crate::error::Problem),
        (status = 404, description = "this backend issues no registry tokens (BERTH_REGISTRY_TOKEN_KEY unset)", body = crate::error::Problem),
    ))]
pub async fn token() -> Error {
    Error::NotFound("registry token service")
}
