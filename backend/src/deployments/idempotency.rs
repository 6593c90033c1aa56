//! `Idempotency-Key` on `POST /apps/{id}/deployments`: a client that sends
//! the same key again within a day (a retry after a timeout, a double
//! click) gets the deployment the first request made instead of a second
//! one. Keys are per app; the app's row lock orders two requests with the
//! same key, so the second sees the first.

use crate::error::{Error, Result};
use axum::http::HeaderMap;
use sqlx::PgConnection;
use uuid::Uuid;

pub const HEADER: &str = "idempotency-key";
const MAX_LEN: usize = 255;

/// The request's key, if it sent one: 1 to 255 visible ASCII characters.
pub fn key_of(headers: &HeaderMap) -> Result<Option<String>> {
    let Some(value) = headers.get(HEADER) else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|key| !key.is_empty() && key.len() <= MAX_LEN)
        .filter(|key| key.bytes().all(|b| b.is_ascii_graphic()));
    match key {
        Some(key) => Ok(Some(key.to_owned())),
        None => Err(Error::invalid(
            "Idempotency-Key",
            format!("must be 1 to {MAX_LEN} visible ASCII characters, e.g. a UUID"),
        )),
    }
}

/// The deployment `key` made for the app within the last day.
pub async fn earlier(conn: &mut PgConnection, app_id: Uuid, key: &str) -> Result<Option<Uuid>> {
    Ok(sqlx::query_scalar(
        "SELECT deployment_id FROM deployment_requests
         WHERE app_id = $1 AND key = $2 AND created_at > now() - interval '24 hours'",
    )
    .bind(app_id)
    .bind(key)
    .fetch_optional(conn)
    .await?)
}

/// Remembers the deployment `key` made (replacing an expired one).
pub async fn remember(
    conn: &mut PgConnection,
    app_id: Uuid,
    key: &str,
    deployment_id: Uuid,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO deployment_requests (app_id, key, deployment_id) VALUES ($1, $2, $3)
         ON CONFLICT (app_id, key)
         DO UPDATE SET deployment_id = EXCLUDED.deployment_id, created_at = now()",
    )
    .bind(app_id)
    .bind(key)
    .bind(deployment_id)
    .execute(conn)
    .await?;
    Ok(())
}
