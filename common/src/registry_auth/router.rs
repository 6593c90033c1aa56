//! The token endpoint (the registry's `realm`), Docker's token protocol:
//! `GET <realm>?service=…&scope=…&scope=…` with the grant as basic
//! credentials, answered `{token, access_token, expires_in, issued_at}`.
//! The backend mounts it under `/api/v1`; tests serve the same router.

use super::grant::unix_now;
use super::scope::Scope;
use super::token::{TokenError, TokenIssuer};
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use std::sync::Arc;

/// Where the router answers, relative to where it is mounted.
pub const TOKEN_PATH: &str = "/registry/token";

/// `GET /registry/token`.
pub fn router(issuer: Arc<TokenIssuer>) -> Router {
    Router::new()
        .route(TOKEN_PATH, get(token))
        .with_state(issuer)
}

/// `user:password` of an `Authorization: Basic …` header.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

async fn token(
    State(issuer): State<Arc<TokenIssuer>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let service = pairs
        .iter()
        .find(|(k, _)| k == "service")
        .map(|(_, v)| v.as_str());
    let scopes = Scope::parse_all(
        pairs
            .iter()
            .filter(|(k, _)| k == "scope")
            .map(|(_, v)| v.as_str()),
    );
    let result = scopes.map_err(TokenError::BadScope).and_then(|scopes| {
        let (user, password) = basic_credentials(&headers).ok_or(TokenError::NoCredentials)?;
        issuer.issue(&user, &password, service, &scopes, unix_now())
    });
    match result {
        Ok((response, claims)) => {
            let granted: Vec<String> = claims
                .access
                .iter()
                .map(|a| format!("{}:{}", a.name, a.actions.join(",")))
                .collect();
            tracing::debug!(subject = claims.sub, ?granted, "registry token issued");
            metrics::counter!("berth_registry_tokens_total", "outcome" => "issued").increment(1);
            let mut response = Json(response).into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(error) => {
            metrics::counter!("berth_registry_tokens_total", "outcome" => "refused").increment(1);
            problem(&error)
        }
    }
}

/// An `application/problem+json` answer; 401s ask for basic credentials.
fn problem(error: &TokenError) -> Response {
    let (status, slug, title) = match error {
        TokenError::NoCredentials => (
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Authentication required",
        ),
        TokenError::Grant(_) => (
            StatusCode::UNAUTHORIZED,
            "invalid-credentials",
            "Invalid credentials",
        ),
        TokenError::WrongService { .. } | TokenError::BadScope(_) => {
            (StatusCode::BAD_REQUEST, "bad-request", "Bad request")
        }
        TokenError::Setup(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal server error",
        ),
    };
    let detail = match error {
        TokenError::Setup(_) => {
            tracing::error!(%error, "registry token service failed");
            "the registry token service failed; see the server log".to_owned()
        }
        other => other.to_string(),
    };
    let body = serde_json::json!({
        "type": format!("https://berth.dev/problems/{slug}"),
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
    });
    let mut response = (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        )],
        body.to_string(),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"berth registry\""),
        );
    }
    response
}
