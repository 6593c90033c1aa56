//! The engine's crashes as the docker driver reports them to automatic
//! rollback: an instance exiting with an error is a crash of its
//! deployment; one berth stops is not.

mod support;

use berth_common::testing::TestVhost;
use berth_common::Broker;
use berth_deploy_worker::crash_loop::FailureKind;
use berth_deploy_worker::{DeployService, Runtime};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn an_instance_exiting_with_an_error_is_a_crash_of_its_deployment() {
    let images = images().await;
    let runtime = docker_runtime(10).await;
    let mut crashes = runtime
        .failures()
        .await
        .unwrap()
        .expect("the docker driver follows crashes");
    let app = new_app();
    let deployment = new_deployment(&app, &images.crash);
    runtime
        .deploy(&deployment)
        .await
        .expect_err("it exits at once");
    let crash = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let crash = crashes.next().await.expect("the stream goes on");
            if crash.app.id == app.id {
                return crash;
            }
        }
    })
    .await
    .expect("a crash within 20 s");
    assert_eq!(crash.deployment_id, deployment.deployment_id);
    assert!(
        matches!(
            crash.kind,
            FailureKind::Crashed {
                exit_code: Some(1),
                oom: false,
                ..
            }
        ),
        "{crash:?}"
    );
    assert_eq!(
        (crash.app.name.as_str(), crash.app.tenant.as_str()),
        (app.name.as_str(), app.tenant.as_str())
    );

    // A release that serves, stopped by berth (a removal): no crash.
    let web = new_app();
    runtime
        .deploy(&new_deployment(&web, &images.v1))
        .await
        .unwrap();
    runtime.remove_app(&web).await.unwrap();
    let other = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let crash = crashes.next().await.expect("the stream goes on");
            if crash.app.id == web.id {
                return crash;
            }
        }
    })
    .await;
    assert!(other.is_err(), "a stop is not a crash: {other:?}");
    runtime.remove_app(&app).await.unwrap();
}

/// When and why the container last started and stopped, from the engine.
async fn started_and_finished(id: &str) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let state = docker()
        .await
        .inspect_container(id, None)
        .await
        .ok()
        .and_then(|inspect| inspect.state)
        .unwrap_or_default();
    let time = |at: Option<String>| {
        at.and_then(|at| DateTime::parse_from_rfc3339(&at).ok())
            .map(|at| at.with_timezone(&Utc))
            .filter(|at| at.timestamp() > 0)
    };
    (time(state.started_at), time(state.finished_at))
}

#[tokio::test]
async fn a_crashed_instance_is_started_again_after_a_pause_that_doubles() {
    let flaky = build_and_push("flaky", &flaky_dockerfile("flaky")).await;
    let mut config = docker_config(30);
    config.restart_policy = "no".parse().unwrap();
    let runtime = docker_runtime_with(config).await;
    let vhost = TestVhost::new();
    let broker = Broker::new(vhost.url.clone(), "restart-test");
    broker.ensure_topology().await.unwrap();
    let service = Arc::new(DeployService::new(runtime, broker, key()));
    let shutdown = CancellationToken::new();
    tokio::spawn({
        let (service, shutdown) = (service.clone(), shutdown.clone());
        async move { service.watch_failures(shutdown).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let app = new_app();
    let deployment = new_deployment(&app, &flaky);
    service
        .runtime()
        .deploy(&deployment)
        .await
        .expect("serves, for 3 s");
    let name = containers_of(&app).await[0]
        .0
        .trim_start_matches('/')
        .to_owned();

    // Each pause: from an exit to the start that follows it.
    let mut pauses = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while pauses.len() < 3 && Instant::now() < deadline {
        if let (Some(started), Some(finished)) = started_and_finished(&name).await {
            let pause = started - finished;
            if started > finished && pauses.last() != Some(&pause) {
                pauses.push(pause);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shutdown.cancel();
    service.runtime().remove_app(&app).await.unwrap();
    let secs: Vec<f64> = pauses
        .iter()
        .map(|p| p.num_milliseconds() as f64 / 1000.0)
        .collect();
    assert_eq!(secs.len(), 3, "three restarts within 60 s: {secs:?}");
    for (pause, at_least) in secs.iter().zip([1.0, 2.0, 4.0]) {
        assert!(
            *pause >= at_least * 0.9 && *pause < at_least + 2.0,
            "pauses {secs:?}"
        );
    }
}
