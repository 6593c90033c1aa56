//! The transactional outbox: messages are written in the same transaction as
//! the intent they carry, and a relay publishes them with publisher confirms
//! and marks them published. When the broker is down, rows stay and the
//! relay retries with backoff: an intent is never lost. Delivery is
//! at-least-once (a crash between publish and mark repeats a message);
//! every consumer is idempotent.

use crate::error::{Error, Result};
use berth_common::MessagePublisher;
use berth_proto::{Envelope, Payload};
use sqlx::types::Json as SqlJson;
use sqlx::{PgConnection, PgPool};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
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

/// How the relay paces itself.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    pub batch_size: i64,
    /// Polling interval when nobody wakes the relay.
    pub poll: Duration,
    /// First and longest wait after a failed publish.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// A publish that takes longer than this counts as failed.
    pub publish_timeout: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            batch_size: 100,
            poll: Duration::from_secs(1),
            min_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            publish_timeout: Duration::from_secs(15),
        }
    }
}

pub struct Relay<P> {
    db: PgPool,
    publisher: P,
    wake: Arc<Notify>,
    settings: RelaySettings,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    routing_key: String,
    envelope: SqlJson<Envelope>,
}

impl<P: MessagePublisher> Relay<P> {
    pub fn new(db: PgPool, publisher: P, wake: Arc<Notify>, settings: RelaySettings) -> Self {
        Self {
            db,
            publisher,
            wake,
            settings,
        }
    }

    /// Publishes until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = self.settings.min_backoff;
        tracing::info!("outbox relay started");
        while !shutdown.is_cancelled() {
            let failed = match self.publish_batch().await {
                Ok(published) if published as i64 >= self.settings.batch_size => {
                    backoff = self.settings.min_backoff;
                    continue;
                }
                Ok(_) => {
                    backoff = self.settings.min_backoff;
                    false
                }
                Err(error) => {
                    tracing::warn!(%error, ?backoff, "outbox relay cannot publish; retrying");
                    true
                }
            };
            self.record_backlog().await;
            // After a failure, wait out the backoff even if woken: a down
            // broker must not make the relay spin.
            let wait = if failed { backoff } else { self.settings.poll };
            if failed {
                backoff = (backoff * 2).min(self.settings.max_backoff);
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified(), if !failed => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
        tracing::info!("outbox relay stopped");
    }

    /// Publishes one batch of unpublished rows, oldest first; returns how
    /// many were published. Rows already published in a failing batch are
    /// still marked.
    pub async fn publish_batch(&self) -> Result<usize> {
        let mut tx = self.db.begin().await?;
        let rows = sqlx::query_as::<_, Row>(
            "SELECT id, routing_key, envelope FROM outbox WHERE published_at IS NULL
             ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .bind(self.settings.batch_size)
        .fetch_all(&mut *tx)
        .await?;
        let mut published = Vec::with_capacity(rows.len());
        let mut failure = None;
        for row in rows {
            let envelope = &row.envelope.0;
            let result = tokio::time::timeout(
                self.settings.publish_timeout,
                self.publisher.publish(&row.routing_key, envelope),
            )
            .await
            .map_err(|_| Error::Unavailable("publishing timed out".into()))
            .and_then(|result| result.map_err(Error::from));
            match result {
                Ok(()) => {
                    tracing::debug!(outbox_id = row.id, kind = %envelope.kind,
                        deployment_id = ?envelope.deployment_id, "published");
                    published.push(row.id);
                }
                Err(error) => {
                    sqlx::query(
                        "UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1",
                    )
                    .bind(row.id)
                    .bind(error.to_string())
                    .execute(&mut *tx)
                    .await?;
                    failure = Some(error);
                    break;
                }
            }
        }
        sqlx::query(
            "UPDATE outbox SET published_at = now(), attempts = attempts + 1 WHERE id = ANY($1)",
        )
        .bind(&published)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        metrics::counter!("berth_outbox_published_total").increment(published.len() as u64);
        match failure {
            Some(error) => Err(error),
            None => Ok(published.len()),
        }
    }

    async fn record_backlog(&self) {
        match backlog(&self.db).await {
            Ok(count) => metrics::gauge!("berth_outbox_backlog").set(count as f64),
            Err(error) => tracing::debug!(%error, "cannot count the outbox backlog"),
        }
    }
}

/// Messages written but not yet published.
pub async fn backlog(db: &PgPool) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            .fetch_one(db)
            .await?,
    )
}
