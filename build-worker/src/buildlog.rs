//! A build's log: every line goes to the app's Kafka topic as a
//! `source: build` record, keyed by the deployment id.
//!
//! Lines go through a bounded queue to a forwarder task that stores them in
//! batches, in order. A slow or absent log broker must not hold the build
//! up for long, and must not lose lines without a trace: when the queue is
//! full, a line waits, but each build may wait for at most
//! [`LogSettings::stall_budget`] in all; after that, lines that find the
//! queue full are dropped, counted in `berth_build_log_lines_dropped_total`
//! and reported in a warning (and at the end of the build).

use berth_common::LogSink;
use berth_proto::{LogRecord, LogSource, LogStream};
use chrono::Utc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinHandle;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct LogSettings {
    /// Lines buffered between the build and the log broker.
    pub queue: usize,
    /// How long, in all, one build may wait for room in the queue.
    pub stall_budget: Duration,
    /// How long the end of a build waits for its last lines to be stored.
    pub flush_timeout: Duration,
    /// Attempts to store one batch before it is dropped.
    pub attempts: u32,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            queue: 10_000,
            stall_budget: Duration::from_secs(30),
            flush_timeout: Duration::from_secs(20),
            attempts: 3,
        }
    }
}

/// The most records stored in one batch.
const BATCH: usize = 500;
/// Longer lines are cut (minified output, progress bars without newlines).
const MAX_LINE: usize = 16 * 1024;

/// The `instance` of a build's records: `build-<first 8 of the deployment id>`.
pub fn instance(deployment_id: Uuid) -> String {
    format!("build-{}", &deployment_id.simple().to_string()[..8])
}

#[derive(Debug, Default)]
struct Counters {
    /// Lines not stored: queue full past the stall budget, or the broker failed.
    dropped: AtomicU64,
    /// Lines in the queue or being stored.
    pending: AtomicU64,
}

/// One build's log. Lines are `stdout` records of `source: build`.
pub struct BuildLog {
    tx: mpsc::Sender<LogRecord>,
    instance: String,
    counters: Arc<Counters>,
    stall_left: Mutex<Duration>,
    forwarder: JoinHandle<()>,
    flush_timeout: Duration,
    deployment_id: Uuid,
}

impl BuildLog {
    pub fn start(
        sink: Arc<dyn LogSink>,
        app_id: Uuid,
        deployment_id: Uuid,
        settings: &LogSettings,
    ) -> Self {
        let (tx, rx) = mpsc::channel(settings.queue.max(1));
        let counters = Arc::new(Counters::default());
        let forwarder = tokio::spawn(forward(
            sink,
            app_id,
            deployment_id.to_string(),
            rx,
            counters.clone(),
            settings.attempts.max(1),
        ));
        Self {
            tx,
            instance: instance(deployment_id),
            counters,
            stall_left: Mutex::new(settings.stall_budget),
            forwarder,
            flush_timeout: settings.flush_timeout,
            deployment_id,
        }
    }

    /// Appends one line (a trailing newline is removed).
    pub async fn line(&self, text: impl Into<String>) {
        let mut line: String = text.into();
        while line.ends_with('\n') || line.ends_with('\r') {
            line.pop();
        }
        if line.len() > MAX_LINE {
            // A record the broker refuses would take its whole batch with it.
            let mut cut = MAX_LINE;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push_str(" … (line cut at 16 KiB)");
        }
        tracing::debug!(deployment_id = %self.deployment_id, line = %line, "build");
        let record = LogRecord {
            ts: Utc::now(),
            source: LogSource::Build,
            instance: self.instance.clone(),
            stream: LogStream::Stdout,
            line,
        };
        metrics::counter!("berth_build_log_lines_total").increment(1);
        self.counters.pending.fetch_add(1, Ordering::Relaxed);
        let record = match self.tx.try_send(record) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(record)) => record,
            Err(mpsc::error::TrySendError::Closed(_)) => return self.drop_lines(1),
        };
        // The queue is full: wait, within what is left of the budget.
        let mut left = self.stall_left.lock().await;
        let started = Instant::now();
        let sent = !left.is_zero()
            && matches!(
                tokio::time::timeout(*left, self.tx.send(record)).await,
                Ok(Ok(()))
            );
        *left = left.saturating_sub(started.elapsed());
        if !sent {
            self.drop_lines(1);
        }
    }

    fn drop_lines(&self, count: u64) {
        self.counters.pending.fetch_sub(count, Ordering::Relaxed);
        let before = self.counters.dropped.fetch_add(count, Ordering::Relaxed);
        metrics::counter!("berth_build_log_lines_dropped_total").increment(count);
        if before == 0 {
            tracing::warn!(deployment_id = %self.deployment_id,
                "the log broker is too slow; dropping build log lines (see berth_build_log_lines_dropped_total)");
        }
    }

    /// Lines dropped so far.
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// Waits (at most the flush timeout) for the queued lines to be stored;
    /// returns how many lines of this build were not stored.
    pub async fn finish(self) -> u64 {
        let Self {
            tx,
            counters,
            mut forwarder,
            flush_timeout,
            deployment_id,
            ..
        } = self;
        drop(tx);
        if tokio::time::timeout(flush_timeout, &mut forwarder)
            .await
            .is_err()
        {
            forwarder.abort();
            let lost = counters.pending.swap(0, Ordering::Relaxed);
            counters.dropped.fetch_add(lost, Ordering::Relaxed);
            metrics::counter!("berth_build_log_lines_dropped_total").increment(lost);
        }
        let dropped = counters.dropped.load(Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(%deployment_id, dropped, "build log lines were not stored");
        }
        dropped
    }
}

async fn forward(
    sink: Arc<dyn LogSink>,
    app_id: Uuid,
    key: String,
    mut rx: mpsc::Receiver<LogRecord>,
    counters: Arc<Counters>,
    attempts: u32,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let count = batch.len() as u64;
        // Lines of the batch stored already: a retry sends only the rest,
        // so a broker failing mid-batch repeats no line (F22).
        let mut sent = 0;
        let mut attempt = 0;
        while sent < batch.len() {
            attempt += 1;
            let Err(partly) = sink.append_many(app_id, &key, &batch[sent..]).await else {
                break;
            };
            sent += partly.stored;
            let error = partly.error;
            if error.is_permanent() {
                // That one line can never be stored; the others can.
                tracing::warn!(%error, "a build log line could not be stored");
                counters.dropped.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("berth_build_log_lines_dropped_total").increment(1);
                sent += 1;
            } else if attempt >= attempts {
                let lost = (batch.len() - sent) as u64;
                tracing::warn!(%error, lines = lost, "build log lines could not be stored");
                counters.dropped.fetch_add(lost, Ordering::Relaxed);
                metrics::counter!("berth_build_log_lines_dropped_total").increment(lost);
                break;
            } else {
                tracing::debug!(%error, attempt, "storing build log lines failed; retrying");
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
        }
        counters.pending.fetch_sub(count, Ordering::Relaxed);
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use berth_common::logs::LogError;

    /// An in-memory sink: the one seam that is faked, to make it slow on purpose.
    #[derive(Default)]
    struct Memory {
        lines: std::sync::Mutex<Vec<(Uuid, String, LogRecord)>>,
        delay: Duration,
    }

    #[async_trait]
    impl LogSink for Memory {
        async fn append(&self, app: Uuid, key: &str, record: &LogRecord) -> Result<i64, LogError> {
            tokio::time::sleep(self.delay).await;
            let mut lines = self.lines.lock().unwrap();
            lines.push((app, key.to_owned(), record.clone()));
            Ok(lines.len() as i64 - 1)
        }
    }

    #[tokio::test]
    async fn lines_arrive_in_order_as_build_records_keyed_by_deployment() {
        let sink = Arc::new(Memory::default());
        let (app, deployment) = (Uuid::now_v7(), Uuid::now_v7());
        let log = BuildLog::start(sink.clone(), app, deployment, &LogSettings::default());
        for i in 0..1000 {
            log.line(format!("line {i}\n")).await;
        }
        assert_eq!(log.finish().await, 0);
        let lines = sink.lines.lock().unwrap();
        assert_eq!(lines.len(), 1000);
        for (i, (a, key, record)) in lines.iter().enumerate() {
            assert_eq!((*a, key.as_str()), (app, deployment.to_string().as_str()));
            assert_eq!(record.line, format!("line {i}"));
            assert_eq!(record.source, LogSource::Build);
            assert_eq!(record.stream, LogStream::Stdout);
            assert_eq!(record.instance, instance(deployment));
        }
        assert_eq!(instance(deployment).len(), "build-".len() + 8);
    }

    /// Stores half of its second batch, then fails (a broker restart in
    /// the middle of a batch).
    #[derive(Default)]
    struct FailsMidBatch {
        memory: Memory,
        batches: std::sync::atomic::AtomicUsize,
    }

    #[async_trait]
    impl LogSink for FailsMidBatch {
        async fn append(&self, app: Uuid, key: &str, record: &LogRecord) -> Result<i64, LogError> {
            self.memory.append(app, key, record).await
        }

        async fn append_many(
            &self,
            app: Uuid,
            key: &str,
            records: &[LogRecord],
        ) -> Result<Option<i64>, berth_common::logs::PartlyStored> {
            let half = if self.batches.fetch_add(1, Ordering::SeqCst) == 1 {
                records.len() / 2
            } else {
                records.len()
            };
            let mut last = None;
            for record in &records[..half] {
                last = Some(self.memory.append(app, key, record).await.unwrap());
            }
            if half < records.len() {
                let error = LogError::Delivery(rdkafka::error::KafkaError::Canceled);
                return Err(berth_common::logs::PartlyStored {
                    stored: half,
                    error,
                });
            }
            Ok(last)
        }
    }

    /// F22 of the reliability review: a batch that failed after half of it
    /// was stored is retried from where it stopped; no line twice.
    #[tokio::test]
    async fn a_batch_stored_in_part_is_retried_without_repeating_a_line() {
        let sink = Arc::new(FailsMidBatch::default());
        let log = BuildLog::start(
            sink.clone(),
            Uuid::now_v7(),
            Uuid::now_v7(),
            &LogSettings::default(),
        );
        for i in 0..1000 {
            log.line(format!("line {i}")).await;
        }
        assert_eq!(log.finish().await, 0);
        assert!(
            sink.batches.load(Ordering::SeqCst) > 2,
            "a batch was retried"
        );
        let lines: Vec<String> = sink
            .memory
            .lines
            .lock()
            .unwrap()
            .iter()
            .map(|(_, _, r)| r.line.clone())
            .collect();
        let expected: Vec<String> = (0..1000).map(|i| format!("line {i}")).collect();
        assert_eq!(lines, expected);
    }

    #[tokio::test]
    async fn very_long_lines_are_cut() {
        let sink = Arc::new(Memory::default());
        let log = BuildLog::start(
            sink.clone(),
            Uuid::now_v7(),
            Uuid::now_v7(),
            &LogSettings::default(),
        );
        log.line("é".repeat(MAX_LINE)).await;
        log.finish().await;
        let line = &sink.lines.lock().unwrap()[0].2.line;
        assert!(line.len() < MAX_LINE + 40, "{}", line.len());
        assert!(line.ends_with("(line cut at 16 KiB)"));
    }

    #[tokio::test]
    async fn a_slow_sink_costs_the_build_at_most_the_stall_budget_and_drops_are_counted() {
        let sink = Arc::new(Memory {
            delay: Duration::from_millis(50),
            ..Default::default()
        });
        let settings = LogSettings {
            queue: 4,
            stall_budget: Duration::from_millis(200),
            flush_timeout: Duration::from_millis(300),
            attempts: 1,
        };
        let log = BuildLog::start(sink.clone(), Uuid::now_v7(), Uuid::now_v7(), &settings);
        let started = Instant::now();
        for i in 0..200 {
            log.line(format!("line {i}")).await;
        }
        let spent = started.elapsed();
        assert!(
            spent < Duration::from_millis(600),
            "the build waited {spent:?}"
        );
        let dropped = log.finish().await;
        let stored = sink.lines.lock().unwrap().len() as u64;
        assert!(dropped > 0, "nothing was dropped");
        // A batch cut off by the flush timeout may be stored in part and
        // still counted: never less than every line.
        assert!(
            stored + dropped >= 200,
            "{stored} stored + {dropped} dropped"
        );
    }
}
