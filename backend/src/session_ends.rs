//! Ended sessions, for the streams that outlive a request: log sockets and
//! event streams check the caller's session when they open, and must not
//! keep streaming once it ends (logout, signed out from the session list,
//! password change or reset, account deletion).
//!
//! A trigger (migration 0010) announces each ended session's id on the
//! PostgreSQL channel `berth_sessions` when its transaction commits, so
//! whichever replica ended it, every backend process hears it. One
//! listener per process (`SessionEnds::run`) passes the ids on; each open
//! stream has a `SessionWatch` that fires when its own session is named.
//! Announcements can be missed (the listener reconnects, a watcher falls
//! behind): then, and every `recheck` anyway, the watch asks the database.
//!
//! This module knows nothing of accounts: the caller says how to ask
//! whether its session is still on.

use crate::pg_notify::{Channel, Notifications};
use futures::future::BoxFuture;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_util::sync::{CancellationToken, DropGuard};
use uuid::Uuid;

pub const CHANNEL: &str = "berth_sessions";
/// Announcements a watch may fall behind by before it re-checks instead.
const BUFFER: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Session(Uuid),
    /// Announcements may have been missed: every watch re-checks.
    Unknown,
}

/// The process's one listener, and the channel the watches read.
pub struct SessionEnds {
    notifications: Notifications<Ended>,
}

impl Default for SessionEnds {
    fn default() -> Self {
        Self {
            notifications: Notifications::new(BUFFER),
        }
    }
}

/// Sessions may also have ended while nobody listened: every (re)connect
/// makes the watches re-check.
const SESSIONS: Channel<Ended> = Channel {
    name: CHANNEL,
    what: "ended sessions",
    lost: Ended::Unknown,
    lost_on_connect: true,
    parse: |payload| {
        payload
            .parse::<Uuid>()
            .map(Ended::Session)
            .map_err(|error| error.to_string())
    },
};

/// Asks whether the watched session is still on (an error counts as on:
/// a database hiccup should not cut every stream; the next check decides).
pub type StillOn = Arc<dyn Fn() -> BoxFuture<'static, bool> + Send + Sync>;

/// Fires (`ended`) when its session ends; dropping it stops the watching.
pub struct SessionWatch {
    ended: CancellationToken,
    _stop: DropGuard,
}

impl SessionWatch {
    /// Completes once the session has ended.
    pub async fn ended(&self) {
        self.ended.cancelled().await
    }
}

impl SessionEnds {
    /// Waits until the listener is subscribed (ends from then on are heard).
    pub async fn listening(&self) {
        self.notifications.listening().await
    }

    /// Watches `session` until it ends: announced, or found ended by
    /// `still_on`, asked after a missed announcement and every `recheck`.
    pub fn watch(&self, session: Uuid, recheck: Duration, still_on: StillOn) -> SessionWatch {
        let mut announced = self.notifications.subscribe();
        let ended = CancellationToken::new();
        let stop = CancellationToken::new();
        let (fire, stopped) = (ended.clone(), stop.clone());
        tokio::spawn(async move {
            let start = tokio::time::Instant::now() + recheck;
            let mut rechecks = tokio::time::interval_at(start, recheck);
            rechecks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut heard = true;
            loop {
                let check = tokio::select! {
                    _ = stopped.cancelled() => return,
                    _ = rechecks.tick() => true,
                    message = announced.recv(), if heard => match message {
                        Ok(Ended::Session(id)) if id == session => {
                            fire.cancel();
                            return;
                        }
                        Ok(Ended::Session(_)) => false,
                        Ok(Ended::Unknown) | Err(broadcast::error::RecvError::Lagged(_)) => true,
                        Err(broadcast::error::RecvError::Closed) => {
                            heard = false;
                            true
                        }
                    },
                };
                if check && !still_on().await {
                    fire.cancel();
                    return;
                }
            }
        });
        SessionWatch {
            ended,
            _stop: stop.drop_guard(),
        }
    }

    /// Listens until `stop`, reconnecting after a lost connection (and then
    /// telling every watch to re-check).
    pub async fn run(&self, db: PgPool, stop: CancellationToken) {
        self.notifications.run(&SESSIONS, db, stop).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn still_on(flag: Arc<AtomicBool>) -> StillOn {
        Arc::new(move || {
            let flag = flag.clone();
            Box::pin(async move { flag.load(Ordering::SeqCst) })
        })
    }

    async fn fires(watch: &SessionWatch) -> bool {
        tokio::time::timeout(Duration::from_millis(500), watch.ended())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn a_watch_fires_when_its_session_is_announced() {
        let ends = SessionEnds::default();
        let (mine, other) = (Uuid::now_v7(), Uuid::now_v7());
        let on = Arc::new(AtomicBool::new(true));
        let watch = ends.watch(mine, Duration::from_secs(3600), still_on(on));
        tokio::task::yield_now().await;
        ends.notifications.send(Ended::Session(other));
        assert!(!fires(&watch).await, "another session ended");
        ends.notifications.send(Ended::Session(mine));
        assert!(fires(&watch).await);
    }

    #[tokio::test]
    async fn a_watch_rechecks_after_missed_announcements_and_periodically() {
        let ends = SessionEnds::default();
        let on = Arc::new(AtomicBool::new(true));
        let watch = ends.watch(
            Uuid::now_v7(),
            Duration::from_secs(3600),
            still_on(on.clone()),
        );
        ends.notifications.send(Ended::Unknown);
        assert!(!fires(&watch).await, "still on");
        on.store(false, Ordering::SeqCst);
        ends.notifications.send(Ended::Unknown);
        assert!(fires(&watch).await);

        let on = Arc::new(AtomicBool::new(true));
        let watch = ends.watch(
            Uuid::now_v7(),
            Duration::from_millis(50),
            still_on(on.clone()),
        );
        assert!(!fires(&watch).await, "still on");
        on.store(false, Ordering::SeqCst);
        assert!(fires(&watch).await);
    }
}
