//! Automatic rollback (issue 13): a live release that crash-loops within
//! the window is rolled back to the newest earlier release that went live
//! and did not fail; a release that failed is never rolled back onto, and
//! with nothing to go back to, the app is stopped.

mod common;

use berth_backend::deployments::auto_rollback::{self, Decision};
use berth_proto::ReleaseFailing;
use common::id_of;
use common::one_app::Informed;
use serde_json::Value;
use std::time::Duration;
use uuid::Uuid;

const WINDOW: Duration = Duration::from_secs(300);

type Setup = Informed;

impl Informed {
    async fn failing(&self, id: Uuid, window: Duration) -> Decision {
        let failing = ReleaseFailing {
            app: self.release(&self.deployment(id).await).app,
            reason: "its instances crashed 3 times within 2 minutes (last: exit code 1)".into(),
            at: chrono::Utc::now(),
        };
        auto_rollback::release_failing(self.app.pool(), id, &failing, window, "github.com")
            .await
            .unwrap()
    }

    async fn replicas(&self) -> Value {
        self.app
            .get(&format!("/api/v1/apps/{}", self.app_id), &self.token)
            .await
            .body["replicas"]
            .clone()
    }
}

#[tokio::test]
async fn a_release_crash_looping_soon_after_going_live_is_rolled_back_and_never_returned_to() {
    let setup = Setup::new().await;
    let first = setup.deploy().await;
    let first_release = setup.go_live(&first).await;
    let second = setup.deploy().await;
    setup.go_live(&second).await;

    let Decision::RolledBack {
        deployment,
        release,
    } = setup.failing(id_of(&second), WINDOW).await
    else {
        panic!("not rolled back");
    };
    assert_eq!(release, first_release.id, "back to the earlier release");
    let rollback = setup.deployment(deployment).await;
    assert_eq!(rollback["trigger"], "auto_rollback");
    assert_eq!(rollback["state"], "queued");
    let deploys = setup.outbox("deploy.requested").await;
    let last = deploys.last().expect("a deploy of the earlier release");
    assert_eq!(last.deployment_id, Some(deployment));
    assert_eq!(last.payload["release"]["id"], first_release.id.to_string());
    let reason = setup.deployment(id_of(&second)).await["reason"].clone();
    assert!(
        reason.as_str().unwrap().starts_with(
            "rolled back by berth: its instances crashed 3 times within 2 minutes (last: exit code 1) within 5 minutes of going live"
        ),
        "{reason}"
    );
    // Told again (another crash, a redelivery): the rollback is on its way.
    assert_eq!(
        setup.failing(id_of(&second), WINDOW).await,
        Decision::Ignored("a newer deployment is on its way")
    );

    setup.go_live(&rollback).await;
    let second = setup.deployment(id_of(&second)).await;
    assert_eq!(second["state"], "rolled_back");

    // The earlier release crash-loops as well: the one it replaced failed,
    // so there is nothing to go back to, and the app is stopped.
    assert_eq!(setup.failing(deployment, WINDOW).await, Decision::Stopped);
    assert_eq!(setup.replicas().await, 0);
    let stops = setup.outbox("app.scale_requested").await;
    assert_eq!(stops.last().unwrap().payload["replicas"], 0);
    let reason = setup.deployment(deployment).await["reason"].clone();
    assert!(
        reason
            .as_str()
            .unwrap()
            .contains("no earlier release ran without failing"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_release_crash_looping_after_the_window_or_never_live_is_left_alone() {
    let setup = Setup::new().await;
    let first = setup.deploy().await;
    setup.go_live(&first).await;
    let second = setup.deploy().await;
    setup.go_live(&second).await;
    assert_eq!(
        setup.failing(id_of(&second), Duration::ZERO).await,
        Decision::Ignored("the deployment went live before the rollback window")
    );
    assert_eq!(
        setup.failing(id_of(&first), WINDOW).await,
        Decision::Ignored("the deployment is not live"),
        "a superseded deployment"
    );
    assert_eq!(setup.deployment(id_of(&second)).await["state"], "live");
    assert!(setup.outbox("app.scale_requested").await.is_empty());
}
