//! End to end: a signed GitHub `push` delivery ends with the pushed commit
//! live at the app's URL, and a replay of it does nothing. The delivery is
//! shaped like GitHub's documented push event and sent with the headers
//! GitHub sends; the app's repository is a local one, which the payload
//! names in `clone_url` as GitHub names a hosted one.

use anyhow::{Context, Result};
use berth_tests::api::fetch_body;
use berth_tests::flow::{deploy_live, endpoint, settled_live, signed_in};
use berth_tests::{AppRepo, Client, Platform};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::time::Duration;

/// `sha256=<hex HMAC-SHA256 of body>`, as in GitHub's X-Hub-Signature-256.
fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A push of `after` onto `main` (previously `before`) that changed
/// `version.txt`, per GitHub's documented push event.
fn push_payload(repo: &AppRepo, before: &str, after: &str, message: &str) -> Value {
    let url = repo.url();
    let now = chrono::Utc::now();
    let person = json!({"name": "Ada Lovelace", "email": "ada@example.test", "username": "ada"});
    let commit = json!({
        "id": after, "tree_id": "f9d2a07e9488b91af2641b26b9407fe22a451433", "distinct": true,
        "message": message, "timestamp": now.to_rfc3339(), "url": format!("{url}/commit/{after}"),
        "author": person, "committer": person,
        "added": [], "removed": [], "modified": ["version.txt"]
    });
    json!({
        "ref": "refs/heads/main", "before": before, "after": after,
        "created": false, "deleted": false, "forced": false, "base_ref": null,
        "compare": format!("{url}/compare/{}...{}", &before[..12], &after[..12]),
        "commits": [commit], "head_commit": commit,
        "repository": {
            "id": 186853002, "name": "greeter", "full_name": "ada/greeter", "private": false,
            "owner": {"name": "ada", "login": "ada", "id": 21031067, "type": "User"},
            "html_url": url, "url": url, "clone_url": url,
            "created_at": now.timestamp() - 3600, "pushed_at": now.timestamp(),
            "default_branch": "main", "master_branch": "main"
        },
        "pusher": {"name": "ada", "email": "ada@example.test"},
        "sender": {"login": "ada", "id": 21031067, "type": "User", "site_admin": false}
    })
}

/// POSTs `body` to `url` as GitHub delivers it; returns status and JSON.
async fn deliver(url: &str, secret: &str, delivery: &str, body: &[u8]) -> Result<(u16, Value)> {
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("user-agent", "GitHub-Hookshot/044aadd")
        .header("x-github-event", "push")
        .header("x-github-delivery", delivery)
        .header("x-github-hook-id", "292430182")
        .header("x-github-hook-installation-target-type", "repository")
        .header("x-github-hook-installation-target-id", "186853002")
        .header("x-hub-signature-256", sign(secret, body))
        .body(body.to_vec())
        .timeout(Duration::from_secs(30))
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await?))
}

async fn deployment_count(client: &Client, app_id: &str) -> Result<usize> {
    let list = client.get(&format!("/apps/{app_id}/deployments")).await?;
    Ok(list.as_array().context("a list of deployments")?.len())
}

/// Waits for the push's deployment and checks it is `commit`, live.
async fn live_push(client: &Client, platform: &Platform, id: &str, commit: &str) -> Result<Value> {
    let deployment = settled_live(client, platform, id).await?;
    assert_eq!(deployment["trigger"], "push", "{deployment}");
    assert_eq!(deployment["commit"], commit, "{deployment}");
    assert_eq!(deployment["ref"], "main", "{deployment}");
    assert_eq!(deployment["pushed_by"], "ada", "{deployment}");
    assert_eq!(deployment["created_by"], Value::Null, "{deployment}");
    Ok(deployment)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_push_puts_the_new_commit_live_and_a_replay_does_nothing() -> Result<()> {
    let platform = Platform::start().await?;
    let client = signed_in(&platform, "ada").await?;
    let repo = AppRepo::python("v1")?;
    let app = json!({"name": "greeter", "repo_url": repo.url(), "branch": "main", "port": 8000,
        "env": {"GREETING": "hello"}});
    let app = client.create_app(app).await?;
    let app_id = app["id"].as_str().context("app id")?;
    let first = deploy_live(&client, &platform, app_id).await?;
    let v1 = first["commit"].as_str().context("v1's commit")?.to_owned();
    assert_eq!(fetch_body(&endpoint(&first)?).await?, "hello v1");

    let hook = client
        .expect(
            reqwest::Method::POST,
            &format!("/apps/{app_id}/webhook"),
            Some(json!({})),
            201,
        )
        .await?;
    let secret = hook["secret"].as_str().context("the secret, shown once")?;
    let hook_url = hook["url"].as_str().context("the payload URL")?;
    assert_eq!(
        hook_url,
        format!("{}/api/v1/webhooks/github/{app_id}", platform.base_url)
    );

    repo.write("version.txt", "v2")?;
    let v2 = repo.commit("v2")?;
    let body = push_payload(&repo, &v1, &v2, "v2").to_string().into_bytes();
    let delivery = uuid::Uuid::new_v4().to_string();
    let (status, outcome) = deliver(hook_url, secret, &delivery, &body).await?;
    assert_eq!(
        status,
        202,
        "{outcome}\n{}",
        platform.output("berth-backend")
    );
    assert_eq!(outcome["commit"], v2.as_str(), "{outcome}");
    let pushed = outcome["deployment_id"]
        .as_str()
        .context("the delivery names its deployment")?;
    let second = live_push(&client, &platform, pushed, &v2).await?;
    assert_eq!(fetch_body(&endpoint(&second)?).await?, "hello v2");
    let app_now = client.get(&format!("/apps/{app_id}")).await?;
    let app_url = app_now["url"].as_str().context("the app's URL")?;
    assert_eq!(fetch_body(app_url).await?, "hello v2", "{app_now}");
    let v1_now = client
        .deployment(first["id"].as_str().context("id")?)
        .await?;
    assert_eq!(v1_now["state"], "superseded", "{v1_now}");

    // GitHub's "Redeliver", or someone replaying what they captured.
    let (status, again) = deliver(hook_url, secret, &delivery, &body).await?;
    assert_eq!(status, 200, "{again}");
    let reason = again["ignored"].as_str().context("a replay is ignored")?;
    assert!(reason.contains("already received"), "{reason}");
    assert!(again.get("deployment_id").is_none(), "{again}");
    assert_eq!(deployment_count(&client, app_id).await?, 2);
    let shown = client.get(&format!("/apps/{app_id}/webhook")).await?;
    assert_eq!(shown["last_delivery"]["delivery_id"], delivery.as_str());
    assert_eq!(shown["last_delivery"]["outcome"], "deployed", "{shown}");
    assert_eq!(shown["last_delivery"]["deployment_id"], pushed, "{shown}");
    assert_eq!(fetch_body(app_url).await?, "hello v2");

    // A hook set up by hand on the repository-wide URL, signed with the
    // same secret, deploys the next push the same way.
    repo.write("version.txt", "v3")?;
    let v3 = repo.commit("v3")?;
    let body = push_payload(&repo, &v2, &v3, "v3").to_string().into_bytes();
    let repo_wide = format!("{}/api/v1/webhooks/github", platform.base_url);
    let delivery = uuid::Uuid::new_v4().to_string();
    let (status, outcome) = deliver(&repo_wide, secret, &delivery, &body).await?;
    assert_eq!(
        status,
        202,
        "{outcome}\n{}",
        platform.output("berth-backend")
    );
    let deliveries = outcome["deliveries"]
        .as_array()
        .context("per-app outcomes")?;
    assert_eq!(deliveries.len(), 1, "{outcome}");
    assert_eq!(deliveries[0]["app_id"], app_id, "{outcome}");
    assert_eq!(deliveries[0]["commit"], v3.as_str(), "{outcome}");
    let pushed = deliveries[0]["deployment_id"]
        .as_str()
        .context("the delivery names its deployment")?;
    live_push(&client, &platform, pushed, &v3).await?;
    let app_now = client.get(&format!("/apps/{app_id}")).await?;
    let app_url = app_now["url"].as_str().context("the app's URL")?;
    assert_eq!(fetch_body(app_url).await?, "hello v3", "{app_now}");
    let (status, again) = deliver(&repo_wide, secret, &delivery, &body).await?;
    assert_eq!(status, 200, "{again}");
    assert!(
        again["deliveries"][0]["ignored"]
            .as_str()
            .is_some_and(|reason| reason.contains("already received")),
        "{again}"
    );
    assert_eq!(deployment_count(&client, app_id).await?, 3);
    Ok(())
}
