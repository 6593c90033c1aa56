//! Deployment state changes, as they commit, for the live event streams.
//!
//! A trigger announces every new deployment and state change on the
//! PostgreSQL channel `berth_deployments` when its transaction commits
//! (migration 0007). One listener per backend process (`EventHub::run`)
//! fans them out to every subscriber; `events` serves them to browsers.
//! When announcements may have been lost (the listener's connection
//! dropped), subscribers get `Announcement::Resync`. The hub is here, not
//! in `events`, because `AppState` holds it and `events` takes `AppState`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;
use uuid::Uuid;

pub const CHANNEL: &str = "berth_deployments";
/// Events a stream may fall behind by before it is told to resync.
const BUFFER: usize = 1024;

/// A deployment was created or changed state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeploymentEvent {
    pub deployment_id: Uuid,
    pub app_id: Uuid,
    #[serde(skip_serializing)]
    pub owner_id: Option<Uuid>,
    pub state: String,
    pub changed_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub enum Announcement {
    Deployment(DeploymentEvent),
    /// Events may have been missed: reload.
    Resync,
}

/// The process's one listener, and the channel its streams read.
pub struct EventHub {
    sender: broadcast::Sender<Announcement>,
    /// True while the listener is subscribed to the channel.
    listening: watch::Sender<bool>,
}

impl Default for EventHub {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(BUFFER).0,
            listening: watch::channel(false).0,
        }
    }
}

impl EventHub {
    /// Waits until the listener is subscribed (changes from then on are
    /// seen).
    pub async fn listening(&self) {
        let mut listening = self.listening.subscribe();
        let _ = listening.wait_for(|listening| *listening).await;
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Announcement> {
        self.sender.subscribe()
    }

    /// Listens until `stop`, reconnecting after a lost connection (and then
    /// telling every stream to resync).
    pub async fn run(&self, db: PgPool, stop: CancellationToken) {
        let mut delay = Duration::from_millis(500);
        while !stop.is_cancelled() {
            let listened = self.listen(&db, &stop).await;
            self.listening.send_replace(false);
            match listened {
                Ok(()) => return,
                Err(error) => {
                    tracing::warn!(%error, "deployment event listener lost; reconnecting");
                    let _ = self.sender.send(Announcement::Resync);
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    async fn listen(&self, db: &PgPool, stop: &CancellationToken) -> sqlx::Result<()> {
        let mut listener = PgListener::connect_with(db).await?;
        // Reconnecting silently would hide a gap; `run` reconnects and says so.
        listener.ignore_pool_close_event(true);
        listener.listen(CHANNEL).await?;
        tracing::info!(channel = CHANNEL, "listening for deployment events");
        self.listening.send_replace(true);
        loop {
            let notification = tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                received = listener.try_recv() => received?,
            };
            let Some(notification) = notification else {
                return Err(sqlx::Error::Protocol(
                    "the listener's connection closed".into(),
                ));
            };
            match serde_json::from_str::<DeploymentEvent>(notification.payload()) {
                Ok(event) => {
                    let _ = self.sender.send(Announcement::Deployment(event));
                }
                Err(error) => tracing::error!(%error, "an unreadable deployment event"),
            }
        }
    }
}
