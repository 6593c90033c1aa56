//! Reading a dead-letter queue: each message goes to a handler with what is
//! known about why it was refused, and is acked once the handler is done.

use super::consumer::{panic_message, requeue, Process};
use super::retry::{header_text, header_u64};
use super::topology::DELIVERY_LIMIT;
use super::Broker;
use async_trait::async_trait;
use berth_proto::{names, Envelope};
use futures::FutureExt;
use lapin::message::Delivery;
use lapin::options::BasicAckOptions;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long a dead letter whose handler failed waits before it is handed
/// out again (dead-letter queues have no delivery limit).
const FAILED_PAUSE: Duration = Duration::from_secs(5);

/// One message from `Q.dead`.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// The work queue that refused it (`berth.builds`, ...).
    pub queue: &'static str,
    /// The envelope, if the body is one.
    pub envelope: Option<Envelope>,
    /// The body as it was published.
    pub body: Vec<u8>,
    /// Why it was refused: the consumer's reason (`x-berth-reason`), or
    /// what the broker recorded when it dead-lettered the message itself
    /// (e.g. after the delivery limit).
    pub reason: String,
    /// How often it was retried before it was refused.
    pub retries: u32,
}

impl DeadLetter {
    fn from_delivery(queue: &'static str, delivery: &Delivery) -> Self {
        let headers = delivery.properties.headers().as_ref();
        let reason = header_text(headers, names::DEAD_LETTER_REASON_HEADER)
            .or_else(|| {
                let why = header_text(headers, "x-first-death-reason")?;
                let last = header_text(headers, names::LAST_ERROR_HEADER)
                    .map(|error| format!("; the last attempt failed with: {error}"))
                    .unwrap_or_default();
                Some(match why.as_str() {
                    // F8: what a poison message (a repository whose clone
                    // kills the worker) ends as.
                    "delivery_limit" => format!(
                        "the worker handling it stopped {DELIVERY_LIMIT} times before it \
                         finished (it crashed, was killed, or lost the broker){last}"
                    ),
                    _ => format!("dead-lettered by the broker ({why}){last}"),
                })
            })
            .unwrap_or_else(|| "dead-lettered without a recorded reason".into());
        Self {
            queue,
            envelope: Envelope::from_bytes(&delivery.data).ok(),
            body: delivery.data.clone(),
            reason,
            retries: header_u64(headers, names::RETRIES_HEADER) as u32,
        }
    }
}

#[async_trait]
pub trait DeadLetterHandler: Send + Sync + 'static {
    /// `Ok` acks the dead letter; `Err(why)` hands it out again a few
    /// seconds later.
    async fn handle(&self, dead: DeadLetter) -> Result<(), String>;
}

impl Broker {
    /// Consumes `queue`'s dead-letter queue (`queue` is the work queue, e.g.
    /// `berth.builds`) until `shutdown`, like [`Broker::consume`]. Counts
    /// each handled message in `berth_dead_lettered_total{queue}`.
    pub async fn consume_dead_letters<H: DeadLetterHandler>(
        &self,
        queue: &'static str,
        concurrency: u16,
        handler: Arc<H>,
        shutdown: CancellationToken,
    ) {
        let dead = names::dead_letter_queue(queue);
        let process = Arc::new(DeadLetters { queue, handler });
        self.run_consumer(&dead, concurrency, process, shutdown)
            .await
    }
}

struct DeadLetters<H> {
    queue: &'static str,
    handler: Arc<H>,
}

#[async_trait]
impl<H: DeadLetterHandler> Process for DeadLetters<H> {
    async fn process(&self, _broker: &Broker, delivery: Delivery, lost: CancellationToken) {
        let queue = self.queue;
        let dead = DeadLetter::from_delivery(queue, &delivery);
        let handled = AssertUnwindSafe(self.handler.handle(dead))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| {
                Err(format!(
                    "the handler panicked: {}",
                    panic_message(panic.as_ref())
                ))
            });
        if lost.is_cancelled() || !delivery.acker.usable() {
            return;
        }
        let settled = match handled {
            Ok(()) => {
                let acked = delivery.acker.ack(BasicAckOptions::default()).await;
                if matches!(acked, Ok(true)) {
                    metrics::counter!("berth_dead_lettered_total", "queue" => queue).increment(1);
                }
                acked
            }
            Err(why) => {
                tracing::warn!(queue, %why, "a dead letter could not be handled; it comes back later");
                tokio::select! {
                    _ = lost.cancelled() => return,
                    _ = tokio::time::sleep(FAILED_PAUSE) => {}
                }
                requeue(&delivery).await
            }
        };
        if let Err(error) = settled {
            tracing::warn!(queue, %error, "could not settle a dead letter");
        }
    }
}
