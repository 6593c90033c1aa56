//! Helpers for the broker tests: a scripted handler, raw AMQP access to a
//! test vhost, and what `rabbitmqctl` says about its queues.

use async_trait::async_trait;
use berth_common::testing::rabbitmqctl;
use berth_common::{Broker, DeliveryInfo, Handler, Outcome, RetryPolicy};
use berth_proto::names::{DEAD_LETTER_REASON_HEADER, INFORM_QUEUE};
use berth_proto::{DeploymentProgress, DeploymentState, Envelope, Message};
use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicPublishOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// What the scripted handler does on its n-th call (counted from 1).
pub enum Act {
    Return(Outcome),
    Panic(&'static str),
    /// Works for this long, or until the delivery is lost.
    Work(Duration),
}

/// One call of the scripted handler.
#[derive(Debug)]
pub struct Call {
    pub envelope: Envelope,
    pub info: DeliveryInfo,
    pub at: Instant,
    /// For `Act::Work`: whether the delivery was lost while working.
    pub lost: bool,
}

/// Decides what the n-th call does.
type Plan = Box<dyn Fn(u32, &DeliveryInfo) -> Act + Send + Sync>;

pub struct Script {
    calls: AtomicU32,
    act: Plan,
    /// Each call when it starts (`lost: false`) and, for `Act::Work`,
    /// again when the work ends.
    seen: mpsc::UnboundedSender<Call>,
}

#[async_trait]
impl Handler for Script {
    async fn handle(&self, envelope: Envelope, _message: Message, info: DeliveryInfo) -> Outcome {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let call = |lost| Call {
            envelope: envelope.clone(),
            info: info.clone(),
            at: Instant::now(),
            lost,
        };
        let _ = self.seen.send(call(false));
        match (self.act)(n, &info) {
            Act::Return(outcome) => outcome,
            Act::Panic(message) => panic!("{message}"),
            Act::Work(time) => {
                let lost = tokio::select! {
                    _ = tokio::time::sleep(time) => false,
                    _ = info.lost.cancelled() => true,
                };
                let _ = self.seen.send(call(lost));
                Outcome::Done
            }
        }
    }
}

/// Consumes `berth.inform` with `act`, `concurrency` at once, retrying on
/// `retry`; the receiver gets every call.
pub fn consume(
    url: &str,
    retry: RetryPolicy,
    concurrency: u16,
    act: impl Fn(u32, &DeliveryInfo) -> Act + Send + Sync + 'static,
) -> (mpsc::UnboundedReceiver<Call>, CancellationToken) {
    consume_on(url, INFORM_QUEUE, retry, concurrency, act)
}

/// Like [`consume`], on `queue`.
pub fn consume_on(
    url: &str,
    queue: &'static str,
    retry: RetryPolicy,
    concurrency: u16,
    act: impl Fn(u32, &DeliveryInfo) -> Act + Send + Sync + 'static,
) -> (mpsc::UnboundedReceiver<Call>, CancellationToken) {
    let (seen, receiver) = mpsc::unbounded_channel();
    let broker = Broker::new(url, "test").with_retry(retry);
    let shutdown = CancellationToken::new();
    let handler = Arc::new(Script {
        calls: AtomicU32::new(0),
        act: Box::new(act),
        seen,
    });
    let token = shutdown.clone();
    tokio::spawn(async move { broker.consume(queue, concurrency, handler, token).await });
    (receiver, shutdown)
}

/// Fast tiers for tests: 100 ms, 200 ms, 400 ms.
pub fn fast_retries(budget: Duration) -> RetryPolicy {
    let ms = Duration::from_millis;
    RetryPolicy::new(vec![ms(100), ms(200), ms(400)], budget)
}

pub async fn next_call(calls: &mut mpsc::UnboundedReceiver<Call>, within: Duration) -> Call {
    tokio::time::timeout(within, calls.recv())
        .await
        .unwrap_or_else(|_| panic!("the handler was not called within {within:?}"))
        .expect("the consumer is running")
}

pub fn progress() -> Envelope {
    Envelope::new(
        Some(Uuid::now_v7()),
        1,
        &DeploymentProgress::new(DeploymentState::Cloning),
    )
}

pub async fn publish_raw(url: &str, queue: &str, body: &[u8]) {
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

/// The next message on `queue` (acked), with its headers.
pub async fn next_on(url: &str, queue: &str) -> (Vec<u8>, FieldTable) {
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
    let headers = delivery.properties.headers().clone().unwrap_or_default();
    (delivery.data, headers)
}

pub fn text_header(headers: &FieldTable, key: &str) -> Option<String> {
    match headers.inner().get(key) {
        Some(AMQPValue::LongString(text)) => Some(text.to_string()),
        _ => None,
    }
}

pub fn reason(headers: &FieldTable) -> Option<String> {
    text_header(headers, DEAD_LETTER_REASON_HEADER)
}

/// `rabbitmqctl list_queues -p <vhost> name <columns...>`, one row per queue.
pub async fn list_queues(vhost: &str, columns: &[&str]) -> Vec<Vec<String>> {
    let mut args = vec!["list_queues", "-s", "-p", vhost, "name"];
    args.extend_from_slice(columns);
    let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
    let output = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        rabbitmqctl(&args)
    })
    .await
    .unwrap();
    output
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            line.split('\t')
                .map(|cell| cell.trim().to_owned())
                .collect()
        })
        .collect()
}

/// The queues of `vhost` that hold messages (ready or unacked), if any.
pub async fn non_empty_queues(vhost: &str) -> Vec<String> {
    list_queues(vhost, &["messages"])
        .await
        .into_iter()
        .filter(|row| row.get(1).map(String::as_str) != Some("0"))
        .map(|row| row.join(" "))
        .collect()
}

/// Waits until every queue of `vhost` is empty.
pub async fn eventually_empty(vhost: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let busy = non_empty_queues(vhost).await;
        if busy.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "queues still hold messages: {busy:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
