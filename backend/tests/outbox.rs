//! The outbox relay against the real broker when the broker refuses one
//! message: the others keep flowing, and the refused one ends its
//! deployment with a reason instead of blocking the queue forever.

mod common;

use berth_backend::background::relay::{Relay, RelaySettings};
use berth_backend::deployments::dispatch::BuildSlots;
use berth_proto::names::BUILDS_QUEUE;
use berth_proto::Envelope;
use common::broker::TestBroker;
use common::TestApp;
use sqlx::types::Json as SqlJson;
use std::time::Duration;

/// Sends the deployment's build request to a routing key no queue has.
async fn misroute(app: &TestApp, deployment: uuid::Uuid) {
    sqlx::query(
        "UPDATE outbox SET routing_key = 'berth.nowhere'
         WHERE envelope->>'deployment_id' = $1::text AND envelope->>'type' = 'build.requested'",
    )
    .bind(deployment)
    .execute(app.pool())
    .await
    .unwrap();
}

fn relay(app: &TestApp, broker: &TestBroker, park_after: i32) -> Relay<berth_common::Broker> {
    app.relay(
        broker.broker.clone(),
        RelaySettings {
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(200),
            park_after,
            // Both builds are alice's: let them out together.
            build_slots: BuildSlots {
                total: 10,
                per_tenant: 10,
            },
            ..Default::default()
        },
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_message_waits_on_its_own_and_later_ones_are_published() {
    let broker = TestBroker::new().await;
    let app = TestApp::new().await;
    let token = app.token("alice").await;
    let stuck = app.app_with_a_build(&token, "first").await;
    misroute(&app, stuck).await;
    let flowing = app.app_with_a_build(&token, "second").await;

    relay(&app, &broker, 100).publish_batch().await.unwrap();
    let delivered = broker
        .next(BUILDS_QUEUE, Duration::from_secs(5))
        .await
        .expect("the later message is published");
    let envelope = Envelope::from_bytes(&delivered.data).unwrap();
    assert_eq!(envelope.deployment_id, Some(flowing));
    let (attempts, waits, error): (i32, bool, Option<String>) = sqlx::query_as(
        "SELECT attempts, next_attempt_at > created_at, last_error FROM outbox
         WHERE routing_key = 'berth.nowhere'",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!(attempts, 1);
    assert!(waits, "it has a time of its own for its next attempt");
    assert!(error.unwrap().contains("berth.nowhere"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_refused_too_often_is_parked_and_its_deployment_fails() {
    let broker = TestBroker::new().await;
    let app = TestApp::new().await;
    let token = app.token("alice").await;
    let stuck = app.app_with_a_build(&token, "web").await;
    misroute(&app, stuck).await;
    relay(&app, &broker, 1).publish_batch().await.unwrap();

    let deployment = app
        .get(&format!("/api/v1/deployments/{stuck}"), &token)
        .await
        .body;
    assert_eq!(deployment["state"], "failed", "{deployment}");
    assert!(deployment["reason"]
        .as_str()
        .unwrap()
        .contains("could not hand this deployment to a worker"));
    let parked: Vec<SqlJson<Envelope>> =
        sqlx::query_scalar("SELECT envelope FROM outbox WHERE parked_at IS NOT NULL")
            .fetch_all(app.pool())
            .await
            .unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(
        berth_backend::outbox::backlog(app.pool()).await.unwrap(),
        1,
        "only the cancellation for the workers is left"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn only_one_relay_publishes_at_a_time() {
    let broker = TestBroker::new().await;
    let app = TestApp::new().await;
    let token = app.token("alice").await;
    app.app_with_a_build(&token, "web").await;
    let mut tx = app.pool().begin().await.unwrap();
    // Another backend's relay holds the lock.
    sqlx::query("SELECT pg_advisory_xact_lock(7090199032657571682)")
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(relay(&app, &broker, 12).publish_batch().await.unwrap(), 0);
    tx.rollback().await.unwrap();
    assert_eq!(relay(&app, &broker, 12).publish_batch().await.unwrap(), 1);
}
