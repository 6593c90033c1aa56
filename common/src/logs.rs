//! Producing log records into an app's Kafka topic.
//!
//! Topics are created explicitly with one partition (a broker's auto-created
//! topics get several, which would break per-app ordering). The producer is
//! idempotent, so librdkafka's own retries never duplicate a line. When its
//! local queue is full the caller waits (backpressure) rather than dropping.

use async_trait::async_trait;
use berth_proto::{names, LogRecord};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashSet;
use std::time::Duration;
use tokio::sync::Mutex;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("the log broker cannot be configured: {0}")]
    Config(#[source] KafkaError),
    #[error("the log topic {topic} cannot be created: {reason}")]
    Topic { topic: String, reason: String },
    #[error("the log record was not stored: {0}")]
    Delivery(#[source] KafkaError),
    #[error("the log record can never be stored: {0}")]
    Rejected(#[source] KafkaError),
    #[error("the log topic cannot be read: {0}")]
    Read(#[source] KafkaError),
}

impl LogError {
    /// Retrying cannot help: the record itself is refused.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Rejected(_))
    }
}

/// Where log records go. Generic seam so workers can be tested without Kafka.
#[async_trait]
pub trait LogSink: Send + Sync + 'static {
    /// Appends `record` to the app's log and waits until it is stored;
    /// returns its offset.
    async fn append(&self, app_id: Uuid, key: &str, record: &LogRecord) -> Result<i64, LogError>;

    /// Appends `records` in this order and waits until all are stored;
    /// returns the offset of the last one (`None` when there are none).
    /// On failure it says how many of the first records were stored, so a
    /// retry sends only the rest. The default appends them one at a time;
    /// [`LogProducer`] hands them all to the producer first, so a batch
    /// costs one round trip, not one per record.
    async fn append_many(
        &self,
        app_id: Uuid,
        key: &str,
        records: &[LogRecord],
    ) -> Result<Option<i64>, PartlyStored> {
        let mut last = None;
        for (stored, record) in records.iter().enumerate() {
            match self.append(app_id, key, record).await {
                Ok(offset) => last = Some(offset),
                Err(error) => return Err(PartlyStored { stored, error }),
            }
        }
        Ok(last)
    }
}

/// A batch stored in part: its first `stored` records are in the log, the
/// rest are not.
#[derive(Debug, thiserror::Error)]
#[error("{error} ({stored} records of the batch were stored before it)")]
pub struct PartlyStored {
    pub stored: usize,
    #[source]
    pub error: LogError,
}

/// The header a record carries its writer's mark in: where the writer got
/// to in its source with this record (the log-streamer's position in a
/// container's log), so that after a crash it can learn from the topic what
/// it really stored (see [`LogProducer::last_mark`]).
pub const MARK_HEADER: &str = "berth-mark";

pub struct LogProducer {
    brokers: String,
    producer: FutureProducer,
    admin: AdminClient<DefaultClientContext>,
    created: Mutex<HashSet<String>>,
    retention_ms: String,
}

/// Errors that no retry fixes: the record is too large or malformed.
fn is_non_retryable(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidRecord
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::TopicAuthorizationFailed
        )
    )
}

impl LogProducer {
    pub fn new(brokers: &str, retention_hours: u64) -> Result<Self, LogError> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", brokers)
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "60000")
            .set("queue.buffering.max.messages", "100000");
        let producer: FutureProducer = config.create().map_err(LogError::Config)?;
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .create()
            .map_err(LogError::Config)?;
        Ok(Self {
            brokers: brokers.to_owned(),
            producer,
            admin,
            created: Mutex::new(HashSet::new()),
            retention_ms: (retention_hours * 3_600_000).to_string(),
        })
    }

    /// Creates the app's topic with one partition if it does not exist.
    pub async fn ensure_topic(&self, app_id: Uuid) -> Result<String, LogError> {
        let topic = names::log_topic(app_id);
        let mut created = self.created.lock().await;
        if created.contains(&topic) {
            return Ok(topic);
        }
        create_log_topic(&self.admin, &topic, &self.retention_ms).await?;
        created.insert(topic.clone());
        Ok(topic)
    }

    /// Hands the record to the producer without waiting for the broker;
    /// the returned future resolves when it is stored. Waits while the
    /// producer's local queue is full.
    pub async fn enqueue(
        &self,
        app_id: Uuid,
        key: &str,
        record: &LogRecord,
    ) -> Result<DeliveryFuture, LogError> {
        self.enqueue_marked(app_id, key, record, None).await
    }

    /// Like [`enqueue`](Self::enqueue), with `mark` in the record's
    /// [`MARK_HEADER`].
    pub async fn enqueue_marked(
        &self,
        app_id: Uuid,
        key: &str,
        record: &LogRecord,
        mark: Option<&str>,
    ) -> Result<DeliveryFuture, LogError> {
        let topic = self.ensure_topic(app_id).await?;
        let payload = record.to_json();
        let timestamp = record.ts.timestamp_millis();
        loop {
            let mut message = FutureRecord::to(&topic)
                .key(key)
                .payload(&payload)
                .partition(0)
                .timestamp(timestamp);
            if let Some(mark) = mark {
                message = message.headers(OwnedHeaders::new().insert(Header {
                    key: MARK_HEADER,
                    value: Some(mark),
                }));
            }
            match self.producer.send_result(message) {
                Ok(delivery) => return Ok(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    metrics::counter!("berth_log_producer_queue_full_total").increment(1);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err((error, _)) if is_non_retryable(&error) => {
                    return Err(LogError::Rejected(error))
                }
                Err((error, _)) => return Err(LogError::Delivery(error)),
            }
        }
    }
}

impl LogProducer {
    /// What the app's topic holds: the offset of its last record (`-1` when
    /// empty) and, when `after` is given, the [`MARK_HEADER`] of the last
    /// record keyed `key` after that offset whose mark starts with `prefix`
    /// (its writer: records of one key can come from several). Records are
    /// read from `after` to the end, so `after` should be recent (a
    /// writer's checkpoint).
    pub async fn last_mark(
        &self,
        app_id: Uuid,
        key: &str,
        prefix: &str,
        after: Option<i64>,
    ) -> Result<(i64, Option<String>), LogError> {
        let topic = self.ensure_topic(app_id).await?;
        let Some(after) = after else {
            // Only the end: the producer's own connection knows it, no
            // consumer needed.
            let producer = self.producer.clone();
            return tokio::task::spawn_blocking(move || {
                let (_, high) = producer
                    .client()
                    .fetch_watermarks(&topic, 0, Duration::from_secs(10))
                    .map_err(LogError::Read)?;
                Ok((high - 1, None))
            })
            .await
            .map_err(|_| LogError::Read(KafkaError::Canceled))?;
        };
        let (brokers, key, prefix) = (self.brokers.clone(), key.to_owned(), prefix.to_owned());
        tokio::task::spawn_blocking(move || scan_marks(&brokers, &topic, &key, &prefix, after))
            .await
            .map_err(|_| LogError::Read(KafkaError::Canceled))?
    }
}

fn scan_marks(
    brokers: &str,
    topic: &str,
    key: &str,
    prefix: &str,
    after: i64,
) -> Result<(i64, Option<String>), LogError> {
    const TIMEOUT: Duration = Duration::from_secs(10);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "berth-log-mark-reader")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("fetch.wait.max.ms", "50")
        .create()
        .map_err(LogError::Config)?;
    let (low, high) = consumer
        .fetch_watermarks(topic, 0, TIMEOUT)
        .map_err(LogError::Read)?;
    let end = high - 1;
    let from = (after + 1).max(low);
    if from >= high {
        return Ok((end, None));
    }
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Offset(from))
        .map_err(LogError::Read)?;
    consumer.assign(&assignment).map_err(LogError::Read)?;
    let deadline = std::time::Instant::now() + 3 * TIMEOUT;
    let mut mark = None;
    while std::time::Instant::now() < deadline {
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message.map_err(LogError::Read)?;
        if message.key() == Some(key.as_bytes()) {
            let headers = message.headers().into_iter().flat_map(|h| h.iter());
            let marks = headers
                .filter(|header| header.key == MARK_HEADER)
                .filter_map(|header| header.value)
                .map(|value| String::from_utf8_lossy(value).into_owned());
            if let Some(found) = marks.filter(|m| m.starts_with(prefix)).last() {
                mark = Some(found);
            }
        }
        if message.offset() >= end {
            return Ok((end, mark));
        }
    }
    // A scan that cannot finish (a backlog too long to read in time) must
    // not keep the writer from going on: it answers what it read, and the
    // writer may repeat a few records rather than stop.
    tracing::warn!(
        topic,
        from,
        end,
        "the topic's end was not reached in time; using what was read"
    );
    Ok((end, mark))
}

/// Waits for an enqueued record; returns its offset.
pub async fn delivered(future: DeliveryFuture) -> Result<i64, LogError> {
    match future.await {
        Ok(Ok(delivery)) => Ok(delivery.offset),
        Ok(Err((error, _))) if is_non_retryable(&error) => Err(LogError::Rejected(error)),
        Ok(Err((error, _))) => Err(LogError::Delivery(error)),
        Err(_) => Err(LogError::Delivery(KafkaError::Canceled)),
    }
}

#[async_trait]
impl LogSink for LogProducer {
    async fn append(&self, app_id: Uuid, key: &str, record: &LogRecord) -> Result<i64, LogError> {
        delivered(self.enqueue(app_id, key, record).await?).await
    }

    async fn append_many(
        &self,
        app_id: Uuid,
        key: &str,
        records: &[LogRecord],
    ) -> Result<Option<i64>, PartlyStored> {
        // Enqueue in order (one partition, idempotent producer: the topic
        // keeps this order, and a record after a failed one fails too),
        // then wait for every delivery.
        let mut pending = Vec::with_capacity(records.len());
        let mut refused = None;
        for record in records {
            match self.enqueue(app_id, key, record).await {
                Ok(delivery) => pending.push(delivery),
                Err(error) => {
                    refused = Some(error);
                    break;
                }
            }
        }
        let enqueued = pending.len();
        let mut last = None;
        for (stored, delivery) in pending.into_iter().enumerate() {
            match delivered(delivery).await {
                Ok(offset) => last = Some(offset),
                Err(error) => return Err(PartlyStored { stored, error }),
            }
        }
        match refused {
            Some(error) => Err(PartlyStored {
                stored: enqueued,
                error,
            }),
            None => Ok(last),
        }
    }
}

/// Creates a log topic; an existing topic is success.
pub async fn create_log_topic(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
    retention_ms: &str,
) -> Result<(), LogError> {
    let new_topic = NewTopic::new(topic, 1, TopicReplication::Fixed(1))
        .set("retention.ms", retention_ms)
        .set("cleanup.policy", "delete");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics([&new_topic], &options)
        .await
        .map_err(|e| LogError::Topic {
            topic: topic.to_owned(),
            reason: e.to_string(),
        })?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => {
                return Err(LogError::Topic {
                    topic: topic.to_owned(),
                    reason: code.to_string(),
                })
            }
        }
    }
    Ok(())
}
