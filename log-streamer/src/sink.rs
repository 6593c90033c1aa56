//! Where records go: [`berth_common::LogProducer`] (Kafka) in production.
//! Enqueueing and confirmation are separate steps so a follower can keep
//! many records in flight and still advance its checkpoint in order.

use async_trait::async_trait;
use berth_common::logs::{delivered, LogError};
use berth_common::LogProducer;
use berth_proto::LogRecord;
use futures::future::BoxFuture;
use futures::FutureExt;
use uuid::Uuid;

/// Resolves once the record is stored; to its offset.
pub type Delivery = BoxFuture<'static, Result<i64, LogError>>;

#[async_trait]
pub trait RecordSink: Send + Sync + 'static {
    /// Hands the record over without waiting for the broker (but waiting
    /// while the producer's queue is full).
    async fn enqueue(
        &self,
        app_id: Uuid,
        key: &str,
        record: &LogRecord,
    ) -> Result<Delivery, LogError>;
}

#[async_trait]
impl RecordSink for LogProducer {
    async fn enqueue(
        &self,
        app_id: Uuid,
        key: &str,
        record: &LogRecord,
    ) -> Result<Delivery, LogError> {
        let future = LogProducer::enqueue(self, app_id, key, record).await?;
        Ok(delivered(future).boxed())
    }
}
