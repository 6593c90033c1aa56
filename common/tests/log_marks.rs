//! A record's mark travels through the real broker (tansu): a writer that
//! died between Kafka's confirmation and its own checkpoint learns from the
//! topic how far its records reach.

use berth_common::testing::setting;
use berth_common::LogProducer;
use berth_proto::{LogRecord, LogSource, LogStream};
use uuid::Uuid;

fn record(line: &str) -> LogRecord {
    LogRecord {
        ts: chrono::Utc::now(),
        source: LogSource::App,
        instance: "web-1".into(),
        stream: LogStream::Stdout,
        line: line.into(),
    }
}

async fn store(
    producer: &LogProducer,
    app: Uuid,
    key: &str,
    line: &str,
    mark: Option<&str>,
) -> i64 {
    let delivery = producer
        .enqueue_marked(app, key, &record(line), mark)
        .await
        .unwrap();
    berth_common::logs::delivered(delivery).await.unwrap()
}

#[tokio::test]
async fn the_last_mark_of_a_key_after_an_offset_is_read_back_from_the_topic() {
    let producer = LogProducer::new(&setting("BERTH_KAFKA_BROKERS"), 1).unwrap();
    let app = Uuid::now_v7();
    assert_eq!(
        producer.last_mark(app, "a", "c1 ", None).await.unwrap(),
        (-1, None),
        "an empty topic ends before offset 0"
    );
    let first = store(&producer, app, "a", "a1", Some("c1 100:1")).await;
    store(&producer, app, "a", "a2", Some("c1 100:2")).await;
    // Another writer of the same key (a second pod of one deployment),
    // another key, and an event without a mark come after.
    store(&producer, app, "a", "a3", Some("c2 900:1")).await;
    store(&producer, app, "b", "b1", Some("c3 500:1")).await;
    let end = store(&producer, app, "a", "event", None).await;

    let (last, mark) = producer
        .last_mark(app, "a", "c1 ", Some(first))
        .await
        .unwrap();
    assert_eq!(last, end);
    assert_eq!(mark.as_deref(), Some("c1 100:2"));
    let (_, mark) = producer
        .last_mark(app, "b", "c3 ", Some(first))
        .await
        .unwrap();
    assert_eq!(mark.as_deref(), Some("c3 500:1"));
    assert_eq!(
        producer
            .last_mark(app, "a", "c1 ", Some(end))
            .await
            .unwrap(),
        (end, None),
        "nothing after the end"
    );
}
