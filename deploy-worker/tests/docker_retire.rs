//! Retired containers stay, stopped, long enough for the log-streamer to
//! read the end of their logs (F21 of the reliability review), and go after.

mod support;

use berth_deploy_worker::Runtime;
use std::time::Duration;
use support::*;

fn states(containers: &[(String, String, String)]) -> Vec<(String, String)> {
    let mut states: Vec<_> = containers
        .iter()
        .map(|(_, deployment, state)| (deployment.clone(), state.clone()))
        .collect();
    states.sort();
    states
}

#[tokio::test]
async fn a_replaced_container_is_kept_stopped_for_its_log_then_removed() {
    let images = images().await;
    let mut config = docker_config(60);
    config.retired_keep_secs = 3;
    let runtime = docker_runtime_with(config).await;
    let app = new_app();
    let first = new_deployment(&app, &images.v1);
    let second = new_deployment(&app, &images.v2);
    runtime.deploy(&first).await.expect("v1 serves");
    let endpoint = runtime.deploy(&second).await.expect("v2 serves");
    assert_eq!(http_get(&endpoint, "/").await.unwrap(), "v2");

    let (old, new) = (
        first.deployment_id.to_string(),
        second.deployment_id.to_string(),
    );
    assert_eq!(
        states(&containers_of(&app).await),
        [
            (old.clone(), "exited".into()),
            (new.clone(), "running".into())
        ],
        "the replaced container is stopped, not removed"
    );
    // The reconciler sees it as a stray of a deployment that is not live:
    // retiring it again changes nothing and is no repair.
    let again = runtime
        .retire_deployment(&app, Some(first.deployment_id))
        .await
        .unwrap();
    assert_eq!(again, 0);
    let live = Some(second.deployment_id);
    assert_eq!(runtime.prune_retired(&app, live).await.unwrap(), 0);
    assert_eq!(containers_of(&app).await.len(), 2, "kept for 3 s");

    // The live app scaled to 0 is stopped too, but it is not retired.
    runtime.scale(&app, 0, live).await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(runtime.prune_retired(&app, live).await.unwrap(), 1);
    assert_eq!(
        states(&containers_of(&app).await),
        [(new, "exited".into())],
        "only the retired container went"
    );
    runtime.remove_app(&app).await.unwrap();
    assert!(containers_of(&app).await.is_empty());
}
