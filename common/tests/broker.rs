//! The supervised broker against the local stack's real RabbitMQ, each test
//! in its own vhost.

use async_trait::async_trait;
use berth_common::testing::TestVhost;
use berth_common::{Broker, Handler, MessagePublisher, Outcome};
use berth_proto::names::{BUILDS_QUEUE, DEAD_LETTER_REASON_HEADER, INFORM_QUEUE};
use berth_proto::{DeploymentProgress, DeploymentState, Envelope, Message};
use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicPublishOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Hands every message to the test; fails or retries on request.
struct Recorder {
    seen: mpsc::UnboundedSender<Envelope>,
    outcome: Outcome,
}

#[async_trait]
impl Handler for Recorder {
    async fn handle(&self, envelope: Envelope, _message: Message) -> Outcome {
        let _ = self.seen.send(envelope);
        self.outcome.clone()
    }
}

async fn publish_raw(url: &str, queue: &str, body: &[u8]) {
    let connection = Connection::connect(url, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel
        .basic_publish(
            "berth".into(),
            queue.into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
}

/// The next message on `queue`, with its dead-letter reason header.
async fn next_on(url: &str, queue: &str) -> (Vec<u8>, Option<String>) {
    let connection = Connection::connect(url, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            "test".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let delivery = tokio::time::timeout(Duration::from_secs(30), consumer.next())
        .await
        .unwrap_or_else(|_| panic!("nothing arrived on {queue}"))
        .unwrap()
        .unwrap();
    delivery
        .acker
        .ack(BasicAckOptions::default())
        .await
        .unwrap();
    let reason = delivery.properties.headers().as_ref().and_then(|headers| {
        match headers.inner().get(DEAD_LETTER_REASON_HEADER) {
            Some(AMQPValue::LongString(text)) => Some(text.to_string()),
            _ => None,
        }
    });
    (delivery.data, reason)
}

fn progress() -> Envelope {
    Envelope::new(
        Some(Uuid::now_v7()),
        1,
        &DeploymentProgress::new(DeploymentState::Cloning),
    )
}

fn start_consumer(
    url: &str,
    outcome: Outcome,
) -> (mpsc::UnboundedReceiver<Envelope>, CancellationToken) {
    let (seen, receiver) = mpsc::unbounded_channel();
    let broker = Broker::new(url, "test");
    let shutdown = CancellationToken::new();
    let handler = Arc::new(Recorder { seen, outcome });
    let token = shutdown.clone();
    tokio::spawn(async move { broker.consume(INFORM_QUEUE, 2, handler, token).await });
    (receiver, shutdown)
}

#[tokio::test]
async fn bad_messages_are_dead_lettered_with_the_reason_and_the_worker_goes_on() {
    let vhost = TestVhost::new();
    let url = vhost.url.clone();
    Broker::new(&url, "setup").ensure_topology().await.unwrap();
    let (mut seen, shutdown) = start_consumer(&url, Outcome::Done);

    publish_raw(&url, INFORM_QUEUE, b"{not json").await;
    let (body, reason) = next_on(&url, "berth.inform.dead").await;
    assert_eq!(body, b"{not json");
    assert!(reason
        .unwrap()
        .starts_with("the message is not a berth envelope"));

    let mut unknown = progress();
    unknown.kind = "deployment.exploded".into();
    publish_raw(&url, INFORM_QUEUE, &unknown.to_bytes()).await;
    let (_, reason) = next_on(&url, "berth.inform.dead").await;
    assert_eq!(
        reason.as_deref(),
        Some("unknown message type `deployment.exploded`")
    );

    let mut future = progress();
    future.version = 2;
    publish_raw(&url, INFORM_QUEUE, &future.to_bytes()).await;
    let (_, reason) = next_on(&url, "berth.inform.dead").await;
    assert!(reason.unwrap().contains("version 2 is not supported"));

    // A build request on the inform queue is refused, not mishandled.
    let misplaced = Envelope {
        kind: "build.requested".into(),
        ..progress()
    };
    publish_raw(&url, INFORM_QUEUE, &misplaced.to_bytes()).await;
    let (_, reason) = next_on(&url, "berth.inform.dead").await;
    assert!(reason.is_some());

    // And the worker is still consuming.
    let good = progress();
    Broker::new(&url, "publisher")
        .publish(INFORM_QUEUE, &good)
        .await
        .unwrap();
    let handled = tokio::time::timeout(Duration::from_secs(10), seen.recv())
        .await
        .expect("the good message is handled")
        .unwrap();
    assert_eq!(handled.id, good.id);
    shutdown.cancel();
}

#[tokio::test]
async fn a_message_that_keeps_failing_ends_in_the_dead_letter_queue() {
    let vhost = TestVhost::new();
    let url = vhost.url.clone();
    Broker::new(&url, "setup").ensure_topology().await.unwrap();
    let (mut seen, shutdown) = start_consumer(&url, Outcome::Retry("database down".into()));
    let message = progress();
    Broker::new(&url, "publisher")
        .publish(INFORM_QUEUE, &message)
        .await
        .unwrap();
    let (body, _) = next_on(&url, "berth.inform.dead").await;
    assert_eq!(Envelope::from_bytes(&body).unwrap().id, message.id);
    let mut attempts = 0;
    while seen.try_recv().is_ok() {
        attempts += 1;
    }
    assert!(
        attempts >= 2,
        "it was retried before giving up ({attempts})"
    );
    shutdown.cancel();
}

#[tokio::test]
async fn messages_published_before_any_consumer_wait_in_the_durable_queue() {
    let vhost = TestVhost::new();
    let url = vhost.url.clone();
    let publisher = Broker::new(&url, "publisher");
    let sent = progress();
    publisher.publish(BUILDS_QUEUE, &sent).await.unwrap();
    let (body, reason) = next_on(&url, BUILDS_QUEUE).await;
    assert_eq!(Envelope::from_bytes(&body).unwrap(), sent);
    assert_eq!(reason, None);
}

#[tokio::test]
async fn publishing_to_an_unreachable_broker_fails_instead_of_hanging() {
    let broker = Broker::new("amqp://berth:nope@127.0.0.1:1/%2f", "nowhere");
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        broker.publish(INFORM_QUEUE, &progress()),
    )
    .await;
    assert!(matches!(result, Ok(Err(_))), "{result:?}");
}
