//! What a tenant holds open at once (log sockets and event streams, REST
//! log reads), counted in PostgreSQL so that the bound holds across every
//! backend replica.
//!
//! Each held slot is a row of `open_slots`. The process that holds it
//! refreshes `seen_at` of all its rows every `HEARTBEAT` (one `UPDATE` per
//! process) and deletes a row when its slot is dropped. A process that dies
//! leaves rows that stop counting once older than `STALE_AFTER` and are
//! pruned then, so a crash frees its slots within a minute or two.

use crate::error::{Error, Result};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How often a process refreshes the rows of the slots it holds.
pub const HEARTBEAT: Duration = Duration::from_secs(20);
/// Rows not refreshed for this long belong to a process that is gone.
pub const STALE_AFTER: Duration = Duration::from_secs(75);

/// What a slot is held for; each kind has its own quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotKind {
    /// A log WebSocket or an event stream (`GET /events`).
    Stream,
    /// A REST log read in progress.
    LogRead,
}

impl SlotKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stream => "stream",
            Self::LogRead => "log_read",
        }
    }

    fn refusal(self, held: i64) -> Error {
        let detail = match self {
            Self::Stream => format!(
                "you have {held} log sockets and event streams open, the limit of your \
                 account; close one (another browser tab, perhaps)"
            ),
            Self::LogRead => format!(
                "you have {held} log reads in progress, the limit of your account; \
                 wait for one to finish"
            ),
        };
        Error::QuotaExceeded {
            limit: match self {
                Self::Stream => "streams",
                Self::LogRead => "log_reads",
            },
            detail,
            wait: true,
        }
    }
}

/// The slots of one backend process.
pub struct OpenSlots {
    db: PgPool,
    process: Uuid,
}

/// A held slot; dropping it frees it (its row is deleted in the background).
pub struct Slot {
    slots: Arc<OpenSlots>,
    id: Uuid,
    kind: SlotKind,
}

impl OpenSlots {
    pub fn new(db: PgPool) -> Self {
        Self {
            db,
            process: Uuid::now_v7(),
        }
    }

    /// A slot of `kind` for `user`, or a `quota-exceeded` problem when they
    /// already hold `limit` (counting every live process's).
    pub async fn acquire(self: &Arc<Self>, user: Uuid, kind: SlotKind, limit: u32) -> Result<Slot> {
        let mut tx = self.db.begin().await?;
        sqlx::query(
            "SELECT pg_advisory_xact_lock(hashtext('berth.slots'), hashtext($1::text || $2))",
        )
        .bind(user)
        .bind(kind.as_str())
        .execute(&mut *tx)
        .await?;
        let held = sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM open_slots
             WHERE user_id = $1 AND kind = $2 AND seen_at > now() - make_interval(secs => $3)",
        )
        .bind(user)
        .bind(kind.as_str())
        .bind(STALE_AFTER.as_secs_f64())
        .fetch_one(&mut *tx)
        .await?;
        if held >= i64::from(limit) {
            metrics::counter!("berth_quota_refused_total", "limit" => kind.as_str()).increment(1);
            return Err(kind.refusal(held));
        }
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO open_slots (id, user_id, kind, process_id) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(user)
        .bind(kind.as_str())
        .bind(self.process)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        metrics::gauge!("berth_open_slots", "kind" => kind.as_str()).increment(1.0);
        Ok(Slot {
            slots: self.clone(),
            id,
            kind,
        })
    }

    /// How many slots of `kind` `user` holds now, in every process.
    pub async fn held(&self, user: Uuid, kind: SlotKind) -> Result<u32> {
        let held = sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM open_slots
             WHERE user_id = $1 AND kind = $2 AND seen_at > now() - make_interval(secs => $3)",
        )
        .bind(user)
        .bind(kind.as_str())
        .bind(STALE_AFTER.as_secs_f64())
        .fetch_one(&self.db)
        .await?;
        Ok(u32::try_from(held).unwrap_or(u32::MAX))
    }

    /// Refreshes this process's rows and prunes stale ones, until `stop`;
    /// then deletes this process's rows.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        loop {
            if let Err(error) = self.beat().await {
                tracing::warn!(%error, "could not refresh the open slots");
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(HEARTBEAT) => {}
            }
        }
        let _ = sqlx::query("DELETE FROM open_slots WHERE process_id = $1")
            .bind(self.process)
            .execute(&self.db)
            .await;
    }

    async fn beat(&self) -> sqlx::Result<()> {
        sqlx::query("UPDATE open_slots SET seen_at = now() WHERE process_id = $1")
            .bind(self.process)
            .execute(&self.db)
            .await?;
        sqlx::query("DELETE FROM open_slots WHERE seen_at < now() - make_interval(secs => $1)")
            .bind(STALE_AFTER.as_secs_f64())
            .execute(&self.db)
            .await?;
        Ok(())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        metrics::gauge!("berth_open_slots", "kind" => self.kind.as_str()).decrement(1.0);
        let (db, id) = (self.slots.db.clone(), self.id);
        // Outside a runtime (a test that ended) the row goes stale instead.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = sqlx::query("DELETE FROM open_slots WHERE id = $1")
                    .bind(id)
                    .execute(&db)
                    .await
                {
                    tracing::warn!(%error, "could not free an open slot; it goes stale");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_the_quota_and_ask_to_wait() {
        for (kind, limit) in [
            (SlotKind::Stream, "streams"),
            (SlotKind::LogRead, "log_reads"),
        ] {
            match kind.refusal(20) {
                Error::QuotaExceeded {
                    limit: named,
                    detail,
                    wait,
                } => {
                    assert_eq!(named, limit);
                    assert!(detail.contains("20"), "{detail}");
                    assert!(wait);
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn stale_rows_outlive_a_few_missed_heartbeats() {
        assert!(STALE_AFTER > HEARTBEAT * 3);
    }
}
