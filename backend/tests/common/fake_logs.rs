//! A `LogReader` over a fixed list of entries, for API tests (the Kafka
//! reader has its own tests).

use async_trait::async_trait;
use berth_backend::logs::{Followed, LogEntry, LogPage, LogReadError, LogReader, Skip, StartAt};
use berth_proto::{LogRecord, LogSource, LogStream};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};
use uuid::Uuid;

#[derive(Default)]
pub struct FakeLogs {
    /// Already written.
    pub history: Vec<LogEntry>,
    /// Sent by `follow` after the history, as if written live.
    pub live: Vec<LogEntry>,
    pub unavailable: bool,
    /// When set, a REST read waits for a permit of this gate (and gives it
    /// back): reads in progress can be held open.
    pub gate: Option<Arc<Semaphore>>,
}

pub fn entry(offset: i64, line: &str, ts: DateTime<Utc>) -> LogEntry {
    LogEntry {
        offset,
        deployment_id: None,
        record: LogRecord {
            ts,
            source: LogSource::App,
            instance: "web-1".into(),
            stream: LogStream::Stdout,
            line: line.into(),
        },
    }
}

fn from(entries: &[LogEntry], start: StartAt) -> Vec<LogEntry> {
    entries
        .iter()
        .filter(|entry| match start {
            StartAt::Beginning => true,
            StartAt::Offset(offset) => entry.offset >= offset,
            StartAt::Time(time) => entry.record.ts >= time,
            StartAt::TimeFrom(offset, time) => entry.offset >= offset && entry.record.ts >= time,
        })
        .cloned()
        .collect()
}

impl FakeLogs {
    /// Where the log asked for from `start` is gone, as the Kafka reader
    /// finds it: the log holds offsets from its first entry to its last.
    fn skipped(&self, start: StartAt) -> Option<Skip> {
        let (StartAt::Offset(asked) | StartAt::TimeFrom(asked, _)) = start else {
            return None;
        };
        let all = || self.history.iter().chain(&self.live).map(|e| e.offset);
        let low = all().min().unwrap_or(0);
        let high = all().max().map_or(0, |last| last + 1);
        Skip::between(asked, low, high)
    }
}

#[async_trait]
impl LogReader for FakeLogs {
    async fn read(
        &self,
        _app_id: Uuid,
        start: StartAt,
        limit: usize,
    ) -> Result<LogPage, LogReadError> {
        if self.unavailable {
            return Err(LogReadError::Unavailable("broker down".into()));
        }
        if let Some(gate) = &self.gate {
            drop(gate.acquire().await.expect("the gate stays open"));
        }
        let entries: Vec<_> = from(&self.history, start).into_iter().take(limit).collect();
        let next_offset = entries.last().map_or(0, |e| e.offset + 1);
        Ok(LogPage {
            entries,
            next_offset,
            truncated: false,
            skipped: self.skipped(start),
        })
    }

    async fn follow(&self, _app_id: Uuid, start: StartAt) -> Result<Followed, LogReadError> {
        if self.unavailable {
            return Err(LogReadError::Unavailable("broker down".into()));
        }
        let (tx, rx) = mpsc::channel(16);
        let history = from(&self.history, start);
        let live = from(&self.live, start);
        tokio::spawn(async move {
            for entry in history {
                if tx.send(Ok(entry)).await.is_err() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            for entry in live {
                if tx.send(Ok(entry)).await.is_err() {
                    return;
                }
            }
            tx.closed().await;
        });
        Ok(Followed {
            skipped: self.skipped(start),
            entries: rx,
        })
    }
}
