//! Deployment state changes, as they commit, for the live event streams.
//!
//! A trigger announces every new deployment and state change on the
//! PostgreSQL channel `berth_deployments` when its transaction commits
//! (migration 0007). One listener per backend process (`EventHub::run`)
//! fans them out to every subscriber; `events` serves them to browsers.
//! When announcements may have been lost (the listener's connection
//! dropped), subscribers get `Announcement::Resync`. The hub is here, not
//! in `events`, because `AppState` holds it and `events` takes `AppState`.

use crate::pg_notify::{Channel, Notifications};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio::sync::broadcast;
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
    notifications: Notifications<Announcement>,
}

impl Default for EventHub {
    fn default() -> Self {
        Self {
            notifications: Notifications::new(BUFFER),
        }
    }
}

const DEPLOYMENTS: Channel<Announcement> = Channel {
    name: CHANNEL,
    what: "deployment events",
    lost: Announcement::Resync,
    lost_on_connect: false,
    parse: |payload| {
        serde_json::from_str::<DeploymentEvent>(payload)
            .map(Announcement::Deployment)
            .map_err(|error| error.to_string())
    },
};

impl EventHub {
    /// Waits until the listener is subscribed (changes from then on are
    /// seen).
    pub async fn listening(&self) {
        self.notifications.listening().await
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Announcement> {
        self.notifications.subscribe()
    }

    /// Listens until `stop`, reconnecting after a lost connection (and then
    /// telling every stream to resync).
    pub async fn run(&self, db: PgPool, stop: CancellationToken) {
        self.notifications.run(&DEPLOYMENTS, db, stop).await
    }
}
