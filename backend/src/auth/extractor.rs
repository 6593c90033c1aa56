//! `CurrentUser`: the caller, from an `Authorization: Bearer` access token.

use super::store;
use crate::error::Error;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use uuid::Uuid;

/// An authenticated caller. Every read and write is scoped to `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurrentUser {
    pub id: Uuid,
    /// The session the access token belongs to (absent from tokens issued
    /// before sessions were named in them).
    pub session: Option<Uuid>,
}

/// The bearer token of a request, if it has one.
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, Error> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| Error::Unauthorized("the Authorization header is not readable"))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(Error::Unauthorized(
            "use `Authorization: Bearer <access token>`",
        )),
    }
}

impl CurrentUser {
    /// From the request's bearer token; `None` when it carries none. The
    /// token must also belong to the account's current sessions: a password
    /// change or an account deletion ends every token issued before it.
    pub async fn from_headers(
        headers: &HeaderMap,
        state: &AppState,
    ) -> Result<Option<Self>, Error> {
        let Some(token) = bearer_token(headers)? else {
            return Ok(None);
        };
        let verified = state.tokens.verify(token).ok_or(Error::Unauthorized(
            "the access token is invalid or expired",
        ))?;
        let id = verified.user_id;
        if store::session_epoch(&state.db, id).await? != Some(verified.epoch) {
            return Err(Error::Unauthorized(
                "this session has ended (the password changed or the account was deleted); log in again",
            ));
        }
        Ok(Some(Self {
            id,
            session: verified.session,
        }))
    }
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let user = Self::from_headers(&parts.headers, state)
            .await?
            .ok_or(Error::Unauthorized("this endpoint needs an access token"))?;
        tracing::Span::current().record("user_id", tracing::field::display(user.id));
        Ok(user)
    }
}
