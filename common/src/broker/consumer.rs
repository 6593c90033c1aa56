//! The consumer loop: one connection per loop, at most `concurrency`
//! handlers at once (across reconnects), an immediate reconnect when the
//! connection goes, and the settling of each delivery by its outcome.

use super::retry::{self, DeliveryInfo};
use super::{Broker, Handler, Outcome};
use async_trait::async_trait;
use berth_proto::{names, Envelope, Message};
use futures::{FutureExt, Stream, StreamExt};
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Event};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

/// A connection that consumed this long before it failed is replaced at
/// once; one that fails sooner, after a growing pause.
const HEALTHY: Duration = Duration::from_secs(1);

/// What a consumer loop does with each delivery; it settles it itself.
#[async_trait]
pub(super) trait Process: Send + Sync + 'static {
    async fn process(&self, broker: &Broker, delivery: Delivery, lost: CancellationToken);
}

impl Broker {
    /// Consumes `queue` until `shutdown`, handling up to `concurrency`
    /// messages at once, reconnecting whenever the broker goes. On
    /// shutdown, waits for the handlers in flight to finish and settle.
    pub async fn consume<H: Handler>(
        &self,
        queue: &'static str,
        concurrency: u16,
        handler: Arc<H>,
        shutdown: CancellationToken,
    ) {
        let work = Arc::new(WorkQueue { queue, handler });
        self.run_consumer(queue, concurrency, work, shutdown).await
    }

    pub(super) async fn run_consumer<P: Process>(
        &self,
        queue: &str,
        concurrency: u16,
        process: Arc<P>,
        shutdown: CancellationToken,
    ) {
        let concurrency = concurrency.max(1);
        // Shared by every connection of this loop: handlers whose
        // connection died still hold their slot until they return.
        let slots = Arc::new(Semaphore::new(concurrency as usize));
        let mut backoff = Duration::ZERO;
        while !shutdown.is_cancelled() {
            let mut consuming_since = None;
            let result = self
                .consume_once(
                    queue,
                    concurrency,
                    &slots,
                    &process,
                    &shutdown,
                    &mut consuming_since,
                )
                .await;
            let Err(error) = result else { break };
            self.inner.consumers_up.store(false, Ordering::Relaxed);
            if consuming_since.is_some_and(|since: Instant| since.elapsed() >= HEALTHY) {
                // It worked until now: try again at once.
                backoff = Duration::ZERO;
            }
            tracing::warn!(queue, %error, ?backoff, "consumer lost the broker; reconnecting");
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).clamp(Duration::from_millis(250), Duration::from_secs(5));
        }
        self.inner.consumers_up.store(false, Ordering::Relaxed);
    }

    async fn consume_once<P: Process>(
        &self,
        queue: &str,
        concurrency: u16,
        slots: &Arc<Semaphore>,
        process: &Arc<P>,
        shutdown: &CancellationToken,
        consuming_since: &mut Option<Instant>,
    ) -> Result<(), lapin::Error> {
        let (connection, channel) = self.connect(queue).await?;
        let mut events = Box::pin(connection.events_listener());
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
        *consuming_since = Some(Instant::now());
        self.inner.consumers_up.store(true, Ordering::Relaxed);
        tracing::info!(queue, concurrency, "consuming");
        // Cancelled when this function returns: on an error at once, on
        // shutdown after the handlers are done.
        let lost = CancellationToken::new();
        let _lost_on_return = lost.clone().drop_guard();
        let result = loop {
            let slot = tokio::select! {
                _ = shutdown.cancelled() => break Ok(()),
                error = gone(&connection, &channel, &mut events) => break Err(error),
                slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            };
            let delivery = tokio::select! {
                _ = shutdown.cancelled() => break Ok(()),
                error = gone(&connection, &channel, &mut events) => break Err(error),
                next = deliveries.next() => match next {
                    Some(Ok(delivery)) => delivery,
                    Some(Err(error)) => break Err(error),
                    None => break Err(lapin::Error::from(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "the broker cancelled the consumer",
                    ))),
                },
            };
            let (broker, process, lost) = (self.clone(), process.clone(), lost.clone());
            tokio::spawn(async move {
                process.process(&broker, delivery, lost).await;
                drop(slot);
            });
        };
        if result.is_ok() {
            // Shutdown: let in-flight handlers finish and settle first.
            let _ = slots.acquire_many(concurrency as u32).await;
            let _ =
                tokio::time::timeout(Duration::from_secs(5), connection.close(200, "bye".into()))
                    .await;
        }
        result
    }
}

/// Resolves when the connection or the channel is gone (as an error event,
/// or a status seen on a once-a-second check).
async fn gone(
    connection: &Connection,
    channel: &Channel,
    events: &mut (impl Stream<Item = Event> + Unpin),
) -> lapin::Error {
    let mut check = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(Event::Error(error)) => return error,
                Some(_) => {}
                None => return closed("the connection's events ended"),
            },
            _ = check.tick() => {
                if !connection.status().connected() || !channel.status().connected() {
                    return closed("the connection or channel is closed");
                }
            }
        }
    }
}

fn closed(why: &str) -> lapin::Error {
    std::io::Error::new(std::io::ErrorKind::ConnectionAborted, why.to_owned()).into()
}

/// The text of a caught panic.
pub(super) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|text| text.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Hands a delivery back to its queue; counts against its delivery limit.
pub(super) async fn requeue(delivery: &Delivery) -> Result<bool, lapin::Error> {
    delivery
        .acker
        .nack(BasicNackOptions {
            requeue: true,
            ..Default::default()
        })
        .await
}

/// A work queue and its handler.
struct WorkQueue<H> {
    queue: &'static str,
    handler: Arc<H>,
}

fn decode(queue: &str, body: &[u8]) -> Result<(Envelope, Message), berth_proto::DecodeError> {
    let envelope = Envelope::from_bytes(body)?;
    let message = envelope.decode()?;
    if message.queue() != queue {
        return Err(berth_proto::DecodeError::WrongQueue {
            kind: envelope.kind.clone(),
        });
    }
    Ok((envelope, message))
}

#[async_trait]
impl<H: Handler> Process for WorkQueue<H> {
    async fn process(&self, broker: &Broker, delivery: Delivery, lost: CancellationToken) {
        let queue = self.queue;
        let headers = delivery.properties.headers().as_ref();
        let info = DeliveryInfo::from_headers(headers, delivery.redelivered, lost.clone());
        let outcome = match decode(queue, &delivery.data) {
            Ok((envelope, message)) => {
                let span = tracing::info_span!("message", queue, kind = %envelope.kind,
                    deployment_id = ?envelope.deployment_id, attempt = envelope.attempt,
                    retries = info.retries, redelivered = info.redelivered);
                let handling = self.handler.handle(envelope, message, info.clone());
                match AssertUnwindSafe(handling.instrument(span))
                    .catch_unwind()
                    .await
                {
                    Ok(outcome) => outcome,
                    Err(panic) => {
                        let message = panic_message(panic.as_ref());
                        tracing::error!(queue, panic = %message, "a handler panicked");
                        metrics::counter!("berth_handler_panics_total", "queue" => queue)
                            .increment(1);
                        Outcome::Retry(format!("the handler panicked: {message}"))
                    }
                }
            }
            Err(error) => Outcome::Reject(error.to_string()),
        };
        let label = match &outcome {
            Outcome::Done => "done",
            Outcome::Retry(_) => "retry",
            Outcome::Reject(_) => "rejected",
        };
        metrics::counter!("berth_messages_total", "queue" => queue, "outcome" => label)
            .increment(1);
        if lost.is_cancelled() || !delivery.acker.usable() {
            tracing::warn!(
                queue,
                outcome = label,
                "the delivery was lost with its connection; the broker hands the message out again"
            );
            return;
        }
        let settled = match outcome {
            Outcome::Done => delivery.acker.ack(BasicAckOptions::default()).await,
            Outcome::Retry(reason) => {
                match broker.retry_later(queue, &delivery, &info, &reason).await {
                    Ok(Some(delay)) => {
                        if let Ok(envelope) = Envelope::from_bytes(&delivery.data) {
                            self.handler.retrying(&envelope, delay, &reason).await;
                        }
                        Ok(true)
                    }
                    Ok(None) => Ok(true),
                    Err(error) => Err(error),
                }
            }
            Outcome::Reject(reason) => {
                tracing::warn!(queue, %reason, "dead-lettering a message");
                broker.reject(queue, &delivery, &reason).await
            }
        };
        if let Err(error) = settled {
            // The channel is gone; the broker will redeliver the message.
            tracing::warn!(queue, %error, "could not settle a delivery");
        }
    }
}

impl Broker {
    /// Copies the message into the retry queue of its next delay, then acks
    /// it, and returns the delay; dead-letters it when the retry budget is
    /// spent (`None`, as when the copy failed and the message was requeued).
    async fn retry_later(
        &self,
        queue: &str,
        delivery: &Delivery,
        info: &DeliveryInfo,
        reason: &str,
    ) -> Result<Option<Duration>, lapin::Error> {
        let headers = delivery.properties.headers().as_ref();
        let waited = retry::waited(headers);
        let Some(delay) = self.inner.retry.next_delay(info.retries, waited) else {
            tracing::warn!(queue, %reason, retries = info.retries, ?waited,
                "the retry budget is spent; dead-lettering the message");
            return self.reject(queue, delivery, reason).await.map(|_| None);
        };
        tracing::warn!(queue, %reason, retry = info.retries + 1, ?delay,
            "handling failed; the message will be retried");
        let target = names::retry_queue(queue, delay.as_millis() as u64);
        let copy = retry::retry_headers(headers, info.retries + 1, waited + delay, reason);
        match self
            .publish_raw(names::EXCHANGE, &target, &delivery.data, copy)
            .await
        {
            Ok(()) => delivery
                .acker
                .ack(BasicAckOptions::default())
                .await
                .map(|_| Some(delay)),
            Err(error) => {
                tracing::error!(queue, %error, "could not schedule a retry; requeueing");
                tokio::time::sleep(Duration::from_secs(1)).await;
                requeue(delivery).await.map(|_| None)
            }
        }
    }

    /// Dead-letters the message with `reason`, then acks it.
    async fn reject(
        &self,
        queue: &str,
        delivery: &Delivery,
        reason: &str,
    ) -> Result<bool, lapin::Error> {
        let headers = delivery.properties.headers().as_ref();
        match self
            .dead_letter(queue, &delivery.data, headers, reason)
            .await
        {
            Ok(()) => delivery.acker.ack(BasicAckOptions::default()).await,
            Err(error) => {
                tracing::error!(queue, %error, "could not dead-letter; requeueing");
                tokio::time::sleep(Duration::from_secs(1)).await;
                requeue(delivery).await
            }
        }
    }
}
