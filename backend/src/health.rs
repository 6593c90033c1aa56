//! Readiness: the database answers and the broker is connected (publisher
//! and consumers). A background check keeps the answer fresh and reconnects
//! the publisher when it dropped.

use crate::db;
use berth_common::ops::Readiness;
use berth_common::Broker;
use sqlx::PgPool;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const CHECK_EVERY: Duration = Duration::from_secs(5);
const CHECK_TIMEOUT: Duration = Duration::from_secs(4);

#[derive(Clone)]
pub struct Health {
    db_ok: Arc<AtomicBool>,
    broker: Broker,
}

impl Health {
    pub fn new(broker: Broker) -> Self {
        Self {
            db_ok: Arc::new(AtomicBool::new(false)),
            broker,
        }
    }

    pub fn ready(&self) -> bool {
        self.db_ok.load(Ordering::Relaxed)
            && self.broker.is_connected()
            && self.broker.consumers_connected()
    }

    pub fn readiness(&self) -> Readiness {
        let health = self.clone();
        Arc::new(move || health.ready())
    }

    /// Checks until `shutdown`.
    pub async fn run(self, db: PgPool, shutdown: CancellationToken) {
        loop {
            let db_ok = tokio::time::timeout(CHECK_TIMEOUT, db::ping(&db))
                .await
                .unwrap_or(false);
            if db_ok != self.db_ok.swap(db_ok, Ordering::Relaxed) {
                tracing::info!(db_ok, "database reachability changed");
            }
            if !self.broker.is_connected() {
                match tokio::time::timeout(CHECK_TIMEOUT, self.broker.ensure_topology()).await {
                    Ok(Ok(())) => tracing::info!("connected to the broker"),
                    Ok(Err(error)) => tracing::debug!(%error, "the broker is unreachable"),
                    Err(_) => tracing::debug!("connecting to the broker timed out"),
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(CHECK_EVERY) => {}
            }
        }
    }
}
