//! Deployment transitions under reordering, cancellation and late reports:
//! what the database ends up saying, and what berth queues to make the
//! runtime match it.

mod common;

use axum::http::{Method, StatusCode};
use berth_backend::background::inform::Applied;
use berth_backend::background::relay::RelaySettings;
use berth_proto::names::BUILDS_QUEUE;
use berth_proto::{
    BuildRequested, Cancellation, DeployRequested, DeploymentProgress, DeploymentState, Envelope,
};
use common::broker::TestBroker;
use common::id_of;
use common::one_app::{deploying, live, Informed};
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

type Setup = Informed;

impl Informed {
    async fn app_view(&self) -> Value {
        self.app
            .get(&format!("/api/v1/apps/{}", self.app_id), &self.token)
            .await
            .body
    }

    async fn cancel(&self, id: Uuid) -> common::Response {
        self.app
            .call(
                Method::POST,
                &format!("/api/v1/deployments/{id}/cancel"),
                Some(&self.token),
                None,
            )
            .await
    }
}

fn states(deployment: &Value) -> Vec<String> {
    deployment["states"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn an_older_live_applied_after_a_newer_one_never_displaces_it() {
    let setup = Setup::new().await;
    let older = setup.deploy().await;
    let older_release = setup.release(&older);
    setup.report(id_of(&older), deploying(&older_release)).await;
    let newer = setup.deploy().await;
    let newer_release = setup.go_live(&newer).await;

    // The older one's `live` arrives last (a backlog, two consumers).
    let applied = setup.report(id_of(&older), live(&older_release)).await;
    assert_eq!(
        applied,
        Applied::Transitioned {
            from: DeploymentState::Deploying,
            to: DeploymentState::Superseded
        }
    );
    assert_eq!(setup.deployment(id_of(&newer)).await["state"], "live");
    let older = setup.deployment(id_of(&older)).await;
    assert_eq!(older["state"], "superseded");
    assert_eq!(
        states(&older),
        ["queued", "deploying", "live", "superseded"]
    );
    assert_eq!(
        setup.app_view().await["current_release_id"],
        newer_release.id.to_string()
    );
}

#[tokio::test]
async fn a_live_applied_before_its_deploying_still_records_the_release() {
    let setup = Setup::new().await;
    let deployment = setup.deploy().await;
    let id = id_of(&deployment);
    let release = setup.release(&deployment);
    setup.report(id, live(&release)).await;
    let applied = setup.report(id, deploying(&release)).await;
    assert!(matches!(applied, Applied::Ignored { .. }), "{applied:?}");

    let releases = setup
        .app
        .get(
            &format!("/api/v1/apps/{}/releases", setup.app_id),
            &setup.token,
        )
        .await
        .body;
    assert_eq!(releases[0]["id"], release.id.to_string());
    assert_eq!(releases[0]["current"], true, "{releases}");
    assert_eq!(
        setup.deployment(id).await["image"],
        Value::String(release.image)
    );
}

#[tokio::test]
async fn cancelling_ends_a_deployment_in_progress_and_tells_the_workers() {
    let setup = Setup::new().await;
    let deployment = setup.deploy().await;
    let id = id_of(&deployment);
    setup
        .report(id, DeploymentProgress::new(DeploymentState::Building))
        .await;

    let response = setup.cancel(id).await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.body);
    assert_eq!(response.body["state"], "cancelled");
    assert_eq!(response.body["reason"], "cancelled by alice");

    let heard = setup.outbox("work.cancelled").await;
    assert_eq!(heard.len(), 1);
    assert_eq!(heard[0].deployment_id, Some(id));
    let cancellation: Cancellation = heard[0].payload().unwrap();
    assert_eq!(cancellation.app.id, setup.app_id);
    assert_eq!(cancellation.deployment_id, Some(id));
    assert_eq!(cancellation.reason, "cancelled by alice");

    // Over: a second cancel, and a worker's late report, change nothing.
    let again = setup.cancel(id).await;
    again.assert_problem(StatusCode::CONFLICT, "conflict");
    assert!(
        again.body["detail"]
            .as_str()
            .unwrap()
            .contains("`cancelled`"),
        "{}",
        again.body
    );
    setup
        .report(id, DeploymentProgress::new(DeploymentState::Pushing))
        .await;
    assert_eq!(setup.deployment(id).await["state"], "cancelled");

    // Someone else's deployment is not found.
    let mallory = setup.app.token("mallory").await;
    let theirs = setup
        .app
        .call(
            Method::POST,
            &format!("/api/v1/deployments/{id}/cancel"),
            Some(&mallory),
            None,
        )
        .await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_newer_deployment_supersedes_a_queued_one_and_only_the_newest_is_built() {
    let broker = TestBroker::new().await;
    let setup = Setup::new().await;
    let first = id_of(&setup.deploy().await);
    let second = id_of(&setup.deploy().await);
    let superseded = setup.deployment(first).await;
    assert_eq!(superseded["state"], "superseded");
    assert_eq!(
        superseded["reason"],
        format!("replaced by the newer deployment {second}")
    );

    let relay = setup.app.relay(
        broker.broker.clone(),
        RelaySettings {
            deadline_scale: 0.5,
            ..Default::default()
        },
    );
    relay.publish_batch().await.unwrap();
    assert_eq!(broker.depth(BUILDS_QUEUE).await, 1);
    let built = broker
        .next(BUILDS_QUEUE, Duration::from_secs(5))
        .await
        .unwrap();
    let envelope = Envelope::from_bytes(&built.data).unwrap();
    assert_eq!(envelope.deployment_id, Some(second));
    let _: BuildRequested = envelope.payload().unwrap();
    // Queued for 30 minutes at most, halved by the scale.
    let deadline = envelope
        .deadline
        .expect("a build request carries its deadline");
    let left = deadline - chrono::Utc::now();
    assert!(
        left > chrono::Duration::minutes(14) && left <= chrono::Duration::minutes(15),
        "{left}"
    );
    // Nothing is left to publish, the skipped request included.
    assert!(setup.outbox("build.requested").await.is_empty());
}

#[tokio::test]
async fn a_late_live_of_a_cancelled_deployment_puts_the_live_release_back() {
    let setup = Setup::new().await;
    let first = setup.deploy().await;
    let first_release = setup.go_live(&first).await;
    let late = setup.deploy().await;
    let late_id = id_of(&late);
    let late_release = setup.release(&late);
    setup.report(late_id, deploying(&late_release)).await;
    assert_eq!(setup.cancel(late_id).await.status, StatusCode::ACCEPTED);

    // The deploy-worker never heard: it swaps the late release in.
    let applied = setup.report(late_id, live(&late_release)).await;
    assert!(matches!(applied, Applied::Ignored { .. }), "{applied:?}");
    assert_eq!(setup.deployment(late_id).await["state"], "cancelled");

    let repairs = setup.outbox("deploy.requested").await;
    assert_eq!(repairs.len(), 1, "one repair is queued");
    let repair_id = repairs[0].deployment_id.unwrap();
    assert!(
        repair_id > late_id,
        "newer than what runs, so it retires it"
    );
    let request: DeployRequested = repairs[0].payload().unwrap();
    assert_eq!(request.release.id, first_release.id);
    let repair = setup.deployment(repair_id).await;
    assert_eq!(repair["trigger"], "repair");
    assert_eq!(repair["release_id"], first_release.id.to_string());

    // A repeated late report does not queue a second repair.
    setup.report(late_id, live(&late_release)).await;
    assert_eq!(setup.outbox("deploy.requested").await.len(), 1);

    // The repair goes live: the first release is current again.
    setup.report(repair_id, deploying(&request.release)).await;
    setup.report(repair_id, live(&request.release)).await;
    let app = setup.app_view().await;
    assert_eq!(app["current_release_id"], first_release.id.to_string());
    assert_eq!(setup.deployment(id_of(&first)).await["state"], "superseded");
}

#[tokio::test]
async fn a_late_live_with_nothing_live_stops_the_app() {
    let setup = Setup::new().await;
    let only = setup.deploy().await;
    let id = id_of(&only);
    let release = setup.release(&only);
    setup.report(id, deploying(&release)).await;
    assert_eq!(setup.cancel(id).await.status, StatusCode::ACCEPTED);
    setup.report(id, live(&release)).await;
    let stops = setup.outbox("app.scale_requested").await;
    assert_eq!(stops.len(), 1);
    assert_eq!(stops[0].payload["replicas"], 0);
    assert_eq!(setup.app_view().await["current_release_id"], Value::Null);
}

#[tokio::test]
async fn a_late_live_of_a_deleted_app_removes_it_again() {
    let setup = Setup::new().await;
    let deployment = setup.deploy().await;
    let id = id_of(&deployment);
    let release = setup.release(&deployment);
    setup.report(id, deploying(&release)).await;
    let deleted = setup
        .app
        .call(
            Method::DELETE,
            &format!("/api/v1/apps/{}", setup.app_id),
            Some(&setup.token),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED);
    let everything = setup.outbox("work.cancelled").await;
    assert!(
        everything
            .iter()
            .any(|e| e.payload["deployment_id"].is_null()),
        "an app-wide cancellation goes to the workers: {everything:?}"
    );
    assert_eq!(setup.outbox("app.removal_requested").await.len(), 1);

    setup.report(id, live(&release)).await;
    assert_eq!(setup.outbox("app.removal_requested").await.len(), 2);
}

#[tokio::test]
async fn the_reaper_tells_the_workers_what_it_timed_out() {
    let setup = Setup::new().await;
    let id = id_of(&setup.deploy().await);
    sqlx::query(
        "UPDATE deployments SET state_changed_at = now() - interval '31 minutes',
                                dispatched_at = now() - interval '31 minutes' WHERE id = $1",
    )
    .bind(id)
    .execute(setup.app.pool())
    .await
    .unwrap();
    let reaper = berth_backend::background::reaper::Reaper::new(
        setup.app.pool().clone(),
        berth_backend::background::reaper::ReaperSettings::default(),
    );
    assert_eq!(reaper.reap().await.unwrap(), [id]);
    let heard = setup.outbox("work.cancelled").await;
    assert_eq!(heard.len(), 1);
    let cancellation: Cancellation = heard[0].payload().unwrap();
    assert_eq!(cancellation.state, DeploymentState::TimedOut);
    assert_eq!(
        cancellation.reason,
        "no progress while queued for 30 minutes"
    );
}

#[tokio::test]
async fn a_scale_made_while_a_deployment_was_on_its_way_wins_when_it_goes_live() {
    let setup = Setup::new().await;
    let deployment = setup.deploy().await;
    let scaled = setup
        .app
        .call(
            Method::PUT,
            &format!("/api/v1/apps/{}/scale", setup.app_id),
            Some(&setup.token),
            Some(json!({"replicas": 0})),
        )
        .await;
    assert_eq!(scaled.status, StatusCode::ACCEPTED, "{}", scaled.body);
    let before = setup.outbox("app.scale_requested").await;
    assert!(
        before
            .last()
            .unwrap()
            .payload
            .get("live_deployment_id")
            .is_none(),
        "nothing is live yet"
    );
    // The release was requested at 1 instance.
    setup.go_live(&deployment).await;
    let scales = setup.outbox("app.scale_requested").await;
    assert_eq!(scales.len(), before.len() + 1, "going live scales again");
    let rescale = &scales.last().unwrap().payload;
    assert_eq!(rescale["replicas"], 0);
    // Only the live deployment's workloads are touched, never a deploy
    // in progress on another worker (F16).
    let live = id_of(&deployment).to_string();
    assert_eq!(rescale["live_deployment_id"], live.as_str());
    setup
        .app
        .call(
            Method::PUT,
            &format!("/api/v1/apps/{}/scale", setup.app_id),
            Some(&setup.token),
            Some(json!({"replicas": 1})),
        )
        .await;
    let scales = setup.outbox("app.scale_requested").await;
    assert_eq!(
        scales.last().unwrap().payload["live_deployment_id"],
        live.as_str()
    );
}

#[tokio::test]
async fn a_queued_deployment_shows_its_place_in_line_and_when_it_should_start() {
    let setup = Setup::new().await;
    let other = id_of(
        &setup
            .app
            .create_app(
                &setup.token,
                json!({"name": "api", "repo_url": "https://x.example/api"}),
            )
            .await,
    );
    let first = id_of(&setup.deploy().await);
    let second = id_of(
        &setup
            .app
            .call(
                Method::POST,
                &format!("/api/v1/apps/{other}/deployments"),
                Some(&setup.token),
                None,
            )
            .await
            .body,
    );
    let place = setup.deployment(second).await["queue"].clone();
    assert_eq!(place["position"], 2, "{place}");
    assert_eq!(
        place["estimated_start_secs"],
        Value::Null,
        "no build seen yet"
    );

    // The first starts: the second is next, and one build took 60 s.
    setup
        .report(first, DeploymentProgress::new(DeploymentState::Cloning))
        .await;
    sqlx::query(
        "UPDATE deployment_states SET at = at - interval '60 seconds'
         WHERE deployment_id = $1 AND state = 'cloning'",
    )
    .bind(first)
    .execute(setup.app.pool())
    .await
    .unwrap();
    let release = setup.release(&setup.deployment(first).await);
    setup.report(first, deploying(&release)).await;
    let place = setup.deployment(second).await["queue"].clone();
    assert_eq!(place["position"], 1, "{place}");
    let estimate = place["estimated_start_secs"].as_u64().unwrap();
    assert!((55..=65).contains(&estimate), "{estimate}");
    assert_eq!(setup.deployment(first).await["queue"], Value::Null);
}
