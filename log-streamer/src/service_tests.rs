//! Following a workload through the [`Streamer`], against a scripted engine.

use super::*;
use crate::error::StreamError;
use crate::source::{LogLine, WorkloadEvent};
use crate::test_sink::MemorySink;
use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::StreamExt;
use std::sync::atomic::AtomicUsize;
use uuid::Uuid;

/// An engine whose log stream fails (as podman's does when the container
/// is force-removed under it) and that no longer knows the container.
#[derive(Default)]
struct RemovedUnderTheStream {
    reads: AtomicUsize,
}

#[async_trait]
impl LogSource for RemovedUnderTheStream {
    async fn workloads(&self) -> Result<Vec<Workload>, StreamError> {
        Ok(vec![])
    }
    async fn is_running(&self, _id: &str) -> Result<Option<bool>, StreamError> {
        Ok(None)
    }
    fn events(
        &self,
        _since: Option<i64>,
    ) -> BoxStream<'static, Result<WorkloadEvent, StreamError>> {
        futures::stream::pending().boxed()
    }
    fn logs(&self, _id: &str, _since: i64) -> BoxStream<'static, Result<LogLine, StreamError>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let gone = StreamError::Engine("no such container (404)".into());
        futures::stream::iter([Err(gone)]).boxed()
    }
}

/// F19 of the reliability review: a follower whose stream failed because
/// its container was removed stops, forgets the checkpoint, and does not
/// ask the engine for that log again and again.
#[tokio::test]
async fn a_container_removed_under_a_failing_stream_is_no_longer_followed() {
    let dir = tempfile::tempdir().unwrap();
    let source = Arc::new(RemovedUnderTheStream::default());
    let store = CheckpointStore::open(dir.path()).unwrap();
    let streamer = Streamer::new(
        source.clone(),
        Arc::new(MemorySink::default()),
        store.clone(),
        10,
        CancellationToken::new(),
    );
    let workload = Workload {
        id: "gone".into(),
        name: "berth-acme-web-01".into(),
        app_id: Uuid::now_v7(),
        key: "d".into(),
        running: true,
    };
    streamer.lock().insert(workload.id.clone(), false);
    tokio::time::timeout(Duration::from_secs(2), streamer.clone().follow(workload))
        .await
        .expect("following ends within 2 s");
    assert_eq!(
        source.reads.load(Ordering::SeqCst),
        1,
        "the log was asked for once"
    );
    assert!(store.known().is_empty(), "the checkpoint is forgotten");
    assert!(streamer.lock().is_empty(), "no longer followed");
}

/// Runs a streamer on `engine` until `done` (within 5 s), then stops it.
async fn run_until(
    engine: impl LogSource,
    sink: Arc<MemorySink>,
    store: &CheckpointStore,
    done: impl Fn() -> bool,
) {
    let shutdown = CancellationToken::new();
    let streamer = Streamer::new(Arc::new(engine), sink, store.clone(), 10, shutdown.clone());
    let running = tokio::spawn(streamer.run());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "not done within 5 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    running.await.unwrap();
}

/// An engine whose workloads run and print nothing; it lists `workloads`
/// and replays `events`, then waits.
#[derive(Default)]
struct Quiet {
    workloads: Vec<Workload>,
    events: Vec<WorkloadEvent>,
}

#[async_trait]
impl LogSource for Quiet {
    async fn workloads(&self) -> Result<Vec<Workload>, StreamError> {
        Ok(self.workloads.clone())
    }
    async fn is_running(&self, _id: &str) -> Result<Option<bool>, StreamError> {
        Ok(Some(true))
    }
    fn events(
        &self,
        _since: Option<i64>,
    ) -> BoxStream<'static, Result<WorkloadEvent, StreamError>> {
        futures::stream::iter(self.events.clone().into_iter().map(Ok))
            .chain(futures::stream::pending())
            .boxed()
    }
    fn logs(&self, _id: &str, _since: i64) -> BoxStream<'static, Result<LogLine, StreamError>> {
        futures::stream::pending().boxed()
    }
}

/// F21 of the reliability review: containers removed while the streamer
/// was down. One whose log was not read to its end gets a line in its
/// app's log saying what may be missing; one read to its end, and one of
/// a deleted app (nothing of it runs), get none.
#[tokio::test]
async fn a_container_removed_before_its_log_was_read_is_reported_in_its_apps_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::open(dir.path()).unwrap();
    let app_id = Uuid::now_v7();
    let workload = |id: &str, app_id| Workload {
        id: id.into(),
        name: format!("berth-acme-web-{id}"),
        app_id,
        key: format!("deployment-{id}"),
        running: false,
    };
    let shipped_until = crate::Position {
        second: 1_795_000_000,
        lines: 3,
        offset: Some(2),
    };
    store.save(&workload("cut", app_id), shipped_until).unwrap();
    store
        .save(&workload("read", app_id), shipped_until)
        .unwrap();
    store.mark_drained(&workload("read", app_id)).unwrap();
    let deleted_app = workload("deleted", Uuid::now_v7());
    store.save(&deleted_app, shipped_until).unwrap();

    let sink = Arc::new(MemorySink::default());
    let engine = Quiet {
        workloads: vec![workload("new", app_id)],
        ..Default::default()
    };
    run_until(engine, sink.clone(), &store, || store.known() == ["new"]).await;

    let records = sink.records();
    assert_eq!(records.len(), 1, "{records:?}");
    let (app, key, record) = &records[0];
    assert_eq!((*app, key.as_str()), (app_id, "deployment-cut"));
    assert_eq!(record.source, RecordSource::Event);
    assert_eq!(
        record.line,
        "instance berth-acme-web-cut was removed before berth read all of its log: \
         lines it printed after 2026-11-18 11:06:40 UTC may be missing"
    );
}

/// F22 of the reliability review: the streamer stopped after an event's
/// record was stored and before its checkpoint moved. After the restart
/// the event is replayed; its record is stored once, whether or not the
/// first attempt got it into the topic.
#[tokio::test]
async fn an_event_stored_just_before_a_crash_is_not_stored_again() {
    for stored_before_the_crash in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        let workload = Workload {
            id: "c".into(),
            name: "berth-acme-web-c".into(),
            app_id: Uuid::now_v7(),
            key: "d".into(),
            running: true,
        };
        let pending = crate::checkpoint::PendingEvent {
            cursor: 200,
            app_id: workload.app_id,
            key: "d".into(),
            after: -1,
        };
        store.save_pending_event(100, pending).unwrap();
        let sink = Arc::new(MemorySink::default());
        if stored_before_the_crash {
            let record = LogRecord {
                ts: chrono::DateTime::from_timestamp_nanos(200),
                source: RecordSource::Event,
                instance: workload.name.clone(),
                stream: LogStream::Stdout,
                line: "instance berth-acme-web-c started".into(),
            };
            let mark = crate::Position {
                second: 200,
                ..Default::default()
            };
            let delivery = sink
                .enqueue(workload.app_id, "d", &record, Some(("events", mark)))
                .await
                .unwrap();
            delivery.await.unwrap();
        }

        // The engine replays a start (cursor 200) and an exit (300).
        let event = |kind, cursor| WorkloadEvent {
            workload: workload.clone(),
            kind,
            at: chrono::DateTime::from_timestamp_nanos(cursor),
            cursor,
        };
        let engine = Quiet {
            events: vec![
                event(Lifecycle::Started, 200),
                event(Lifecycle::Died { exit_code: Some(1) }, 300),
            ],
            ..Default::default()
        };
        run_until(engine, sink.clone(), &store, || {
            store.events_cursor() == Some(300)
        })
        .await;
        assert_eq!(
            sink.lines(),
            [
                "instance berth-acme-web-c started",
                "instance berth-acme-web-c exited with code 1"
            ],
            "stored before the crash: {stored_before_the_crash}"
        );
        assert_eq!(store.pending_event(), None);
    }
}
