//! The desired state the deploy-workers' reconciler gets: every app that
//! exists, with its live release, scale and whether a deployment is on its
//! way; nothing of deleted apps.

mod common;

use axum::http::{Method, StatusCode};
use berth_backend::background::converge::{snapshot, Converger};
use berth_backend::background::inform::InformHandler;
use berth_proto::names::RECONCILE_QUEUE;
use berth_proto::{
    AppRef, Binding, DeploymentProgress, DeploymentState, DesiredState, Envelope, Release,
    ReleaseConfig,
};
use common::broker::TestBroker;
use common::{id_of, TestApp};
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

async fn create(app: &TestApp, token: &str, name: &str) -> Uuid {
    id_of(
        &app.create_app(
            token,
            json!({"name": name, "repo_url": "https://x.example/r"}),
        )
        .await,
    )
}

async fn deploy(app: &TestApp, token: &str, app_id: Uuid) -> Value {
    let response = app
        .call(
            Method::POST,
            &format!("/api/v1/apps/{app_id}/deployments"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(response.status, StatusCode::ACCEPTED);
    response.body
}

#[tokio::test(flavor = "multi_thread")]
async fn the_snapshot_names_every_existing_app_with_its_live_release() {
    let broker = TestBroker::new().await;
    let app = TestApp::new().await;
    let token = app.token("alice").await;
    let (web, api, gone) = (
        create(&app, &token, "web").await,
        create(&app, &token, "api").await,
        create(&app, &token, "gone").await,
    );
    let deployment = deploy(&app, &token, web).await;
    let release = Release {
        id: deployment["release_id"].as_str().unwrap().parse().unwrap(),
        app: AppRef {
            id: web,
            name: "web".into(),
            tenant: "alice".into(),
        },
        commit: "a".repeat(40),
        image: format!("127.0.0.1:5000/alice/web@sha256:{}", "b".repeat(64)),
        config: ReleaseConfig {
            port: 8000,
            env: app
                .state
                .key
                .seal_json(&Binding::app_env("alice", web), &json!({})),
            env_version: 1,
            replicas: 1,
            resources: Default::default(),
            health_check_path: None,
        },
    };
    let inform = InformHandler::new(app.pool().clone());
    for progress in [
        DeploymentProgress::new(DeploymentState::Deploying).with_release(release.clone()),
        DeploymentProgress::new(DeploymentState::Live).with_endpoint("http://127.0.0.1:1"),
    ] {
        inform.apply(id_of(&deployment), &progress).await.unwrap();
    }
    deploy(&app, &token, api).await;
    let deleted = app
        .call(
            Method::DELETE,
            &format!("/api/v1/apps/{gone}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED);

    let desired = snapshot(app.pool()).await.unwrap();
    let ids: Vec<Uuid> = desired.apps.iter().map(|a| a.app.id).collect();
    assert!(ids.contains(&web) && ids.contains(&api), "{ids:?}");
    assert!(!ids.contains(&gone), "a deleted app is not desired");
    let web_state = desired.apps.iter().find(|a| a.app.id == web).unwrap();
    let live = web_state.live.as_ref().expect("web is live");
    assert_eq!(live.deployment_id, id_of(&deployment));
    assert_eq!(live.release, release);
    assert!(!web_state.busy);
    let api_state = desired.apps.iter().find(|a| a.app.id == api).unwrap();
    assert!(api_state.live.is_none());
    assert!(api_state.busy, "a queued deployment is on its way");

    let converger = Converger::new(
        app.pool().clone(),
        broker.broker.clone(),
        Duration::from_secs(60),
    );
    assert_eq!(converger.send().await.unwrap(), 2);
    let sent = broker
        .next_consumed(RECONCILE_QUEUE, Duration::from_secs(5))
        .await
        .expect("the snapshot goes to the deploy-workers");
    let envelope = Envelope::from_bytes(&sent.data).unwrap();
    let sent: DesiredState = envelope.payload().unwrap();
    assert_eq!(sent.apps.len(), 2);
}
