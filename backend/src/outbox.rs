//! The transactional outbox: messages are written in the same transaction as
//! the intent they carry; the relay (`background::relay`) publishes them.
//! When the broker is down, rows stay: an intent is never lost.

use crate::error::Result;
use berth_proto::{Envelope, Payload};
use sqlx::types::Json as SqlJson;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// Writes `payload` to the outbox inside the caller's transaction; returns
/// the envelope as it will be published.
pub async fn enqueue<P: Payload>(
    conn: &mut PgConnection,
    deployment_id: Option<Uuid>,
    payload: &P,
) -> Result<Envelope> {
    let envelope = Envelope::new(deployment_id, 1, payload);
    sqlx::query("INSERT INTO outbox (routing_key, envelope) VALUES ($1, $2)")
        .bind(P::QUEUE)
        .bind(SqlJson(&envelope))
        .execute(conn)
        .await?;
    Ok(envelope)
}

/// Messages written but not yet published, less the build requests that
/// wait for a build slot (those are the build queue, not a stuck relay).
pub async fn backlog(db: &PgPool) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM outbox o
         LEFT JOIN deployments d ON d.id = (o.envelope->>'deployment_id')::uuid
         WHERE o.published_at IS NULL AND o.parked_at IS NULL
           AND (d.id IS NULL OR d.state <> 'queued' OR d.dispatched_at IS NOT NULL)",
    )
    .fetch_one(db)
    .await?)
}
