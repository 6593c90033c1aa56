//! Exchanges and queues, declared by every process before it publishes or
//! consumes, so start order does not matter.

use berth_proto::names;
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};

/// Deliveries of one message before the broker dead-letters it.
pub const DELIVERY_LIMIT: i32 = 5;

fn quorum_arguments() -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    arguments
}

pub async fn declare_topology(channel: &Channel) -> Result<(), lapin::Error> {
    let durable_exchange = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let durable_queue = QueueDeclareOptions {
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
        let mut arguments = quorum_arguments();
        arguments.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongInt(DELIVERY_LIMIT),
        );
        arguments.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(names::DEAD_LETTER_EXCHANGE.into()),
        );
        arguments.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString(queue.into()),
        );
        channel
            .queue_declare(queue.into(), durable_queue, arguments)
            .await?;
        channel
            .queue_bind(
                queue.into(),
                names::EXCHANGE.into(),
                queue.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let dead = names::dead_letter_queue(queue);
        channel
            .queue_declare(dead.as_str().into(), durable_queue, quorum_arguments())
            .await?;
        channel
            .queue_bind(
                dead.as_str().into(),
                names::DEAD_LETTER_EXCHANGE.into(),
                queue.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    Ok(())
}
