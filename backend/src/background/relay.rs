//! The outbox relay: publishes what `outbox::enqueue` wrote, with publisher
//! confirms, and marks it published. When the broker is down, rows stay and the
//! relay retries with backoff: an intent is never lost. Delivery is
//! at-least-once (a crash between publish and mark repeats a message);
//! every consumer is idempotent.
//!
//! Build and deploy requests leave only while their deployment is in
//! progress (one cancelled or superseded before the relay got to it is
//! never sent) and carry the deadline of the state the deployment waits
//! in, after which a worker refuses them. A build request leaves only once
//! the relay dispatched its build ([`crate::deployments::dispatch`]): its
//! `queued` deadline counts from then.

use crate::deployments::dispatch::{self, BuildSlots};
use crate::deployments::transitions::{self, Change};
use crate::error::{Error, Result};
use crate::outbox::backlog;
use berth_common::{BrokerError, MessagePublisher};
use berth_proto::names::CONTROL_ROUTING_KEY;
use berth_proto::{BuildRequested, DeployRequested, DeploymentState, Envelope, Payload};
use chrono::{DateTime, Utc};
use sqlx::types::Json as SqlJson;
use sqlx::{PgConnection, PgPool};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

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
    /// Multiplies every state's deadline (as the reaper's does).
    pub deadline_scale: f64,
    /// A row the broker refused this often is parked, and its deployment
    /// fails.
    pub park_after: i32,
    /// How many builds may be dispatched at once.
    pub build_slots: BuildSlots,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            batch_size: 100,
            poll: Duration::from_secs(1),
            min_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            publish_timeout: Duration::from_secs(15),
            deadline_scale: 1.0,
            park_after: 12,
            build_slots: BuildSlots::default(),
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
    attempts: i32,
    /// The state of the deployment the message is about, if any.
    state: Option<String>,
    state_changed_at: Option<DateTime<Utc>>,
    dispatched_at: Option<DateTime<Utc>>,
}

/// The advisory lock only the publishing relay holds.
const RELAY_LOCK: i64 = 0x6265_7274_685f_6f62; // "berth_ob"

/// Why a row was not published.
enum RowError {
    /// The broker is unreachable or slow: every row would fail alike.
    Broker(Error),
    /// The broker refused this message.
    Refused(BrokerError),
}

/// What the relay does with a row.
enum Dispatch {
    Publish(Envelope),
    /// Work for a deployment that already ended: nobody wants it.
    Skip(DeploymentState),
}

impl Row {
    /// Work for a deployment goes out only while the deployment is in
    /// progress, with the deadline of the state it waits in; everything
    /// else goes out as written.
    fn dispatch(&self, deadline_scale: f64) -> Dispatch {
        let mut envelope = self.envelope.0.clone();
        let is_work = matches!(
            envelope.kind.as_str(),
            BuildRequested::TYPE | DeployRequested::TYPE
        );
        let state = self.state.as_deref().and_then(|s| s.parse().ok());
        if let (true, Some(state)) = (is_work, state) {
            let state: DeploymentState = state;
            if !state.is_in_progress() {
                return Dispatch::Skip(state);
            }
            // Waiting for a build slot is not a stalled step.
            let since = match state {
                DeploymentState::Queued => self.dispatched_at.or(self.state_changed_at),
                _ => self.state_changed_at,
            };
            if let (Some(deadline), Some(since)) = (state.deadline(), since) {
                let deadline = deadline.mul_f64(deadline_scale.max(0.0));
                envelope.deadline = chrono::Duration::from_std(deadline)
                    .ok()
                    .map(|deadline| since + deadline);
            }
        }
        Dispatch::Publish(envelope)
    }
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
        // One relay publishes at a time, so two backends cannot reorder
        // one app's messages; the other tries again on its next round.
        if !crate::db::try_lead(&mut tx, RELAY_LOCK).await? {
            return Ok(0);
        }
        dispatch::dispatch(&mut tx, self.settings.build_slots).await?;
        let rows = sqlx::query_as::<_, Row>(
            "SELECT o.id, o.routing_key, o.envelope, o.attempts, d.state, d.state_changed_at,
                    d.dispatched_at
             FROM outbox o
             LEFT JOIN deployments d ON d.id = (o.envelope->>'deployment_id')::uuid
             WHERE o.published_at IS NULL AND o.parked_at IS NULL
               AND (o.next_attempt_at IS NULL OR o.next_attempt_at <= now())
               AND (d.id IS NULL OR d.state <> 'queued' OR d.dispatched_at IS NOT NULL)
             ORDER BY o.id LIMIT $1 FOR UPDATE OF o",
        )
        .bind(self.settings.batch_size)
        .fetch_all(&mut *tx)
        .await?;
        let mut published = Vec::with_capacity(rows.len());
        let mut failure = None;
        for row in rows {
            let envelope = match row.dispatch(self.settings.deadline_scale) {
                Dispatch::Publish(envelope) => envelope,
                Dispatch::Skip(state) => {
                    tracing::info!(outbox_id = row.id, kind = %row.envelope.0.kind,
                        deployment_id = ?row.envelope.0.deployment_id, %state,
                        "not published: the deployment already ended");
                    metrics::counter!("berth_outbox_skipped_total").increment(1);
                    published.push(row.id);
                    continue;
                }
            };
            let envelope = &envelope;
            let result = tokio::time::timeout(
                self.settings.publish_timeout,
                self.publisher.publish(&row.routing_key, envelope),
            )
            .await
            .map_err(|_| RowError::Broker(Error::Unavailable("publishing timed out".into())))
            .and_then(|result| match result {
                Ok(()) => Ok(()),
                // A cancellation nobody is bound to hear: no worker runs.
                Err(BrokerError::Unroutable(_)) if row.routing_key == CONTROL_ROUTING_KEY => Ok(()),
                Err(error @ (BrokerError::Unroutable(_) | BrokerError::Nacked)) => {
                    Err(RowError::Refused(error))
                }
                Err(error) => Err(RowError::Broker(error.into())),
            });
            match result {
                Ok(()) => {
                    tracing::debug!(outbox_id = row.id, kind = %envelope.kind,
                        deployment_id = ?envelope.deployment_id, "published");
                    published.push(row.id);
                }
                // This message, not the broker: it waits on its own and
                // the rows after it go on.
                Err(RowError::Refused(error)) => {
                    self.refused(&mut tx, &row, &error).await?;
                }
                Err(RowError::Broker(error)) => {
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

    /// The broker refused the row's message: try it again later, with a
    /// backoff of its own, and after `park_after` attempts park it and fail
    /// its deployment with the reason.
    async fn refused(&self, tx: &mut PgConnection, row: &Row, error: &BrokerError) -> Result<()> {
        let attempts = row.attempts + 1;
        tracing::warn!(outbox_id = row.id, routing_key = %row.routing_key, attempts, %error,
            "the broker refused a message; it waits on its own");
        if attempts < self.settings.park_after {
            let wait = self.settings.min_backoff.as_secs_f64()
                * 2f64
                    .powi(attempts.min(16))
                    .min(self.settings.max_backoff.as_secs_f64() * 6.0);
            sqlx::query(
                "UPDATE outbox SET attempts = $2, last_error = $3,
                    next_attempt_at = now() + make_interval(secs => $4) WHERE id = $1",
            )
            .bind(row.id)
            .bind(attempts)
            .bind(error.to_string())
            .bind(wait)
            .execute(&mut *tx)
            .await?;
            return Ok(());
        }
        sqlx::query(
            "UPDATE outbox SET attempts = $2, last_error = $3, parked_at = now() WHERE id = $1",
        )
        .bind(row.id)
        .bind(attempts)
        .bind(error.to_string())
        .execute(&mut *tx)
        .await?;
        metrics::counter!("berth_outbox_parked_total").increment(1);
        if let Some(deployment_id) = row.envelope.0.deployment_id {
            let reason = "berth could not hand this deployment to a worker (the message broker \
                          refused it); an operator has been told";
            transitions::transition(
                tx,
                deployment_id,
                DeploymentState::Failed,
                Change::ended_by_berth(reason),
            )
            .await?;
        }
        tracing::error!(outbox_id = row.id, %error, "outbox message parked after {attempts} attempts");
        Ok(())
    }

    async fn record_backlog(&self) {
        match backlog(&self.db).await {
            Ok(count) => metrics::gauge!("berth_outbox_backlog").set(count as f64),
            Err(error) => tracing::debug!(%error, "cannot count the outbox backlog"),
        }
    }
}
