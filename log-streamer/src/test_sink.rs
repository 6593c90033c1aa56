//! A [`RecordSink`] in memory for unit tests: stores what it is given, as
//! one topic does (offsets, marks), and can fail one delivery.

use async_trait::async_trait;
use berth_common::logs::LogError;
use berth_proto::LogRecord;
use futures::FutureExt;
use rdkafka::error::KafkaError;
use std::sync::Mutex;
use uuid::Uuid;

use crate::checkpoint::Position;
use crate::sink::{Delivery, RecordSink};

/// A stored record: app, key, the record and its mark (workload, position).
type Stored = (Uuid, String, LogRecord, Option<(String, Position)>);

/// Stores records, each at the next offset of one topic with its mark;
/// the delivery of enqueue number `fail_at` (from 1) fails.
#[derive(Default)]
pub struct MemorySink {
    records: Mutex<Vec<Stored>>,
    enqueued: Mutex<usize>,
    pub fail_at: Mutex<Option<usize>>,
}

impl MemorySink {
    /// `(app, key, record)` of every stored record, in order.
    pub fn records(&self) -> Vec<(Uuid, String, LogRecord)> {
        let records = self.records.lock().unwrap();
        records
            .iter()
            .map(|(app, key, record, _)| (*app, key.clone(), record.clone()))
            .collect()
    }

    /// The lines of the stored records, in order.
    pub fn lines(&self) -> Vec<String> {
        let records = self.records.lock().unwrap();
        records
            .iter()
            .map(|(_, _, record, _)| record.line.clone())
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
        mark: Option<(&str, Position)>,
    ) -> Result<Delivery, LogError> {
        let mark = mark.map(|(workload, position)| (workload.to_owned(), position));
        let mut enqueued = self.enqueued.lock().unwrap();
        *enqueued += 1;
        if *self.fail_at.lock().unwrap() == Some(*enqueued) {
            return Ok(async { Err(LogError::Delivery(KafkaError::Canceled)) }.boxed());
        }
        let mut records = self.records.lock().unwrap();
        records.push((app_id, key.to_owned(), record.clone(), mark));
        let offset = records.len() as i64 - 1;
        Ok(async move { Ok(offset) }.boxed())
    }

    async fn last_shipped(
        &self,
        _app_id: Uuid,
        key: &str,
        workload: &str,
        after: Option<i64>,
    ) -> Result<(i64, Option<Position>), LogError> {
        let records = self.records.lock().unwrap();
        let end = records.len() as i64 - 1;
        let Some(after) = after else {
            return Ok((end, None));
        };
        let from = usize::try_from(after + 1).unwrap_or(0);
        let mark = records
            .iter()
            .skip(from)
            .filter_map(|(_, k, _, mark)| (k == key).then_some(mark.as_ref()?))
            .rfind(|(writer, _)| writer == workload)
            .map(|(_, position)| *position);
        Ok((end, mark))
    }
}
