//! What the scenario tests play: a streamer over [`KubeLogSource`] and a
//! sink in memory, the fake API server's side of each request it makes,
//! and pods and Events as the API server serializes them. Times are fixed
//! (the events checkpoint is seeded), so nothing depends on the clock.

use super::*;
use crate::checkpoint::CheckpointStore;
use crate::service::Streamer;
use crate::test_sink::MemorySink;
use berth_common::kube_fake::{self, ApiServer, StreamWriter};
use berth_proto::{LogRecord, LogSource as RecordSource};
use chrono::{DateTime, Utc};
use http::Method;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const APP: &str = "0190f1c4-0000-7000-8000-000000000001";
pub const DEPLOYMENT: &str = "0190f1c4-0000-7000-8000-0000000000d1";
pub const PODS: &str = "/api/v1/pods";
pub const EVENTS: &str = "/api/v1/events";
pub const LOG: &str = "/api/v1/namespaces/berth-acme/pods/web-1/log";
/// The events checkpoint every scenario starts from (2026-11-22T02:11:40Z).
pub const T0: i64 = 1_795_313_500;

pub fn at(second: i64) -> String {
    DateTime::<Utc>::from_timestamp(second, 0)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A log line as the kubelet writes it with `timestamps=true`.
pub fn stamped(second: i64, nanos: u32, text: &str) -> String {
    let ts = DateTime::<Utc>::from_timestamp(second, nanos).unwrap();
    format!(
        "{} {text}",
        ts.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
    )
}

pub fn running(id: &str, started: i64) -> Value {
    json!({"name": "web", "restartCount": 0, "ready": true, "image": "web", "imageID": "",
        "containerID": id, "state": {"running": {"startedAt": at(started)}}})
}

/// `previous` exited with code 1 at `finished`; `id` runs since `started`.
pub fn restarted(previous: &str, finished: i64, id: &str, started: i64) -> Value {
    json!({"name": "web", "restartCount": 1, "ready": true, "image": "web", "imageID": "",
        "containerID": id, "state": {"running": {"startedAt": at(started)}},
        "lastState": {"terminated": {"containerID": previous, "exitCode": 1, "reason": "Error",
            "startedAt": at(T0 - 600), "finishedAt": at(finished)}}})
}

pub fn pod(name: &str, version: u32, statuses: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "berth-acme", "uid": format!("uid-{name}"),
            "resourceVersion": version.to_string(),
            "labels": {"berth.dev/app": APP, "berth.dev/deployment": DEPLOYMENT}},
        "spec": {"containers": [{"name": "web"}]},
        "status": {"containerStatuses": statuses}})
}

pub fn event(namespace: &str, pod: &str, reason: &str, count: u32, second: i64) -> Value {
    json!({"apiVersion": "v1", "kind": "Event",
        "metadata": {"name": format!("{pod}.{reason}"), "namespace": namespace,
            "uid": format!("event-{pod}-{reason}"), "resourceVersion": "21"},
        "involvedObject": {"kind": "Pod", "namespace": namespace, "name": pod,
            "uid": format!("uid-{pod}"), "fieldPath": "spec.containers{web}"},
        "reason": reason, "message": format!("{reason} of {pod}"), "type": "Warning",
        "count": count, "firstTimestamp": at(T0 - 100), "lastTimestamp": at(second)})
}

pub fn list(kind: &str, version: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": version},
        "items": items})
}

/// A streamer over a fake API server, writing to a sink in memory.
pub struct Run {
    pub server: ApiServer,
    pub sink: Arc<MemorySink>,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Run {
    pub fn start(state: &Path) -> Self {
        let store = CheckpointStore::open(state).unwrap();
        if store.events_cursor().is_none() {
            store.save_events_cursor(T0 * 1_000_000_000).unwrap();
        }
        let (client, server) = kube_fake::pair();
        let sink = Arc::new(MemorySink::default());
        let shutdown = CancellationToken::new();
        let source = Arc::new(KubeLogSource::new(client));
        let streamer = Streamer::new(source, sink.clone(), store, 100, shutdown.clone());
        let task = tokio::spawn(streamer.run());
        Self {
            server,
            sink,
            shutdown,
            task,
        }
    }

    /// The first request: `workloads()` lists the app pods.
    pub async fn list_workloads(&mut self, pods: Vec<Value>) {
        self.server
            .expect(Method::GET, PODS)
            .await
            .assert_query("labelSelector", "berth.dev/app")
            .respond_json(list("PodList", "10", pods));
    }

    /// The watcher's list then watch, for Pods and for Events: made
    /// concurrently with each other and with the log follows.
    pub async fn watch(
        &mut self,
        pods: Vec<Value>,
        events: Vec<Value>,
    ) -> (StreamWriter, StreamWriter) {
        let server = &mut self.server;
        let pod_list = server.expect_unordered(Method::GET, PODS).await;
        assert_eq!(pod_list.query("watch"), None);
        pod_list
            .assert_query("labelSelector", "berth.dev/app")
            .assert_query("limit", "500")
            .respond_json(list("PodList", "10", pods));
        server
            .expect_unordered(Method::GET, EVENTS)
            .await
            .assert_query("fieldSelector", "involvedObject.kind=Pod")
            .assert_query("limit", "500")
            .respond_json(list("EventList", "20", events));
        let watch = |call: kube_fake::Call, version: &str| {
            call.assert_query("watch", "true")
                .assert_query("resourceVersion", version)
                .assert_query("allowWatchBookmarks", "true")
                .assert_query("timeoutSeconds", "290")
                .respond_stream()
        };
        let pod_watch = server.expect_unordered(Method::GET, PODS).await;
        let pods = watch(
            pod_watch.assert_query("labelSelector", "berth.dev/app"),
            "10",
        );
        let event_watch = server.expect_unordered(Method::GET, EVENTS).await;
        let events = watch(
            event_watch.assert_query("fieldSelector", "involvedObject.kind=Pod"),
            "20",
        );
        (pods, events)
    }

    /// A follow request for the current instance of `web-1`'s container.
    pub async fn follow(&mut self, since: Option<i64>) -> StreamWriter {
        let call = self
            .server
            .expect_unordered(Method::GET, LOG)
            .await
            .assert_query("container", "web")
            .assert_query("follow", "true")
            .assert_query("timestamps", "true");
        assert_eq!(call.query("previous"), None);
        assert_eq!(call.query("sinceTime"), since.map(at));
        call.respond_stream()
    }

    pub async fn until(&self, what: &str, done: impl Fn(&[LogRecord]) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let records = self.records();
            if done(&records) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "waiting for {what}; records: {records:#?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn records(&self) -> Vec<LogRecord> {
        self.sink
            .records()
            .into_iter()
            .map(|(_, _, record)| record)
            .collect()
    }

    pub fn lines(&self, source: RecordSource) -> Vec<String> {
        let records = self.records().into_iter();
        records
            .filter(|r| r.source == source)
            .map(|r| r.line)
            .collect()
    }

    /// Checks that no request is left over or comes, then stops the
    /// streamer (it drains and checkpoints). The grace outlasts the
    /// streamer's pause before it follows an instance again.
    pub async fn stop(self) -> Arc<MemorySink> {
        self.server.done_within(Duration::from_millis(400)).await;
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the streamer stops")
            .unwrap();
        self.sink
    }
}

pub fn count(records: &[LogRecord], source: RecordSource) -> usize {
    records.iter().filter(|r| r.source == source).count()
}
