//! Scenarios of `instances`, `scale` (and stop: scale to zero) and
//! `remove_app` against a scripted API server.

use super::fake::*;
use crate::runtime::{Instance, Runtime};
use berth_common::kube_fake::{self, ApiServer};
use berth_proto::AppRef;
use http::{header, Method};
use serde_json::{json, Value};
use std::future::Future;

/// Runs `operation` on a runtime over a fake API server the test scripts.
fn start<T, F>(
    operation: impl FnOnce(super::KubeRuntime) -> F,
) -> (tokio::task::JoinHandle<T>, ApiServer)
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    let (client, server) = kube_fake::pair();
    (tokio::spawn(operation(runtime(client))), server)
}

fn app_of(deploy: &Deploy) -> AppRef {
    deploy.spec.release.app.clone()
}

fn selector(app: &AppRef) -> String {
    format!("berth.dev/app={}", app.id)
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": kind, "metadata": {}, "items": items})
}

#[tokio::test]
async fn instances_are_the_apps_deployment_found_by_its_label() {
    let first = Deploy::first();
    let app = app_of(&first);
    let (task, mut server) = start(|runtime| {
        let app = app.clone();
        async move { runtime.instances(&app).await }
    });
    server
        .expect(Method::GET, DEPLOYMENTS)
        .await
        .assert_query("labelSelector", &selector(&app))
        .respond_json(list(
            "DeploymentList",
            vec![first.deployment().rolled_out().0],
        ));
    let instances = task.await.unwrap().unwrap();
    assert_eq!(
        instances,
        vec![Instance {
            name: "web".into(),
            deployment_id: Some(first.id()),
            release_id: Some(first.spec.release.id),
            running: true,
            endpoint: Some(ENDPOINT.into()),
        }]
    );
    server.done().await;
}

#[tokio::test]
async fn a_stopped_apps_deployment_is_not_running() {
    let first = Deploy::first();
    let app = app_of(&first);
    let (task, mut server) = start(|runtime| async move { runtime.instances(&app).await });
    let mut stopped = first.deployment().rolled_out();
    stopped.0["spec"]["replicas"] = json!(0);
    stopped.0["status"] = json!({"observedGeneration": 1});
    server
        .expect(Method::GET, DEPLOYMENTS)
        .await
        .respond_json(list("DeploymentList", vec![stopped.0]));
    let instances = task.await.unwrap().unwrap();
    assert!(!instances[0].running);
    server.done().await;
}

async fn expect_scale(server: &mut ApiServer, replicas: u32) -> berth_common::kube_fake::Call {
    let call = server
        .expect(Method::PATCH, &format!("{DEPLOYMENT}/scale"))
        .await
        .assert_query("fieldManager", "berth")
        .assert_body("/spec/replicas", replicas);
    assert_eq!(
        call.headers[header::CONTENT_TYPE],
        "application/merge-patch+json",
        "a merge patch of the scale, not an apply that would drop berth's other fields"
    );
    assert_eq!(call.json(), json!({"spec": {"replicas": replicas}}));
    call
}

fn scale_answer(replicas: u32) -> Value {
    json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
           "metadata": {"name": "web", "namespace": "berth-acme"},
           "spec": {"replicas": replicas}, "status": {"replicas": 1}})
}

#[tokio::test]
async fn scale_sets_the_replicas_of_the_apps_deployment() {
    let app = app_of(&Deploy::first());
    let (task, mut server) = start(|runtime| async move { runtime.scale(&app, 3, None).await });
    expect_scale(&mut server, 3)
        .await
        .respond_json(scale_answer(3));
    assert_eq!(task.await.unwrap().unwrap(), 1);
    server.done().await;
}

#[tokio::test]
async fn stop_scales_the_app_to_zero_and_keeps_everything() {
    let app = app_of(&Deploy::first());
    let (task, mut server) = start(|runtime| async move { runtime.scale(&app, 0, None).await });
    expect_scale(&mut server, 0)
        .await
        .respond_json(scale_answer(0));
    assert_eq!(task.await.unwrap().unwrap(), 1);
    server.done().await;
}

#[tokio::test]
async fn scaling_an_app_never_deployed_changes_nothing() {
    let app = app_of(&Deploy::first());
    let (task, mut server) = start(|runtime| async move { runtime.scale(&app, 2, None).await });
    expect_scale(&mut server, 2).await.respond_not_found();
    assert_eq!(task.await.unwrap().unwrap(), 0);
    server.done().await;
}

/// A `deletecollection` of the app's objects of one kind, by its label only.
async fn expect_delete_collection(
    server: &mut ApiServer,
    path: &str,
    app: &AppRef,
    kind: &str,
    names: &[&str],
) {
    let call = server
        .expect(Method::DELETE, path)
        .await
        .assert_query("labelSelector", &selector(app))
        .assert_body("/propagationPolicy", "Background");
    let items = names
        .iter()
        .map(|name| json!({"metadata": {"name": name, "namespace": "berth-acme"}}))
        .collect();
    call.respond_json(list(kind, items));
}

/// Every object of `app` deleted, as `remove_app` does it: its Ingress,
/// Service and Deployment (each named `web`), its env Secrets and its
/// certificate.
async fn expect_removal(server: &mut ApiServer, app: &AppRef, secrets: &[&str]) {
    expect_delete_collection(
        server,
        "/apis/networking.k8s.io/v1/namespaces/berth-acme/ingresses",
        app,
        "IngressList",
        &["web"],
    )
    .await;
    server
        .expect(Method::GET, "/api/v1/namespaces/berth-acme/services")
        .await
        .assert_query("labelSelector", &selector(app))
        .respond_json(json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList", "metadata": {},
            "items": [{"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": {"name": "web"}}]}));
    expect_delete(server, "/api/v1/namespaces/berth-acme/services/web")
        .await
        .respond_json(success_status());
    expect_delete_collection(server, DEPLOYMENTS, app, "DeploymentList", &["web"]).await;
    expect_delete_collection(server, SECRETS, app, "SecretList", secrets).await;
    expect_delete(server, &format!("{SECRETS}/web-tls"))
        .await
        .respond_json(success_status());
}

#[tokio::test]
async fn delete_removes_what_carries_the_apps_label_and_its_certificate_and_nothing_else() {
    let first = Deploy::first();
    let app = app_of(&first);
    let removing = app.clone();
    let (task, mut server) = start(|runtime| async move { runtime.remove_app(&removing).await });
    let secrets = [first.env_secret(), "web-env-older".to_owned()];
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    expect_removal(&mut server, &app, &secrets).await;
    assert_eq!(task.await.unwrap().unwrap(), 6);
    server.done().await;
}

/// F2 of the reliability review: a deleted app's Deployment is still there
/// (its removal was missed) when a new app of the tenant takes its freed
/// name. Its selector names the deleted app and cannot change, so the
/// first deploy of the new app removes what is left of the old one, then
/// applies its own and goes live, instead of failing on the API server's 422.
#[tokio::test]
async fn a_new_app_under_a_deleted_apps_name_replaces_its_leftovers_and_goes_live() {
    let deleted = Deploy::first();
    let reused = Deploy::first();
    assert_ne!(app_of(&deleted).id, app_of(&reused).id);
    let (task, mut server) = start_deploy(&reused);
    expect_get_deployment(&mut server, Some(deleted.deployment().rolled_out())).await;
    let secrets = [deleted.env_secret()];
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    expect_removal(&mut server, &app_of(&deleted), &secrets).await;
    expect_apply(&mut server, &reused).await;
    expect_get_deployment(&mut server, Some(reused.deployment().rolled_out())).await;
    expect_prune(&mut server, &reused, &[&reused], &[&reused], &[]).await;
    assert_eq!(task.await.unwrap().unwrap(), ENDPOINT);
    server.done().await;
}

#[tokio::test]
async fn deleting_an_app_with_nothing_left_is_done() {
    let app = app_of(&Deploy::first());
    let removing = app.clone();
    let (task, mut server) = start(|runtime| async move { runtime.remove_app(&removing).await });
    let ingresses = "/apis/networking.k8s.io/v1/namespaces/berth-acme/ingresses";
    expect_delete_collection(&mut server, ingresses, &app, "IngressList", &[]).await;
    server
        .expect(Method::GET, "/api/v1/namespaces/berth-acme/services")
        .await
        .respond_json(json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList", "metadata": {}, "items": []}));
    expect_delete_collection(&mut server, DEPLOYMENTS, &app, "DeploymentList", &[]).await;
    expect_delete_collection(&mut server, SECRETS, &app, "SecretList", &[]).await;
    expect_delete(&mut server, &format!("{SECRETS}/web-tls"))
        .await
        .respond_not_found();
    assert_eq!(task.await.unwrap().unwrap(), 0);
    server.done().await;
}

/// The reconciler finds a deleted app's leftovers through this list.
#[tokio::test]
async fn apps_are_every_berth_deployment_in_the_cluster() {
    let web = Deploy::first();
    let api = Deploy::new(
        crate::fixture::ReleaseFixture::new()
            .app("globex", "api")
            .build(),
    );
    let (task, mut server) = start(|runtime| async move { runtime.apps().await });
    server
        .expect(Method::GET, "/apis/apps/v1/deployments")
        .await
        .assert_query(
            "labelSelector",
            "app.kubernetes.io/managed-by=berth,berth.dev/app",
        )
        .respond_json(list(
            "DeploymentList",
            vec![
                web.deployment().rolled_out().0,
                api.deployment().0,
                // Not berth's: no app label (the selector would leave it
                // out; a server that ignores it must not make it an app).
                json!({"apiVersion": "apps/v1", "kind": "Deployment",
                       "metadata": {"name": "other", "namespace": "kube-system"}}),
            ],
        ));
    let apps = task.await.unwrap().unwrap().expect("the driver lists apps");
    assert_eq!(apps, vec![app_of(&web), app_of(&api)]);
    server.done().await;
}
