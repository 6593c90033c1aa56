//! An in-memory [`LogSink`] for tests of what a process writes into apps'
//! logs.

use crate::logs::{LogError, LogSink};
use async_trait::async_trait;
use berth_proto::LogRecord;
use std::sync::Mutex;
use uuid::Uuid;

/// Every record appended, with the app and key it was appended under.
#[derive(Default)]
pub struct MemoryLog(Mutex<Vec<(Uuid, String, LogRecord)>>);

impl MemoryLog {
    pub fn records(&self) -> Vec<(Uuid, String, LogRecord)> {
        self.0.lock().expect("memory log poisoned").clone()
    }

    /// The lines appended to `app_id`'s log, in order.
    pub fn lines_of(&self, app_id: Uuid) -> Vec<String> {
        self.records()
            .into_iter()
            .filter(|(app, _, _)| *app == app_id)
            .map(|(_, _, record)| record.line)
            .collect()
    }
}

#[async_trait]
impl LogSink for MemoryLog {
    async fn append(&self, app_id: Uuid, key: &str, record: &LogRecord) -> Result<i64, LogError> {
        let mut records = self.0.lock().expect("memory log poisoned");
        records.push((app_id, key.to_owned(), record.clone()));
        Ok(records.len() as i64 - 1)
    }
}
