//! The deploy-worker against the real stack: Podman's Docker-compatible
//! API, the local registry (images pulled by digest) and RabbitMQ.

mod support;

use berth_common::MessagePublisher;
use berth_deploy_worker::Runtime;
use berth_proto::DeploymentState;
use std::time::{Duration, Instant};
use support::*;
use uuid::Uuid;

#[tokio::test]
async fn a_deploy_goes_live_and_answers_http() {
    let images = images().await;
    let worker = Worker::start(60).await;
    let app = new_app();
    let release = release(&app, &images.v1, &[("GREETING", "hello from berth")]);
    let deployment = Uuid::now_v7();
    let started = Instant::now();
    worker.deploy(deployment, &release).await;
    let live = worker.outcome(deployment, 1).await;
    eprintln!("deploy -> live in {:?}", started.elapsed());
    assert_eq!(live.state, DeploymentState::Live, "{live:?}");
    let reports = worker.reports_of(deployment);
    assert_eq!(reports[0].state, DeploymentState::Deploying);
    assert_eq!(
        reports[0].release.as_ref(),
        Some(&release),
        "deploying carries the release"
    );

    let endpoint = live.endpoint.expect("live carries the endpoint");
    assert!(endpoint.starts_with("http://127.0.0.1:"), "{endpoint}");
    assert_eq!(http_get(&endpoint, "/").await.unwrap(), "v1");
    assert_eq!(
        http_get(&endpoint, "/env.txt").await.unwrap(),
        "hello from berth",
        "the sealed env reaches the app"
    );
    let containers = containers_of(&app).await;
    assert_eq!(containers.len(), 1);
    let (name, label, state) = &containers[0];
    assert_eq!(
        name,
        &format!(
            "/{}",
            berth_proto::labels::container_name("test", &app.name, deployment)
        )
    );
    assert_eq!(label, &deployment.to_string());
    assert_eq!(state, "running");

    worker.runtime.remove_app(&app).await.unwrap();
    worker.stop().await;
}

#[tokio::test]
async fn a_second_deploy_replaces_the_first() {
    let images = images().await;
    let worker = Worker::start(60).await;
    let app = new_app();
    let (_, old) = worker.live(&app, &images.v1).await;

    let second = Uuid::now_v7();
    let started = Instant::now();
    worker.deploy(second, &release(&app, &images.v2, &[])).await;
    let live = worker.outcome(second, 1).await;
    eprintln!("replacing deploy -> live in {:?}", started.elapsed());
    assert_eq!(live.state, DeploymentState::Live, "{live:?}");
    let new = live.endpoint.unwrap();
    assert_eq!(http_get(&new, "/").await.unwrap(), "v2");
    assert!(
        http_get(&old, "/").await.is_err(),
        "the old container is gone"
    );
    let containers = containers_of(&app).await;
    assert_eq!(containers.len(), 1, "{containers:?}");
    assert_eq!(containers[0].1, second.to_string());

    worker.runtime.remove_app(&app).await.unwrap();
    worker.stop().await;
}

/// The engine holds what runs: a replaced release's image leaves it (the
/// registry still has it for a rollback), the running one stays.
#[tokio::test]
async fn a_replaced_releases_image_leaves_the_engine() {
    let page = format!("replaced-{}", Uuid::new_v4().simple());
    let image = build_and_push(
        &format!("replaced-{}", &page[9..21]),
        &web_dockerfile(&page),
    )
    .await;
    forget_image(&image).await;
    let images = images().await;
    let docker = docker().await;
    let worker = Worker::start(60).await;
    let app = new_app();
    let first = Uuid::now_v7();
    worker.deploy(first, &release(&app, &image, &[])).await;
    assert_eq!(worker.outcome(first, 1).await.state, DeploymentState::Live);
    assert!(docker.inspect_image(&image).await.is_ok(), "pulled to run");

    let second = Uuid::now_v7();
    worker.deploy(second, &release(&app, &images.v2, &[])).await;
    assert_eq!(worker.outcome(second, 1).await.state, DeploymentState::Live);
    assert!(
        docker.inspect_image(&image).await.is_err(),
        "the replaced release's image is still on the engine"
    );
    assert!(
        docker.inspect_image(&images.v2).await.is_ok(),
        "the running one stays"
    );

    worker.runtime.remove_app(&app).await.unwrap();
    worker.stop().await;
}

#[tokio::test]
async fn an_app_that_exits_fails_and_the_previous_keeps_serving() {
    let images = images().await;
    let worker = Worker::start(60).await;
    let app = new_app();
    let (first, serving) = worker.live(&app, &images.v1).await;

    let broken = Uuid::now_v7();
    let started = Instant::now();
    worker
        .deploy(broken, &release(&app, &images.crash, &[]))
        .await;
    let failed = worker.outcome(broken, 1).await;
    eprintln!("crashing deploy -> failed in {:?}", started.elapsed());
    assert_eq!(failed.state, DeploymentState::Failed, "{failed:?}");
    let reason = failed.reason.unwrap();
    assert!(
        reason
            .starts_with("the app exited with code 1 before it listened on port 8000; last lines:"),
        "{reason}"
    );
    assert!(
        reason.contains("fatal: DATABASE_URL is not set"),
        "{reason}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "an exiting app fails fast"
    );
    assert_eq!(http_get(&serving, "/").await.unwrap(), "v1");
    let containers = containers_of(&app).await;
    assert_eq!(
        containers.len(),
        1,
        "the failed container is removed: {containers:?}"
    );
    assert_eq!(containers[0].1, first.to_string());

    worker.runtime.remove_app(&app).await.unwrap();
    worker.stop().await;
}

#[tokio::test]
async fn an_app_that_never_listens_fails_at_the_deadline() {
    let images = images().await;
    let worker = Worker::start(5).await;
    let app = new_app();
    let (_, serving) = worker.live(&app, &images.v1).await;

    let silent = Uuid::now_v7();
    worker
        .deploy(silent, &release(&app, &images.silent, &[]))
        .await;
    let failed = worker.outcome(silent, 1).await;
    assert_eq!(failed.state, DeploymentState::Failed, "{failed:?}");
    let reason = failed.reason.unwrap();
    assert!(
        reason.starts_with(
            "the app did not accept connections on port 8000 within 5s — does it listen on $PORT?"
        ),
        "{reason}"
    );
    assert!(reason.contains("listening on 9999 instead"), "{reason}");
    assert_eq!(http_get(&serving, "/").await.unwrap(), "v1");
    assert_eq!(containers_of(&app).await.len(), 1);

    worker.runtime.remove_app(&app).await.unwrap();
    worker.stop().await;
}

#[tokio::test]
async fn a_rollout_cancelled_before_it_serves_is_undone_and_the_previous_keeps_serving() {
    let images = images().await;
    let worker = Worker::start(120).await;
    let app = new_app();
    let (first, serving) = worker.live(&app, &images.v1).await;

    let spec = new_deployment(&app, &images.silent);
    let cancel = spec.cancelled.clone();
    let rollout = tokio::spawn({
        let runtime = docker_runtime(120).await;
        async move { runtime.deploy(&spec).await }
    });
    // Until the new container exists, then cancel while it is not ready.
    until_containers(&app, 2).await;
    cancel.cancel();
    let cancelled_at = Instant::now();
    let error = tokio::time::timeout(Duration::from_secs(5), rollout)
        .await
        .expect("a cancelled rollout stops within 5 s")
        .unwrap()
        .unwrap_err();
    eprintln!("cancel -> undone in {:?}", cancelled_at.elapsed());
    assert!(
        matches!(error, berth_deploy_worker::DeployError::Cancelled),
        "{error}"
    );
    let containers = containers_of(&app).await;
    assert_eq!(
        containers.len(),
        1,
        "the new container is gone: {containers:?}"
    );
    assert_eq!(containers[0].1, first.to_string());
    assert_eq!(containers[0].2, "running");
    assert_eq!(http_get(&serving, "/").await.unwrap(), "v1");

    worker.runtime.remove_app(&app).await.unwrap();
    worker.stop().await;
}

/// Two workers roll out two deployments of one app at once: the newer one
/// serves first and retires the older one's container while it still
/// starts. The older deployment was overtaken, not broken: it ends
/// superseded by the newer one, which keeps serving alone.
#[tokio::test]
async fn an_older_rollout_overtaken_on_another_worker_is_superseded_not_failed() {
    let images = images().await;
    let worker = Worker::start(120).await;
    let app = new_app();
    let older = new_deployment(&app, &images.silent);
    let other_worker = docker_runtime(120).await;
    let rollout = tokio::spawn(async move { other_worker.deploy(&older).await });
    until_containers(&app, 1).await;

    let (newer, serving) = worker.live(&app, &images.v1).await;
    let error = tokio::time::timeout(Duration::from_secs(30), rollout)
        .await
        .expect("the overtaken rollout ends once its container is retired")
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(error, berth_deploy_worker::DeployError::Superseded { newer: by } if by == newer),
        "{error}"
    );
    let containers = containers_of(&app).await;
    assert_eq!(containers.len(), 1, "{containers:?}");
    assert_eq!(containers[0].1, newer.to_string());
    assert_eq!(http_get(&serving, "/").await.unwrap(), "v1");

    worker.runtime.remove_app(&app).await.unwrap();
    worker.stop().await;
}

/// F16: a scale handled by one worker while another worker's deploy waits
/// for its new container touches only the live deployment's container.
#[tokio::test]
async fn a_scale_beside_another_workers_deploy_keeps_the_live_release_serving() {
    let images = images().await;
    let worker = Worker::start(120).await;
    let app = new_app();
    let (first, serving) = worker.live(&app, &images.v1).await;

    let spec = new_deployment(&app, &images.silent);
    let cancel = spec.cancelled.clone();
    let other_worker = docker_runtime(120).await;
    let rollout = tokio::spawn(async move { other_worker.deploy(&spec).await });
    until_containers(&app, 2).await;
    let changed = worker.runtime.scale(&app, 1, Some(first)).await.unwrap();
    assert_eq!(changed, 0, "the live container already runs");
    let states: Vec<_> = containers_of(&app).await;
    assert!(
        states.iter().all(|(_, _, state)| state == "running"),
        "{states:?}"
    );
    assert_eq!(http_get(&serving, "/").await.unwrap(), "v1");
    // Scaled to 0 and back, still only the live deployment's container.
    worker.runtime.scale(&app, 0, Some(first)).await.unwrap();
    worker.runtime.scale(&app, 1, Some(first)).await.unwrap();
    let states = containers_of(&app).await;
    assert_eq!(
        states.len(),
        2,
        "the deploy in progress keeps its container"
    );
    assert!(
        states.iter().all(|(_, _, state)| state == "running"),
        "{states:?}"
    );

    cancel.cancel();
    rollout.await.unwrap().unwrap_err();
    worker.runtime.remove_app(&app).await.unwrap();
    worker.stop().await;
}

/// A deploy request delivered twice, to two workers at once: the second
/// attempt leaves the first one's starting container alone and tries again
/// later (it must not remove it and fail the first); then both agree.
#[tokio::test]
async fn a_duplicate_deploy_on_another_worker_waits_for_the_first_attempt() {
    let images = images().await;
    let worker = Worker::start(60).await;
    let app = new_app();
    worker.live(&app, &images.v1).await;

    let spec = new_deployment(&app, &images.slow);
    let one = docker_runtime(60).await;
    let other = docker_runtime(60).await;
    let first_attempt = tokio::spawn({
        let spec = spec.clone();
        async move { one.deploy(&spec).await }
    });
    until_containers(&app, 2).await;
    let duplicate = other.deploy(&spec).await.unwrap_err();
    assert!(
        duplicate.is_transient() && duplicate.to_string().contains("another attempt"),
        "{duplicate}"
    );
    let endpoint = first_attempt
        .await
        .unwrap()
        .expect("the first attempt is not disturbed");
    assert_eq!(other.deploy(&spec).await.unwrap(), endpoint, "tried again");
    let containers = containers_of(&app).await;
    assert_eq!(containers.len(), 1, "{containers:?}");
    assert_eq!(containers[0].1, spec.deployment_id.to_string());
    assert_eq!(http_get(&endpoint, "/").await.unwrap(), "slow");

    worker.runtime.remove_app(&app).await.unwrap();
    worker.stop().await;
}

#[tokio::test]
async fn a_redelivered_deploy_reports_live_again_without_a_second_container() {
    let images = images().await;
    let worker = Worker::start(60).await;
    let app = new_app();
    let deployment = Uuid::now_v7();
    let release = release(&app, &images.v1, &[]);
    let envelope = worker.deploy(deployment, &release).await;
    let first = worker.outcome(deployment, 1).await;
    assert_eq!(first.state, DeploymentState::Live);

    // The same message again, as a redelivery would bring it.
    worker
        .broker
        .publish(berth_proto::names::DEPLOYS_QUEUE, &envelope)
        .await
        .unwrap();
    let again = worker.outcome(deployment, 2).await;
    assert_eq!(again.state, DeploymentState::Live);
    assert_eq!(again.endpoint, first.endpoint, "the same container serves");
    let states: Vec<_> = worker
        .reports_of(deployment)
        .iter()
        .map(|p| p.state)
        .collect();
    assert_eq!(
        states,
        [
            DeploymentState::Deploying,
            DeploymentState::Live,
            DeploymentState::Live
        ]
    );
    assert_eq!(containers_of(&app).await.len(), 1);

    worker.runtime.remove_app(&app).await.unwrap();
    worker.stop().await;
}

#[tokio::test]
async fn a_stale_deploy_is_skipped() {
    let images = images().await;
    let worker = Worker::start(60).await;
    let app = new_app();
    let older = Uuid::now_v7();
    let newer = Uuid::now_v7();
    worker.deploy(newer, &release(&app, &images.v2, &[])).await;
    let live = worker.outcome(newer, 1).await;
    assert_eq!(live.state, DeploymentState::Live);

    worker.deploy(older, &release(&app, &images.v1, &[])).await;
    let skipped = worker.outcome(older, 1).await;
    assert_eq!(skipped.state, DeploymentState::Cancelled, "{skipped:?}");
    assert!(skipped.reason.unwrap().starts_with("a newer deployment"),);
    assert_eq!(worker.reports_of(older).len(), 1, "no deploying report");
    assert_eq!(http_get(&live.endpoint.unwrap(), "/").await.unwrap(), "v2");
    let containers = containers_of(&app).await;
    assert_eq!(containers.len(), 1);
    assert_eq!(containers[0].1, newer.to_string());

    worker.runtime.remove_app(&app).await.unwrap();
    worker.stop().await;
}

#[tokio::test]
async fn a_missing_image_fails_for_good() {
    let worker = Worker::start(60).await;
    let app = new_app();
    let registry = &registry().await.address;
    let image = format!("{registry}/{TENANT}/nothing@sha256:{}", "e".repeat(64));
    let deployment = Uuid::now_v7();
    worker.deploy(deployment, &release(&app, &image, &[])).await;
    let failed = worker.outcome(deployment, 1).await;
    assert_eq!(failed.state, DeploymentState::Failed, "{failed:?}");
    let reason = failed.reason.unwrap();
    assert!(
        reason.starts_with(&format!("the image {image} cannot be pulled:")),
        "{reason}"
    );
    assert!(containers_of(&app).await.is_empty());
    worker.stop().await;
}

#[tokio::test]
async fn removal_removes_only_that_apps_containers() {
    let images = images().await;
    let worker = Worker::start(60).await;
    let (doomed, kept) = (new_app(), new_app());
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    worker.deploy(a, &release(&doomed, &images.v1, &[])).await;
    worker.deploy(b, &release(&kept, &images.v2, &[])).await;
    assert_eq!(worker.outcome(a, 1).await.state, DeploymentState::Live);
    let kept_endpoint = worker.outcome(b, 1).await.endpoint.unwrap();

    worker.remove(&doomed).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !containers_of(&doomed).await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the app's containers were not removed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(containers_of(&kept).await.len(), 1);
    assert_eq!(http_get(&kept_endpoint, "/").await.unwrap(), "v2");

    worker.runtime.remove_app(&kept).await.unwrap();
    worker.stop().await;
}

#[tokio::test]
async fn an_image_missing_on_the_engine_is_pulled_by_digest_with_credentials() {
    let page = format!("fresh-{}", Uuid::new_v4().simple());
    let image = build_and_push(&format!("fresh-{}", &page[6..18]), &web_dockerfile(&page)).await;
    forget_image(&image).await;
    let worker = Worker::start(60).await;
    let app = new_app();
    let deployment = Uuid::now_v7();
    let started = Instant::now();
    worker.deploy(deployment, &release(&app, &image, &[])).await;
    let live = worker.outcome(deployment, 1).await;
    eprintln!("deploy with pull -> live in {:?}", started.elapsed());
    assert_eq!(live.state, DeploymentState::Live, "{live:?}");
    assert_eq!(http_get(&live.endpoint.unwrap(), "/").await.unwrap(), page);

    worker.runtime.remove_app(&app).await.unwrap();
    worker.stop().await;
    forget_image(&image).await;
}

/// A release naming another tenant's image does not run: the engine pulls
/// with a pull grant of the release's own tenant, which the registry
/// refuses for anyone else's repositories.
#[tokio::test]
async fn another_tenants_image_cannot_be_pulled_for_a_release() {
    let page = format!("theirs-{}", Uuid::new_v4().simple());
    let image = build_and_push(&format!("theirs-{}", &page[7..19]), &web_dockerfile(&page)).await;
    forget_image(&image).await;
    let worker = Worker::start(60).await;
    let mut app = new_app();
    app.tenant = "intruder".into();
    let deployment = Uuid::now_v7();
    worker.deploy(deployment, &release(&app, &image, &[])).await;
    let failed = worker.outcome(deployment, 1).await;
    assert_eq!(failed.state, DeploymentState::Failed, "{failed:?}");
    let reason = failed.reason.unwrap();
    assert!(
        reason.starts_with(&format!("the image {image} cannot be pulled:")),
        "{reason}"
    );
    assert!(containers_of(&app).await.is_empty());
    worker.stop().await;
}
