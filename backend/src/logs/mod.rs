//! Reading an app's log back from Kafka: a page of history for REST, and
//! history-then-live for the WebSocket. Both return the same entries, each
//! with its offset, so a client can resume exactly where it stopped.

mod kafka;
#[cfg(test)]
mod props;

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
    async fn follow(
        &self,
        app_id: Uuid,
        start: StartAt,
    ) -> Result<mpsc::Receiver<Result<LogEntry, LogReadError>>, LogReadError>;
}
