//! Fair build dispatch against the real database and broker: builds wait in
//! the database until a build slot is free, one tenant's burst does not go
//! before another tenant's single build, the queue position says so, and a
//! backlog is never timed out.

mod common;

use berth_backend::background::reaper::{Reaper, ReaperSettings};
use berth_backend::background::relay::{Relay, RelaySettings};
use berth_backend::deployments::dispatch::BuildSlots;
use berth_proto::names::BUILDS_QUEUE;
use berth_proto::Envelope;
use common::broker::TestBroker;
use common::TestApp;
use std::time::Duration;
use uuid::Uuid;

fn relay(app: &TestApp, broker: &TestBroker, slots: BuildSlots) -> Relay<berth_common::Broker> {
    app.relay(
        broker.broker.clone(),
        RelaySettings {
            build_slots: slots,
            ..Default::default()
        },
    )
}

/// The deployment whose build request the broker hands out next.
async fn next_build(broker: &TestBroker) -> Envelope {
    let delivery = broker
        .next(BUILDS_QUEUE, Duration::from_secs(5))
        .await
        .expect("a build request was published");
    Envelope::from_bytes(&delivery.data).unwrap()
}

async fn position(app: &TestApp, token: &str, deployment: Uuid) -> u64 {
    let view = app
        .get(&format!("/api/v1/deployments/{deployment}"), token)
        .await;
    view.body["queue"]["position"]
        .as_u64()
        .unwrap_or_else(|| panic!("no queue place: {}", view.body))
}

async fn end(app: &TestApp, deployment: Uuid) {
    sqlx::query("UPDATE deployments SET state = 'failed' WHERE id = $1")
        .bind(deployment)
        .execute(app.pool())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn one_tenants_burst_does_not_go_before_another_tenants_build() {
    let broker = TestBroker::new().await;
    let app = TestApp::new().await;
    let alice = app.token("alice").await;
    let bob = app.token("bob").await;
    let mut bursts = Vec::new();
    for name in ["a1", "a2", "a3"] {
        bursts.push(app.app_with_a_build(&alice, name).await);
    }
    let single = app.app_with_a_build(&bob, "b1").await;
    let relay = relay(
        &app,
        &broker,
        BuildSlots {
            total: 1,
            per_tenant: 1,
        },
    );

    assert_eq!(relay.publish_batch().await.unwrap(), 1);
    assert_eq!(next_build(&broker).await.deployment_id, Some(bursts[0]));
    assert_eq!(broker.depth(BUILDS_QUEUE).await, 0, "the others wait");
    // Bob's build is next although alice's second is older.
    assert_eq!(position(&app, &alice, bursts[0]).await, 1);
    assert_eq!(position(&app, &bob, single).await, 2);
    assert_eq!(position(&app, &alice, bursts[1]).await, 3);
    assert_eq!(position(&app, &alice, bursts[2]).await, 4);

    // Hours in a backlog are not a stalled step.
    sqlx::query(
        "UPDATE deployments SET state_changed_at = now() - interval '2 hours'
         WHERE id = ANY($1)",
    )
    .bind([bursts[1], bursts[2], single])
    .execute(app.pool())
    .await
    .unwrap();
    let reaped = Reaper::new(app.pool().clone(), ReaperSettings::default())
        .reap()
        .await
        .unwrap();
    assert!(reaped.is_empty(), "{reaped:?}");

    assert_eq!(relay.publish_batch().await.unwrap(), 0, "no slot is free");
    end(&app, bursts[0]).await;
    assert_eq!(relay.publish_batch().await.unwrap(), 1);
    let envelope = next_build(&broker).await;
    assert_eq!(envelope.deployment_id, Some(single));
    // The queued deadline (30 minutes) counts from the dispatch.
    let left = envelope.deadline.expect("a deadline") - chrono::Utc::now();
    assert!(
        left > chrono::Duration::minutes(29) && left <= chrono::Duration::minutes(30),
        "{left}"
    );
    assert_eq!(position(&app, &alice, bursts[1]).await, 2);

    end(&app, single).await;
    relay.publish_batch().await.unwrap();
    assert_eq!(next_build(&broker).await.deployment_id, Some(bursts[1]));
    end(&app, bursts[1]).await;
    relay.publish_batch().await.unwrap();
    assert_eq!(next_build(&broker).await.deployment_id, Some(bursts[2]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_gets_at_most_its_slots_while_others_stay_free() {
    let broker = TestBroker::new().await;
    let app = TestApp::new().await;
    let alice = app.token("alice").await;
    let mut builds = Vec::new();
    for name in ["a1", "a2", "a3"] {
        builds.push(app.app_with_a_build(&alice, name).await);
    }
    let relay = relay(
        &app,
        &broker,
        BuildSlots {
            total: 4,
            per_tenant: 2,
        },
    );
    assert_eq!(relay.publish_batch().await.unwrap(), 2);
    assert_eq!(broker.depth(BUILDS_QUEUE).await, 2);
    let waiting: (String, Option<chrono::DateTime<chrono::Utc>>) =
        sqlx::query_as("SELECT state, dispatched_at FROM deployments WHERE id = $1")
            .bind(builds[2])
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(waiting, ("queued".to_owned(), None));
    let backlog = berth_backend::outbox::backlog(app.pool()).await.unwrap();
    assert_eq!(
        backlog, 0,
        "a build waiting for a slot is not a relay backlog"
    );

    // Moving through the build's steps keeps the slot taken.
    sqlx::query("UPDATE deployments SET state = 'building' WHERE id = $1")
        .bind(builds[0])
        .execute(app.pool())
        .await
        .unwrap();
    assert_eq!(relay.publish_batch().await.unwrap(), 0);
    end(&app, builds[0]).await;
    assert_eq!(relay.publish_batch().await.unwrap(), 1);
    assert_eq!(broker.depth(BUILDS_QUEUE).await, 3);
}
