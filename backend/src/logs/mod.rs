//! Reading an app's log back from Kafka: a page of history for REST, and
//! history-then-live for the WebSocket. Both return the same entries, each
//! with its offset, so a client can resume exactly where it stopped.

mod kafka;
#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_outside_the_log_is_a_skip() {
        assert_eq!(Skip::between(5, 0, 10), None);
        assert_eq!(Skip::between(10, 0, 10), None, "the end: wait for more");
        assert_eq!(
            Skip::between(10, 100, 150),
            Some(Skip {
                from: 10,
                to: 100,
                reason: SkipReason::Expired
            })
        );
        assert_eq!(
            Skip::between(5000, 0, 12),
            Some(Skip {
                from: 5000,
                to: 12,
                reason: SkipReason::Reset
            })
        );
    }
}

pub use kafka::KafkaLogReader;

use async_trait::async_trait;
use berth_proto::LogRecord;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::mpsc;
use uuid::Uuid;

/// A stored log line and where it sits in the app's log.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LogEntry {
    /// Position in the app's log; resume with `from = offset + 1`.
    pub offset: i64,
    /// The deployment the line belongs to, when known.
    pub deployment_id: Option<String>,
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub record: LogRecord,
}

/// Where reading starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    Beginning,
    /// This offset and after.
    Offset(i64),
    /// The first entry written at or after this time.
    Time(DateTime<Utc>),
    /// The entries at or after this offset written at or after this time:
    /// where a `Time` read that stopped at its scan budget goes on.
    TimeFrom(i64, DateTime<Utc>),
}

/// Where a read starts later or earlier than asked, because the entries
/// asked for are gone: the client learns of the gap rather than miss it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Skip {
    /// The offset asked for.
    pub from: i64,
    /// The offset the read starts at instead.
    pub to: i64,
    pub reason: SkipReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The entries from `from` to `to` were removed by the log's retention.
    Expired,
    /// The log starts again at lower offsets (its store was reset, or the
    /// app's log was deleted): offsets held from before name other entries.
    Reset,
}

impl Skip {
    /// The skip when a read asked to start at `asked` finds the log
    /// holding offsets `low..high`.
    pub fn between(asked: i64, low: i64, high: i64) -> Option<Self> {
        let (to, reason) = if asked < low {
            (low, SkipReason::Expired)
        } else if asked > high {
            (high, SkipReason::Reset)
        } else {
            return None;
        };
        Some(Self {
            from: asked,
            to,
            reason,
        })
    }
}

/// A page of history.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LogPage {
    pub entries: Vec<LogEntry>,
    /// Where the next page starts (`from` for the next request).
    pub next_offset: i64,
    /// The read stopped at its scan budget, skipping entries older than
    /// `since`, before it had `limit` entries or reached the end: the next
    /// page goes on from `next_offset` with the same `since`.
    pub truncated: bool,
    /// The read could not start at `from`: those entries are gone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<Skip>,
}

/// A follow of the log: where it had to start instead of where asked,
/// then the entries as they come.
pub struct Followed {
    pub skipped: Option<Skip>,
    pub entries: mpsc::Receiver<Result<LogEntry, LogReadError>>,
}

#[derive(Debug, thiserror::Error)]
pub enum LogReadError {
    #[error("the log store is unavailable: {0}")]
    Unavailable(String),
}

/// The seam between the API and the log store.
#[async_trait]
pub trait LogReader: Send + Sync + 'static {
    /// Up to `limit` entries from `start`, oldest first. An app that has no
    /// log yet has an empty page.
    async fn read(
        &self,
        app_id: Uuid,
        start: StartAt,
        limit: usize,
    ) -> Result<LogPage, LogReadError>;

    /// Entries from `start`, then live ones as they are written, until the
    /// receiver is dropped. An error ends the stream.
    async fn follow(&self, app_id: Uuid, start: StartAt) -> Result<Followed, LogReadError>;
}
