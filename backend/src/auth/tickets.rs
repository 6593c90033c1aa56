//! WebSocket tickets: browsers cannot put an Authorization header on a
//! WebSocket (or an `EventSource`), so they first trade their access token
//! for a ticket that is valid once, for 60 seconds, for this user's session
//! only: it dies with the session. Only its hash is stored, and a user may
//! hold `MAX_UNUSED_TICKETS` unused ones at a time. The log socket
//! (`log_api`) and the event stream (`events`) both [`authenticate`] here.

use super::CurrentUser;
use crate::credentials::tokens::{hash_token, random_token};
use crate::error::{Error, Result};
use crate::extract::Json;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

pub const TICKET_TTL_SECS: u64 = 60;
/// Unused, unexpired tickets one user may hold: more than a page opens at
/// once, few enough that nobody fills the table.
pub const MAX_UNUSED_TICKETS: i64 = 20;

#[derive(Debug, Serialize, ToSchema)]
pub struct WsTicket {
    /// Pass as `?ticket=` when opening a log WebSocket or the event stream.
    pub ticket: String,
    /// Seconds the ticket stays valid.
    pub expires_in: u64,
}

/// A single-use ticket for opening a log WebSocket or the event stream.
#[utoipa::path(post, path = "/api/v1/ws-tickets", tag = "logs", security(("bearer" = [])),
    responses((status = 201, body = WsTicket), (status = 401, body = crate::error::Problem),
              (status = 429, body = crate::error::Problem,
               description = "20 unused tickets are waiting: use or let them expire")))]
pub async fn create_ticket(
    State(state): State<AppState>,
    user: CurrentUser,
) -> Result<(StatusCode, Json<WsTicket>)> {
    let ticket = random_token();
    let mut tx = state.db.begin().await?;
    // Requests of one user take turns, so the count holds.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 11))")
        .bind(user.id)
        .execute(&mut *tx)
        .await?;
    let made = sqlx::query(
        "INSERT INTO ws_tickets (ticket_hash, user_id, session_id, expires_at)
         SELECT $1, $2, $3, now() + make_interval(secs => $4)
         WHERE (SELECT count(*) FROM ws_tickets WHERE user_id = $2 AND expires_at > now()) < $5",
    )
    .bind(hash_token(&ticket))
    .bind(user.id)
    .bind(user.session)
    .bind(TICKET_TTL_SECS as f64)
    .bind(MAX_UNUSED_TICKETS)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    if made.rows_affected() == 0 {
        return Err(Error::TooManyRequests(format!(
            "{MAX_UNUSED_TICKETS} unused tickets are waiting; use them, or wait a minute for them to expire"
        )));
    }
    Ok((
        StatusCode::CREATED,
        Json(WsTicket {
            ticket,
            expires_in: TICKET_TTL_SECS,
        }),
    ))
}

/// Redeems a ticket: the user and session it was issued to, once, while
/// that session is still on.
pub async fn redeem(db: &PgPool, ticket: &str) -> Result<Option<CurrentUser>> {
    let found = sqlx::query_as::<_, (Uuid, Uuid, bool)>(
        "DELETE FROM ws_tickets WHERE ticket_hash = $1
         RETURNING user_id, session_id, expires_at > now()",
    )
    .bind(hash_token(ticket))
    .fetch_optional(db)
    .await?;
    let Some((id, session, true)) = found else {
        return Ok(None);
    };
    let user = CurrentUser { id, session };
    Ok(user.still_signed_in(db).await?.then_some(user))
}

/// A bearer header or a ticket; the header wins when both are present.
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    ticket: Option<&str>,
) -> Result<CurrentUser> {
    if let Some(user) = CurrentUser::from_headers(headers, state).await? {
        return Ok(user);
    }
    match ticket {
        Some(ticket) => redeem(&state.db, ticket)
            .await?
            .ok_or(Error::Unauthorized(
                "the ticket is invalid, expired or already used",
            )),
        None => Err(Error::Unauthorized(
            "open log sockets with an Authorization header or ?ticket= from POST /api/v1/ws-tickets",
        )),
    }
}
