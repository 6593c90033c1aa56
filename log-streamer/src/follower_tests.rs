//! The pipeline against a scripted log and a sink that can fail.

use super::*;
use crate::source::{LogSource, WorkloadEvent};
use crate::test_sink::MemorySink as Sink;
use async_trait::async_trait;
use berth_proto::LogStream;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use uuid::Uuid;

struct ScriptedLog(Vec<LogLine>);

#[async_trait]
impl LogSource for ScriptedLog {
    async fn workloads(&self) -> Result<Vec<Workload>, StreamError> {
        Ok(vec![])
    }
    async fn is_running(&self, _id: &str) -> Result<Option<bool>, StreamError> {
        Ok(Some(false))
    }
    fn events(
        &self,
        _since: Option<i64>,
    ) -> BoxStream<'static, Result<WorkloadEvent, StreamError>> {
        futures::stream::pending().boxed()
    }
    fn logs(&self, _id: &str, since: i64) -> BoxStream<'static, Result<LogLine, StreamError>> {
        let lines: Vec<_> = self
            .0
            .iter()
            .filter(|line| line.ts.timestamp() >= since)
            .cloned()
            .map(Ok)
            .collect();
        futures::stream::iter(lines).boxed()
    }
}

fn log() -> Vec<LogLine> {
    // Several lines per second, as a chatty app prints them.
    (0..20)
        .map(|i| LogLine {
            ts: DateTime::<Utc>::from_timestamp(1_795_000_000 + i / 6, 0).unwrap(),
            stream: if i % 2 == 0 {
                LogStream::Stdout
            } else {
                LogStream::Stderr
            },
            line: format!("line {i}"),
        })
        .collect()
}

fn follower(
    sink: Arc<Sink>,
    dir: &std::path::Path,
    max_in_flight: usize,
) -> Follower<ScriptedLog, Sink> {
    Follower::new(
        Arc::new(ScriptedLog(log())),
        sink,
        CheckpointStore::open(dir).unwrap(),
        max_in_flight,
    )
}

fn workload() -> Workload {
    Workload {
        id: "c1".into(),
        name: "berth-t-web-1".into(),
        app_id: Uuid::now_v7(),
        key: "d1".into(),
        running: true,
    }
}

fn expected(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("line {i}")).collect()
}

#[tokio::test]
async fn every_line_is_shipped_in_order_and_checkpointed() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(Sink::default());
    let follower = follower(sink.clone(), dir.path(), 4);
    let ended = follower
        .follow(&workload(), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(ended, Ended::StreamEnded);
    assert_eq!(sink.lines(), expected(0..20));
    assert_eq!(
        follower.store.load("c1"),
        Position {
            second: 1_795_000_003,
            lines: 2,
            offset: Some(19),
        }
    );
    // Following again ships nothing twice.
    follower
        .follow(&workload(), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(sink.lines().len(), 20);
}

#[tokio::test]
async fn a_failed_delivery_resumes_after_the_last_confirmed_line() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(Sink::default());
    *sink.fail_at.lock().unwrap() = Some(9);
    // One in flight: nothing after the failed line was handed over.
    let follower = follower(sink.clone(), dir.path(), 1);
    assert!(follower
        .follow(&workload(), &CancellationToken::new())
        .await
        .is_err());
    assert_eq!(sink.lines(), expected(0..8));
    follower
        .follow(&workload(), &CancellationToken::new())
        .await
        .unwrap();
    let mut all = expected(0..8);
    all.extend(expected(8..20));
    assert_eq!(sink.lines(), all, "line 8 retried, none repeated");
}

#[tokio::test]
async fn cancelling_delivers_what_was_read_before_returning() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(Sink::default());
    let follower = follower(sink.clone(), dir.path(), 8);
    let shutdown = CancellationToken::new();
    shutdown.cancel();
    let ended = follower.follow(&workload(), &shutdown).await.unwrap();
    assert_eq!(ended, Ended::Cancelled);
    let shipped = sink.lines().len();
    let position = follower.store.load("c1");
    follower
        .follow(&workload(), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(sink.lines(), expected(0..20));
    assert!(shipped <= 20 && position.lines <= 6);
}

/// A crash after Kafka confirmed lines but before the checkpoint was
/// written (the chaos suite's SIGKILL found it): the next follow learns from
/// the topic how far the lines reach and repeats none.
#[tokio::test]
async fn lines_stored_after_the_last_checkpoint_are_not_shipped_again() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(Sink::default());
    let follower = follower(sink.clone(), dir.path(), 4);
    let before_crash = follower.store.load("c1");
    follower
        .follow(&workload(), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(sink.lines(), expected(0..20));
    // The crash: the checkpoint on disk is the one from before these lines.
    let first = Position {
        offset: Some(-1),
        ..before_crash
    };
    follower.store.save(&workload(), first).unwrap();

    // The streamer that starts again after the crash.
    let follower = self::follower(sink.clone(), dir.path(), 4);
    follower
        .follow(&workload(), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(sink.lines(), expected(0..20), "no line shipped twice");
    assert_eq!(follower.store.load("c1").second, 1_795_000_003);
}

/// A first follow records where the topic ends before shipping anything:
/// a crash before its first checkpoint is recovered the same way.
#[tokio::test]
async fn a_first_follow_records_where_the_topic_ends() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(Sink::default());
    // Another container's lines are in the topic already.
    let other = Workload {
        id: "c0".into(),
        key: "d0".into(),
        ..workload()
    };
    let follower = follower(sink.clone(), dir.path(), 4);
    follower
        .follow(&other, &CancellationToken::new())
        .await
        .unwrap();
    let recovered = follower.recover(&workload()).await.unwrap();
    assert_eq!(recovered.offset, Some(19));
    assert_eq!(follower.store.load("c1"), recovered, "saved at once");
    assert_eq!((recovered.second, recovered.lines), (0, 0));
}

/// Records of one key come from several workloads (the pods of one
/// deployment): a recovery takes only its own workload's position, never
/// another's further one, which would skip its own unshipped lines.
#[tokio::test]
async fn a_recovery_reads_only_its_own_workloads_marks() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(Sink::default());
    let follower = follower(sink.clone(), dir.path(), 4);
    let (pod_a, pod_b) = (
        workload(),
        Workload {
            id: "c2".into(),
            ..workload()
        },
    );
    let before = follower.recover(&pod_a).await.unwrap();
    // Pod b (same key) ships its whole log; pod a has shipped nothing.
    follower
        .follow(&pod_b, &CancellationToken::new())
        .await
        .unwrap();
    let recovered = follower.recover(&pod_a).await.unwrap();
    assert_eq!(
        (recovered.second, recovered.lines),
        (before.second, before.lines)
    );
    follower
        .follow(&pod_a, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(sink.lines().len(), 40, "pod a shipped its own 20 lines");
}
