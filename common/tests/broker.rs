//! The supervised broker against the local stack's real RabbitMQ, each test
//! in its own vhost.

mod support {
    pub mod broker;
}

use async_trait::async_trait;
use berth_common::testing::{rabbitmqctl, TestVhost};
use berth_common::{Broker, BrokerError, DeadLetter, DeadLetterHandler, MessagePublisher, Outcome};
use berth_proto::names::{BUILDS_QUEUE, INFORM_QUEUE, RECONCILE_QUEUE, RETRIES_HEADER};
use berth_proto::{DesiredState, Envelope};
use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::broker::*;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(10);

async fn setup(url: &str) {
    let broker = Broker::new(url, "setup").with_retry(fast_retries(WAIT));
    broker.ensure_topology().await.unwrap();
}

#[tokio::test]
async fn bad_messages_are_dead_lettered_with_the_reason_and_the_worker_goes_on() {
    let vhost = TestVhost::new();
    let url = vhost.url.clone();
    setup(&url).await;
    let (mut calls, shutdown) = consume(&url, fast_retries(WAIT), 2, |_, _| {
        Act::Return(Outcome::Done)
    });

    publish_raw(&url, INFORM_QUEUE, b"{not json").await;
    let (body, headers) = next_on(&url, "berth.inform.dead").await;
    assert_eq!(body, b"{not json");
    assert!(reason(&headers)
        .unwrap()
        .starts_with("the message is not a berth envelope"));

    let mut unknown = progress();
    unknown.kind = "deployment.exploded".into();
    publish_raw(&url, INFORM_QUEUE, &unknown.to_bytes()).await;
    let (_, headers) = next_on(&url, "berth.inform.dead").await;
    assert_eq!(
        reason(&headers).as_deref(),
        Some("unknown message type `deployment.exploded`")
    );

    let mut future = progress();
    future.version = 2;
    publish_raw(&url, INFORM_QUEUE, &future.to_bytes()).await;
    let (_, headers) = next_on(&url, "berth.inform.dead").await;
    assert!(reason(&headers)
        .unwrap()
        .contains("version 2 is not supported"));

    // A build request on the inform queue is refused, not mishandled.
    let misplaced = Envelope {
        kind: "build.requested".into(),
        ..progress()
    };
    publish_raw(&url, INFORM_QUEUE, &misplaced.to_bytes()).await;
    let (_, headers) = next_on(&url, "berth.inform.dead").await;
    assert!(reason(&headers).is_some());

    // And the worker is still consuming.
    let good = progress();
    Broker::new(&url, "publisher")
        .publish(INFORM_QUEUE, &good)
        .await
        .unwrap();
    assert_eq!(next_call(&mut calls, WAIT).await.envelope.id, good.id);
    shutdown.cancel();
}

#[tokio::test]
async fn a_failing_message_is_retried_later_each_time_without_using_the_delivery_limit() {
    let vhost = TestVhost::new();
    let url = vhost.url.clone();
    setup(&url).await;
    // More retries than the queue's delivery limit (5).
    const RETRIES: u32 = 6;
    let (mut calls, shutdown) = consume(&url, fast_retries(WAIT), 2, |n, _| {
        Act::Return(if n <= RETRIES {
            Outcome::Retry(format!("database down ({n})"))
        } else {
            Outcome::Done
        })
    });
    let message = progress();
    Broker::new(&url, "publisher")
        .publish(INFORM_QUEUE, &message)
        .await
        .unwrap();
    let mut seen = Vec::new();
    for _ in 0..=RETRIES {
        seen.push(next_call(&mut calls, WAIT).await);
    }
    for (n, call) in seen.iter().enumerate() {
        assert_eq!(call.envelope.id, message.id);
        assert_eq!(call.info.retries, n as u32, "{call:?}");
        // A fresh copy each time, not a redelivery the broker counts.
        assert!(!call.info.redelivered, "{call:?}");
        let last = (n > 0).then(|| format!("database down ({n})"));
        assert_eq!(call.info.last_error, last);
    }
    let gaps: Vec<Duration> = seen.windows(2).map(|w| w[1].at - w[0].at).collect();
    eprintln!("waits between attempts: {gaps:?}");
    let ms = Duration::from_millis;
    for (gap, tier) in gaps.iter().zip([100, 200, 400, 400, 400, 400]) {
        assert!(
            *gap >= ms(tier),
            "waited {gap:?}, less than {tier} ms: {gaps:?}"
        );
    }
    assert!(gaps[2] > gaps[0] + ms(150), "the delays grow: {gaps:?}");
    // Acked: nothing is left anywhere, nothing was dead-lettered.
    eventually_empty(&vhost.name, WAIT).await;
    assert!(calls.try_recv().is_err());
    shutdown.cancel();
}

#[tokio::test]
async fn a_message_that_keeps_failing_is_dead_lettered_with_its_last_error_once_the_budget_is_spent(
) {
    let vhost = TestVhost::new();
    let url = vhost.url.clone();
    setup(&url).await;
    // 100 + 200 + 400 ms fit in a second; another 400 ms would not.
    let retry = fast_retries(Duration::from_secs(1));
    let (mut calls, shutdown) = consume(&url, retry, 2, |_, _| {
        Act::Return(Outcome::Retry("database down".into()))
    });
    let message = progress();
    let started = Instant::now();
    Broker::new(&url, "publisher")
        .publish(INFORM_QUEUE, &message)
        .await
        .unwrap();
    let (body, headers) = next_on(&url, "berth.inform.dead").await;
    assert!(started.elapsed() >= Duration::from_millis(700));
    assert_eq!(Envelope::from_bytes(&body).unwrap().id, message.id);
    assert_eq!(reason(&headers).as_deref(), Some("database down"));
    assert_eq!(
        headers.inner().get(RETRIES_HEADER),
        Some(&AMQPValue::LongLongInt(3))
    );
    let mut attempts = 0;
    while calls.try_recv().is_ok() {
        attempts += 1;
    }
    assert_eq!(attempts, 4, "the first attempt and three retries");
    eventually_empty(&vhost.name, WAIT).await;
    shutdown.cancel();
}

#[tokio::test]
async fn a_handler_that_panics_is_retried_and_the_message_acked() {
    let vhost = TestVhost::new();
    let url = vhost.url.clone();
    setup(&url).await;
    let (mut calls, shutdown) = consume(&url, fast_retries(WAIT), 2, |n, _| match n {
        1 => Act::Panic("the handler tripped"),
        _ => Act::Return(Outcome::Done),
    });
    let message = progress();
    Broker::new(&url, "publisher")
        .publish(INFORM_QUEUE, &message)
        .await
        .unwrap();
    let first = next_call(&mut calls, WAIT).await;
    assert_eq!(first.info.retries, 0);
    let second = next_call(&mut calls, Duration::from_secs(5)).await;
    assert_eq!(second.envelope.id, message.id);
    assert_eq!(second.info.retries, 1);
    let last_error = second.info.last_error.unwrap_or_default();
    assert!(last_error.contains("the handler tripped"), "{last_error}");
    eventually_empty(&vhost.name, WAIT).await;
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_connection_is_replaced_at_once_and_busy_handlers_learn_their_delivery_is_lost() {
    let vhost = TestVhost::new();
    let url = vhost.url.clone();
    setup(&url).await;
    let (mut calls, shutdown) = consume(&url, fast_retries(WAIT), 2, |n, info| {
        if n == 1 && !info.redelivered {
            Act::Work(Duration::from_secs(30))
        } else {
            Act::Return(Outcome::Done)
        }
    });
    let slow = progress();
    Broker::new(&url, "publisher")
        .publish(INFORM_QUEUE, &slow)
        .await
        .unwrap();
    assert_eq!(next_call(&mut calls, WAIT).await.envelope.id, slow.id);

    let name = vhost.name.clone();
    tokio::task::spawn_blocking(move || {
        rabbitmqctl(&["close_all_connections", "-p", &name, "test"]);
    })
    .await
    .unwrap();
    let cut = Instant::now();
    let next = progress();
    Broker::new(&url, "publisher")
        .publish(INFORM_QUEUE, &next)
        .await
        .unwrap();

    let (mut lost_after, mut next_after, mut redelivered) = (None, None, false);
    while lost_after.is_none() || next_after.is_none() || !redelivered {
        let call = next_call(&mut calls, WAIT).await;
        if call.envelope.id == next.id {
            next_after = Some(call.at - cut);
        } else if call.lost {
            lost_after = Some(call.at - cut);
        } else if call.info.redelivered {
            // The broker put the busy handler's message back.
            redelivered = true;
        }
    }
    let (lost_after, next_after) = (lost_after.unwrap(), next_after.unwrap());
    assert!(lost_after < Duration::from_secs(5), "{lost_after:?}");
    assert!(next_after < Duration::from_secs(5), "{next_after:?}");
    eventually_empty(&vhost.name, WAIT).await;
    shutdown.cancel();
}

#[tokio::test]
async fn dead_letter_queues_are_bounded_and_work_queues_dead_letter_at_least_once() {
    let vhost = TestVhost::new();
    Broker::new(&vhost.url, "setup")
        .ensure_topology()
        .await
        .unwrap();
    let queues = list_queues(&vhost.name, &["arguments"]).await;
    let arguments = |queue: &str| {
        queues
            .iter()
            .find(|row| row[0] == queue)
            .unwrap_or_else(|| panic!("no {queue} in {queues:?}"))[1]
            .clone()
    };
    assert!(
        arguments("berth.reconcile").contains(r#""x-single-active-consumer",true"#),
        "{}",
        arguments("berth.reconcile")
    );
    assert!(!arguments("berth.deploys").contains("x-single-active-consumer"));
    for queue in [
        "berth.builds",
        "berth.deploys",
        "berth.inform",
        "berth.reconcile",
    ] {
        let dead = arguments(&format!("{queue}.dead"));
        assert!(dead.contains(r#""x-max-length",10000"#), "{dead}");
        assert!(dead.contains(r#""x-message-ttl",604800000"#), "{dead}");
        let work = arguments(queue);
        assert!(
            work.contains(r#""x-dead-letter-strategy","at-least-once""#),
            "{work}"
        );
        assert!(work.contains(r#""x-overflow","reject-publish""#), "{work}");
        assert!(work.contains(r#""x-delivery-limit",5"#), "{work}");
        for (tier, ttl) in [("1s", 1000), ("5s", 5000), ("20s", 20000), ("60s", 60000)] {
            let retry = arguments(&format!("{queue}.retry.{tier}"));
            assert!(
                retry.contains(&format!(r#""x-message-ttl",{ttl}"#)),
                "{retry}"
            );
            assert!(retry.contains(&format!(r#""x-dead-letter-routing-key","{queue}""#)));
        }
    }
}

#[tokio::test]
async fn queues_an_older_berth_declared_are_kept_and_work() {
    let vhost = TestVhost::new();
    let url = vhost.url.clone();
    // What the previous release declared: no limits, at-most-once.
    let connection = Connection::connect(&url, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let text = |value: &str| AMQPValue::LongString(value.into());
    let mut work = FieldTable::default();
    work.insert("x-queue-type".into(), text("quorum"));
    work.insert("x-delivery-limit".into(), AMQPValue::LongInt(5));
    work.insert("x-dead-letter-exchange".into(), text("berth.dlx"));
    work.insert("x-dead-letter-routing-key".into(), text(INFORM_QUEUE));
    let mut dead = FieldTable::default();
    dead.insert("x-queue-type".into(), text("quorum"));
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    for (queue, arguments) in [(INFORM_QUEUE, work), ("berth.inform.dead", dead)] {
        channel
            .queue_declare(queue.into(), durable, arguments)
            .await
            .unwrap();
    }
    connection.close(200, "done".into()).await.unwrap();

    setup(&url).await;
    let (mut calls, shutdown) = consume(&url, fast_retries(WAIT), 2, |n, _| {
        Act::Return(match n {
            1 => Outcome::Retry("not yet".into()),
            _ => Outcome::Done,
        })
    });
    let message = progress();
    Broker::new(&url, "publisher")
        .publish(INFORM_QUEUE, &message)
        .await
        .unwrap();
    assert_eq!(next_call(&mut calls, WAIT).await.info.retries, 0);
    assert_eq!(next_call(&mut calls, WAIT).await.info.retries, 1);
    eventually_empty(&vhost.name, WAIT).await;
    let queues = list_queues(&vhost.name, &["arguments"]).await;
    let inform = queues.iter().find(|row| row[0] == INFORM_QUEUE).unwrap();
    assert!(
        !inform[1].contains("at-least-once"),
        "kept as it was: {inform:?}"
    );
    shutdown.cancel();
}

/// Hands each dead letter to the test; fails the first one it sees.
struct DeadLetters {
    calls: AtomicU32,
    seen: mpsc::UnboundedSender<DeadLetter>,
}

#[async_trait]
impl DeadLetterHandler for DeadLetters {
    async fn handle(&self, dead: DeadLetter) -> Result<(), String> {
        let first = self.calls.fetch_add(1, Ordering::SeqCst) == 0;
        let _ = self.seen.send(dead);
        if first {
            Err("database down".into())
        } else {
            Ok(())
        }
    }
}

async fn next_dead(receiver: &mut mpsc::UnboundedReceiver<DeadLetter>) -> DeadLetter {
    tokio::time::timeout(WAIT, receiver.recv())
        .await
        .expect("a dead letter arrives")
        .unwrap()
}

#[tokio::test]
async fn the_dead_letter_consumer_gets_each_refused_message_with_its_reason_and_counts_it() {
    let metrics = berth_common::ops::metrics_handle();
    let vhost = TestVhost::new();
    let url = vhost.url.clone();
    setup(&url).await;
    let (_calls, shutdown) = consume(&url, fast_retries(WAIT), 2, |_, _| {
        Act::Return(Outcome::Reject("no such deployment".into()))
    });
    let (seen, mut dead_letters) = mpsc::unbounded_channel();
    let handler = Arc::new(DeadLetters {
        calls: AtomicU32::new(0),
        seen,
    });
    let broker = Broker::new(&url, "dead-letters");
    let stop = CancellationToken::new();
    tokio::spawn({
        let stop = stop.clone();
        async move {
            broker
                .consume_dead_letters(INFORM_QUEUE, 1, handler, stop)
                .await
        }
    });
    let message = progress();
    Broker::new(&url, "publisher")
        .publish(INFORM_QUEUE, &message)
        .await
        .unwrap();
    // The handler fails the first time: it comes back.
    for _ in 0..2 {
        let dead = next_dead(&mut dead_letters).await;
        assert_eq!(dead.queue, INFORM_QUEUE);
        assert_eq!(dead.envelope.map(|e| e.id), Some(message.id));
        assert_eq!(dead.reason, "no such deployment");
    }
    publish_raw(&url, INFORM_QUEUE, b"\x00garbage").await;
    let dead = next_dead(&mut dead_letters).await;
    assert!(dead.envelope.is_none());
    assert_eq!(dead.body, b"\x00garbage");
    assert!(dead
        .reason
        .starts_with("the message is not a berth envelope"));
    eventually_empty(&vhost.name, WAIT).await;
    let rendered = metrics.render();
    assert!(
        rendered.contains(r#"berth_dead_lettered_total{queue="berth.inform"} 2"#),
        "{rendered}"
    );
    stop.cancel();
    shutdown.cancel();
}

#[tokio::test]
async fn messages_published_before_any_consumer_wait_in_the_durable_queue() {
    let vhost = TestVhost::new();
    let url = vhost.url.clone();
    let publisher = Broker::new(&url, "publisher");
    let sent = progress();
    publisher.publish(BUILDS_QUEUE, &sent).await.unwrap();
    let (body, headers) = next_on(&url, BUILDS_QUEUE).await;
    assert_eq!(Envelope::from_bytes(&body).unwrap(), sent);
    assert_eq!(reason(&headers), None);
}

#[tokio::test]
async fn a_queue_deleted_under_the_publisher_is_declared_again_after_one_unroutable_publish() {
    let vhost = TestVhost::new();
    let url = vhost.url.clone();
    let publisher = Broker::new(&url, "publisher");
    publisher.ensure_topology().await.unwrap();
    let name = vhost.name.clone();
    tokio::task::spawn_blocking(move || {
        rabbitmqctl(&["delete_queue", "-p", &name, BUILDS_QUEUE]);
    })
    .await
    .unwrap();
    let lost = publisher.publish(BUILDS_QUEUE, &progress()).await;
    assert!(matches!(lost, Err(BrokerError::Unroutable(_))), "{lost:?}");
    let sent = progress();
    publisher.publish(BUILDS_QUEUE, &sent).await.unwrap();
    let (body, _) = next_on(&url, BUILDS_QUEUE).await;
    assert_eq!(Envelope::from_bytes(&body).unwrap().id, sent.id);
}

#[tokio::test]
async fn publishing_to_an_unreachable_broker_fails_instead_of_hanging() {
    let broker = Broker::new("amqp://berth:nope@127.0.0.1:1/%2f", "nowhere");
    let result = tokio::time::timeout(WAIT, broker.publish(INFORM_QUEUE, &progress())).await;
    assert!(matches!(result, Ok(Err(_))), "{result:?}");
}

#[tokio::test]
async fn a_publish_to_a_broker_that_never_answers_times_out() {
    // Accepts connections and says nothing.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let broker = Broker::new(format!("amqp://berth:nope@127.0.0.1:{port}/%2f"), "mute")
        .with_publish_timeout(Duration::from_millis(500));
    let result = tokio::time::timeout(WAIT, broker.publish(INFORM_QUEUE, &progress())).await;
    assert!(
        matches!(result, Ok(Err(BrokerError::Timeout(_)))),
        "{result:?}"
    );
}

#[tokio::test]
async fn every_process_redeclares_the_topology_with_its_own_rights_once_the_backend_declared_it() {
    let vhost = TestVhost::new();
    // The backend (which may read every queue) declares first, as its
    // migrate step does in production: only a queue's creator needs read
    // rights on a queue that dead-letters (the retry queues do).
    for process in ["berth-backend", "berth-build-worker", "berth-deploy-worker"] {
        let declared = Broker::new(vhost.url_for(process), "rights")
            .ensure_topology()
            .await;
        assert!(declared.is_ok(), "{process}: {declared:?}");
    }
}

/// Two deploy-workers: only one reconciles at a time, and the other takes
/// over when it stops.
#[tokio::test]
async fn one_consumer_at_a_time_takes_the_snapshots_and_another_takes_over() {
    let vhost = TestVhost::new();
    let url = vhost.url.clone();
    setup(&url).await;
    let done = |_: u32, _: &berth_common::DeliveryInfo| Act::Return(Outcome::Done);
    let (mut first, stop_first) = consume_on(&url, RECONCILE_QUEUE, fast_retries(WAIT), 1, done);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (mut second, stop_second) = consume_on(&url, RECONCILE_QUEUE, fast_retries(WAIT), 1, done);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let publisher = Broker::new(&url, "publisher");
    let snapshot = || {
        Envelope::new(
            None,
            1,
            &DesiredState {
                at: chrono::Utc::now(),
                apps: Vec::new(),
            },
        )
    };
    for _ in 0..4 {
        publisher
            .publish(RECONCILE_QUEUE, &snapshot())
            .await
            .unwrap();
    }
    for _ in 0..4 {
        next_call(&mut first, WAIT).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(second.try_recv().is_err(), "the standby got a snapshot");

    stop_first.cancel();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = snapshot();
    publisher.publish(RECONCILE_QUEUE, &after).await.unwrap();
    assert_eq!(next_call(&mut second, WAIT).await.envelope.id, after.id);
    stop_second.cancel();
}

/// Fails once, then succeeds; remembers each scheduled retry.
#[derive(Default)]
struct FailsOnce {
    calls: AtomicU32,
    retries: std::sync::Mutex<Vec<(uuid::Uuid, Duration, String)>>,
}

#[async_trait]
impl berth_common::Handler for FailsOnce {
    async fn handle(
        &self,
        _envelope: Envelope,
        _message: berth_proto::Message,
        _delivery: berth_common::DeliveryInfo,
    ) -> Outcome {
        match self.calls.fetch_add(1, Ordering::SeqCst) {
            0 => Outcome::Retry("the container engine is unavailable".into()),
            _ => Outcome::Done,
        }
    }

    async fn retrying(&self, envelope: &Envelope, delay: Duration, reason: &str) {
        self.retries.lock().unwrap().push((
            envelope.deployment_id.unwrap(),
            delay,
            reason.to_owned(),
        ));
    }
}

/// Users learn why a deployment waits and when it is tried again.
#[tokio::test]
async fn a_scheduled_retry_is_told_to_the_handler_with_its_delay_and_reason() {
    let vhost = TestVhost::new();
    let url = vhost.url.clone();
    setup(&url).await;
    let handler = Arc::new(FailsOnce::default());
    let broker = Broker::new(&url, "test").with_retry(fast_retries(WAIT));
    let shutdown = CancellationToken::new();
    tokio::spawn({
        let (handler, shutdown) = (handler.clone(), shutdown.clone());
        async move { broker.consume(INFORM_QUEUE, 1, handler, shutdown).await }
    });
    let message = progress();
    Broker::new(&url, "publisher")
        .publish(INFORM_QUEUE, &message)
        .await
        .unwrap();
    let started = Instant::now();
    while handler.calls.load(Ordering::SeqCst) < 2 {
        assert!(started.elapsed() < WAIT, "the retry never came");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let retries = handler.retries.lock().unwrap().clone();
    assert_eq!(
        retries,
        [(
            message.deployment_id.unwrap(),
            Duration::from_millis(100),
            "the container engine is unavailable".to_owned()
        )]
    );
    shutdown.cancel();
}

/// F8: a message whose worker keeps dying (a repository whose clone kills
/// it) ends in the dead-letter queue with a reason users can read.
#[tokio::test]
async fn a_message_whose_worker_keeps_dying_is_dead_lettered_saying_so() {
    use futures::StreamExt;
    use lapin::options::{BasicConsumeOptions, BasicNackOptions};
    let vhost = TestVhost::new();
    let url = vhost.url.clone();
    setup(&url).await;
    let (seen, mut dead_letters) = mpsc::unbounded_channel();
    let handler = Arc::new(DeadLetters {
        // Handled the first time.
        calls: AtomicU32::new(1),
        seen,
    });
    let stop = CancellationToken::new();
    tokio::spawn({
        let (broker, stop) = (Broker::new(&url, "dead-letters"), stop.clone());
        async move {
            broker
                .consume_dead_letters(INFORM_QUEUE, 1, handler, stop)
                .await
        }
    });
    let message = progress();
    Broker::new(&url, "publisher")
        .publish(INFORM_QUEUE, &message)
        .await
        .unwrap();
    // A worker that dies with the message each time: it is handed back
    // without being settled.
    let connection = Connection::connect(&url, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let mut deliveries = channel
        .basic_consume(
            INFORM_QUEUE.into(),
            "dying".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let dead = loop {
        tokio::select! {
            delivery = deliveries.next() => {
                let delivery = delivery.expect("the consumer runs").unwrap();
                delivery
                    .nack(BasicNackOptions { requeue: true, ..Default::default() })
                    .await
                    .unwrap();
            }
            dead = dead_letters.recv() => break dead.unwrap(),
            () = tokio::time::sleep(WAIT) => panic!("never dead-lettered"),
        }
    };
    assert_eq!(dead.envelope.map(|e| e.id), Some(message.id));
    assert_eq!(
        dead.reason,
        "the worker handling it stopped 5 times before it finished (it crashed, was killed, \
         or lost the broker)"
    );
    stop.cancel();
}
