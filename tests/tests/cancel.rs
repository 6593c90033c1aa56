//! Cancelling and superseding deployments stops the real work: checked in
//! the process table, the registry and the engine, not in berth's records.

use anyhow::{Context, Result};
use berth_tests::api::fetch_body;
use berth_tests::flow::{deploy_live, endpoint, signed_in};
use berth_tests::{engine, AppRepo, Client, Platform};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Processes whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter_map(|entry| std::fs::read(entry.path().join("cmdline")).ok())
        .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
        .filter(|cmdline| cmdline.contains(marker))
        .collect()
}

async fn wait_for_state(client: &Client, id: &str, state: &str, within: Duration) -> Result<Value> {
    let deadline = Instant::now() + within;
    loop {
        let deployment = client.deployment(id).await?;
        if deployment["state"] == state {
            return Ok(deployment);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "deployment never became {state}: {deployment}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A Dockerfile whose build sleeps with `marker` in its command line.
fn slow_dockerfile(platform: &Platform, marker: &str) -> String {
    format!(
        "FROM {}\nWORKDIR /app\nCOPY . .\nRUN sh -c 'sleep 90; echo {marker}'\nCMD [\"python3\", \"app.py\"]\n",
        platform.env["BERTH_BASE_IMAGE_PYTHON"]
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_build_cancelled_while_building_stops_and_pushes_nothing() -> Result<()> {
    let platform = Platform::start().await?;
    let client = signed_in(&platform, "canceller").await?;
    let repo = AppRepo::python("v1")?;
    let app = client
        .create_app(json!({"name": "halted", "repo_url": repo.url(), "port": 8000}))
        .await?;
    let app_id = app["id"].as_str().context("app id")?.to_owned();
    let first = deploy_live(&client, &platform, &app_id).await?;
    let url = endpoint(&first)?;

    let marker = format!("berth-cancel-{}", uuid::Uuid::new_v4().simple());
    repo.write("Dockerfile", &slow_dockerfile(&platform, &marker))?;
    repo.commit("a build that takes long")?;
    let id = client.deploy(&app_id, json!({})).await?;
    wait_for_state(&client, &id, "building", Duration::from_secs(120)).await?;
    // The build step itself is running.
    let deadline = Instant::now() + Duration::from_secs(60);
    while processes_with(&marker).is_empty() {
        anyhow::ensure!(Instant::now() < deadline, "the slow step never started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let tags_before = platform.registry.tags("canceller/halted");

    let response = client
        .call(
            reqwest::Method::POST,
            &format!("/deployments/{id}/cancel"),
            None,
        )
        .await?;
    anyhow::ensure!(response.0 == 202, "cancel answered {response:?}");
    let cancelled = client.deployment(&id).await?;
    assert_eq!(cancelled["state"], "cancelled");
    assert_eq!(cancelled["reason"], "cancelled by canceller");

    tokio::time::sleep(Duration::from_secs(5)).await;
    let left = processes_with(&marker);
    assert!(
        left.is_empty(),
        "5 s after the cancel the build still runs: {left:?}\n{}",
        platform.output("berth-build-worker")
    );
    // Nothing of the cancelled build reaches the registry (within 60 s of
    // the cancel), or the engine.
    tokio::time::sleep(Duration::from_secs(55)).await;
    assert_eq!(
        platform.registry.tags("canceller/halted"),
        tags_before,
        "a tag appeared after the cancel"
    );
    let docker = engine::connect(&platform.env["BERTH_DOCKER_HOST"]).await?;
    assert_eq!(
        engine::count_labelled(&docker, berth_proto::labels::APP, &app_id).await?,
        1
    );
    assert_eq!(
        fetch_body(&url).await?,
        "hello v1",
        "the live release keeps serving"
    );
    assert!(
        platform
            .output("berth-build-worker")
            .contains("Build stopped")
            || platform
                .output("berth-build-worker")
                .contains("build stopped"),
        "the build-worker says it stopped the build"
    );

    // Over is over.
    let again = client
        .call(
            reqwest::Method::POST,
            &format!("/deployments/{id}/cancel"),
            None,
        )
        .await?;
    assert_eq!(again.0, 409, "{again:?}");
    Ok(())
}
