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

use crate::checkpoint::Position;

/// Resolves once the record is stored; to its offset.
pub type Delivery = BoxFuture<'static, Result<i64, LogError>>;

#[async_trait]
pub trait RecordSink: Send + Sync + 'static {
    /// Hands the record over without waiting for the broker (but waiting
    /// while the producer's queue is full). `mark`, the workload and the
    /// follower's position in its log after this line, is stored with the
    /// record.
    async fn enqueue(
        &self,
        app_id: Uuid,
        key: &str,
        record: &LogRecord,
        mark: Option<(&str, Position)>,
    ) -> Result<Delivery, LogError>;

    /// The offset of the app's last stored record (`-1`: none), and, when
    /// `after` is given, the position of `workload`'s last record keyed
    /// `key` stored after that offset.
    async fn last_shipped(
        &self,
        app_id: Uuid,
        key: &str,
        workload: &str,
        after: Option<i64>,
    ) -> Result<(i64, Option<Position>), LogError>;
}

#[async_trait]
impl RecordSink for LogProducer {
    async fn enqueue(
        &self,
        app_id: Uuid,
        key: &str,
        record: &LogRecord,
        mark: Option<(&str, Position)>,
    ) -> Result<Delivery, LogError> {
        let mark = mark.map(|(workload, position)| position.mark(workload));
        let future = self
            .enqueue_marked(app_id, key, record, mark.as_deref())
            .await?;
        Ok(delivered(future).boxed())
    }

    async fn last_shipped(
        &self,
        app_id: Uuid,
        key: &str,
        workload: &str,
        after: Option<i64>,
    ) -> Result<(i64, Option<Position>), LogError> {
        let prefix = format!("{workload} ");
        let (end, mark) = self.last_mark(app_id, key, &prefix, after).await?;
        Ok((
            end,
            mark.and_then(|mark| Position::from_mark(&mark, workload)),
        ))
    }
}
