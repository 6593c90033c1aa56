//! Dead-lettered messages become a definite state, on the real broker.

mod common;

use async_trait::async_trait;
use berth_backend::background::dead_letters::DeadLetterSettler;
use berth_backend::background::inform::InformHandler;
use berth_backend::background::relay::RelaySettings;
use berth_common::{DeliveryInfo, Handler, MessagePublisher, Outcome};
use berth_proto::names::{BUILDS_QUEUE, INFORM_QUEUE};
use berth_proto::{DeploymentProgress, DeploymentState, Envelope, Message};
use common::broker::{eventually, TestBroker};
use common::one_app::OneApp;
use common::{id_of, TestApp};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A worker that refuses everything as unreadable.
struct Refuser;

#[async_trait]
impl Handler for Refuser {
    async fn handle(&self, _: Envelope, _: Message, _: DeliveryInfo) -> Outcome {
        Outcome::Reject("the build worker cannot read this request".into())
    }
}

fn settle(app: &TestApp, broker: &TestBroker, queue: &'static str) -> CancellationToken {
    let stop = CancellationToken::new();
    let inform = Arc::new(InformHandler::new(app.pool().clone()));
    let settler = Arc::new(DeadLetterSettler::new(
        app.pool().clone(),
        inform,
        app.state.outbox.clone(),
    ));
    let (consumer, token) = (broker.broker.clone(), stop.clone());
    tokio::spawn(async move {
        consumer
            .consume_dead_letters(queue, 1, settler, token)
            .await
    });
    stop
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_lettered_build_request_fails_its_deployment_with_the_reason() {
    let broker = TestBroker::new().await;
    let one = OneApp::new().await;
    let id = id_of(&one.deploy().await);
    let (app, token) = (&one.app, &one.token);
    app.relay(broker.broker.clone(), RelaySettings::default())
        .publish_batch()
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let (consumer, token_stop) = (broker.broker.clone(), stop.clone());
    tokio::spawn(async move {
        consumer
            .consume(BUILDS_QUEUE, 1, Arc::new(Refuser), token_stop)
            .await
    });
    let settling = settle(app, &broker, BUILDS_QUEUE);

    let failed = eventually(Duration::from_secs(15), || async {
        let deployment = app
            .get(&format!("/api/v1/deployments/{id}"), token)
            .await
            .body;
        (deployment["state"] == "failed").then_some(deployment)
    })
    .await
    .expect("the deployment fails");
    let reason = failed["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("berth gave up on this deployment"),
        "{reason}"
    );
    assert!(reason.contains("cannot read this request"), "{reason}");
    assert_eq!(
        broker.depth("berth.builds.dead").await,
        0,
        "settled and acked"
    );
    stop.cancel();
    settling.cancel();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_lettered_report_is_applied_again() {
    let broker = TestBroker::new().await;
    let one = OneApp::new().await;
    let id = id_of(&one.deploy().await);
    let (app, token) = (&one.app, &one.token);
    // Refused while the database was away, say.
    let stop = CancellationToken::new();
    let (consumer, token_stop) = (broker.broker.clone(), stop.clone());
    tokio::spawn(async move {
        consumer
            .consume(INFORM_QUEUE, 1, Arc::new(Refuser), token_stop)
            .await
    });
    broker
        .broker
        .send(
            Some(id),
            1,
            &DeploymentProgress::new(DeploymentState::Cloning),
        )
        .await
        .unwrap();
    let settling = settle(app, &broker, INFORM_QUEUE);
    let cloning = eventually(Duration::from_secs(15), || async {
        let deployment = app
            .get(&format!("/api/v1/deployments/{id}"), token)
            .await
            .body;
        (deployment["state"] == "cloning").then_some(())
    })
    .await;
    assert!(
        cloning.is_some(),
        "the report was applied from the dead-letter queue"
    );
    stop.cancel();
    settling.cancel();
}
