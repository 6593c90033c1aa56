//! RabbitMQ, supervised.
//!
//! [`Broker`] owns one connection for publishing (with publisher confirms)
//! and opens a dedicated connection per consumer loop. Every connection is
//! re-established on demand or after a backoff, so a process that lost its
//! broker recovers by itself. Consumers ack only after the handler's effect
//! is durable; anything they cannot decode is re-published to the
//! dead-letter exchange with the reason in a header, then acked.

mod topology;

pub use topology::{declare_topology, DELIVERY_LIMIT};

use async_trait::async_trait;
use berth_proto::{names, Envelope, Message, Payload};
use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::Confirmation;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("the message broker is unreachable: {0}")]
    Unreachable(#[from] lapin::Error),
    #[error("the message broker refused the message")]
    Nacked,
    #[error("no queue is bound for routing key `{0}`")]
    Unroutable(String),
}

/// What a handler decided about one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The effect is durable: ack.
    Done,
    /// A passing failure: requeue; after the queue's delivery limit the
    /// broker dead-letters it.
    Retry(String),
    /// The message can never be handled: dead-letter it with this reason.
    Reject(String),
}

#[async_trait]
pub trait Handler: Send + Sync + 'static {
    async fn handle(&self, envelope: Envelope, message: Message) -> Outcome;
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
}

#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    name: String,
    publisher: Mutex<Option<(Connection, Channel)>>,
    consumers_up: AtomicBool,
}

impl Broker {
    /// Does not connect yet: connections are made on first use and remade
    /// whenever they are lost.
    pub fn new(url: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            inner: Arc::new(Inner {
                url: url.into(),
                name: name.into(),
                publisher: Mutex::new(None),
                consumers_up: AtomicBool::new(false),
            }),
        }
    }

    async fn connect(&self, role: &str) -> Result<(Connection, Channel), lapin::Error> {
        let properties = ConnectionProperties::default()
            .with_connection_name(format!("{}:{role}", self.inner.name).into());
        let connection = Connection::connect(&self.inner.url, properties).await?;
        let channel = connection.create_channel().await?;
        declare_topology(&channel).await?;
        Ok((connection, channel))
    }

    /// Connects and declares the topology; for start-up checks and setup.
    pub async fn ensure_topology(&self) -> Result<(), BrokerError> {
        self.publisher_channel().await.map(drop)
    }

    pub fn is_connected(&self) -> bool {
        self.inner
            .publisher
            .try_lock()
            .map(|guard| {
                guard
                    .as_ref()
                    .is_some_and(|(connection, _)| connection.status().connected())
            })
            .unwrap_or(true)
    }

    /// Whether the consumer loops currently hold a live connection.
    pub fn consumers_connected(&self) -> bool {
        self.inner.consumers_up.load(Ordering::Relaxed)
    }

    async fn publisher_channel(&self) -> Result<Channel, BrokerError> {
        let mut guard = self.inner.publisher.lock().await;
        if let Some((connection, channel)) = guard.as_ref() {
            if connection.status().connected() && channel.status().connected() {
                return Ok(channel.clone());
            }
        }
        *guard = None;
        let (connection, channel) = self.connect("publisher").await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        *guard = Some((connection, channel.clone()));
        Ok(channel)
    }

    async fn forget_publisher(&self) {
        *self.inner.publisher.lock().await = None;
    }

    async fn publish_raw(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        headers: FieldTable,
    ) -> Result<(), BrokerError> {
        let channel = self.publisher_channel().await?;
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_headers(headers);
        let options = BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        };
        let result = async {
            channel
                .basic_publish(
                    exchange.into(),
                    routing_key.into(),
                    options,
                    body,
                    properties,
                )
                .await?
                .await
        }
        .await;
        match result {
            Ok(Confirmation::Ack(None)) | Ok(Confirmation::NotRequested) => Ok(()),
            Ok(Confirmation::Ack(Some(_))) => Err(BrokerError::Unroutable(routing_key.into())),
            Ok(Confirmation::Nack(_)) => Err(BrokerError::Nacked),
            Err(error) => {
                self.forget_publisher().await;
                Err(BrokerError::Unreachable(error))
            }
        }
    }

    /// Re-publishes a refused message to the dead-letter exchange, keeping
    /// its body and headers and adding why it was refused.
    pub async fn dead_letter(
        &self,
        queue: &str,
        body: &[u8],
        original: Option<&FieldTable>,
        reason: &str,
    ) -> Result<(), BrokerError> {
        let mut headers = original.cloned().unwrap_or_default();
        headers.insert(
            names::DEAD_LETTER_REASON_HEADER.into(),
            AMQPValue::LongString(reason.into()),
        );
        self.publish_raw(names::DEAD_LETTER_EXCHANGE, queue, body, headers)
            .await
    }

    /// Consumes `queue` until `shutdown`, handling up to `concurrency`
    /// messages at once, reconnecting with backoff whenever the broker goes.
    pub async fn consume<H: Handler>(
        &self,
        queue: &'static str,
        concurrency: u16,
        handler: Arc<H>,
        shutdown: CancellationToken,
    ) {
        let mut backoff = Duration::from_millis(250);
        while !shutdown.is_cancelled() {
            match self
                .consume_once(queue, concurrency, &handler, &shutdown)
                .await
            {
                Ok(()) => break,
                Err(error) => {
                    self.inner.consumers_up.store(false, Ordering::Relaxed);
                    tracing::warn!(queue, %error, ?backoff, "consumer lost the broker; reconnecting");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        self.inner.consumers_up.store(false, Ordering::Relaxed);
    }

    async fn consume_once<H: Handler>(
        &self,
        queue: &'static str,
        concurrency: u16,
        handler: &Arc<H>,
        shutdown: &CancellationToken,
    ) -> Result<(), lapin::Error> {
        let (connection, channel) = self.connect(queue).await?;
        channel
            .basic_qos(concurrency, BasicQosOptions::default())
            .await?;
        let tag = format!("{}-{}", self.inner.name, Uuid::new_v4());
        let mut deliveries = channel
            .basic_consume(
                queue.into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        self.inner.consumers_up.store(true, Ordering::Relaxed);
        tracing::info!(queue, concurrency, "consuming");
        let slots = Arc::new(Semaphore::new(concurrency as usize));
        let result = loop {
            tokio::select! {
                _ = shutdown.cancelled() => break Ok(()),
                next = deliveries.next() => match next {
                    Some(Ok(delivery)) => {
                        let slot = slots.clone().acquire_owned().await.expect("semaphore open");
                        let (broker, handler) = (self.clone(), handler.clone());
                        tokio::spawn(async move {
                            broker.process(queue, delivery, handler.as_ref()).await;
                            drop(slot);
                        });
                    }
                    Some(Err(error)) => break Err(error),
                    None => break Err(lapin::Error::from(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "the broker cancelled the consumer",
                    ))),
                }
            }
        };
        // Let in-flight handlers finish and ack before the connection goes.
        let _ = slots.acquire_many(concurrency as u32).await;
        let _ = connection.close(200, "bye".into()).await;
        result
    }

    async fn process<H: Handler>(&self, queue: &str, delivery: Delivery, handler: &H) {
        let decoded = Envelope::from_bytes(&delivery.data).and_then(|envelope| {
            let message = envelope.decode()?;
            if message.queue() != queue {
                return Err(berth_proto::DecodeError::WrongQueue {
                    kind: envelope.kind.clone(),
                });
            }
            Ok((envelope, message))
        });
        let outcome = match decoded {
            Ok((envelope, message)) => {
                let span = tracing::info_span!("message", queue, kind = %envelope.kind,
                    deployment_id = ?envelope.deployment_id, attempt = envelope.attempt);
                handler.handle(envelope, message).instrument(span).await
            }
            Err(error) => Outcome::Reject(error.to_string()),
        };
        metrics::counter!("berth_messages_total", "queue" => queue.to_owned(),
            "outcome" => match &outcome { Outcome::Done => "done", Outcome::Retry(_) => "retry", Outcome::Reject(_) => "rejected" })
        .increment(1);
        let acked = match outcome {
            Outcome::Done => delivery.acker.ack(BasicAckOptions::default()).await,
            Outcome::Retry(reason) => {
                tracing::warn!(queue, %reason, "handling failed; the message will be redelivered");
                tokio::time::sleep(Duration::from_secs(1)).await;
                requeue(&delivery).await
            }
            Outcome::Reject(reason) => {
                tracing::warn!(queue, %reason, "dead-lettering a message");
                match self
                    .dead_letter(
                        queue,
                        &delivery.data,
                        delivery.properties.headers().as_ref(),
                        &reason,
                    )
                    .await
                {
                    Ok(()) => delivery.acker.ack(BasicAckOptions::default()).await,
                    Err(error) => {
                        tracing::error!(queue, %error, "could not dead-letter; requeueing");
                        requeue(&delivery).await
                    }
                }
            }
        };
        if let Err(error) = acked {
            // The channel is gone; the broker will redeliver the message.
            tracing::warn!(queue, %error, "could not settle a delivery");
        }
    }
}

/// Hands a delivery back to its queue; the queue's delivery limit bounds
/// how often that can happen before the broker dead-letters it.
async fn requeue(delivery: &Delivery) -> Result<bool, lapin::Error> {
    delivery
        .acker
        .nack(BasicNackOptions {
            requeue: true,
            ..Default::default()
        })
        .await
}

#[async_trait]
impl MessagePublisher for Broker {
    async fn publish(&self, routing_key: &str, envelope: &Envelope) -> Result<(), BrokerError> {
        self.publish_raw(
            names::EXCHANGE,
            routing_key,
            &envelope.to_bytes(),
            FieldTable::default(),
        )
        .await
    }
}
