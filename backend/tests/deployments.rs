//! Deployments: the outbox hands intents to the real broker, never losing
//! one while the broker is down; rollbacks deploy a stored release.

mod common;

use axum::http::{Method, StatusCode};
use berth_backend::background::inform::InformHandler;
use berth_backend::background::relay::RelaySettings;
use berth_common::Broker;
use berth_proto::{
    BuildRequested, DeployRequested, DeploymentProgress, DeploymentState, Envelope, Release,
};
use common::broker::TestBroker;
use common::{id_of, TestApp};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(10);

fn settings() -> RelaySettings {
    RelaySettings {
        min_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(500),
        publish_timeout: Duration::from_secs(5),
        ..Default::default()
    }
}

fn start_relay(app: &TestApp, broker: Broker) -> CancellationToken {
    let stop = CancellationToken::new();
    let relay = app.relay(broker, settings());
    tokio::spawn(relay.run(stop.clone()));
    stop
}

async fn app_with_one_app(env: Value) -> (TestApp, String, Uuid) {
    let app = TestApp::new().await;
    let token = app.token("alice").await;
    let created = app
        .create_app(
            &token,
            json!({"name": "web", "repo_url": "https://github.com/o/web.git", "branch": "trunk",
                   "subdirectory": "srv", "port": 5000, "env": env}),
        )
        .await;
    let app_id = id_of(&created);
    (app, token, app_id)
}

async fn unpublished(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(app.pool())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_is_queued_and_its_build_request_published() {
    let broker = TestBroker::new().await;
    let (app, token, app_id) = app_with_one_app(json!({"SECRET": "s3cret"})).await;
    let before = app.get(&format!("/api/v1/apps/{app_id}"), &token).await;
    assert_eq!(before.body["last_deploy"], serde_json::Value::Null);
    let response = app
        .post(
            &format!("/api/v1/apps/{app_id}/deployments"),
            &token,
            json!({"commit": "ABCDEF1"}),
        )
        .await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.body);
    let deployment = response.body;
    // The apps list shows the last deploy at a glance.
    let listed = app.get("/api/v1/apps", &token).await;
    let last = &listed.body[0]["last_deploy"];
    assert_eq!(
        (&last["trigger"], &last["commit"]),
        (&json!("user"), &json!("abcdef1"))
    );
    assert_eq!(last["created_at"], deployment["created_at"]);
    assert_eq!(deployment["state"], "queued");
    assert_eq!(deployment["trigger"], "user");
    assert_eq!(deployment["ref"], "trunk");
    assert_eq!(deployment["commit"], "abcdef1");
    assert_eq!(deployment["states"][0]["state"], "queued");
    let deployment_id = id_of(&deployment);
    // The intent and its message were written together.
    assert_eq!(unpublished(&app).await, 1);

    let stop = start_relay(&app, broker.broker.clone());
    let delivery = broker
        .next("berth.builds", WAIT)
        .await
        .expect("build.requested is published");
    let envelope = Envelope::from_bytes(&delivery.data).unwrap();
    assert_eq!(envelope.kind, "build.requested");
    assert_eq!(envelope.deployment_id, Some(deployment_id));
    let build: BuildRequested = envelope.payload().unwrap();
    assert_eq!(build.app.id, app_id);
    assert_eq!(
        (build.app.name.as_str(), build.app.tenant.as_str()),
        ("web", "alice")
    );
    assert_eq!(build.release_id.to_string(), deployment["release_id"]);
    assert_eq!(build.source.repo_url, "https://github.com/o/web.git");
    assert_eq!(build.source.git_ref, "trunk");
    assert_eq!(build.source.commit.as_deref(), Some("abcdef1"));
    assert_eq!(build.source.subdirectory.as_deref(), Some("srv"));
    assert_eq!(build.config.port, 5000);
    // Every release carries the app's resources, the operator's defaults filled in.
    assert_eq!(
        build.config.resources,
        berth_proto::Resources {
            cpu_millis: Some(1000),
            memory_mb: Some(512)
        }
    );
    let binding = berth_proto::Binding::app_env("alice", app_id);
    let env: BTreeMap<String, String> = app
        .state
        .key
        .open_json(&binding, &build.config.env)
        .unwrap();
    assert_eq!(env["SECRET"], "s3cret");
    assert!(!String::from_utf8_lossy(&delivery.data).contains("s3cret"));

    common::broker::eventually(WAIT, || async {
        (unpublished(&app).await == 0).then_some(())
    })
    .await
    .expect("the row is marked published");
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_broker_down_the_deployment_is_accepted_and_published_later() {
    let broker = TestBroker::new().await;
    let (app, token, app_id) = app_with_one_app(json!({})).await;
    // A closed port: every publish fails.
    let down = Broker::new("amqp://berth:nope@127.0.0.1:1/%2f", "backend-test-down");
    let stop_down = start_relay(&app, down);

    let response = app
        .post(
            &format!("/api/v1/apps/{app_id}/deployments"),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.body);
    let deployment_id = id_of(&response.body);

    let attempts = common::broker::eventually(WAIT, || async {
        let (attempts, error): (i32, Option<String>) =
            sqlx::query_as("SELECT attempts, last_error FROM outbox")
                .fetch_one(app.pool())
                .await
                .unwrap();
        (attempts >= 2 && error.is_some()).then_some(attempts)
    })
    .await
    .expect("the relay keeps trying");
    assert!(attempts >= 2);
    assert_eq!(unpublished(&app).await, 1, "the intent is kept");
    stop_down.cancel();

    // The broker is back (the relay now reaches a good URL): nothing was lost.
    let stop = start_relay(&app, broker.broker.clone());
    let delivery = broker
        .next("berth.builds", WAIT)
        .await
        .expect("published once the broker is reachable");
    let envelope = Envelope::from_bytes(&delivery.data).unwrap();
    assert_eq!(envelope.deployment_id, Some(deployment_id));
    common::broker::eventually(WAIT, || async {
        (unpublished(&app).await == 0).then_some(())
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        broker.depth("berth.builds").await,
        0,
        "published exactly once"
    );
    stop.cancel();
}

/// Takes a deployment to `live` as the workers would, with a release.
async fn make_live(
    app: &TestApp,
    deployment: &Value,
    app_ref: berth_proto::AppRef,
    commit: &str,
) -> Release {
    let handler = InformHandler::new(app.pool().clone());
    let deployment_id = id_of(deployment);
    let binding = berth_proto::Binding::app_env(&app_ref.tenant, app_ref.id);
    let release = Release {
        id: deployment["release_id"].as_str().unwrap().parse().unwrap(),
        app: app_ref,
        commit: commit.into(),
        image: format!("127.0.0.1:5000/alice/web@sha256:{}", commit.repeat(8)),
        config: berth_proto::ReleaseConfig {
            port: 5000,
            env: app.state.key.seal_json(
                &binding,
                &BTreeMap::from([("V".to_owned(), format!("value-{commit}"))]),
            ),
            env_version: 1,
            replicas: 1,
            resources: Default::default(),
            health_check_path: None,
        },
    };
    for progress in [
        DeploymentProgress::new(DeploymentState::Cloning).with_commit(commit),
        DeploymentProgress::new(DeploymentState::Deploying).with_release(release.clone()),
        DeploymentProgress::new(DeploymentState::Live).with_endpoint("http://127.0.0.1:40001"),
    ] {
        handler.apply(deployment_id, &progress).await.unwrap();
    }
    release
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_deploys_the_stored_release_without_a_build() {
    let broker = TestBroker::new().await;
    let (app, token, app_id) = app_with_one_app(json!({})).await;
    let uri = format!("/api/v1/apps/{app_id}/deployments");
    let app_ref = berth_proto::AppRef {
        id: app_id,
        name: "web".into(),
        tenant: "alice".into(),
    };
    let first = app.post(&uri, &token, json!({})).await.body;
    let release = make_live(&app, &first, app_ref.clone(), "aaaaaaa").await;
    let second = app.post(&uri, &token, json!({})).await.body;
    make_live(&app, &second, app_ref, "bbbbbbb").await;

    let releases = app
        .get(&format!("/api/v1/apps/{app_id}/releases"), &token)
        .await;
    assert_eq!(releases.body.as_array().unwrap().len(), 2);
    assert_eq!(releases.body[0]["commit"], "bbbbbbb");
    assert_eq!(releases.body[0]["current"], true);
    assert_eq!(releases.body[1]["config"]["env_names"], json!(["V"]));
    assert!(
        !releases.body.to_string().contains("value-"),
        "no env values"
    );

    // Work of deployments that already ended is never handed out.
    let stop = start_relay(&app, broker.broker.clone());
    let drained = common::broker::eventually(WAIT, || async {
        (unpublished(&app).await == 0).then_some(())
    })
    .await;
    assert!(drained.is_some(), "the relay went through the outbox");
    assert_eq!(broker.depth("berth.builds").await, 0);

    // The scale is the app's: the rollback runs the old release at today's.
    let scaled = app
        .call(
            Method::PUT,
            &format!("/api/v1/apps/{app_id}/scale"),
            Some(&token),
            Some(json!({"replicas": 3})),
        )
        .await;
    assert_eq!(scaled.status, StatusCode::ACCEPTED, "{}", scaled.body);
    let scale = broker.next("berth.deploys", WAIT).await.unwrap();
    assert_eq!(
        Envelope::from_bytes(&scale.data).unwrap().kind,
        "app.scale_requested"
    );

    let rollback = app
        .post(&uri, &token, json!({"release_id": release.id}))
        .await;
    assert_eq!(rollback.status, StatusCode::ACCEPTED, "{}", rollback.body);
    assert_eq!(rollback.body["trigger"], "rollback");
    assert_eq!(rollback.body["release_id"], release.id.to_string());
    assert_eq!(rollback.body["commit"], "aaaaaaa");
    assert_eq!(rollback.body["image"], release.image);

    let delivery = broker
        .next("berth.deploys", WAIT)
        .await
        .expect("deploy.requested is published");
    let envelope = Envelope::from_bytes(&delivery.data).unwrap();
    assert_eq!(envelope.kind, "deploy.requested");
    assert_eq!(envelope.deployment_id, Some(id_of(&rollback.body)));
    let deploy: DeployRequested = envelope.payload().unwrap();
    assert_eq!(deploy.release.config.replicas, 3);
    // So are the resources: the release was made without, today's are the defaults.
    let mut expected = release.clone();
    expected.config.replicas = 3;
    expected.config.resources = berth_proto::Resources {
        cpu_millis: Some(1000),
        memory_mb: Some(512),
    };
    assert_eq!(deploy.release, expected);
    assert_eq!(broker.depth("berth.builds").await, 0, "no rebuild");

    // Rolling back goes live: the deployment it replaced is rolled back.
    let handler = InformHandler::new(app.pool().clone());
    let rollback_id = id_of(&rollback.body);
    for state in [DeploymentState::Deploying, DeploymentState::Live] {
        handler
            .apply(rollback_id, &DeploymentProgress::new(state))
            .await
            .unwrap();
    }
    let replaced = app
        .get(&format!("/api/v1/deployments/{}", id_of(&second)), &token)
        .await;
    assert_eq!(replaced.body["state"], "rolled_back");
    let current = app.get(&format!("/api/v1/apps/{app_id}"), &token).await;
    assert_eq!(current.body["current_release_id"], release.id.to_string());

    // A release of nothing, or combined with a ref, is refused.
    app.post(&uri, &token, json!({"release_id": Uuid::now_v7()}))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    app.post(
        &uri,
        &token,
        json!({"release_id": release.id, "ref": "main"}),
    )
    .await
    .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    stop.cancel();
}

#[tokio::test]
async fn deployments_list_newest_first_with_paging_and_validate_input() {
    let (app, token, app_id) = app_with_one_app(json!({})).await;
    let uri = format!("/api/v1/apps/{app_id}/deployments");
    let mut ids = Vec::new();
    for git_ref in ["main", "v1.0", "feature/x"] {
        let response = app.post(&uri, &token, json!({"ref": git_ref})).await;
        assert_eq!(response.status, StatusCode::ACCEPTED);
        ids.push(response.body["id"].clone());
    }
    let page = app.get(&format!("{uri}?limit=2"), &token).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let page = page.body.as_array().unwrap().clone();
    assert_eq!(page.len(), 2);
    assert_eq!((&page[0]["id"], &page[1]["id"]), (&ids[2], &ids[1]));
    let rest = app
        .get(
            &format!("{uri}?limit=2&before={}", ids[1].as_str().unwrap()),
            &token,
        )
        .await;
    assert_eq!(rest.body.as_array().unwrap().len(), 1);
    assert_eq!(rest.body[0]["id"], ids[0]);

    let one = app
        .get(
            &format!("/api/v1/deployments/{}", ids[0].as_str().unwrap()),
            &token,
        )
        .await;
    assert_eq!(one.status, StatusCode::OK);
    for field in [
        "state",
        "states",
        "reason",
        "commit",
        "image",
        "endpoint",
        "release_id",
        "trigger",
        "created_at",
        "updated_at",
    ] {
        assert!(one.body.get(field).is_some(), "missing {field}");
    }

    app.post(&uri, &token, json!({"commit": "xyz"}))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    app.post(&uri, &token, json!({"ref": "bad ref"}))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    app.get(&format!("{uri}?limit=1000"), &token)
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    app.get(&format!("{uri}?before=nope"), &token)
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    app.get(&format!("/api/v1/deployments/{}", Uuid::now_v7()), &token)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not-found");
    let other = app.token("mallory").await;
    app.get(
        &format!("/api/v1/deployments/{}", ids[0].as_str().unwrap()),
        &other,
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not-found");
}

/// The build request written for `deployment`, from the outbox.
async fn build_request_of(app: &TestApp, deployment: &Value) -> BuildRequested {
    let envelope: Value =
        sqlx::query_scalar("SELECT envelope FROM outbox WHERE envelope->>'deployment_id' = $1")
            .bind(deployment["id"].as_str().unwrap())
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(envelope["type"], "build.requested");
    serde_json::from_value(envelope["payload"].clone()).unwrap()
}

#[tokio::test]
async fn a_build_request_names_the_digests_berth_recorded_for_the_apps_commits() {
    let (app, token, app_id) = app_with_one_app(json!({})).await;
    let uri = format!("/api/v1/apps/{app_id}/deployments");
    let app_ref = berth_proto::AppRef {
        id: app_id,
        name: "web".into(),
        tenant: "alice".into(),
    };
    let first = app.post(&uri, &token, json!({})).await.body;
    assert!(build_request_of(&app, &first).await.known_images.is_empty());
    // make_live records `<registry>/alice/web@sha256:<commit × 8>`.
    let a = make_live(&app, &first, app_ref.clone(), "aaaaaaaa").await;
    let second = app.post(&uri, &token, json!({})).await.body;
    let b = make_live(&app, &second, app_ref.clone(), "bbbbbbbb").await;
    let digest = |release: &Release| release.image.split_once('@').unwrap().1.to_owned();

    // A branch: the app's recent commits, newest first.
    let branch = app.post(&uri, &token, json!({})).await.body;
    let known: Vec<(String, String)> = build_request_of(&app, &branch)
        .await
        .known_images
        .into_iter()
        .map(|k| (k.commit, k.digest))
        .collect();
    assert_eq!(
        known,
        [
            ("bbbbbbbb".to_owned(), digest(&b)),
            ("aaaaaaaa".to_owned(), digest(&a))
        ]
    );
    // An exact (or abbreviated) commit: only its own.
    let exact = app
        .post(&uri, &token, json!({"commit": "aaaaaaa"}))
        .await
        .body;
    let known = build_request_of(&app, &exact).await.known_images;
    assert_eq!(known.len(), 1);
    assert_eq!(known[0].digest, digest(&a));
    let unknown = app
        .post(&uri, &token, json!({"commit": "ccccccc"}))
        .await
        .body;
    assert!(build_request_of(&app, &unknown)
        .await
        .known_images
        .is_empty());
    // Another app's releases are not this app's.
    let other = app
        .create_app(
            &token,
            json!({"name": "api", "repo_url": "https://github.com/o/web.git", "branch": "trunk",
                   "port": 5000}),
        )
        .await;
    let other = app
        .post(
            &format!("/api/v1/apps/{}/deployments", id_of(&other)),
            &token,
            json!({"commit": "aaaaaaa"}),
        )
        .await
        .body;
    assert!(build_request_of(&app, &other).await.known_images.is_empty());
}

/// F27: a retried request (a timeout, a double click) with the same
/// `Idempotency-Key` gets the deployment the first one made.
#[tokio::test]
async fn the_same_idempotency_key_answers_the_same_deployment() {
    let (app, token, app_id) = app_with_one_app(json!({})).await;
    let deploy = |key: &str| {
        let request = axum::http::Request::builder()
            .method(Method::POST)
            .uri(format!("/api/v1/apps/{app_id}/deployments"))
            .header("authorization", format!("Bearer {token}"))
            .header("idempotency-key", key)
            .body(axum::body::Body::empty())
            .unwrap();
        app.send(request)
    };
    let first = deploy("6f1c2f4e-click").await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.body);
    let again = deploy("6f1c2f4e-click").await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.body);
    assert_eq!(again.body["id"], first.body["id"]);
    let builds: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox WHERE envelope->>'type' = 'build.requested'",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!(builds, 1, "one build for one key");

    let other = deploy("another-click").await;
    assert_eq!(other.status, StatusCode::ACCEPTED, "{}", other.body);
    assert_ne!(other.body["id"], first.body["id"]);

    let bad = deploy("has spaces").await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    assert!(
        bad.body.to_string().contains("Idempotency-Key"),
        "{}",
        bad.body
    );
}
