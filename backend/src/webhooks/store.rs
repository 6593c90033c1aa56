//! Webhook secrets and received deliveries in PostgreSQL.

use crate::error::Result;
use berth_proto::Sealed;
use chrono::{DateTime, Utc};
use sqlx::types::Json as SqlJson;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// Deliveries are remembered this long (longer than `push::MAX_PUSH_AGE`).
pub const DELIVERY_RETENTION_DAYS: i32 = 30;

/// The owner and sealed secret of a live app that has a webhook.
pub async fn secret(db: &PgPool, app_id: Uuid) -> Result<Option<(Uuid, Sealed)>> {
    let row = sqlx::query_as::<_, (Uuid, SqlJson<Sealed>)>(
        "SELECT a.owner_id, w.secret_sealed FROM app_webhooks w JOIN apps a ON a.id = w.app_id
         WHERE w.app_id = $1 AND a.deleted_at IS NULL",
    )
    .bind(app_id)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|(owner, SqlJson(sealed))| (owner, sealed)))
}

/// A live app with a webhook, as the repository-wide URL considers it.
#[derive(Debug, sqlx::FromRow)]
pub struct Candidate {
    pub app_id: Uuid,
    pub owner_id: Uuid,
    pub repo_url: String,
    pub secret_sealed: SqlJson<Sealed>,
}

/// How many candidates one delivery may check.
#[derive(Debug, Clone, Copy)]
pub struct CandidateLimits {
    pub total: i64,
    pub per_owner: i64,
}

/// Live apps with a webhook whose `repo_url` is one of `folded` ignoring
/// case, or one of `exact` as it is: each owner's `per_owner` oldest
/// webhooks, then the `total` oldest of those, so hooks made later cannot
/// push an app out.
pub async fn candidates(
    db: &PgPool,
    folded: &[String],
    exact: &[String],
    limits: CandidateLimits,
) -> Result<Vec<Candidate>> {
    Ok(sqlx::query_as::<_, Candidate>(
        "SELECT app_id, owner_id, repo_url, secret_sealed FROM (
             SELECT a.id AS app_id, a.owner_id, a.repo_url, w.secret_sealed, w.created_at,
                    row_number() OVER (PARTITION BY a.owner_id
                                       ORDER BY w.created_at, w.app_id) AS nth
             FROM app_webhooks w JOIN apps a ON a.id = w.app_id
             WHERE a.deleted_at IS NULL
               AND (lower(btrim(a.repo_url)) = ANY($1) OR btrim(a.repo_url) = ANY($2))
         ) c
         WHERE nth <= $4
         ORDER BY created_at, app_id LIMIT $3",
    )
    .bind(folded)
    .bind(exact)
    .bind(limits.total)
    .bind(limits.per_owner)
    .fetch_all(db)
    .await?)
}

/// Sets (creates or rotates) the app's secret.
pub async fn set_secret(conn: &mut PgConnection, app_id: Uuid, sealed: &Sealed) -> Result<()> {
    sqlx::query(
        "INSERT INTO app_webhooks (app_id, secret_sealed) VALUES ($1, $2)
         ON CONFLICT (app_id) DO UPDATE SET secret_sealed = EXCLUDED.secret_sealed,
                                            rotated_at = now()",
    )
    .bind(app_id)
    .bind(SqlJson(sealed))
    .execute(conn)
    .await?;
    Ok(())
}

/// Removes the app's webhook; false if it had none.
pub async fn delete(conn: &mut PgConnection, app_id: Uuid) -> Result<bool> {
    let deleted = sqlx::query("DELETE FROM app_webhooks WHERE app_id = $1")
        .bind(app_id)
        .execute(conn)
        .await?;
    Ok(deleted.rows_affected() > 0)
}

#[derive(Debug, sqlx::FromRow)]
pub struct WebhookRow {
    pub created_at: DateTime<Utc>,
    pub rotated_at: DateTime<Utc>,
}

pub async fn get(conn: &mut PgConnection, app_id: Uuid) -> Result<Option<WebhookRow>> {
    Ok(sqlx::query_as::<_, WebhookRow>(
        "SELECT created_at, rotated_at FROM app_webhooks WHERE app_id = $1",
    )
    .bind(app_id)
    .fetch_optional(conn)
    .await?)
}

/// Remembers a delivery whose signature was good. False when this delivery
/// id, or this very body, was already received for the app: a replay. A
/// concurrent twin waits for this transaction and then sees the row.
pub async fn record_delivery(
    conn: &mut PgConnection,
    app_id: Uuid,
    delivery_id: &str,
    body_sha256: &[u8],
    event: &str,
) -> Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO webhook_deliveries (app_id, delivery_id, body_sha256, event)
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(app_id)
    .bind(delivery_id)
    .bind(body_sha256)
    .bind(event)
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Records what a delivery did.
pub async fn set_outcome(
    conn: &mut PgConnection,
    app_id: Uuid,
    delivery_id: &str,
    outcome: &str,
    deployment_id: Option<Uuid>,
) -> Result<()> {
    sqlx::query(
        "UPDATE webhook_deliveries SET outcome = $3, deployment_id = $4
         WHERE app_id = $1 AND delivery_id = $2",
    )
    .bind(app_id)
    .bind(delivery_id)
    .bind(outcome)
    .bind(deployment_id)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, sqlx::FromRow)]
pub struct DeliveryRow {
    pub delivery_id: String,
    pub event: String,
    pub outcome: Option<String>,
    pub deployment_id: Option<Uuid>,
    pub received_at: DateTime<Utc>,
}

/// The app's latest delivery.
pub async fn last_delivery(conn: &mut PgConnection, app_id: Uuid) -> Result<Option<DeliveryRow>> {
    Ok(sqlx::query_as::<_, DeliveryRow>(
        "SELECT delivery_id, event, outcome, deployment_id, received_at FROM webhook_deliveries
         WHERE app_id = $1 ORDER BY received_at DESC LIMIT 1",
    )
    .bind(app_id)
    .fetch_optional(conn)
    .await?)
}
