//! Crashes mid-work: the deployment is neither lost nor duplicated.

use anyhow::{Context, Result};
use berth_tests::api::{fetch_body, state_names};
use berth_tests::{engine, AppRepo, Client, Platform};
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread")]
async fn a_build_worker_killed_mid_build_is_replaced_and_the_deploy_goes_live_once() -> Result<()> {
    let mut platform = Platform::start().await?;
    let mut client = Client::new(&platform.base_url);
    client.sign_up("crashy").await?;
    let repo = AppRepo::python("survivor")?;
    // A build slow enough to be caught in the middle.
    repo.write(
        "Dockerfile",
        &format!(
            "FROM {}\nWORKDIR /app\nCOPY . .\nRUN sleep 4\nCMD [\"python3\", \"app.py\"]\n",
            platform.env["BERTH_BASE_IMAGE_PYTHON"]
        ),
    )?;
    repo.commit("slow build")?;
    let app = client
        .create_app(json!({"name": "phoenix", "repo_url": repo.url(), "port": 8000}))
        .await?;
    let app_id = app["id"].as_str().context("app id")?.to_owned();
    let id = client.deploy(&app_id, json!({})).await?;

    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let state = client.deployment(&id).await?["state"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if state == "building" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never reached building (is {state})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    platform.kill("berth-build-worker").await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    platform.spawn("berth-build-worker")?;

    let deployment = client.wait_settled(&id, Duration::from_secs(300)).await?;
    assert_eq!(
        deployment["state"],
        "live",
        "{deployment}\n{}",
        platform.all_output()
    );
    let endpoint = deployment["endpoint"].as_str().context("endpoint")?;
    assert_eq!(fetch_body(endpoint).await?, "hello survivor");
    let states = state_names(&deployment)?;
    assert_eq!(
        states.iter().filter(|s| **s == "live").count(),
        1,
        "{states:?}"
    );

    // Exactly one deployment, and exactly one container serving it.
    let deployments = client.get(&format!("/apps/{app_id}/deployments")).await?;
    assert_eq!(
        deployments.as_array().map(Vec::len),
        Some(1),
        "{deployments}"
    );
    let docker = engine::connect(&platform.env["BERTH_DOCKER_HOST"]).await?;
    let running = engine::count_labelled(&docker, berth_proto::labels::APP, &app_id).await?;
    assert_eq!(running, 1, "one container for the app");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deploy_requested_while_the_workers_are_down_waits_for_them() -> Result<()> {
    let mut platform = Platform::start().await?;
    platform.kill("berth-build-worker").await?;
    let mut client = Client::new(&platform.base_url);
    client.sign_up("patient").await?;
    let repo = AppRepo::python("later")?;
    let app = client
        .create_app(json!({"name": "later", "repo_url": repo.url(), "port": 8000}))
        .await?;
    let id = client
        .deploy(app["id"].as_str().context("app id")?, json!({}))
        .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(client.deployment(&id).await?["state"], "queued");
    platform.spawn("berth-build-worker")?;
    let deployment = client.wait_settled(&id, Duration::from_secs(300)).await?;
    assert_eq!(deployment["state"], "live", "{deployment}");
    Ok(())
}
