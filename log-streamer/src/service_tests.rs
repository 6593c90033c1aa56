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
