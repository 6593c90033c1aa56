//! A RabbitMQ vhost of its own, with helpers to read and write its queues.

use berth_common::testing::TestVhost;
use berth_common::Broker;
use lapin::message::Delivery;
use lapin::options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use std::time::{Duration, Instant};

pub struct TestBroker {
    pub url: String,
    pub broker: Broker,
    connection: Connection,
    channel: Channel,
    /// Deleted when the broker is dropped.
    _vhost: TestVhost,
}

impl TestBroker {
    pub async fn new() -> Self {
        let vhost = tokio::task::spawn_blocking(TestVhost::new).await.unwrap();
        let url = vhost.url.clone();
        let broker = Broker::new(&url, "backend-test");
        broker
            .ensure_topology()
            .await
            .expect("the test vhost answers");
        let connection = Connection::connect(&url, ConnectionProperties::default())
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        Self {
            url,
            broker,
            connection,
            channel,
            _vhost: vhost,
        }
    }

    /// The next message of a single-active-consumer `queue` (which refuses
    /// `basic.get`), through a consumer of its own, waiting up to `timeout`.
    pub async fn next_consumed(&self, queue: &str, timeout: Duration) -> Option<Delivery> {
        use futures::StreamExt;
        let channel = self.connection.create_channel().await.unwrap();
        let mut consumer = channel
            .basic_consume(
                queue.into(),
                "test-next".into(),
                lapin::options::BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let delivery = tokio::time::timeout(timeout, consumer.next())
            .await
            .ok()??;
        let _ = channel.close(0, "done".into()).await;
        Some(delivery.unwrap())
    }

    /// The next message of `queue`, waiting up to `timeout`.
    pub async fn next(&self, queue: &str, timeout: Duration) -> Option<Delivery> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self
                .channel
                .basic_get(queue.into(), BasicGetOptions { no_ack: true })
                .await
                .unwrap();
            if let Some(message) = got {
                return Some(message.delivery);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Messages waiting in `queue`.
    pub async fn depth(&self, queue: &str) -> u32 {
        self.channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap()
            .message_count()
    }

    /// Publishes raw bytes to the `berth` exchange.
    pub async fn publish_raw(&self, routing_key: &str, body: &[u8]) {
        self.channel
            .basic_publish(
                "berth".into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
}

/// Polls `check` until it returns `Some`, for up to `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
