//! Exchanges and queues, declared by every process before it publishes or
//! consumes, so start order does not matter.
//!
//! Per work queue `Q` (all quorum queues):
//! * `Q`, bound to `berth` with key `Q`; dead-letters (delivery limit) to
//!   `berth.dlx` at least once;
//! * `Q.dead`, bound to `berth.dlx` with key `Q`, bounded in length and age;
//! * `Q.retry.<delay>` per delay tier, bound to `berth` with its own name as
//!   key, no consumer: each message waits `<delay>` (the queue's message TTL)
//!   and is then dead-lettered back to `berth` with key `Q`.
//!
//! RabbitMQ refuses to redeclare a queue with other arguments
//! (PRECONDITION_FAILED). Queues that an older berth declared with fewer
//! arguments are therefore kept as they are, with a warning naming the
//! policy that gives them the new settings (see `common/README.md`).

use super::retry::RetryPolicy;
use berth_proto::names;
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ErrorKind, ExchangeKind};
use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Deliveries of one message before the broker dead-letters it. Retries do
/// not count (they are new publishes); crashes and lost connections do.
pub const DELIVERY_LIMIT: i32 = 5;
/// Messages a dead-letter queue keeps; past it the oldest are dropped.
pub const DEAD_LETTER_MAX_LENGTH: i64 = 10_000;
/// How long a dead-letter queue keeps a message.
pub const DEAD_LETTER_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

fn quorum_arguments() -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    arguments
}

/// Quorum-queue arguments that dead-letter to `exchange` with `routing_key`,
/// confirmed by the target (at least once; RabbitMQ 3.10+), which requires
/// the queue to refuse publishes rather than drop its head when full.
fn dead_lettering_arguments(exchange: &str, routing_key: &str) -> FieldTable {
    let mut arguments = quorum_arguments();
    for (key, value) in [
        ("x-dead-letter-exchange", exchange),
        ("x-dead-letter-routing-key", routing_key),
        ("x-dead-letter-strategy", "at-least-once"),
        ("x-overflow", "reject-publish"),
    ] {
        arguments.insert(key.into(), AMQPValue::LongString(value.into()));
    }
    arguments
}

pub(crate) fn work_queue_arguments(queue: &str) -> FieldTable {
    let mut arguments = dead_lettering_arguments(names::DEAD_LETTER_EXCHANGE, queue);
    arguments.insert(
        "x-delivery-limit".into(),
        AMQPValue::LongInt(DELIVERY_LIMIT),
    );
    if names::SINGLE_ACTIVE_QUEUES.contains(&queue) {
        arguments.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
    }
    arguments
}

pub(crate) fn dead_letter_queue_arguments() -> FieldTable {
    let mut arguments = quorum_arguments();
    arguments.insert(
        "x-max-length".into(),
        AMQPValue::LongLongInt(DEAD_LETTER_MAX_LENGTH),
    );
    arguments.insert(
        "x-message-ttl".into(),
        AMQPValue::LongLongInt(DEAD_LETTER_TTL.as_millis() as i64),
    );
    arguments
}

pub(crate) fn retry_queue_arguments(queue: &str, delay: Duration) -> FieldTable {
    let mut arguments = dead_lettering_arguments(names::EXCHANGE, queue);
    arguments.insert(
        "x-message-ttl".into(),
        AMQPValue::LongLongInt(delay.as_millis() as i64),
    );
    arguments
}

/// Declares everything on `connection` and returns an open channel on it
/// (a refused redeclaration closes the channel it was tried on).
pub async fn declare_topology(
    connection: &Connection,
    retry: &RetryPolicy,
) -> Result<Channel, lapin::Error> {
    let mut channel = connection.create_channel().await?;
    let durable_exchange = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    for exchange in [names::EXCHANGE, names::DEAD_LETTER_EXCHANGE] {
        channel
            .exchange_declare(
                exchange.into(),
                ExchangeKind::Direct,
                durable_exchange,
                FieldTable::default(),
            )
            .await?;
    }
    for queue in names::WORK_QUEUES {
        declare_queue(connection, &mut channel, queue, work_queue_arguments(queue)).await?;
        bind(&channel, queue, names::EXCHANGE, queue).await?;
        let dead = names::dead_letter_queue(queue);
        declare_queue(
            connection,
            &mut channel,
            &dead,
            dead_letter_queue_arguments(),
        )
        .await?;
        bind(&channel, &dead, names::DEAD_LETTER_EXCHANGE, queue).await?;
        for delay in retry.tiers() {
            let name = names::retry_queue(queue, delay.as_millis() as u64);
            let arguments = retry_queue_arguments(queue, *delay);
            declare_queue(connection, &mut channel, &name, arguments).await?;
            bind(&channel, &name, names::EXCHANGE, &name).await?;
        }
    }
    Ok(channel)
}

async fn bind(
    channel: &Channel,
    queue: &str,
    exchange: &str,
    routing_key: &str,
) -> Result<(), lapin::Error> {
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            routing_key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
}

/// Declares `queue` with `arguments`; if it exists with other arguments,
/// keeps it (checked with a passive declaration on a fresh channel) and
/// warns once per process.
async fn declare_queue(
    connection: &Connection,
    channel: &mut Channel,
    queue: &str,
    arguments: FieldTable,
) -> Result<(), lapin::Error> {
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    match channel
        .queue_declare(queue.into(), durable, arguments)
        .await
    {
        Ok(_) => Ok(()),
        Err(error) if is_precondition_failed(&error) => {
            warn_once(queue, &error);
            *channel = connection.create_channel().await?;
            let passive = QueueDeclareOptions {
                passive: true,
                ..Default::default()
            };
            channel
                .queue_declare(queue.into(), passive, FieldTable::default())
                .await
                .map(drop)
        }
        Err(error) => Err(error),
    }
}

pub(crate) fn is_precondition_failed(error: &lapin::Error) -> bool {
    matches!(error.kind(), ErrorKind::ProtocolError(amqp)
        if matches!(amqp.kind(), AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED)))
}

fn warn_once(queue: &str, error: &lapin::Error) {
    static WARNED: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let first = WARNED
        .get_or_init(Default::default)
        .lock()
        .map(|mut warned| warned.insert(queue.to_owned()))
        .unwrap_or(false);
    if first {
        tracing::warn!(queue, %error,
            "the queue exists with the arguments of an older berth; using it as it is. \
             Give it the new limits with a RabbitMQ policy (see common/README.md, \
             \"Upgrading the queues\")");
    }
}
