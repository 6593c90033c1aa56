//! Scenarios of `deploy` against a scripted API server: each request the
//! driver makes is asserted in order, and one too many fails the test.

use super::fake::*;
use crate::error::DeployError;

use http::Method;
use serde_json::json;

#[tokio::test]
async fn a_tenants_first_deploy_creates_its_namespace_and_goes_live_on_https() {
    let first = Deploy::first();
    let (task, mut server) = start_deploy(&first);
    expect_get_deployment(&mut server, None).await;
    let applied = expect_apply(&mut server, &first).await;
    assert_eq!(
        applied[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
    assert_eq!(applied[3]["spec"]["podSelector"], json!({}), "default deny");
    assert_eq!(
        applied[7]["spec"]["template"]["spec"]["containers"][0]["image"],
        json!(first.spec.release.image)
    );
    assert_eq!(
        applied[7]["metadata"]["labels"]["berth.dev/deployment"],
        json!(first.id().to_string())
    );
    // The controller has not seen it yet, then pods are created, then ready.
    expect_get_deployment(&mut server, Some(first.deployment().unobserved())).await;
    expect_pods(&mut server, &first, vec![]).await;
    expect_get_deployment(&mut server, Some(first.deployment().rolling(1, 0, 1))).await;
    expect_pods(&mut server, &first, vec![first.pod("web-1").running(false)]).await;
    expect_get_deployment(&mut server, Some(first.deployment().rolled_out())).await;
    expect_prune(&mut server, &first, &[&first], &[&first], &[]).await;
    assert_eq!(task.await.unwrap().unwrap(), ENDPOINT);
    server.done().await;
}

#[tokio::test]
async fn a_redeploy_rolls_out_the_new_release_and_prunes_env_secrets_out_of_the_history() {
    let zeroth = Deploy::first();
    let first = zeroth.next("registry.example:5000/acme/web@sha256:aaaa");
    let second = first.next("registry.example:5000/acme/web@sha256:bbbb");
    let (task, mut server) = start_deploy(&second);
    expect_get_deployment(&mut server, Some(first.deployment().rolled_out())).await;
    let applied = expect_apply(&mut server, &second).await;
    assert_eq!(
        applied[7]["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example:5000/acme/web@sha256:bbbb"
    );
    // New pod up, old one still there; then the old one is gone.
    let rolling = second.deployment().generation(2);
    expect_get_deployment(&mut server, Some(rolling.rolling(1, 1, 2))).await;
    expect_pods(
        &mut server,
        &second,
        vec![second.pod("web-2").running(true)],
    )
    .await;
    expect_get_deployment(
        &mut server,
        Some(second.deployment().generation(2).rolled_out()),
    )
    .await;
    // The ReplicaSets of both releases are left; the env Secrets of every
    // other release go, in one request by label.
    expect_prune(
        &mut server,
        &second,
        &[&first, &second],
        &[&first, &second],
        &[&zeroth.env_secret(), "web-env-older"],
    )
    .await;
    assert_eq!(task.await.unwrap().unwrap(), ENDPOINT);
    server.done().await;
}

#[tokio::test]
async fn a_redelivered_deploy_that_already_rolled_out_applies_nothing() {
    let first = Deploy::first();
    let (task, mut server) = start_deploy(&first);
    expect_get_deployment(&mut server, Some(first.deployment().rolled_out())).await;
    assert_eq!(task.await.unwrap().unwrap(), ENDPOINT);
    server.done().await;
}

#[tokio::test]
async fn a_redelivered_deploy_whose_rollout_is_unfinished_waits_for_it_again() {
    let first = Deploy::first();
    let (task, mut server) = start_deploy(&first);
    expect_get_deployment(&mut server, Some(first.deployment().rolling(0, 0, 1))).await;
    expect_apply(&mut server, &first).await;
    expect_get_deployment(&mut server, Some(first.deployment().rolled_out())).await;
    expect_prune(&mut server, &first, &[&first], &[&first], &[]).await;
    assert_eq!(task.await.unwrap().unwrap(), ENDPOINT);
    server.done().await;
}

#[tokio::test]
async fn a_deploy_older_than_the_running_one_is_superseded_without_an_apply() {
    let stale = Deploy::first();
    let newer = stale.next("registry.example:5000/acme/web@sha256:cccc");
    let (task, mut server) = start_deploy(&stale);
    expect_get_deployment(&mut server, Some(newer.deployment().rolled_out())).await;
    let error = task.await.unwrap().unwrap_err();
    assert!(
        matches!(error, DeployError::Superseded { newer: id } if id == newer.id()),
        "{error}"
    );
    server.done().await;
}

#[tokio::test]
async fn a_newer_deploy_taking_over_during_the_rollout_supersedes_without_a_restore() {
    let first = Deploy::first();
    let second = first.next("registry.example:5000/acme/web@sha256:bbbb");
    let third = second.next("registry.example:5000/acme/web@sha256:cccc");
    let (task, mut server) = start_deploy(&second);
    expect_get_deployment(&mut server, Some(first.deployment().rolled_out())).await;
    expect_apply(&mut server, &second).await;
    expect_get_deployment(
        &mut server,
        Some(third.deployment().generation(3).rolling(0, 1, 1)),
    )
    .await;
    let error = task.await.unwrap().unwrap_err();
    assert!(
        matches!(error, DeployError::Superseded { newer } if newer == third.id()),
        "{error}"
    );
    server.done().await;
}

#[tokio::test]
async fn a_rollback_rolls_the_earlier_release_out_again_as_a_new_deployment() {
    let first = Deploy::first();
    let second = first.next("registry.example:5000/acme/web@sha256:bbbb");
    let rollback = first.again();
    let (task, mut server) = start_deploy(&rollback);
    expect_get_deployment(
        &mut server,
        Some(second.deployment().generation(2).rolled_out()),
    )
    .await;
    let applied = expect_apply(&mut server, &rollback).await;
    assert_eq!(
        applied[6]["metadata"]["name"],
        first.env_secret(),
        "the earlier release's env Secret, applied again in case it was pruned"
    );
    let image = &applied[7]["spec"]["template"]["spec"]["containers"][0]["image"];
    assert_eq!(image, &json!(first.spec.release.image));
    expect_get_deployment(
        &mut server,
        Some(rollback.deployment().generation(3).rolled_out()),
    )
    .await;
    // The rollback's ReplicaSet runs the first release again: one to keep.
    expect_prune(
        &mut server,
        &rollback,
        &[&first, &second, &rollback],
        &[&first, &second],
        &[],
    )
    .await;
    assert_eq!(task.await.unwrap().unwrap(), ENDPOINT);
    server.done().await;
}

#[tokio::test]
async fn the_current_release_keeps_its_env_secret_before_its_replica_set_is_listed() {
    let first = Deploy::first();
    let second = first.next("registry.example:5000/acme/web@sha256:bbbb");
    let (task, mut server) = start_deploy(&second);
    expect_get_deployment(&mut server, Some(first.deployment().rolled_out())).await;
    expect_apply(&mut server, &second).await;
    expect_get_deployment(
        &mut server,
        Some(second.deployment().generation(2).rolled_out()),
    )
    .await;
    expect_prune(&mut server, &second, &[&first], &[&first, &second], &[]).await;
    assert_eq!(task.await.unwrap().unwrap(), ENDPOINT);
    server.done().await;
}

#[tokio::test]
async fn a_prune_the_cluster_refuses_leaves_the_deploy_live() {
    let first = Deploy::first();
    // The ReplicaSets cannot be read: nothing is deleted.
    let (task, mut server) = start_deploy(&first);
    expect_get_deployment(&mut server, None).await;
    expect_apply(&mut server, &first).await;
    expect_get_deployment(&mut server, Some(first.deployment().rolled_out())).await;
    server
        .expect(Method::GET, REPLICA_SETS)
        .await
        .respond_status(403, "Forbidden", "replicasets.apps is forbidden");
    assert_eq!(task.await.unwrap().unwrap(), ENDPOINT);
    server.done().await;
    // The Secrets cannot be deleted.
    let (task, mut server) = start_deploy(&first);
    expect_get_deployment(&mut server, None).await;
    expect_apply(&mut server, &first).await;
    expect_get_deployment(&mut server, Some(first.deployment().rolled_out())).await;
    server
        .expect(Method::GET, REPLICA_SETS)
        .await
        .respond_json(json!({"apiVersion": "apps/v1", "kind": "ReplicaSetList", "metadata": {}, "items": [first.replica_set()]}));
    server.expect(Method::DELETE, SECRETS).await.respond_status(
        403,
        "Forbidden",
        "secrets is forbidden",
    );
    assert_eq!(task.await.unwrap().unwrap(), ENDPOINT);
    server.done().await;
}
