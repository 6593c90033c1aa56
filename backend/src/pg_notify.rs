//! A PostgreSQL `NOTIFY` channel heard once per process and fanned out to
//! many subscribers (`event_hub`, `session_ends`). Notifications are sent
//! when their transaction commits, whichever replica made them; one that
//! arrives while the listener is disconnected is lost, so after a lost
//! connection subscribers get the channel's `lost` value and must catch up
//! from the database themselves.

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

/// What a channel is and how its payloads read.
pub struct Channel<T> {
    pub name: &'static str,
    /// For the log: "deployment events", "ended sessions".
    pub what: &'static str,
    /// Sent when notifications may have been missed.
    pub lost: T,
    /// Also send `lost` once subscribed (what happened before is unknown).
    pub lost_on_connect: bool,
    pub parse: fn(&str) -> Result<T, String>,
}

/// The listener's fan-out.
pub struct Notifications<T> {
    sender: broadcast::Sender<T>,
    /// True while the listener is subscribed to the channel.
    listening: watch::Sender<bool>,
}

impl<T: Clone> Notifications<T> {
    /// A subscriber may fall `buffer` notifications behind before it lags.
    pub fn new(buffer: usize) -> Self {
        Self {
            sender: broadcast::channel(buffer).0,
            listening: watch::channel(false).0,
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<T> {
        self.sender.subscribe()
    }

    pub fn send(&self, value: T) {
        let _ = self.sender.send(value);
    }

    /// Waits until the listener is subscribed (notifications from then on
    /// are heard).
    pub async fn listening(&self) {
        let mut listening = self.listening.subscribe();
        let _ = listening.wait_for(|listening| *listening).await;
    }

    /// Listens until `stop`, reconnecting with a growing pause after a lost
    /// connection (and then sending `lost`).
    pub async fn run(&self, channel: &Channel<T>, db: PgPool, stop: CancellationToken) {
        let mut delay = Duration::from_millis(500);
        while !stop.is_cancelled() {
            let listened = self.listen(channel, &db, &stop).await;
            self.listening.send_replace(false);
            match listened {
                Ok(()) => return,
                Err(error) => {
                    tracing::warn!(%error, what = channel.what, "listener lost; reconnecting");
                    self.send(channel.lost.clone());
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    async fn listen(
        &self,
        channel: &Channel<T>,
        db: &PgPool,
        stop: &CancellationToken,
    ) -> sqlx::Result<()> {
        let mut listener = PgListener::connect_with(db).await?;
        // Reconnecting silently would hide a gap; `run` reconnects and says so.
        listener.ignore_pool_close_event(true);
        listener.listen(channel.name).await?;
        tracing::info!(channel = channel.name, "listening for {}", channel.what);
        self.listening.send_replace(true);
        if channel.lost_on_connect {
            self.send(channel.lost.clone());
        }
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
            match (channel.parse)(notification.payload()) {
                Ok(value) => self.send(value),
                Err(error) => tracing::error!(%error, "unreadable {}", channel.what),
            }
        }
    }
}
