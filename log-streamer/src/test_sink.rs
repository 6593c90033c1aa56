//! A [`RecordSink`] in memory for unit tests: stores what it is given, and
//! can fail one delivery.

use async_trait::async_trait;
use berth_common::logs::LogError;
use berth_proto::LogRecord;
use futures::FutureExt;
use rdkafka::error::KafkaError;
use std::sync::Mutex;
use uuid::Uuid;

use crate::sink::{Delivery, RecordSink};

/// Stores records; the delivery of enqueue number `fail_at` (from 1) fails.
#[derive(Default)]
pub struct MemorySink {
    records: Mutex<Vec<(Uuid, String, LogRecord)>>,
    enqueued: Mutex<usize>,
    pub fail_at: Mutex<Option<usize>>,
}

impl MemorySink {
    /// `(app, key, record)` of every stored record, in order.
    pub fn records(&self) -> Vec<(Uuid, String, LogRecord)> {
        self.records.lock().unwrap().clone()
    }

    /// The lines of the stored records, in order.
    pub fn lines(&self) -> Vec<String> {
        let records = self.records.lock().unwrap();
        records
            .iter()
            .map(|(_, _, record)| record.line.clone())
            .collect()
    }
}

#[async_trait]
impl RecordSink for MemorySink {
    async fn enqueue(
        &self,
        app_id: Uuid,
        key: &str,
        record: &LogRecord,
    ) -> Result<Delivery, LogError> {
        let mut enqueued = self.enqueued.lock().unwrap();
        *enqueued += 1;
        if *self.fail_at.lock().unwrap() == Some(*enqueued) {
            return Ok(async { Err(LogError::Delivery(KafkaError::Canceled)) }.boxed());
        }
        let stored = (app_id, key.to_owned(), record.clone());
        self.records.lock().unwrap().push(stored);
        Ok(async { Ok(0) }.boxed())
    }
}
