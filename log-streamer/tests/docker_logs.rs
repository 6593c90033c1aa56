//! The log-streamer against the real stack: Podman's Docker-compatible API
//! and tansu (Kafka protocol).

mod support;

use berth_proto::{LogSource, LogStream};
use std::time::Duration;
use support::*;

const WAIT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_containers_lines_arrive_in_order_with_their_stream() {
    let app = TestApp::new();
    app.create_topic().await;
    // Started before the streamer: found by listing at start-up.
    let (id, name) = app.start(&[("COUNT", "100")], None).await;
    let state = tempfile::tempdir().unwrap();
    let streamer = RunningStreamer::start(state.path(), &app.tenant).await;

    let records = read_until(&app.topic(), WAIT, |records| {
        records
            .iter()
            .filter(|(_, r)| r.source == LogSource::App)
            .count()
            >= 200
    })
    .await;
    assert_eq!(
        app_lines(&records, LogStream::Stdout),
        numbered(1, "out", 100)
    );
    assert_eq!(
        app_lines(&records, LogStream::Stderr),
        numbered(1, "err", 100)
    );
    for (key, record) in records.iter().filter(|(_, r)| r.source == LogSource::App) {
        assert_eq!(
            key,
            &app.deployment.to_string(),
            "the key is the deployment"
        );
        assert_eq!(record.instance, name);
        assert!((chrono::Utc::now() - record.ts).num_seconds() < 120);
    }

    // A removed container's checkpoint is forgotten.
    let checkpoint = state.path().join(format!("containers/{id}.json"));
    assert!(checkpoint.exists());
    app.remove(&id).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while checkpoint.exists() {
        assert!(std::time::Instant::now() < deadline, "the checkpoint stays");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    streamer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_streamer_neither_loses_nor_repeats_lines() {
    let app = TestApp::new();
    app.create_topic().await;
    let state = tempfile::tempdir().unwrap();
    let first = RunningStreamer::start(state.path(), &app.tenant).await;
    // ~25 lines a second for ~6 s: many lines share each second.
    let (id, _) = app
        .start(&[("COUNT", "150"), ("PAUSE", "0.04")], None)
        .await;
    read_until(&app.topic(), WAIT, |records| {
        records
            .iter()
            .filter(|(_, r)| r.source == LogSource::App)
            .count()
            >= 60
    })
    .await;
    first.stop().await;
    // The app goes on printing while no streamer runs.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = RunningStreamer::start(state.path(), &app.tenant).await;

    let all = read_all(&app.topic(), 300).await;
    assert_eq!(app_lines(&all, LogStream::Stdout), numbered(1, "out", 150));
    assert_eq!(app_lines(&all, LogStream::Stderr), numbered(1, "err", 150));
    assert_eq!(
        all.iter()
            .filter(|(_, r)| r.source == LogSource::App)
            .count(),
        300,
        "no line repeated"
    );

    second.stop().await;
    app.remove(&id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamer_restarted_in_a_burst_neither_loses_nor_repeats_lines() {
    // As fast as the app can print: thousands of lines share each second and
    // the engine cuts some of them into partial frames.
    let app = TestApp::new();
    app.create_topic().await;
    let state = tempfile::tempdir().unwrap();
    let first = RunningStreamer::start(state.path(), &app.tenant).await;
    let (id, _) = app.start(&[("COUNT", "5000")], None).await;
    read_until(&app.topic(), WAIT, |records| records.len() >= 2000).await;
    first.stop().await;
    let second = RunningStreamer::start(state.path(), &app.tenant).await;
    let all = read_all(&app.topic(), 10_000).await;
    second.stop().await;
    for (stream, name) in [(LogStream::Stdout, "out"), (LogStream::Stderr, "err")] {
        let got = app_lines(&all, stream);
        let want = numbered(1, name, 5000);
        let first_difference = (0..got.len().min(want.len())).find(|&i| got[i] != want[i]);
        assert!(
            first_difference.is_none() && got.len() == want.len(),
            "{name}: {} lines, first difference at {first_difference:?}",
            got.len()
        );
    }
    app.remove(&id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_started_later_is_followed_through_its_restarts() {
    let app = TestApp::new();
    app.create_topic().await;
    let state = tempfile::tempdir().unwrap();
    let streamer = RunningStreamer::start(state.path(), &app.tenant).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Started after the streamer; exits 3 and is restarted twice (same id).
    let (id, name) = app
        .start(&[("COUNT", "5"), ("PAUSE", "0.1"), ("EXIT", "3")], Some(2))
        .await;
    let events = |records: &[(String, berth_proto::LogRecord)]| {
        records
            .iter()
            .filter(|(_, r)| r.source == LogSource::Event)
            .map(|(_, r)| r.line.clone())
            .collect::<Vec<_>>()
    };
    let records = read_until(&app.topic(), WAIT, move |records| {
        let exits = events(records)
            .iter()
            .filter(|line| line.ends_with("exited with code 3"))
            .count();
        let lines = records
            .iter()
            .filter(|(_, r)| r.source == LogSource::App)
            .count();
        exits >= 3 && lines >= 30
    })
    .await;
    let mut expected_out = Vec::new();
    let mut expected_err = Vec::new();
    for run in 1..=3 {
        expected_out.extend(numbered(run, "out", 5));
        expected_err.extend(numbered(run, "err", 5));
    }
    assert_eq!(app_lines(&records, LogStream::Stdout), expected_out);
    assert_eq!(app_lines(&records, LogStream::Stderr), expected_err);
    let lifecycle = events(&records);
    assert_eq!(lifecycle.first(), Some(&format!("instance {name} started")));
    assert_eq!(
        lifecycle
            .iter()
            .filter(|l| **l == format!("instance {name} exited with code 3"))
            .count(),
        3,
        "{lifecycle:?}"
    );
    assert!(
        lifecycle.iter().filter(|l| l.ends_with("started")).count() >= 3,
        "{lifecycle:?}"
    );

    streamer.stop().await;
    app.remove(&id).await;
}

/// A measurement, not a check: how fast a burst of lines reaches Kafka.
/// `cargo test -p berth-log-streamer --test docker_logs -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a throughput measurement, not a check: run it with --ignored --nocapture"]
async fn measure_a_burst_of_lines() {
    let app = TestApp::new();
    app.create_topic().await;
    let state = tempfile::tempdir().unwrap();
    let streamer = RunningStreamer::start(state.path(), &app.tenant).await;
    let started = std::time::Instant::now();
    let (id, _) = app.start(&[("COUNT", "10000")], None).await;
    let records = read_until(&app.topic(), Duration::from_secs(300), |records| {
        records
            .iter()
            .filter(|(_, r)| r.source == LogSource::App)
            .count()
            >= 20_000
    })
    .await;
    let elapsed = started.elapsed();
    let last = records
        .iter()
        .rev()
        .find(|(_, r)| r.source == LogSource::App)
        .unwrap();
    eprintln!(
        "20000 lines in Kafka {:?} after the container was created ({:.0} lines/s); last line stamped {}",
        elapsed,
        20_000.0 / elapsed.as_secs_f64(),
        last.1.ts
    );
    let got = app_lines(&records, LogStream::Stdout);
    let want = numbered(1, "out", 10_000);
    if let Some(at) = (0..got.len().min(want.len())).find(|&i| got[i] != want[i]) {
        panic!(
            "{} lines; first difference at {at}: got {:?}, want {:?}",
            got.len(),
            &got[at.saturating_sub(2)..(at + 5).min(got.len())],
            &want[at.saturating_sub(2)..(at + 5).min(want.len())]
        );
    }
    assert_eq!(got.len(), want.len());
    streamer.stop().await;
    app.remove(&id).await;
}

/// S3: a container with an app's berth labels that the deploy-worker did
/// not name (as Docker's classic builder makes for a build step of a
/// Dockerfile that sets those labels) is not followed: its lines cannot
/// reach the app's log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_with_an_apps_labels_but_not_berths_name_is_not_followed() {
    use berth_log_streamer::docker::DockerLogSource;
    use berth_log_streamer::source::LogSource as _;
    let app = TestApp::new();
    let (own, _) = app.start(&[("COUNT", "1")], None).await;
    let impostor = app
        .start_as(
            &format!(
                "build-step-{}",
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
            &[("COUNT", "1")],
            None,
        )
        .await;
    let source = DockerLogSource::new(docker().await).with_selector(SELECTOR_LABEL, &app.tenant);
    let followed: Vec<String> = source
        .workloads()
        .await
        .unwrap()
        .into_iter()
        .map(|workload| workload.id)
        .collect();
    assert_eq!(followed, [own]);
    assert!(!followed.contains(&impostor));
    app.remove_all().await;
}
