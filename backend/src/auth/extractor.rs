//! `CurrentUser`: the caller, from an `Authorization: Bearer` access token.

use super::store;
use crate::error::Error;
use crate::session_ends::{SessionWatch, StillOn};
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use std::sync::Arc;
use uuid::Uuid;

/// An authenticated caller. Every read and write is scoped to `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurrentUser {
    pub id: Uuid,
    /// The session the access token (or the socket ticket) belongs to.
    pub session: Uuid,
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

/// Why a session's requests and streams stop.
pub const SESSION_ENDED: &str =
    "this session has ended (signed out, the password changed or the account was deleted); log in again";

impl CurrentUser {
    /// From the request's bearer token; `None` when it carries none. The
    /// token's session must still be on: logging out, signing the session
    /// out, a password change and an account deletion end its access
    /// tokens at once, not when they expire.
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
        // Every token issued since sessions were named carries one; older
        // ones (15 minutes at most) cannot be checked against their session.
        let session = verified.session.ok_or(Error::Unauthorized(
            "the access token names no session; log in again",
        ))?;
        let id = verified.user_id;
        if !store::session_is_live(&state.db, id, session, Some(verified.epoch)).await? {
            return Err(Error::Unauthorized(SESSION_ENDED));
        }
        Ok(Some(Self { id, session }))
    }

    /// Whether the caller's session is still on.
    pub async fn still_signed_in(&self, db: &sqlx::PgPool) -> Result<bool, Error> {
        store::session_is_live(db, self.id, self.session, None).await
    }

    /// Watches the caller's session for a long-lived stream (a log socket,
    /// an event stream), which must stop when the session ends.
    pub fn watch_session(&self, state: &AppState) -> SessionWatch {
        let (user, db) = (*self, state.db.clone());
        let still_on: StillOn = Arc::new(move || {
            let db = db.clone();
            Box::pin(async move {
                user.still_signed_in(&db).await.unwrap_or_else(|error| {
                    tracing::warn!(%error, "could not re-check a stream's session");
                    true
                })
            })
        });
        let recheck = state.settings.websocket_ping;
        state.sessions.watch(self.session, recheck, still_on)
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
