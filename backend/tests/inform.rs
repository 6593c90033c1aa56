//! The inform consumer on the real broker, and the reaper.

mod common;

use berth_backend::background::inform::{Applied, InformHandler};
use berth_backend::background::reaper::{Reaper, ReaperSettings};
use berth_common::MessagePublisher;
use berth_proto::names::{DEAD_LETTER_REASON_HEADER, INFORM_QUEUE};
use berth_proto::{DeploymentProgress, DeploymentState};
use common::broker::TestBroker;
use common::{id_of, TestApp};
use lapin::types::AMQPValue;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(10);

type Setup = common::one_app::OneApp;

fn start_consumer(broker: &TestBroker, app: &TestApp) -> CancellationToken {
    let stop = CancellationToken::new();
    let handler = Arc::new(InformHandler::new(app.pool().clone()));
    let (consumer, token) = (broker.broker.clone(), stop.clone());
    // One at a time, so the reports are applied in the order sent.
    tokio::spawn(async move { consumer.consume(INFORM_QUEUE, 1, handler, token).await });
    stop
}

async fn report(broker: &TestBroker, deployment_id: Uuid, progress: DeploymentProgress) {
    broker
        .broker
        .send(Some(deployment_id), 1, &progress)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn reports_move_a_deployment_forward_and_stale_ones_are_ignored() {
    let broker = TestBroker::new().await;
    let setup = Setup::new().await;
    let stop = start_consumer(&broker, &setup.app);
    let deployment = setup.deploy().await;
    let id = id_of(&deployment);
    let release = setup.release(&deployment);

    report(
        &broker,
        id,
        DeploymentProgress::new(DeploymentState::Cloning),
    )
    .await;
    report(
        &broker,
        id,
        DeploymentProgress::new(DeploymentState::Building).with_commit(&release.commit),
    )
    .await;
    report(
        &broker,
        id,
        DeploymentProgress::new(DeploymentState::Pushing),
    )
    .await;
    // Redelivered and out-of-order reports: ignored.
    report(
        &broker,
        id,
        DeploymentProgress::new(DeploymentState::Cloning),
    )
    .await;
    report(
        &broker,
        id,
        DeploymentProgress::new(DeploymentState::Pushing),
    )
    .await;
    report(
        &broker,
        id,
        DeploymentProgress::new(DeploymentState::Deploying).with_release(release.clone()),
    )
    .await;
    let deploying = setup.wait_for_state(id, "deploying").await;
    let states: Vec<&str> = deploying["states"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states,
        ["queued", "cloning", "building", "pushing", "deploying"]
    );
    assert_eq!(deploying["commit"], release.commit);
    assert_eq!(deploying["image"], release.image);

    report(
        &broker,
        id,
        DeploymentProgress::new(DeploymentState::Live).with_endpoint("http://127.0.0.1:40001"),
    )
    .await;
    let live = setup.wait_for_state(id, "live").await;
    assert_eq!(live["endpoint"], "http://127.0.0.1:40001");
    let app = setup
        .app
        .get(&format!("/api/v1/apps/{}", setup.app_id), &setup.token)
        .await
        .body;
    assert_eq!(app["state"], "live");
    assert_eq!(app["url"], "http://127.0.0.1:40001");
    assert_eq!(app["current_release_id"], release.id.to_string());
    let releases = setup
        .app
        .get(
            &format!("/api/v1/apps/{}/releases", setup.app_id),
            &setup.token,
        )
        .await
        .body;
    assert_eq!(releases[0]["id"], release.id.to_string());
    assert_eq!(releases[0]["deployment_id"], id.to_string());

    // A late failure report cannot undo `live`.
    report(&broker, id, DeploymentProgress::failed("too late")).await;
    report(&broker, id, DeploymentProgress::new(DeploymentState::Live)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(setup.deployment(id).await["state"], "live");
    assert_eq!(broker.depth(INFORM_QUEUE).await, 0);
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread")]
async fn going_live_supersedes_the_previous_live_deployment() {
    let broker = TestBroker::new().await;
    let setup = Setup::new().await;
    let stop = start_consumer(&broker, &setup.app);
    let mut ids = Vec::new();
    for port in [40001, 40002] {
        let deployment = setup.deploy().await;
        let id = id_of(&deployment);
        let release = setup.release(&deployment);
        report(
            &broker,
            id,
            DeploymentProgress::new(DeploymentState::Deploying).with_release(release),
        )
        .await;
        report(
            &broker,
            id,
            DeploymentProgress::new(DeploymentState::Live)
                .with_endpoint(format!("http://127.0.0.1:{port}")),
        )
        .await;
        setup.wait_for_state(id, "live").await;
        ids.push(id);
    }
    let first = setup.wait_for_state(ids[0], "superseded").await;
    assert_eq!(
        first["states"].as_array().unwrap().last().unwrap()["state"],
        "superseded"
    );
    let app = setup
        .app
        .get(&format!("/api/v1/apps/{}", setup.app_id), &setup.token)
        .await
        .body;
    assert_eq!(app["url"], "http://127.0.0.1:40002");

    // A failed deployment keeps the live one serving.
    let third = id_of(&setup.deploy().await);
    report(
        &broker,
        third,
        DeploymentProgress::failed("the build failed: no Dockerfile and no known stack"),
    )
    .await;
    let failed = setup.wait_for_state(third, "failed").await;
    assert_eq!(
        failed["reason"],
        "the build failed: no Dockerfile and no known stack"
    );
    assert_eq!(setup.deployment(ids[1]).await["state"], "live");
    stop.cancel();
}

fn reason_of(delivery: &lapin::message::Delivery) -> String {
    let headers = delivery.properties.headers().as_ref().expect("headers");
    match headers.inner().get(DEAD_LETTER_REASON_HEADER) {
        Some(AMQPValue::LongString(reason)) => reason.to_string(),
        other => panic!("no reason header: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unreadable_reports_are_dead_lettered_and_the_consumer_keeps_going() {
    let broker = TestBroker::new().await;
    let setup = Setup::new().await;
    let stop = start_consumer(&broker, &setup.app);

    broker.publish_raw(INFORM_QUEUE, b"{not json").await;
    let dead = broker
        .next("berth.inform.dead", WAIT)
        .await
        .expect("malformed JSON is dead-lettered");
    assert_eq!(&dead.data[..], b"{not json");
    assert!(
        reason_of(&dead).contains("not a berth envelope"),
        "{}",
        reason_of(&dead)
    );

    let mut unknown = berth_proto::Envelope::new(
        Some(Uuid::now_v7()),
        1,
        &DeploymentProgress::new(DeploymentState::Cloning),
    );
    unknown.kind = "deployment.exploded".into();
    broker.publish_raw(INFORM_QUEUE, &unknown.to_bytes()).await;
    let dead = broker
        .next("berth.inform.dead", WAIT)
        .await
        .expect("an unknown type is dead-lettered");
    assert!(reason_of(&dead).contains("unknown message type `deployment.exploded`"));

    // A report without its deployment cannot be applied either.
    broker
        .broker
        .send(None, 1, &DeploymentProgress::new(DeploymentState::Cloning))
        .await
        .unwrap();
    let dead = broker.next("berth.inform.dead", WAIT).await.unwrap();
    assert!(reason_of(&dead).contains("deployment"));

    // A report about a deployment nobody knows is acked and ignored.
    report(
        &broker,
        Uuid::now_v7(),
        DeploymentProgress::new(DeploymentState::Cloning),
    )
    .await;

    let id = id_of(&setup.deploy().await);
    report(
        &broker,
        id,
        DeploymentProgress::new(DeploymentState::Cloning),
    )
    .await;
    setup.wait_for_state(id, "cloning").await;
    assert_eq!(broker.depth(INFORM_QUEUE).await, 0);
    assert_eq!(broker.depth("berth.inform.dead").await, 0);
    stop.cancel();
}

#[tokio::test]
async fn unknown_deployments_and_stale_reports_are_reported_as_such() {
    let setup = Setup::new().await;
    let handler = InformHandler::new(setup.app.pool().clone());
    let progress = DeploymentProgress::new(DeploymentState::Building);
    assert_eq!(
        handler.apply(Uuid::now_v7(), &progress).await.unwrap(),
        Applied::UnknownDeployment
    );
    let id = id_of(&setup.deploy().await);
    assert!(matches!(
        handler.apply(id, &progress).await.unwrap(),
        Applied::Transitioned { .. }
    ));
    assert_eq!(
        handler.apply(id, &progress).await.unwrap(),
        Applied::Ignored {
            current: DeploymentState::Building,
            app_deleted: false,
        }
    );
}

#[tokio::test]
async fn the_reaper_times_out_overdue_deployments() {
    let setup = Setup::new().await;
    let overdue = id_of(&setup.deploy().await);
    // Started, so the next deployment does not supersede it.
    InformHandler::new(setup.app.pool().clone())
        .apply(overdue, &DeploymentProgress::new(DeploymentState::Cloning))
        .await
        .unwrap();
    let fresh = id_of(&setup.deploy().await);
    sqlx::query(
        "UPDATE deployments SET state_changed_at = now() - interval '11 minutes' WHERE id = $1",
    )
    .bind(overdue)
    .execute(setup.app.pool())
    .await
    .unwrap();
    let reaper = Reaper::new(setup.app.pool().clone(), ReaperSettings::default());
    assert_eq!(reaper.reap().await.unwrap(), [overdue]);
    let timed_out = setup.deployment(overdue).await;
    assert_eq!(timed_out["state"], "timed_out");
    assert_eq!(
        timed_out["reason"],
        "no progress while cloning for 10 minutes"
    );
    assert_eq!(timed_out["states"][2]["state"], "timed_out");
    assert_eq!(setup.deployment(fresh).await["state"], "queued");

    // A report that arrives afterwards changes nothing.
    let handler = InformHandler::new(setup.app.pool().clone());
    let late = handler
        .apply(overdue, &DeploymentProgress::new(DeploymentState::Building))
        .await
        .unwrap();
    assert_eq!(
        late,
        Applied::Ignored {
            current: DeploymentState::TimedOut,
            app_deleted: false,
        }
    );

    // Scaled deadlines, as tests and demos use them.
    handler
        .apply(fresh, &DeploymentProgress::new(DeploymentState::Building))
        .await
        .unwrap();
    let quick = Reaper::new(
        setup.app.pool().clone(),
        ReaperSettings {
            deadline_scale: 0.0001,
            ..Default::default()
        },
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(quick.reap().await.unwrap(), [fresh]);
    let reason = setup.deployment(fresh).await["reason"].clone();
    assert!(reason
        .as_str()
        .unwrap()
        .starts_with("no progress while building for"));
}

/// A build that finds its commit already built reports no message (it
/// never cloned): the message an earlier deployment of the commit learned
/// is shown instead.
#[tokio::test]
async fn a_commit_built_before_keeps_its_message() {
    let setup = Setup::new().await;
    let handler = InformHandler::new(setup.app.pool().clone());
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let first = id_of(&setup.deploy().await);
    let built = DeploymentProgress::new(DeploymentState::Building)
        .with_commit(commit)
        .with_commit_message(Some("app v1\n\nthe long story".into()));
    handler.apply(first, &built).await.unwrap();
    assert_eq!(setup.deployment(first).await["commit_message"], "app v1");

    let again = id_of(&setup.deploy().await);
    let reused = DeploymentProgress::new(DeploymentState::Deploying).with_commit(commit);
    handler.apply(again, &reused).await.unwrap();
    assert_eq!(setup.deployment(again).await["commit_message"], "app v1");

    let other = id_of(&setup.deploy().await);
    let elsewhere = DeploymentProgress::new(DeploymentState::Deploying).with_commit("f".repeat(40));
    handler.apply(other, &elsewhere).await.unwrap();
    assert_eq!(setup.deployment(other).await["commit_message"], Value::Null);
}

/// F27: `building` (which carries the commit's message) applied after
/// `pushing` moves nothing, but its message is kept.
#[tokio::test]
async fn a_late_report_still_leaves_its_commit_message() {
    let setup = Setup::new().await;
    let handler = InformHandler::new(setup.app.pool().clone());
    let id = id_of(&setup.deploy().await);
    let pushing = DeploymentProgress::new(DeploymentState::Pushing);
    handler.apply(id, &pushing).await.unwrap();
    let building = DeploymentProgress::new(DeploymentState::Building)
        .with_commit("0123456789abcdef0123456789abcdef01234567")
        .with_commit_message(Some("fix the login form\n\ndetails".into()));
    let applied = handler.apply(id, &building).await.unwrap();
    assert!(matches!(applied, Applied::Ignored { .. }), "{applied:?}");
    let deployment = setup.deployment(id).await;
    assert_eq!(deployment["state"], "pushing");
    assert_eq!(deployment["commit_message"], "fix the login form");
    assert_eq!(
        deployment["commit"],
        "0123456789abcdef0123456789abcdef01234567"
    );
}

/// What the reconciler found shows on the app; an older pass's report that
/// arrives late changes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn the_reconcilers_runtime_status_shows_on_the_app() {
    use berth_proto::{AppHealth, AppStatus, RuntimeStatus};
    let broker = TestBroker::new().await;
    let setup = Setup::new().await;
    let stop = start_consumer(&broker, &setup.app);
    let app = || async {
        setup
            .app
            .get(&format!("/api/v1/apps/{}", setup.app_id), &setup.token)
            .await
            .body
    };
    assert!(app().await["runtime"].is_null(), "nothing looked yet");

    let now = chrono::Utc::now();
    let pass = |at, status, reason: Option<&str>| RuntimeStatus {
        at,
        apps: vec![AppHealth {
            app_id: setup.app_id,
            status,
            reason: reason.map(str::to_owned),
            instances: vec![
                berth_proto::InstanceHealth {
                    name: "web-0".into(),
                    running: true,
                    healthy: Some(false),
                    said: Some("answered 500".into()),
                },
                berth_proto::InstanceHealth {
                    name: "web-1".into(),
                    running: false,
                    healthy: None,
                    said: None,
                },
            ],
        }],
    };
    let why = "berth could not start the live release again: the image cannot be pulled";
    broker
        .broker
        .send(None, 1, &pass(now, AppStatus::Degraded, Some(why)))
        .await
        .unwrap();
    let degraded = common::broker::eventually(WAIT, || async {
        let app = app().await;
        (app["runtime"]["status"] == "degraded").then_some(app)
    })
    .await
    .expect("the degraded status shows");
    assert_eq!(degraded["runtime"]["reason"], why);
    assert_eq!(
        degraded["runtime"]["instances"],
        serde_json::json!([
            {"name": "web-0", "running": true, "healthy": false, "said": "answered 500"},
            {"name": "web-1", "running": false, "healthy": null, "said": null},
        ])
    );

    // Late: a pass from before. A report on another app, sent after it,
    // shows that it was handled (one at a time, in order).
    let other = id_of(
        &setup
            .app
            .create_app(
                &setup.token,
                serde_json::json!({"name": "api", "repo_url": "https://x.example/api"}),
            )
            .await,
    );
    let earlier = now - chrono::Duration::seconds(60);
    broker
        .broker
        .send(None, 1, &pass(earlier, AppStatus::Running, None))
        .await
        .unwrap();
    let marker = RuntimeStatus {
        at: now,
        apps: vec![AppHealth {
            app_id: other,
            status: AppStatus::Stopped,
            reason: None,
            instances: vec![],
        }],
    };
    broker.broker.send(None, 1, &marker).await.unwrap();
    common::broker::eventually(WAIT, || async {
        let other = setup
            .app
            .get(&format!("/api/v1/apps/{other}"), &setup.token)
            .await
            .body;
        (other["runtime"]["status"] == "stopped").then_some(())
    })
    .await
    .expect("the marker shows");
    let still = app().await;
    assert_eq!(still["runtime"]["status"], "degraded", "{still}");
    assert_eq!(still["runtime"]["reason"], why);
    stop.cancel();
}

/// A deployment whose work waits for another attempt says why and when,
/// until its next step; an ended one takes no such word.
#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_waiting_for_another_attempt_says_why_until_it_moves() {
    use berth_proto::DeploymentWaiting;
    let broker = TestBroker::new().await;
    let setup = Setup::new().await;
    let stop = start_consumer(&broker, &setup.app);
    let id = id_of(&setup.deploy().await);
    report(
        &broker,
        id,
        DeploymentProgress::new(DeploymentState::Cloning),
    )
    .await;
    setup.wait_for_state(id, "cloning").await;

    let retry_at = chrono::Utc::now() + chrono::Duration::seconds(40);
    let reason = "the registry is unavailable: connection refused";
    let waiting = DeploymentWaiting {
        reason: reason.into(),
        retry_at,
    };
    broker.broker.send(Some(id), 1, &waiting).await.unwrap();
    let shown = common::broker::eventually(WAIT, || async {
        let deployment = setup.deployment(id).await;
        (!deployment["waiting"].is_null()).then_some(deployment)
    })
    .await
    .expect("the deployment says it waits");
    assert_eq!(shown["state"], "cloning");
    assert_eq!(shown["waiting"]["reason"], reason);
    let next: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(shown["waiting"]["next_attempt_at"].clone()).unwrap();
    assert_eq!(next.timestamp(), retry_at.timestamp());

    report(
        &broker,
        id,
        DeploymentProgress::new(DeploymentState::Building),
    )
    .await;
    let moved = setup.wait_for_state(id, "building").await;
    assert!(moved["waiting"].is_null(), "{moved}");

    // Cancelled, then a late word that it waits: not shown.
    let cancelled = setup
        .app
        .call(
            axum::http::Method::POST,
            &format!("/api/v1/deployments/{id}/cancel"),
            Some(&setup.token),
            None,
        )
        .await;
    assert_eq!(
        cancelled.status,
        axum::http::StatusCode::ACCEPTED,
        "{}",
        cancelled.body
    );
    let recorded =
        berth_backend::deployments::store::record_waiting(setup.app.pool(), id, reason, retry_at)
            .await
            .unwrap();
    assert!(!recorded, "an ended deployment waits for nothing");
    assert!(setup.deployment(id).await["waiting"].is_null());
    stop.cancel();
}
