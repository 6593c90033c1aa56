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

/// Where a live deployment answers.
pub fn endpoint(deployment: &Value) -> Result<String> {
    Ok(deployment["endpoint"]
        .as_str()
        .context("a live deployment has an endpoint")?
        .to_owned())
}
