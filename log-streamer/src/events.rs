//! Event records (`source: event`): a line per start, exit, OOM kill and
//! Kubernetes Event, and the streamer's own findings, stored once each.
//!
//! The events checkpoint moves once an event's record is stored, so a crash
//! between the two would store it again after the restart. Before storing,
//! the writer therefore notes the event as pending, with where the app's
//! topic ended ([`PendingEvent`]), and the record carries a mark (writer
//! [`EVENTS_WRITER`], the event's cursor as its second). A restart that
//! finds a pending event looks at the topic after that offset: when the
//! record is there, the event counts as stored and its replay is skipped.
//! A record whose delivery failed is looked for the same way before it is
//! sent again (a timeout on a record the broker did store).

use super::*;
use crate::checkpoint::{PendingEvent, Position};
use crate::error::StreamError;

/// The writer name in the marks of event records.
pub(super) const EVENTS_WRITER: &str = "events";

impl<S: LogSource, K: RecordSink> Streamer<S, K> {
    /// The events checkpoint after a crash: the pending event's cursor
    /// when its record is in the topic, else the cursor before it.
    pub(super) async fn recover_events_cursor(&self) -> Option<i64> {
        let store = &self.follower.store;
        let cursor = store.events_cursor()?;
        let Some(pending) = store.pending_event() else {
            return Some(cursor);
        };
        let mut backoff = Duration::from_millis(250);
        let stored = loop {
            match self.stored_since(&pending).await {
                Ok(stored) => break stored,
                Err(error) => {
                    tracing::warn!(%error, "cannot tell whether the last event was stored; retrying");
                    if self.pause(&mut backoff).await {
                        return Some(cursor);
                    }
                }
            }
        };
        let cursor = if stored { pending.cursor } else { cursor };
        if stored {
            tracing::info!(
                cursor,
                "the last event's record was stored before the stop; not storing it again"
            );
        }
        if let Err(error) = store.save_events_cursor(cursor) {
            tracing::error!(%error, "cannot save the events checkpoint");
        }
        Some(cursor)
    }

    /// Whether the pending event's record is in its topic.
    async fn stored_since(&self, pending: &PendingEvent) -> Result<bool, StreamError> {
        let (_, mark) = self
            .follower
            .sink
            .last_shipped(
                pending.app_id,
                &pending.key,
                EVENTS_WRITER,
                Some(pending.after),
            )
            .await?;
        Ok(mark.is_some_and(|mark| mark.second >= pending.cursor))
    }

    /// Ships event records in order and advances the events checkpoint once
    /// each is stored; retries a record until it is stored or shutdown.
    /// Once `written` fires, it ships what is queued and returns.
    pub(super) async fn write_events(
        self: Arc<Self>,
        mut pending: mpsc::Receiver<WorkloadEvent>,
        written: CancellationToken,
        mut cursor: i64,
    ) {
        loop {
            let event = tokio::select! {
                biased;
                event = pending.recv() => event,
                _ = written.cancelled() => pending.try_recv().ok(),
            };
            let Some(event) = event else {
                return;
            };
            let moves_cursor = event.is_the_runtimes();
            if let Some(line) = describe(&event) {
                let record = LogRecord {
                    ts: event.at,
                    source: RecordSource::Event,
                    instance: event.workload.name.clone(),
                    stream: LogStream::Stdout,
                    line,
                };
                let marked = moves_cursor.then_some(cursor);
                if !self.store_event(&event, &record, marked).await {
                    return;
                }
            }
            if moves_cursor {
                cursor = event.cursor;
                if let Err(error) = self.follower.store.save_events_cursor(cursor) {
                    tracing::error!(%error, "cannot save the events checkpoint");
                }
            }
        }
    }

    /// Stores one event record; with `marked` (the events checkpoint so
    /// far), as a pending event that is stored once. False on shutdown.
    async fn store_event(
        &self,
        event: &WorkloadEvent,
        record: &LogRecord,
        marked: Option<i64>,
    ) -> bool {
        let workload = &event.workload;
        let sink = &self.follower.sink;
        let mark = Position {
            second: event.cursor,
            lines: 0,
            offset: None,
        };
        let mut backoff = Duration::from_millis(250);
        let mut pending = None;
        loop {
            let attempt = async {
                if let Some(before) = marked {
                    match &pending {
                        // A delivery that failed may still have been stored.
                        Some(noted) => {
                            if self.stored_since(noted).await? {
                                return Ok(());
                            }
                        }
                        None => {
                            let (after, _) = sink
                                .last_shipped(workload.app_id, &workload.key, EVENTS_WRITER, None)
                                .await?;
                            let noted = PendingEvent {
                                cursor: event.cursor,
                                app_id: workload.app_id,
                                key: workload.key.clone(),
                                after,
                            };
                            self.follower
                                .store
                                .save_pending_event(before, noted.clone())?;
                            pending = Some(noted);
                        }
                    }
                }
                let delivery = sink
                    .enqueue(
                        workload.app_id,
                        &workload.key,
                        record,
                        marked.map(|_| (EVENTS_WRITER, mark)),
                    )
                    .await?;
                delivery.await?;
                Ok::<(), StreamError>(())
            };
            match attempt.await {
                Ok(()) => {
                    metrics::counter!("berth_log_event_records_total").increment(1);
                    return true;
                }
                Err(StreamError::Log(error)) if error.is_permanent() => {
                    tracing::warn!(%error, "dropping an event record Kafka refuses");
                    return true;
                }
                Err(error) => {
                    tracing::warn!(%error, "an event record was not stored; retrying");
                    if self.pause(&mut backoff).await {
                        return false;
                    }
                }
            }
        }
    }
}

/// The line a user sees for a lifecycle event.
fn describe(event: &WorkloadEvent) -> Option<String> {
    let name = &event.workload.name;
    Some(match &event.kind {
        Lifecycle::Started => format!("instance {name} started"),
        Lifecycle::Died {
            exit_code: Some(code),
        } => match signal_name(*code) {
            Some(signal) => format!("instance {name} exited with code {code} ({signal})"),
            None => format!("instance {name} exited with code {code}"),
        },
        Lifecycle::Died { exit_code: None } => format!("instance {name} exited"),
        Lifecycle::OutOfMemory => {
            format!("instance {name} was killed: it ran out of memory (raise its memory limit)")
        }
        Lifecycle::Reported { reason, message } => format!("{reason}: {message}"),
        Lifecycle::LinesLost { after } => match DateTime::from_timestamp(*after, 0) {
            Some(after) if after.timestamp() > 0 => format!(
                "instance {name} was removed before berth read all of its log: \
                 lines it printed after {} may be missing",
                after.format("%Y-%m-%d %H:%M:%S UTC")
            ),
            _ => format!(
                "instance {name} was removed before berth read its log: its lines may be missing"
            ),
        },
        Lifecycle::Removed => return None,
    })
}

/// What an exit code above 128 says: the process died of a signal.
fn signal_name(code: i64) -> Option<&'static str> {
    Some(match code.checked_sub(128)? {
        2 => "interrupted, SIGINT",
        6 => "aborted, SIGABRT",
        9 => "killed, SIGKILL: out of memory or not stopping in time",
        11 => "crashed, SIGSEGV",
        15 => "stopped, SIGTERM",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn event(kind: Lifecycle) -> WorkloadEvent {
        WorkloadEvent {
            workload: Workload {
                id: "c".into(),
                name: "berth-acme-web-0123".into(),
                app_id: Uuid::now_v7(),
                key: "d".into(),
                running: false,
            },
            kind,
            at: chrono::Utc::now(),
            cursor: 1,
        }
    }

    #[test]
    fn lifecycle_lines_say_what_happened() {
        let line = |kind| describe(&event(kind));
        assert_eq!(
            line(Lifecycle::Started).unwrap(),
            "instance berth-acme-web-0123 started"
        );
        assert_eq!(
            line(Lifecycle::Died { exit_code: Some(1) }).unwrap(),
            "instance berth-acme-web-0123 exited with code 1"
        );
        assert_eq!(
            line(Lifecycle::Died {
                exit_code: Some(143)
            })
            .unwrap(),
            "instance berth-acme-web-0123 exited with code 143 (stopped, SIGTERM)"
        );
        assert!(line(Lifecycle::OutOfMemory)
            .unwrap()
            .contains("out of memory"));
        assert_eq!(
            line(Lifecycle::Reported {
                reason: "BackOff".into(),
                message: "Back-off restarting failed container web".into()
            })
            .unwrap(),
            "BackOff: Back-off restarting failed container web"
        );
        assert_eq!(line(Lifecycle::Removed), None);
    }
}
