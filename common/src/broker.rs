//! RabbitMQ, supervised.
//!
//! [`Broker`] owns one connection for publishing (with publisher confirms
//! and a timeout on every publish) and opens a dedicated connection per
//! consumer loop. Every connection is re-established on demand or at once
//! after it was lost, so a process that lost its broker recovers by itself.
//!
//! What a consumer does with a message, by the handler's [`Outcome`]:
//! * `Done`: ack (the handler's effect is durable).
//! * `Retry(reason)`: a passing failure. The message is copied, with
//!   publisher confirm, into the queue's retry queue for the next delay of
//!   the broker's [`RetryPolicy`] (1 s, 5 s, 20 s, 1 min, then every 2 min
//!   by default), then the original is acked: the broker puts the copy back
//!   on the work queue when the delay is over. Retries do not count against
//!   the work queue's delivery limit and hold no delivery unacked. When the
//!   next delay would take the total wait past the budget (15 min by
//!   default), the message is dead-lettered with `reason`, as for `Reject`.
//! * `Reject(reason)`: the message can never be handled: it is re-published
//!   to `Q.dead` with `reason` in the `x-berth-reason` header, then acked.
//!   So is anything the consumer cannot decode.
//! * A handler that panics is treated as `Retry` with the panic's message.
//!
//! The broker itself dead-letters to `Q.dead` a message delivered
//! [`DELIVERY_LIMIT`] times without being settled (consumers that crashed
//! or lost their connection while handling it). Dead-letter queues keep at
//! most [`DEAD_LETTER_MAX_LENGTH`] messages for [`DEAD_LETTER_TTL`];
//! [`Broker::consume_dead_letters`] reads them.
//!
//! A handler sees, in [`DeliveryInfo`], how often the message was retried
//! and whether it is a redelivery. When a consumer's connection is lost,
//! the loop reconnects at once and cancels [`DeliveryInfo::lost`] for every
//! delivery still being handled: the broker has requeued those messages,
//! whatever their handlers return is dropped, and long work should stop.
//! Those handlers keep their concurrency slot until they return, so a
//! consumer never runs more than `concurrency` handlers at once.

mod consumer;
mod dead_letters;
mod publisher;
mod retry;
mod topology;

pub use dead_letters::{DeadLetter, DeadLetterHandler};
pub use retry::{DeliveryInfo, RetryPolicy, DEFAULT_BUDGET, DEFAULT_TIERS};
pub use topology::{declare_topology, DEAD_LETTER_MAX_LENGTH, DEAD_LETTER_TTL, DELIVERY_LIMIT};

use async_trait::async_trait;
use berth_proto::{Envelope, Message, Payload};
use lapin::{Channel, Connection, ConnectionProperties};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use uuid::Uuid;

/// How long a publish may take, confirm included, unless set otherwise.
pub const DEFAULT_PUBLISH_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("the message broker is unreachable: {0}")]
    Unreachable(#[from] lapin::Error),
    #[error("the message broker refused the message")]
    Nacked,
    #[error("no queue is bound for routing key `{0}`")]
    Unroutable(String),
    #[error("the message broker did not confirm within {0:?}")]
    Timeout(Duration),
}

/// What a handler decided about one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The effect is durable: ack.
    Done,
    /// A passing failure: try again after a delay that grows with every
    /// retry; dead-letter with this reason once the retry budget is spent.
    Retry(String),
    /// The message can never be handled: dead-letter it with this reason.
    Reject(String),
}

#[async_trait]
pub trait Handler: Send + Sync + 'static {
    async fn handle(&self, envelope: Envelope, message: Message, delivery: DeliveryInfo)
        -> Outcome;

    /// Called once a `Retry` is scheduled: the message comes back after
    /// `delay`. Handlers tell the deployment's users why it waits and when
    /// it is tried again; by default nothing happens.
    async fn retrying(&self, _envelope: &Envelope, _delay: Duration, _reason: &str) {}
}

/// Publishing seam: [`Broker`] in production, a recorder in unit tests.
#[async_trait]
pub trait MessagePublisher: Send + Sync + 'static {
    /// Publishes to the `berth` exchange and waits for the broker's confirm.
    async fn publish(&self, routing_key: &str, envelope: &Envelope) -> Result<(), BrokerError>;

    /// Wraps `payload` in a fresh envelope and publishes it to its queue.
    async fn send<P: Payload + Sync>(
        &self,
        deployment_id: Option<Uuid>,
        attempt: u32,
        payload: &P,
    ) -> Result<(), BrokerError>
    where
        Self: Sized,
    {
        self.publish(P::QUEUE, &Envelope::new(deployment_id, attempt, payload))
            .await
    }

    /// Tells the backend that the work `envelope` carries for a deployment
    /// waits `delay` for another attempt, and why (for [`Handler::retrying`]).
    /// Best effort: the work is retried whether or not this arrives.
    async fn tell_waiting(&self, envelope: &Envelope, delay: Duration, reason: &str)
    where
        Self: Sized,
    {
        let Some(deployment_id) = envelope.deployment_id else {
            return;
        };
        let waiting = berth_proto::DeploymentWaiting {
            reason: reason.to_owned(),
            retry_at: chrono::Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default(),
        };
        if let Err(error) = self
            .send(Some(deployment_id), envelope.attempt, &waiting)
            .await
        {
            tracing::debug!(%deployment_id, %error, "could not say that the deployment waits");
        }
    }
}

#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    name: String,
    retry: RetryPolicy,
    publish_timeout: Duration,
    publisher: Mutex<Option<(Connection, Channel)>>,
    consumers_up: AtomicBool,
}

impl Broker {
    /// Does not connect yet: connections are made on first use and remade
    /// whenever they are lost.
    pub fn new(url: impl Into<String>, name: impl Into<String>) -> Self {
        Self::build(
            url.into(),
            name.into(),
            RetryPolicy::default(),
            DEFAULT_PUBLISH_TIMEOUT,
        )
    }

    fn build(url: String, name: String, retry: RetryPolicy, publish_timeout: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                url,
                name,
                retry,
                publish_timeout,
                publisher: Mutex::new(None),
                consumers_up: AtomicBool::new(false),
            }),
        }
    }

    /// This broker with another retry policy (its delay tiers are declared
    /// as retry queues). Configure before use: it starts unconnected.
    pub fn with_retry(self, retry: RetryPolicy) -> Self {
        let inner = &self.inner;
        Self::build(
            inner.url.clone(),
            inner.name.clone(),
            retry,
            inner.publish_timeout,
        )
    }

    /// This broker with another publish timeout. Configure before use.
    pub fn with_publish_timeout(self, timeout: Duration) -> Self {
        let inner = &self.inner;
        Self::build(
            inner.url.clone(),
            inner.name.clone(),
            inner.retry.clone(),
            timeout,
        )
    }

    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.inner.retry
    }

    async fn connect(&self, role: &str) -> Result<(Connection, Channel), lapin::Error> {
        let properties = ConnectionProperties::default()
            .with_connection_name(format!("{}:{role}", self.inner.name).into());
        let connection = Connection::connect(&self.inner.url, properties).await?;
        let channel = declare_topology(&connection, &self.inner.retry).await?;
        Ok((connection, channel))
    }

    /// Whether the consumer loops currently hold a live connection.
    pub fn consumers_connected(&self) -> bool {
        self.inner.consumers_up.load(Ordering::Relaxed)
    }
}
