//! The engine's crashes as the docker driver reports them to automatic
//! rollback: an instance exiting with an error is a crash of its
//! deployment; one berth stops is not.

mod support;

use berth_deploy_worker::crash_loop::FailureKind;
use berth_deploy_worker::Runtime;
use futures::StreamExt;
use std::time::Duration;
use support::*;

#[tokio::test]
async fn an_instance_exiting_with_an_error_is_a_crash_of_its_deployment() {
    let images = images().await;
    let runtime = docker_runtime(10).await;
    let mut crashes = runtime
        .failures()
        .await
        .unwrap()
        .expect("the docker driver follows crashes");
    let app = new_app();
    let deployment = new_deployment(&app, &images.crash);
    runtime
        .deploy(&deployment)
        .await
        .expect_err("it exits at once");
    let crash = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let crash = crashes.next().await.expect("the stream goes on");
            if crash.app.id == app.id {
                return crash;
            }
        }
    })
    .await
    .expect("a crash within 20 s");
    assert_eq!(crash.deployment_id, deployment.deployment_id);
    assert_eq!(
        crash.kind,
        FailureKind::Crashed {
            exit_code: Some(1),
            oom: false
        }
    );
    assert_eq!(
        (crash.app.name.as_str(), crash.app.tenant.as_str()),
        (app.name.as_str(), app.tenant.as_str())
    );

    // A release that serves, stopped by berth (a removal): no crash.
    let web = new_app();
    runtime
        .deploy(&new_deployment(&web, &images.v1))
        .await
        .unwrap();
    runtime.remove_app(&web).await.unwrap();
    let other = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let crash = crashes.next().await.expect("the stream goes on");
            if crash.app.id == web.id {
                return crash;
            }
        }
    })
    .await;
    assert!(other.is_err(), "a stop is not a crash: {other:?}");
    runtime.remove_app(&app).await.unwrap();
}
