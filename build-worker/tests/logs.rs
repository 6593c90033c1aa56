//! The build log against the real Kafka-protocol broker (tansu): order,
//! completeness and throughput of `BuildLog` over `LogProducer`.

mod support;

use berth_build_worker::{BuildLog, LogSettings};
use berth_common::LogProducer;
use std::sync::Arc;
use std::time::Instant;
use support::*;
use uuid::Uuid;

#[tokio::test]
async fn thousands_of_build_lines_arrive_in_order_and_quickly() {
    let env = stack();
    let producer = Arc::new(LogProducer::new(&env["BERTH_KAFKA_BROKERS"], 24).unwrap());
    let (app, deployment) = (Uuid::now_v7(), Uuid::now_v7());
    // The topic exists before timing starts, as it would after a build's first line.
    producer.ensure_topic(app).await.unwrap();
    const LINES: usize = 5000;
    let log = BuildLog::start(producer, app, deployment, &LogSettings::default());
    let started = Instant::now();
    for i in 0..LINES {
        log.line(format!("line {i:05} of a chatty build")).await;
    }
    let queued = started.elapsed();
    let dropped = log.finish().await;
    let stored = started.elapsed();
    assert_eq!(dropped, 0);
    let rate = LINES as f64 / stored.as_secs_f64();
    eprintln!(
        "{LINES} build lines: queued in {queued:?}, all stored in {stored:?} ({rate:.0} lines/s)"
    );

    let records = log_lines(app, deployment, &format!("line {:05}", LINES - 1)).await;
    let expected: Vec<String> = (0..LINES)
        .map(|i| format!("line {i:05} of a chatty build"))
        .collect();
    let got: Vec<String> = records.into_iter().map(|r| r.line).collect();
    assert_eq!(got, expected);
    // One awaited append per line would take ~16 ms each on tansu (~80 s).
    assert!(rate > 500.0, "only {rate:.0} lines/s");
}

/// The same sink without its batched `append_many`: one awaited append per
/// line, the rate the build log would have without it (for comparison).
struct OneByOne(LogProducer);

#[async_trait::async_trait]
impl berth_common::LogSink for OneByOne {
    async fn append(
        &self,
        app_id: Uuid,
        key: &str,
        record: &berth_proto::LogRecord,
    ) -> Result<i64, berth_common::logs::LogError> {
        self.0.append(app_id, key, record).await
    }
}

#[tokio::test]
async fn batching_beats_one_append_per_line() {
    let env = stack();
    let producer = LogProducer::new(&env["BERTH_KAFKA_BROKERS"], 24).unwrap();
    let (app, deployment) = (Uuid::now_v7(), Uuid::now_v7());
    producer.ensure_topic(app).await.unwrap();
    const LINES: usize = 200;
    let log = BuildLog::start(
        Arc::new(OneByOne(producer)),
        app,
        deployment,
        &LogSettings::default(),
    );
    let started = Instant::now();
    for i in 0..LINES {
        log.line(format!("line {i}")).await;
    }
    assert_eq!(log.finish().await, 0);
    let rate = LINES as f64 / started.elapsed().as_secs_f64();
    eprintln!(
        "one append per line: {LINES} lines in {:?} ({rate:.0} lines/s)",
        started.elapsed()
    );
}
