//! Steps most suites take: a signed-in user, a deployment that must go live.

use crate::{Client, Platform};
use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};
use std::time::Duration;

/// How long a build and deploy may take on a slow machine.
pub const SETTLE: Duration = Duration::from_secs(300);

/// A new user of `platform`, signed in.
pub async fn signed_in(platform: &Platform, user: &str) -> Result<Client> {
    let mut client = Client::new(&platform.base_url);
    client.sign_up(user).await?;
    Ok(client)
}

/// Waits for deployment `id` and insists on `live` (the processes' output
/// in the error otherwise).
pub async fn settled_live(client: &Client, platform: &Platform, id: &str) -> Result<Value> {
    let deployment = client.wait_settled(id, SETTLE).await?;
    ensure!(
        deployment["state"] == "live",
        "deployment did not go live: {deployment}\n{}",
        platform.all_output()
    );
    Ok(deployment)
}

/// Deploys the app's branch and insists on `live`; returns the deployment.
pub async fn deploy_live(client: &Client, platform: &Platform, app_id: &str) -> Result<Value> {
    let id = client.deploy(app_id, json!({})).await?;
    settled_live(client, platform, &id).await
}

/// Makes app `name` of `repo_url` (port 8000), puts its branch live and
/// scales it to `replicas`, then waits until the engine runs that many
/// instances of the live deployment. Returns the app's id and the live
/// deployment.
pub async fn live_app_with_instances(
    client: &Client,
    platform: &Platform,
    name: &str,
    repo_url: &str,
    replicas: usize,
) -> Result<(String, Value)> {
    let app = client
        .create_app(json!({"name": name, "repo_url": repo_url, "port": 8000}))
        .await?;
    let app_id = app["id"].as_str().context("app id")?.to_owned();
    let live = deploy_live(client, platform, &app_id).await?;
    let live_id = live["id"].as_str().context("deployment id")?.to_owned();
    client
        .expect(
            reqwest::Method::PUT,
            &format!("/apps/{app_id}/scale"),
            Some(json!({ "replicas": replicas })),
            202,
        )
        .await?;
    let docker = crate::engine::connect(&platform.env["BERTH_DOCKER_HOST"]).await?;
    let wanted = vec![live_id; replicas];
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let running =
            crate::engine::running_deployments(&docker, berth_proto::labels::APP, &app_id).await?;
        if running == wanted {
            return Ok((app_id, live));
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "{name} never ran {replicas} instances: {running:?}\n{}",
            platform.all_output()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Where a live deployment answers.
pub fn endpoint(deployment: &Value) -> Result<String> {
    Ok(deployment["endpoint"]
        .as_str()
        .context("a live deployment has an endpoint")?
        .to_owned())
}
