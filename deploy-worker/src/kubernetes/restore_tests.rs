//! Scenarios of a `deploy` that fails: the reason the user reads, and the
//! previous release restored (or a first deploy's Deployment deleted).

use super::fake::*;
use crate::error::DeployError;
use crate::runtime::Runtime;
use berth_common::kube_fake::{self, ApiServer};
use http::Method;
use std::time::Duration;

/// The previous Deployment goes back as it was, less the server's fields.
async fn expect_restore(server: &mut ApiServer, previous: &Deploy) {
    let call = server
        .expect(Method::PATCH, DEPLOYMENT)
        .await
        .assert_server_side_apply()
        .assert_body(
            "/spec/template/spec/containers/0/image",
            &previous.spec.release.image,
        )
        .assert_body(
            "/metadata/labels/berth.dev~1deployment",
            previous.id().to_string(),
        )
        .assert_body("/spec/replicas", 1);
    let body = call.json();
    for server_owned in [
        "/status",
        "/metadata/resourceVersion",
        "/metadata/uid",
        "/metadata/managedFields",
        "/metadata/generation",
        "/metadata/creationTimestamp",
        "/metadata/annotations",
    ] {
        assert_eq!(
            body.pointer(server_owned),
            None,
            "{server_owned} is the server's"
        );
    }
    call.respond_applied();
}

#[tokio::test]
async fn an_image_that_cannot_be_pulled_fails_and_restores_the_previous_release() {
    let first = Deploy::first();
    let second = first.next("registry.example:5000/acme/web@sha256:dddd");
    let (task, mut server) = start_deploy(&second);
    expect_get_deployment(&mut server, Some(first.deployment().rolled_out())).await;
    expect_apply(&mut server, &second).await;
    expect_get_deployment(
        &mut server,
        Some(second.deployment().generation(2).rolling(1, 1, 2)),
    )
    .await;
    let pulling = second.pod("web-2").waiting(
        "ImagePullBackOff",
        "Back-off pulling image \"registry.example:5000/acme/web@sha256:dddd\": manifest unknown",
    );
    expect_pods(&mut server, &second, vec![pulling]).await;
    expect_restore(&mut server, &first).await;
    let error = task.await.unwrap().unwrap_err();
    assert!(
        matches!(error, DeployError::ImageUnavailable { .. }),
        "{error}"
    );
    assert_eq!(
        error.to_string(),
        "the image registry.example:5000/acme/web@sha256:dddd cannot be pulled: Back-off pulling image \"registry.example:5000/acme/web@sha256:dddd\": manifest unknown"
    );
    assert!(!error.is_transient());
    server.done().await;
}

#[tokio::test]
async fn a_crashing_app_fails_with_its_last_log_lines_and_restores_the_previous_release() {
    let first = Deploy::first();
    let second = first.next("registry.example:5000/acme/web@sha256:eeee");
    let (task, mut server) = start_deploy(&second);
    expect_get_deployment(&mut server, Some(first.deployment().rolled_out())).await;
    expect_apply(&mut server, &second).await;
    expect_get_deployment(
        &mut server,
        Some(second.deployment().generation(2).rolling(1, 1, 2)),
    )
    .await;
    expect_pods(
        &mut server,
        &second,
        vec![second.pod("web-2").crash_looping(3, "Error")],
    )
    .await;
    expect_log(
        &mut server,
        "web-2",
        true,
        &["starting", "KeyError: 'DATABASE_URL'"],
    )
    .await;
    expect_restore(&mut server, &first).await;
    let error = task.await.unwrap().unwrap_err();
    assert_eq!(
        error.to_string(),
        "the app exited with code 3 before it listened on port 8000; last lines: starting\nKeyError: 'DATABASE_URL'"
    );
    server.done().await;
}

#[tokio::test]
async fn a_first_deploy_that_fails_deletes_its_deployment() {
    let first = Deploy::first();
    let (task, mut server) = start_deploy(&first);
    expect_get_deployment(&mut server, None).await;
    expect_apply(&mut server, &first).await;
    expect_get_deployment(&mut server, Some(first.deployment().rolling(1, 0, 1))).await;
    expect_pods(
        &mut server,
        &first,
        vec![first.pod("web-1").crash_looping(137, "OOMKilled")],
    )
    .await;
    expect_log(&mut server, "web-1", true, &["loading model"]).await;
    expect_delete(&mut server, DEPLOYMENT)
        .await
        .assert_body("/propagationPolicy", "Background")
        .respond_json(success_status());
    let error = task.await.unwrap().unwrap_err();
    assert!(
        matches!(error, DeployError::OutOfMemory { port: 8000, .. }),
        "{error}"
    );
    assert!(
        error.to_string().ends_with("last lines: loading model"),
        "{error}"
    );
    server.done().await;
}

#[tokio::test]
async fn pods_the_quota_refuses_fail_the_deploy_at_once() {
    let first = Deploy::first();
    let second = first.next("registry.example:5000/acme/web@sha256:ffff");
    let (task, mut server) = start_deploy(&second);
    expect_get_deployment(&mut server, Some(first.deployment().rolled_out())).await;
    expect_apply(&mut server, &second).await;
    let refused = "pods \"web-7c9\" is forbidden: exceeded quota: berth-quota, requested: limits.memory=256Mi";
    expect_get_deployment(
        &mut server,
        Some(second.deployment().generation(2).replica_failure(refused)),
    )
    .await;
    expect_restore(&mut server, &first).await;
    let error = task.await.unwrap().unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("the app's pods did not start: {refused}")
    );
    server.done().await;
}

#[tokio::test(start_paused = true)]
async fn an_app_that_never_becomes_ready_fails_at_the_deadline_with_its_log() {
    let first = Deploy::first();
    let second = first.next("registry.example:5000/acme/web@sha256:abab");
    let (client, mut server) = kube_fake::pair();
    let mut settings = rollout();
    settings.rollout_timeout_secs = 3;
    settings.rollout_poll_millis = 1000;
    let runtime = super::KubeRuntime::new(client, super::fake::settings(), settings);
    let spec = second.spec.clone();
    let started = tokio::time::Instant::now();
    let task = tokio::spawn(async move { runtime.deploy(&spec).await });
    expect_get_deployment(&mut server, Some(first.deployment().rolled_out())).await;
    expect_apply(&mut server, &second).await;
    // Polls at 0 s, 1 s, 2 s and at the deadline, 3 s.
    for _ in 0..4 {
        expect_get_deployment(
            &mut server,
            Some(second.deployment().generation(2).rolling(1, 1, 2)),
        )
        .await;
        expect_pods(
            &mut server,
            &second,
            vec![second.pod("web-2").running(false)],
        )
        .await;
    }
    expect_log(
        &mut server,
        "web-2",
        false,
        &["listening on 127.0.0.1:8000"],
    )
    .await;
    expect_restore(&mut server, &first).await;
    let error = task.await.unwrap().unwrap_err();
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    assert_eq!(
        error.to_string(),
        "the app did not accept connections on port 8000 within 3s — does it listen on $PORT?; last lines: listening on 127.0.0.1:8000"
    );
    server.done().await;
}

#[tokio::test]
async fn an_api_server_that_fails_during_the_rollout_is_retried_without_a_restore() {
    let first = Deploy::first();
    let second = first.next("registry.example:5000/acme/web@sha256:bbbb");
    let (task, mut server) = start_deploy(&second);
    expect_get_deployment(&mut server, Some(first.deployment().rolled_out())).await;
    expect_apply(&mut server, &second).await;
    server.expect(Method::GET, DEPLOYMENT).await.respond_status(
        503,
        "ServiceUnavailable",
        "etcd is unavailable",
    );
    let error = task.await.unwrap().unwrap_err();
    assert!(error.is_transient(), "{error}");
    server.done().await;
}

#[tokio::test]
async fn an_apply_the_api_server_refuses_fails_for_good_and_names_the_object() {
    let first = Deploy::first();
    let (task, mut server) = start_deploy(&first);
    expect_get_deployment(&mut server, None).await;
    server
        .expect(Method::PATCH, "/api/v1/namespaces/berth-acme")
        .await
        .respond_status(403, "Forbidden", "namespaces \"berth-acme\" is forbidden");
    let error = task.await.unwrap().unwrap_err();
    assert!(!error.is_transient());
    assert_eq!(
        error.to_string(),
        "the Kubernetes API refused the deploy: applying Namespace `berth-acme`: namespaces \"berth-acme\" is forbidden"
    );
    server.done().await;
}

/// A deploy whose rollout is cancelled after its pods were looked at once
/// (the poll is long, so the next look would come only after the cancel).
fn start_cancellable(
    deploy: &Deploy,
) -> (
    tokio::task::JoinHandle<Result<String, DeployError>>,
    ApiServer,
    tokio_util::sync::CancellationToken,
) {
    let (client, server) = kube_fake::pair();
    let mut settings = rollout();
    settings.rollout_poll_millis = 60_000;
    let runtime = super::KubeRuntime::new(client, super::fake::settings(), settings);
    let spec = deploy.spec.clone();
    let cancel = spec.cancelled.clone();
    let task = tokio::spawn(async move { runtime.deploy(&spec).await });
    (task, server, cancel)
}

#[tokio::test]
async fn a_rollout_cancelled_midway_restores_the_previous_release() {
    let first = Deploy::first();
    let second = first.next("registry.example:5000/acme/web@sha256:cccc");
    let (task, mut server, cancel) = start_cancellable(&second);
    expect_get_deployment(&mut server, Some(first.deployment().rolled_out())).await;
    expect_apply(&mut server, &second).await;
    expect_get_deployment(
        &mut server,
        Some(second.deployment().generation(2).rolling(1, 1, 2)),
    )
    .await;
    expect_pods(
        &mut server,
        &second,
        vec![second.pod("web-2").running(false)],
    )
    .await;
    cancel.cancel();
    expect_restore(&mut server, &first).await;
    let error = task.await.unwrap().unwrap_err();
    assert!(matches!(error, DeployError::Cancelled), "{error}");
    assert!(!error.is_transient());
    server.done().await;
}

#[tokio::test]
async fn a_first_rollout_cancelled_midway_deletes_its_deployment() {
    let first = Deploy::first();
    let (task, mut server, cancel) = start_cancellable(&first);
    expect_get_deployment(&mut server, None).await;
    expect_apply(&mut server, &first).await;
    expect_get_deployment(&mut server, Some(first.deployment().rolling(1, 0, 1))).await;
    expect_pods(&mut server, &first, vec![first.pod("web-1").running(false)]).await;
    cancel.cancel();
    expect_delete(&mut server, DEPLOYMENT)
        .await
        .assert_body("/propagationPolicy", "Background")
        .respond_json(success_status());
    let error = task.await.unwrap().unwrap_err();
    assert!(matches!(error, DeployError::Cancelled), "{error}");
    server.done().await;
}

#[tokio::test]
async fn a_deploy_cancelled_before_it_applies_changes_nothing() {
    let first = Deploy::first();
    let second = first.next("registry.example:5000/acme/web@sha256:cdcd");
    let (task, mut server, cancel) = start_cancellable(&second);
    cancel.cancel();
    expect_get_deployment(&mut server, Some(first.deployment().rolled_out())).await;
    let error = task.await.unwrap().unwrap_err();
    assert!(matches!(error, DeployError::Cancelled), "{error}");
    server.done().await;
}
