//! [`LogReader`] over Kafka: one consumer per read or follow, assigned to
//! partition 0 of the app's topic (berth's log topics have exactly one), with
//! no consumer group, so readers never affect each other.
//!
//! A read by time on a broker that cannot find offsets by time (tansu)
//! scans from the start and skips older entries; a REST read scans at most
//! its budget of records (`DEFAULT_SCAN_BUDGET`), then answers what it
//! found with `truncated` and the offset to go on from.

use super::{Followed, LogEntry, LogPage, LogReadError, LogReader, Skip, StartAt};
use async_trait::async_trait;
use berth_common::logs::create_log_topic;
use berth_proto::{names, LogRecord};
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Mutex};
use uuid::Uuid;

const METADATA_TIMEOUT: Duration = Duration::from_secs(5);
/// A follower's buffer; a slow client applies backpressure to its own
/// consumer only.
const FOLLOW_BUFFER: usize = 256;
/// Records one REST read may receive from the broker, kept or skipped.
/// Higher than the largest page (5000), so only skipping stops early.
pub const DEFAULT_SCAN_BUDGET: usize = 10_000;

pub struct KafkaLogReader {
    brokers: String,
    admin: AdminClient<DefaultClientContext>,
    retention_ms: String,
    known_topics: Mutex<HashSet<String>>,
    scan_budget: usize,
}

fn unavailable(error: impl std::fmt::Display) -> LogReadError {
    LogReadError::Unavailable(error.to_string())
}

impl KafkaLogReader {
    pub fn new(brokers: &str, retention_hours: u64) -> Result<Self, LogReadError> {
        let admin = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .create()
            .map_err(unavailable)?;
        Ok(Self {
            brokers: brokers.to_owned(),
            admin,
            retention_ms: (retention_hours * 3_600_000).to_string(),
            known_topics: Mutex::new(HashSet::new()),
            scan_budget: DEFAULT_SCAN_BUDGET,
        })
    }

    /// Reads receive at most `records` from the broker (at least their
    /// `limit`).
    pub fn with_scan_budget(mut self, records: usize) -> Self {
        self.scan_budget = records.max(1);
        self
    }

    /// Creating the topic up front (one partition) means a reader never
    /// makes the broker auto-create it with its default partition count.
    async fn topic(&self, app_id: Uuid) -> Result<String, LogReadError> {
        let topic = names::log_topic(app_id);
        let mut known = self.known_topics.lock().await;
        if !known.contains(&topic) {
            create_log_topic(&self.admin, &topic, &self.retention_ms)
                .await
                .map_err(unavailable)?;
            known.insert(topic.clone());
        }
        Ok(topic)
    }

    fn consumer(&self) -> Result<Arc<StreamConsumer>, LogReadError> {
        ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", "berth-backend-log-reader")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("allow.auto.create.topics", "false")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", "50")
            .create()
            .map(Arc::new)
            .map_err(unavailable)
    }

    /// Assigns `consumer` to the topic at the offset `start` names; returns
    /// that offset, the high watermark (the offset the next write gets),
    /// and the skip when the offset asked for is no longer in the log.
    async fn position(
        consumer: Arc<StreamConsumer>,
        topic: String,
        start: StartAt,
    ) -> Result<(i64, i64, Option<Skip>), LogReadError> {
        tokio::task::spawn_blocking(move || {
            let (low, high) = consumer
                .fetch_watermarks(&topic, 0, METADATA_TIMEOUT)
                .map_err(unavailable)?;
            let skipped = match start {
                StartAt::Offset(offset) | StartAt::TimeFrom(offset, _) => {
                    Skip::between(offset, low, high)
                }
                StartAt::Beginning | StartAt::Time(_) => None,
            };
            let offset = match start {
                StartAt::Beginning => low,
                StartAt::Offset(offset) | StartAt::TimeFrom(offset, _) => offset.clamp(low, high),
                StartAt::Time(time) => {
                    let mut query = TopicPartitionList::new();
                    query
                        .add_partition_offset(&topic, 0, Offset::Offset(time.timestamp_millis()))
                        .map_err(unavailable)?;
                    // Brokers that cannot answer by time get a scan from the
                    // start; `ts` filtering below keeps the answer right.
                    match consumer.offsets_for_times(query, METADATA_TIMEOUT) {
                        Ok(found) => match found.find_partition(&topic, 0).map(|p| p.offset()) {
                            Some(Offset::Offset(offset)) => offset.clamp(low, high),
                            Some(Offset::End) => high,
                            _ => low,
                        },
                        Err(_) => low,
                    }
                }
            };
            let mut assignment = TopicPartitionList::new();
            assignment
                .add_partition_offset(&topic, 0, Offset::Offset(offset))
                .map_err(unavailable)?;
            consumer.assign(&assignment).map_err(unavailable)?;
            Ok((offset, high, skipped))
        })
        .await
        .map_err(unavailable)?
    }
}

/// The entry a stored message holds; `None` for a record that is not a log
/// record (it is skipped, with a warning, rather than ending the stream).
fn entry(message: &BorrowedMessage<'_>) -> Option<LogEntry> {
    let payload = message.payload()?;
    match serde_json::from_slice::<LogRecord>(payload) {
        Ok(record) => Some(LogEntry {
            offset: message.offset(),
            deployment_id: message
                .key()
                .map(|key| String::from_utf8_lossy(key).into_owned()),
            record,
        }),
        Err(error) => {
            tracing::warn!(topic = message.topic(), offset = message.offset(), %error,
                "skipping a log record that is not valid");
            None
        }
    }
}

fn wanted(entry: &LogEntry, start: StartAt) -> bool {
    match start {
        StartAt::Time(time) | StartAt::TimeFrom(_, time) => entry.record.ts >= time,
        _ => true,
    }
}

#[async_trait]
impl LogReader for KafkaLogReader {
    async fn read(
        &self,
        app_id: Uuid,
        start: StartAt,
        limit: usize,
    ) -> Result<LogPage, LogReadError> {
        let topic = self.topic(app_id).await?;
        let consumer = self.consumer()?;
        let (first, high, skipped) = Self::position(consumer.clone(), topic, start).await?;
        let mut page = LogPage {
            entries: Vec::new(),
            next_offset: first,
            truncated: false,
            skipped,
        };
        let budget = self.scan_budget.max(limit);
        let mut scanned = 0;
        while page.next_offset < high && page.entries.len() < limit {
            if scanned == budget {
                page.truncated = true;
                break;
            }
            let message = tokio::time::timeout(METADATA_TIMEOUT, consumer.recv())
                .await
                .map_err(|_| unavailable("timed out reading the log"))?
                .map_err(unavailable)?;
            scanned += 1;
            page.next_offset = message.offset() + 1;
            if let Some(entry) = entry(&message).filter(|e| wanted(e, start)) {
                page.entries.push(entry);
            }
        }
        metrics::histogram!("berth_log_read_scanned_records").record(scanned as f64);
        Ok(page)
    }

    async fn follow(&self, app_id: Uuid, start: StartAt) -> Result<Followed, LogReadError> {
        let topic = self.topic(app_id).await?;
        let consumer = self.consumer()?;
        let (_, _, skipped) = Self::position(consumer.clone(), topic, start).await?;
        let (sender, receiver) = mpsc::channel(FOLLOW_BUFFER);
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    _ = sender.closed() => return,
                    next = consumer.recv() => next,
                };
                let item = match next {
                    Ok(message) => match entry(&message).filter(|e| wanted(e, start)) {
                        Some(entry) => Ok(entry),
                        None => continue,
                    },
                    Err(error) => Err(unavailable(error)),
                };
                let failed = item.is_err();
                if sender.send(item).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Followed {
            skipped,
            entries: receiver,
        })
    }
}
