//! WebSocket tickets: browsers cannot put an Authorization header on a
//! WebSocket, so they first trade their access token for a ticket that is
//! valid once, for 60 seconds, for this user only. Only its hash is stored.

use crate::auth::tokens::{hash_token, random_token};
use crate::auth::CurrentUser;
use crate::error::Result;
use crate::extract::Json;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

pub const TICKET_TTL_SECS: u64 = 60;

#[derive(Debug, Serialize, ToSchema)]
pub struct WsTicket {
    /// Pass as `?ticket=` when opening a log WebSocket.
    pub ticket: String,
    /// Seconds the ticket stays valid.
    pub expires_in: u64,
}

/// A single-use ticket for opening a log WebSocket.
#[utoipa::path(post, path = "/api/v1/ws-tickets", tag = "logs", security(("bearer" = [])),
    responses((status = 201, body = WsTicket), (status = 401, body = crate::error::Problem)))]
pub async fn create_ticket(
    State(state): State<AppState>,
    user: CurrentUser,
) -> Result<(StatusCode, Json<WsTicket>)> {
    let ticket = random_token();
    sqlx::query(
        "INSERT INTO ws_tickets (ticket_hash, user_id, expires_at)
         VALUES ($1, $2, now() + make_interval(secs => $3))",
    )
    .bind(hash_token(&ticket))
    .bind(user.id)
    .bind(TICKET_TTL_SECS as f64)
    .execute(&state.db)
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(WsTicket {
            ticket,
            expires_in: TICKET_TTL_SECS,
        }),
    ))
}

/// Redeems a ticket: the user it was issued to, once.
pub async fn redeem(db: &PgPool, ticket: &str) -> Result<Option<CurrentUser>> {
    let found = sqlx::query_as::<_, (Uuid, bool)>(
        "DELETE FROM ws_tickets WHERE ticket_hash = $1 RETURNING user_id, expires_at > now()",
    )
    .bind(hash_token(ticket))
    .fetch_optional(db)
    .await?;
    Ok(found
        .filter(|(_, valid)| *valid)
        .map(|(id, _)| CurrentUser { id, session: None }))
}
