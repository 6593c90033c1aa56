//! The streamer over [`KubeLogSource`] against a fake API server, one
//! scenario per flow: every request is asserted (method, path, query) and
//! answered; one missing or one too many fails the test.

use super::fake_cluster::*;
use crate::checkpoint::CheckpointStore;
use berth_proto::LogSource as RecordSource;
use http::Method;
use std::time::Duration;

#[tokio::test]
async fn a_restarted_container_is_followed_from_its_own_start() {
    let state = tempfile::tempdir().unwrap();
    let mut run = Run::start(state.path());
    let before = pod("web-1", 10, vec![running("containerd://a", T0 - 600)]);
    run.list_workloads(vec![before.clone()]).await;
    let instance_a = run.follow(None).await;
    let (pods, _events) = run.watch(vec![before], vec![]).await;
    for (second, nanos, text) in [(T0 + 1, 0, "a1"), (T0 + 1, 5, "a2"), (T0 + 2, 0, "a3")] {
        instance_a.line(&stamped(second, nanos, text));
    }
    run.until("a's lines", |r| count(r, RecordSource::App) == 3)
        .await;

    // a exits (code 1): the kubelet ends its log, then the pod's status
    // shows the exit and the next instance, b, with an id of its own. a is
    // the previous instance now: it is not followed again.
    drop(instance_a);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let after = pod(
        "web-1",
        11,
        vec![restarted(
            "containerd://a",
            T0 + 3,
            "containerd://b",
            T0 + 4,
        )],
    );
    pods.event("MODIFIED", after);
    let instance_b = run.follow(None).await;
    run.until("the restart's events", |r| {
        count(r, RecordSource::Event) == 2
    })
    .await;
    instance_b.line(&stamped(T0 + 4, 0, "b1"));
    instance_b.line(&stamped(T0 + 5, 0, "b2"));
    run.until("b's lines", |r| count(r, RecordSource::App) == 5)
        .await;

    let records = run.records();
    let lines: Vec<_> = records
        .iter()
        .map(|r| (r.source, r.line.as_str()))
        .collect();
    assert_eq!(
        lines,
        [
            (RecordSource::App, "a1"),
            (RecordSource::App, "a2"),
            (RecordSource::App, "a3"),
            (RecordSource::Event, "instance web-1 exited with code 1"),
            (RecordSource::Event, "instance web-1 started"),
            (RecordSource::App, "b1"),
            (RecordSource::App, "b2"),
        ]
    );
    assert_eq!(records[3].ts.timestamp(), T0 + 3, "when a exited");
    assert!(records.iter().all(|r| r.instance == "web-1"));
    for (app, key, _) in run.sink.records() {
        assert_eq!((app.to_string().as_str(), key.as_str()), (APP, DEPLOYMENT));
    }
    let store = CheckpointStore::open(state.path()).unwrap();
    let a = store.load("containerd://a");
    assert_eq!((a.second, a.lines), (T0 + 2, 1));
    let b = store.load("containerd://b");
    assert_eq!((b.second, b.lines), (T0 + 5, 1));
    run.stop().await;
}

#[tokio::test]
async fn a_restarted_streamer_resumes_in_the_middle_of_a_second() {
    let state = tempfile::tempdir().unwrap();
    let web = pod("web-1", 10, vec![running("containerd://a", T0 - 600)]);
    let log = [
        stamped(T0 + 1, 0, "l1"),
        stamped(T0 + 2, 100, "l2"),
        stamped(T0 + 2, 200, "l3"),
        stamped(T0 + 2, 300, "l4"),
        stamped(T0 + 3, 0, "l5"),
    ];

    let mut first = Run::start(state.path());
    first.list_workloads(vec![web.clone()]).await;
    let follow = first.follow(None).await;
    let _watches = first.watch(vec![web.clone()], vec![]).await;
    for line in &log[..3] {
        follow.line(line);
    }
    first.until("3 lines", |r| r.len() == 3).await;
    assert_eq!(first.stop().await.lines(), ["l1", "l2", "l3"]);
    let store = CheckpointStore::open(state.path()).unwrap();
    let a = store.load("containerd://a");
    assert_eq!((a.second, a.lines), (T0 + 2, 2));

    // The app went on printing. Asked from the checkpoint's second, the
    // kubelet sends that second's lines again: two of them are skipped.
    let mut second = Run::start(state.path());
    second.list_workloads(vec![web.clone()]).await;
    let follow = second.follow(Some(T0 + 2)).await;
    let _watches = second.watch(vec![web], vec![]).await;
    for line in &log[1..] {
        follow.line(line);
    }
    second.until("the rest", |r| r.len() == 2).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        second.stop().await.lines(),
        ["l4", "l5"],
        "no gap, no repeat"
    );
}

#[tokio::test]
async fn an_instance_that_died_while_the_streamer_was_down_is_read_to_its_end() {
    let state = tempfile::tempdir().unwrap();
    let before = pod("web-1", 10, vec![running("containerd://a", T0 - 600)]);
    let mut first = Run::start(state.path());
    first.list_workloads(vec![before.clone()]).await;
    let follow = first.follow(None).await;
    let _watches = first.watch(vec![before], vec![]).await;
    follow.line(&stamped(T0 + 1, 0, "a1"));
    first.until("a1", |r| r.len() == 1).await;
    first.stop().await;

    // Meanwhile a printed a2, exited, and b started.
    let after = pod(
        "web-1",
        11,
        vec![restarted(
            "containerd://a",
            T0 + 3,
            "containerd://b",
            T0 + 4,
        )],
    );
    let mut second = Run::start(state.path());
    second.list_workloads(vec![after.clone()]).await;
    let mut previous = None;
    let mut current = None;
    for _ in 0..2 {
        let call = second.server.expect_unordered(Method::GET, LOG).await;
        let call = call
            .assert_query("container", "web")
            .assert_query("timestamps", "true");
        if call.query("previous").is_some() {
            assert_eq!(
                call.query("follow"),
                None,
                "a dead instance's log is read, not followed"
            );
            assert_eq!(call.query("sinceTime"), Some(at(T0 + 1)));
            previous = Some(call.respond_stream());
        } else {
            assert_eq!(call.query("follow").as_deref(), Some("true"));
            assert_eq!(call.query("sinceTime"), None, "b from its start");
            current = Some(call.respond_stream());
        }
    }
    let (previous, current) = (
        previous.expect("a is read"),
        current.expect("b is followed"),
    );
    let _watches = second.watch(vec![after], vec![]).await;
    previous.line(&stamped(T0 + 1, 0, "a1"));
    previous.line(&stamped(T0 + 2, 0, "a2"));
    drop(previous);
    current.line(&stamped(T0 + 4, 0, "b1"));
    second
        .until("a2, b1 and the events", |r| r.len() == 4)
        .await;
    let mut app = second.lines(RecordSource::App);
    app.sort();
    assert_eq!(app, ["a2", "b1"]);
    assert_eq!(
        second.lines(RecordSource::Event),
        [
            "instance web-1 exited with code 1",
            "instance web-1 started"
        ],
        "what happened while it was down, replayed from the pod's status"
    );
    second.stop().await;
}

#[tokio::test]
async fn kubernetes_events_about_app_pods_become_event_records() {
    let state = tempfile::tempdir().unwrap();
    let web = pod("web-1", 10, vec![running("containerd://a", T0 - 600)]);
    let mut run = Run::start(state.path());
    run.list_workloads(vec![web.clone()]).await;
    let _follow = run.follow(None).await;
    let listed = vec![
        event("berth-acme", "web-1", "Scheduled", 1, T0 - 60), // before the checkpoint
        event("berth-acme", "web-1", "Pulled", 1, T0 + 1),
    ];
    let (pods, events) = run.watch(vec![web], listed).await;
    events.event("ADDED", event("berth-acme", "web-1", "BackOff", 1, T0 + 2));
    events.event(
        "ADDED",
        event("berth-acme-build", "kaniko", "Pulled", 1, T0 + 2),
    );
    events.event(
        "ADDED",
        event("kube-system", "coredns", "Unhealthy", 1, T0 + 2),
    );
    events.event(
        "ADDED",
        event("berth-acme", "web-2", "FailedScheduling", 1, T0 + 3),
    );
    events.event(
        "MODIFIED",
        event("berth-acme", "web-1", "BackOff", 2, T0 + 4),
    );
    run.until("the BackOffs", |r| r.len() == 3).await;
    // web-2 shows up: the Event about it that waited is shipped.
    pods.event("ADDED", pod("web-2", 12, vec![]));
    run.until("FailedScheduling", |r| r.len() == 4).await;

    let records = run.records();
    let lines: Vec<_> = records
        .iter()
        .map(|r| (r.instance.as_str(), r.line.as_str()))
        .collect();
    assert_eq!(
        lines,
        [
            ("web-1", "Pulled: Pulled of web-1"),
            ("web-1", "BackOff: BackOff of web-1"),
            ("web-1", "BackOff: BackOff of web-1"),
            ("web-2", "FailedScheduling: FailedScheduling of web-2"),
        ]
    );
    assert!(records.iter().all(|r| r.source == RecordSource::Event));
    let times: Vec<_> = records.iter().map(|r| r.ts.timestamp() - T0).collect();
    assert_eq!(times, [1, 2, 4, 3]);
    run.stop().await;
    // The late FailedScheduling counts in the latest second (T0 + 4).
    let cursor = CheckpointStore::open(state.path()).unwrap().events_cursor();
    assert_eq!(cursor, Some((T0 + 4) * 1_000_000_000 + 1));
}
