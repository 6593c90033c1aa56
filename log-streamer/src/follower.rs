//! Following one container's log into its app's topic, pipelined: lines are
//! enqueued as they are read, with at most `max_in_flight` unconfirmed, and
//! the checkpoint advances in log order as Kafka confirms them (see
//! [`crate::checkpoint`] for why this neither loses nor repeats lines).

use berth_common::logs::LogError;
use berth_proto::{LogRecord, LogSource as RecordSource};
use futures::future::{ready, BoxFuture};
use futures::stream::FuturesOrdered;
use futures::{FutureExt, StreamExt};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

use crate::checkpoint::{CheckpointStore, Position, Resume};
use crate::error::StreamError;
use crate::sink::RecordSink;
use crate::source::{LogLine, LogSource, Workload};

/// Longest line shipped as is; longer ones are cut (Kafka refuses huge records).
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// Why following stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The container's log stream ended (it stopped, or the engine closed it).
    StreamEnded,
    /// Shutdown was asked for; everything read was delivered first.
    Cancelled,
}

pub struct Follower<S, K> {
    pub source: Arc<S>,
    pub sink: Arc<K>,
    pub store: CheckpointStore,
    pub max_in_flight: usize,
    /// Workloads whose last follow in this process delivered everything it
    /// handed over before it returned: their checkpoint is exact, and
    /// following them again needs no look at the topic.
    exact: Mutex<HashSet<String>>,
}

impl<S: LogSource, K: RecordSink> Follower<S, K> {
    pub fn new(source: Arc<S>, sink: Arc<K>, store: CheckpointStore, max_in_flight: usize) -> Self {
        Self {
            source,
            sink,
            store,
            max_in_flight: max_in_flight.max(1),
            exact: Mutex::default(),
        }
    }

    /// Forgets a removed workload: its checkpoint and what this process
    /// knew of it.
    pub fn forget(&self, id: &str) {
        self.store.forget(id);
        self.exact.lock().expect("lock poisoned").remove(id);
    }

    /// Ships the workload's lines from its checkpoint until its stream ends
    /// or `shutdown`; in both cases the lines read are delivered and
    /// checkpointed before it returns.
    pub async fn follow(
        &self,
        workload: &Workload,
        shutdown: &CancellationToken,
    ) -> Result<Ended, StreamError> {
        let start = self.recover(workload).await?;
        let mut resume = Resume::new(start);
        let mut read = start;
        let mut delivered = start;
        let mut saved = start;
        let mut in_flight: FuturesOrdered<BoxFuture<'static, (Shipped, Position)>> =
            FuturesOrdered::new();
        let mut lines = self.source.logs(&workload.id, start.second);
        let mut reading = true;
        let mut ended = Ended::StreamEnded;
        let mut failure = None;
        tracing::debug!(container = workload.name, ?start, "following");

        while reading || !in_flight.is_empty() {
            let can_read = reading && in_flight.len() < self.max_in_flight;
            tokio::select! {
                biased;
                _ = shutdown.cancelled(), if reading => {
                    reading = false;
                    ended = Ended::Cancelled;
                }
                Some(result) = in_flight.next(), if !in_flight.is_empty() => {
                    let mut result = result;
                    loop {
                        match accept(workload, result) {
                            Ok(position) => {
                                metrics::counter!("berth_log_lines_total").increment(1);
                                delivered = position;
                            }
                            Err(error) => {
                                self.checkpoint(workload, delivered, &mut saved)?;
                                return Err(error);
                            }
                        }
                        // Take every delivery that is already confirmed,
                        // then write the checkpoint once.
                        match in_flight.next().now_or_never() {
                            Some(Some(next)) => result = next,
                            _ => break,
                        }
                    }
                    self.checkpoint(workload, delivered, &mut saved)?;
                }
                next = lines.next(), if can_read => match next {
                    None => reading = false,
                    Some(Err(error)) => {
                        reading = false;
                        failure = Some(error);
                    }
                    Some(Ok(line)) => {
                        let second = line.ts.timestamp();
                        if resume.already_delivered(second) {
                            continue;
                        }
                        read = read.advance(second);
                        let record = record(workload, line);
                        let position = read;
                        let enqueued = self
                            .sink
                            .enqueue(
                                workload.app_id,
                                &workload.key,
                                &record,
                                Some((&workload.id, position)),
                            )
                            .await;
                        match enqueued {
                            Ok(delivery) => in_flight.push_back(
                                delivery.map(move |result| (shipped(result), position)).boxed(),
                            ),
                            Err(error) if error.is_permanent() => in_flight.push_back(
                                ready((Shipped::Refused(error.to_string()), position)).boxed(),
                            ),
                            Err(error) => {
                                self.checkpoint(workload, delivered, &mut saved)?;
                                return Err(error.into());
                            }
                        }
                    }
                },
            }
        }
        self.checkpoint(workload, delivered, &mut saved)?;
        self.exact
            .lock()
            .expect("lock poisoned")
            .insert(workload.id.clone());
        match failure {
            Some(error) => Err(error),
            None => Ok(ended),
        }
    }

    /// Where to go on in the container's log: its checkpoint, or further
    /// when the topic holds lines stored after the checkpoint was written
    /// (the streamer died between Kafka's confirmation and the write; each
    /// record carries the position after it). A first follow records where
    /// the topic ends before it ships anything, so a crash before its first
    /// checkpoint is recovered the same way. After a follow of this process
    /// that delivered everything, the checkpoint is exact and is used as is.
    async fn recover(&self, workload: &Workload) -> Result<Position, StreamError> {
        let saved = self.store.load(&workload.id);
        if self
            .exact
            .lock()
            .expect("lock poisoned")
            .remove(&workload.id)
        {
            return Ok(saved);
        }
        let (end, shipped) = self
            .sink
            .last_shipped(workload.app_id, &workload.key, &workload.id, saved.offset)
            .await?;
        let start = match shipped {
            Some(shipped) if saved.offset.is_some() && shipped.is_past(saved) => {
                tracing::info!(
                    container = workload.name,
                    ?saved,
                    ?shipped,
                    "lines were stored after the checkpoint; going on after them"
                );
                metrics::counter!("berth_log_lines_recovered_total").increment(1);
                Position {
                    offset: Some(end),
                    ..shipped
                }
            }
            _ => Position {
                offset: Some(end.max(saved.offset.unwrap_or(-1))),
                ..saved
            },
        };
        if start != saved {
            self.store.save(workload, start)?;
        }
        Ok(start)
    }

    fn checkpoint(
        &self,
        workload: &Workload,
        delivered: Position,
        saved: &mut Position,
    ) -> Result<(), StreamError> {
        if delivered != *saved {
            self.store.save(workload, delivered)?;
            *saved = delivered;
        }
        Ok(())
    }
}

/// How one record fared.
enum Shipped {
    /// At this offset.
    Stored(i64),
    /// Kafka refuses it for good (e.g. too large): it can never be stored.
    Refused(String),
    Failed(LogError),
}

fn shipped(result: Result<i64, LogError>) -> Shipped {
    match result {
        Ok(offset) => Shipped::Stored(offset),
        Err(error) if error.is_permanent() => Shipped::Refused(error.to_string()),
        Err(error) => Shipped::Failed(error),
    }
}

/// A stored or refused record moves the position (a refused one is skipped);
/// any other failure stops following, to resume from the checkpoint.
fn accept(
    workload: &Workload,
    (shipped, position): (Shipped, Position),
) -> Result<Position, StreamError> {
    match shipped {
        Shipped::Stored(offset) => Ok(Position {
            offset: Some(offset),
            ..position
        }),
        Shipped::Refused(reason) => {
            tracing::warn!(
                container = workload.name,
                reason,
                "skipping a line Kafka refuses"
            );
            Ok(position)
        }
        Shipped::Failed(error) => Err(error.into()),
    }
}

fn record(workload: &Workload, line: LogLine) -> LogRecord {
    LogRecord {
        ts: line.ts,
        source: RecordSource::App,
        instance: workload.name.clone(),
        stream: line.stream,
        line: truncate(line.line),
    }
}

fn truncate(mut line: String) -> String {
    if line.len() > MAX_LINE_BYTES {
        let mut cut = MAX_LINE_BYTES;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push_str(" …[truncated]");
    }
    line
}

#[cfg(test)]
#[path = "follower_tests.rs"]
mod tests;
