//! Health checks (issue 13): traffic reaches only instances that answer 2xx
//! on their release's health check path, both when a deploy moves traffic
//! and afterwards, through the router's own checks.

mod support;

use berth_common::testing::router::TestRouter;
use berth_deploy_worker::crash_loop::FailureKind;
use berth_deploy_worker::{DeployError, Runtime};
use bollard::query_parameters::InspectContainerOptions;
use futures::StreamExt;
use std::time::Duration;
use support::routing::*;
use support::*;

const HEALTH: &str = "/cgi-bin/health";

async fn health_image() -> &'static str {
    static IMAGE: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    IMAGE
        .get_or_init(|| async { build_and_push("health", &health_dockerfile()).await })
        .await
}

/// Each running instance of the app: its host name and its published port.
async fn instances(app: &berth_proto::AppRef) -> Vec<(String, u16)> {
    let docker = docker().await;
    let mut found = Vec::new();
    for (name, _, state) in containers_of(app).await {
        if state != "running" {
            continue;
        }
        let inspect = docker
            .inspect_container(
                name.trim_start_matches('/'),
                None::<InspectContainerOptions>,
            )
            .await
            .unwrap();
        let port = inspect
            .network_settings
            .and_then(|n| n.ports)
            .and_then(|ports| ports.into_values().flatten().flatten().next())
            .and_then(|binding| binding.host_port)
            .and_then(|port| port.parse().ok())
            .expect("a published port");
        let who = http_get(&format!("http://127.0.0.1:{port}"), "/cgi-bin/hit")
            .await
            .unwrap();
        found.push((who, port));
    }
    found
}

#[tokio::test]
async fn an_instance_failing_its_health_check_gets_no_requests_after_5_s() {
    let image = health_image().await;
    let router = TestRouter::start().await;
    let runtime = routed_runtime(&router, 0).await;
    let app = new_app();
    let mut deployment = new_deployment(&app, image);
    deployment.release.config.replicas = 2;
    deployment.release.config.health_check_path = Some(HEALTH.into());
    runtime.deploy(&deployment).await.expect("serves");
    let running = instances(&app).await;
    assert_eq!(running.len(), 2);
    let answered = instances_answering_at(&router, &host(&app), "/cgi-bin/hit", 10).await;
    assert_eq!(
        answered.len(),
        2,
        "both instances get traffic: {answered:?}"
    );

    let (sick, sick_port) = &running[0];
    let sick_at = format!("http://127.0.0.1:{sick_port}");
    http_get(&sick_at, "/cgi-bin/break").await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let answered = instances_answering_at(&router, &host(&app), "/cgi-bin/hit", 40).await;
    assert!(!answered.contains(sick), "{answered:?} holds {sick}");
    // Counted by the instance itself: nothing reached it since.
    assert_eq!(http_get(&sick_at, "/cgi-bin/late").await.unwrap(), "0");
    // The app's users see which instance fails and what its check got.
    let health = runtime
        .instance_health(&app, deployment.deployment_id)
        .await
        .unwrap();
    assert_eq!(health.len(), 2, "{health:?}");
    assert!(health.iter().all(|i| i.running), "{health:?}");
    let failing: Vec<_> = health.iter().filter(|i| i.healthy == Some(false)).collect();
    assert_eq!(failing.len(), 1, "{health:?}");
    assert!(
        failing[0]
            .said
            .as_deref()
            .is_some_and(|s| s.starts_with("answered 5")),
        "{health:?}"
    );
    assert_eq!(health.iter().filter(|i| i.healthy == Some(true)).count(), 1);
    runtime.remove_app(&app).await.unwrap();
}

#[tokio::test]
async fn a_release_that_never_passes_its_health_check_fails_and_the_previous_keeps_serving() {
    let image = health_image().await;
    let router = TestRouter::start().await;
    let runtime = routed_runtime(&router, 0).await;
    let app = new_app();
    let mut first = new_deployment(&app, image);
    first.release.config.health_check_path = Some(HEALTH.into());
    runtime.deploy(&first).await.expect("serves");
    let serving = instances(&app).await[0].0.clone();

    let runtime = routed_runtime_waiting(&router, 0, 6).await;
    let mut broken = new_deployment(&app, image);
    broken.release.config.health_check_path = Some(HEALTH.into());
    broken.env.insert("START_BROKEN".into(), "1".into());
    let error = runtime.deploy(&broken).await.expect_err("never healthy");
    assert!(matches!(error, DeployError::Unhealthy { .. }), "{error:?}");
    assert!(
        error.to_string().starts_with(
            "the app never passed its health check within 6s: GET /cgi-bin/health answered 500"
        ),
        "{error}"
    );
    let answered = instances_answering_at(&router, &host(&app), "/cgi-bin/hit", 5).await;
    assert_eq!(answered, [serving], "the previous release keeps serving");
    runtime.remove_app(&app).await.unwrap();
}

/// Automatic rollback's other trigger: every instance of a deployment
/// failing its health check for a minute is reported as a failure of it.
#[tokio::test]
async fn a_deployment_failing_its_health_check_for_a_minute_is_reported() {
    let image = health_image().await;
    let router = TestRouter::start().await;
    let runtime = routed_runtime(&router, 0).await;
    let mut failures = runtime.failures().await.unwrap().expect("followed");
    let app = new_app();
    let mut deployment = new_deployment(&app, image);
    deployment.release.config.health_check_path = Some(HEALTH.into());
    runtime.deploy(&deployment).await.expect("serves");
    let (_, port) = instances(&app).await[0].clone();
    http_get(&format!("http://127.0.0.1:{port}"), "/cgi-bin/break")
        .await
        .unwrap();
    let broke = std::time::Instant::now();
    let failure = tokio::time::timeout(Duration::from_secs(90), async {
        loop {
            let failure = failures.next().await.expect("the stream goes on");
            if failure.app.id == app.id {
                return failure;
            }
        }
    })
    .await
    .expect("reported within 90 s");
    assert!(
        broke.elapsed() >= Duration::from_secs(60),
        "{:?}",
        broke.elapsed()
    );
    assert_eq!(failure.deployment_id, deployment.deployment_id);
    assert_eq!(
        failure.kind,
        FailureKind::Unhealthy {
            said: "GET /cgi-bin/health answered 500".into()
        }
    );
    runtime.remove_app(&app).await.unwrap();
}
