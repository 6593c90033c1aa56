//! The Kafka log reader against the real broker (tansu) of the local stack.

use berth_backend::logs::{KafkaLogReader, LogReader, SkipReason, StartAt};
use berth_common::testing::setting;
use berth_common::{LogProducer, LogSink};
use berth_proto::{LogRecord, LogSource, LogStream};
use chrono::{Duration as Span, Utc};
use std::time::Duration;
use uuid::Uuid;

fn record(n: usize) -> LogRecord {
    LogRecord {
        ts: Utc::now(),
        source: if n.is_multiple_of(2) {
            LogSource::Build
        } else {
            LogSource::App
        },
        instance: "test".into(),
        stream: LogStream::Stdout,
        line: format!("line {n}"),
    }
}

async fn write(app: Uuid, range: std::ops::Range<usize>) -> Vec<LogRecord> {
    let producer = LogProducer::new(&setting("BERTH_KAFKA_BROKERS"), 1).unwrap();
    let mut written = Vec::new();
    for n in range {
        let record = record(n);
        producer.append(app, "dep-1", &record).await.unwrap();
        written.push(record);
    }
    written
}

fn reader() -> KafkaLogReader {
    KafkaLogReader::new(&setting("BERTH_KAFKA_BROKERS"), 1).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_app_without_logs_has_an_empty_page() {
    let page = reader()
        .read(Uuid::now_v7(), StartAt::Beginning, 10)
        .await
        .unwrap();
    assert!(page.entries.is_empty());
    assert_eq!(page.next_offset, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_resume_exactly_where_the_last_one_ended() {
    let app = Uuid::now_v7();
    let written = write(app, 0..25).await;
    let reader = reader();
    let first = reader.read(app, StartAt::Offset(0), 10).await.unwrap();
    assert_eq!(first.entries.len(), 10);
    assert_eq!(first.next_offset, 10);
    let rest = reader
        .read(app, StartAt::Offset(first.next_offset), 100)
        .await
        .unwrap();
    let all: Vec<_> = first.entries.iter().chain(&rest.entries).collect();
    assert_eq!(all.len(), 25);
    for (n, entry) in all.iter().enumerate() {
        assert_eq!(entry.offset, n as i64);
        assert_eq!(entry.record, written[n]);
        assert_eq!(entry.deployment_id.as_deref(), Some("dep-1"));
    }
    assert_eq!(rest.next_offset, 25);
    let past_the_end = reader.read(app, StartAt::Offset(99), 10).await.unwrap();
    assert!(past_the_end.entries.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn since_a_time_skips_older_lines() {
    let app = Uuid::now_v7();
    write(app, 0..3).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let since = Utc::now();
    write(app, 3..5).await;
    let page = reader().read(app, StartAt::Time(since), 100).await.unwrap();
    let lines: Vec<_> = page
        .entries
        .iter()
        .map(|e| e.record.line.as_str())
        .collect();
    assert_eq!(lines, ["line 3", "line 4"]);
    let future = reader()
        .read(app, StartAt::Time(Utc::now() + Span::hours(1)), 100)
        .await
        .unwrap();
    assert!(future.entries.is_empty());
}

/// M7: a read by time skips older records for at most its budget, then
/// answers what it found and where to go on, instead of scanning the topic.
#[tokio::test(flavor = "multi_thread")]
async fn a_read_by_time_scans_at_most_its_budget_then_says_where_to_go_on() {
    let app = Uuid::now_v7();
    write(app, 0..30).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let since = Utc::now();
    write(app, 30..33).await;
    let reader = reader().with_scan_budget(10);

    // From the start of the topic (what a broker that cannot find offsets
    // by time, like tansu, does for `since`): ten records a page.
    let mut pages = Vec::new();
    let mut from = 0;
    loop {
        let page = reader
            .read(app, StartAt::TimeFrom(from, since), 5)
            .await
            .unwrap();
        assert!(page.next_offset - from <= 10, "scanned past the budget");
        from = page.next_offset;
        let done = !page.truncated;
        pages.push(page);
        if done {
            break;
        }
    }
    assert_eq!(pages.len(), 4);
    for page in &pages[..3] {
        assert!(page.truncated && page.entries.is_empty());
    }
    let lines: Vec<_> = pages[3]
        .entries
        .iter()
        .map(|e| e.record.line.as_str())
        .collect();
    assert_eq!(lines, ["line 30", "line 31", "line 32"]);
    assert_eq!(pages[3].next_offset, 33);

    // `since` alone starts where the broker says, or scans from the start
    // within the same budget.
    let page = reader.read(app, StartAt::Time(since), 5).await.unwrap();
    if page.truncated {
        assert_eq!(page.next_offset, 10);
        assert!(page.entries.is_empty());
    } else {
        assert_eq!(page.entries.len(), 3);
    }
    // Reads that skip nothing are not cut short by the budget.
    let all = reader.read(app, StartAt::Beginning, 33).await.unwrap();
    assert_eq!((all.entries.len(), all.truncated), (33, false));
}

#[tokio::test(flavor = "multi_thread")]
async fn follow_replays_history_then_delivers_live_lines() {
    let app = Uuid::now_v7();
    write(app, 0..3).await;
    let mut live = reader().follow(app, StartAt::Offset(1)).await.unwrap();
    assert_eq!(live.skipped, None);
    // An offset past the end (held from before the log was reset) starts at
    // the end, and says so.
    let reset = reader().follow(app, StartAt::Offset(5000)).await.unwrap();
    let skipped = reset.skipped.expect("a skip");
    assert_eq!((skipped.from, skipped.to), (5000, 3));
    assert_eq!(skipped.reason, SkipReason::Reset);
    let mut seen = Vec::new();
    let writer = tokio::spawn(async move { write(app, 3..6).await });
    while seen.len() < 5 {
        let entry = tokio::time::timeout(Duration::from_secs(20), live.entries.recv())
            .await
            .expect("a live entry within 20 s")
            .expect("the stream stays open")
            .unwrap();
        seen.push((entry.offset, entry.record.line));
    }
    writer.await.unwrap();
    let expected: Vec<_> = (1..6).map(|n| (n as i64, format!("line {n}"))).collect();
    assert_eq!(seen, expected, "no gap, no duplicate");
}
