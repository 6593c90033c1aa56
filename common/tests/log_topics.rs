//! Deleting apps' log topics, on a tansu broker of the test's own: asking
//! tansu 0.6 to delete one topic deletes every topic (its
//! `topic_delete_by.sql` matches the cluster, not the topic), so this must
//! never run against the stack's shared broker.

use berth_common::log_topics::LogTopics;
use berth_common::testing::tansu::PrivateTansu;
use berth_common::{LogProducer, LogSink};
use berth_proto::{LogRecord, LogSource, LogStream};
use uuid::Uuid;

async fn topic_of_each(brokers: &str, apps: &[Uuid]) {
    let producer = LogProducer::new(brokers, 1).unwrap();
    let record = LogRecord {
        ts: chrono::Utc::now(),
        source: LogSource::App,
        instance: "web-1".into(),
        stream: LogStream::Stdout,
        line: "hello".into(),
    };
    for app in apps {
        producer.append(*app, "key", &record).await.unwrap();
    }
}

/// When this fails, tansu deletes topics one by one: `BERTH_LOG_TOPIC_DELETE`
/// can then be true in the local stack too (infra/local/stack.sh).
#[tokio::test]
async fn tansu_deletes_every_topic_when_asked_to_delete_one() {
    let tansu = PrivateTansu::start().await;
    let (gone, kept) = (Uuid::now_v7(), Uuid::now_v7());
    topic_of_each(&tansu.brokers, &[gone, kept]).await;
    let topics = LogTopics::new(&tansu.brokers).unwrap();
    let before = topics.apps().await.unwrap();
    assert!(
        before.contains(&gone) && before.contains(&kept),
        "{before:?}"
    );

    topics.delete(&[gone]).await.unwrap();
    let after = topics.apps().await.unwrap();
    assert!(!after.contains(&gone), "the deleted topic is still listed");
    assert!(
        !after.contains(&kept),
        "tansu now deletes only the topic named: topic deletion can be enabled for it"
    );
    topics
        .delete(&[gone])
        .await
        .expect("deleting a topic that is gone is not an error");
}
