//! berth registers an app's webhook on its GitHub repository with the
//! caller's token (against a fake of GitHub's REST API).

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use berth_backend::github_api::ReqwestGitHub;
use berth_backend::state::ApiSettings;
use berth_backend::webhook_guard::signature;
use common::fake_github::FakeGitHub;
use common::fake_logs::FakeLogs;
use common::{id_of, TestApp};
use serde_json::json;
use std::sync::Arc;
use uuid::Uuid;

const PUBLIC_URL: &str = "https://berth.example.com";
const TOKEN: &str = "gho_16C7e42F292c6912E7710c838347Ae178B4a";

/// A berth whose GitHub is `api_url`, and an app of alice's on `repo_url`.
async fn berth(api_url: &str, repo_url: &str) -> (TestApp, String, Uuid) {
    let settings = ApiSettings {
        public_url: Some(PUBLIC_URL.into()),
        // The fake GitHub (and so the repository) is on 127.0.0.1: a
        // development setup, where internal hosts are allowed.
        allow_local_repos: true,
        ..ApiSettings::default()
    };
    let github = ReqwestGitHub::new(api_url).unwrap();
    let app = TestApp::with(settings, Arc::new(FakeLogs::default()))
        .await
        .with_github(Arc::new(github));
    let token = app.token("alice").await;
    let created = app
        .create_app(&token, json!({"name": "hello", "repo_url": repo_url}))
        .await;
    (app, token, id_of(&created))
}

/// A ping signed with `secret`: does the app accept it?
async fn accepts(app: &TestApp, app_id: Uuid, secret: &str, delivery: &str) -> StatusCode {
    let body = br#"{"zen": "Keep it logically awesome."}"#;
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("/api/v1/webhooks/github/{app_id}"))
        .header("content-type", "application/json")
        .header("X-GitHub-Event", "ping")
        .header("X-GitHub-Delivery", delivery)
        .header(
            "X-Hub-Signature-256",
            signature::sign(secret.as_bytes(), body),
        )
        .body(Body::from(&body[..]))
        .unwrap();
    app.send(request).await.status
}

#[tokio::test]
async fn the_hook_is_created_on_the_repository_then_updated_on_rotation() {
    let github = FakeGitHub::start(TOKEN).await;
    // The fake serves on 127.0.0.1, so that is where the repository is.
    let repo_url = format!("{}/Codertocat/Hello-World.git", github.url);
    let (app, token, app_id) = berth(&github.url, &repo_url).await;
    let uri = format!("/api/v1/apps/{app_id}/webhook");

    let created = app.post(&uri, &token, json!({"github_token": TOKEN})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["registered"], true);
    assert_eq!(created.body["github_hook_id"], 1);
    let hooks = github.hooks();
    assert_eq!(hooks.len(), 1);
    let payload_url = format!("{PUBLIC_URL}/api/v1/webhooks/github/{app_id}");
    assert_eq!(hooks[0]["config"]["url"], payload_url);
    assert_eq!(hooks[0]["config"]["content_type"], "json");
    assert_eq!(hooks[0]["events"], json!(["push"]));
    assert_eq!(hooks[0]["active"], true);
    assert_eq!(github.secrets(), [created.body["secret"].as_str().unwrap()]);
    let seen = github.seen();
    assert_eq!(
        seen.iter().map(|s| s.method).collect::<Vec<_>>(),
        ["GET", "POST"]
    );
    for request in &seen {
        assert_eq!(request.path, "/repos/Codertocat/Hello-World/hooks");
        assert_eq!(request.headers["accept"], "application/vnd.github+json");
        assert_eq!(request.headers["x-github-api-version"], "2022-11-28");
        assert!(request.headers.contains_key("user-agent"));
    }

    // Rotating updates the same hook with the new secret.
    let rotated = app.post(&uri, &token, json!({"github_token": TOKEN})).await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{}", rotated.body);
    assert_eq!(rotated.body["github_hook_id"], 1);
    let secret = rotated.body["secret"].as_str().unwrap().to_owned();
    assert_eq!(github.hooks().len(), 1);
    assert_eq!(github.secrets(), [secret.as_str()]);
    assert_eq!(github.seen().last().unwrap().method, "PATCH");

    // GitHub refuses the token: 422, and the secret GitHub has keeps working.
    let refused = app
        .post(&uri, &token, json!({"github_token": "gho_wrong"}))
        .await;
    refused.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(refused.invalid_fields(), ["github_token"]);
    assert!(!refused.body.to_string().contains("gho_wrong"));
    assert_eq!(github.secrets(), [secret.as_str()]);
    assert_eq!(accepts(&app, app_id, &secret, "p1").await, StatusCode::OK);

    // Without a token, berth only makes a secret.
    let manual = app.post(&uri, &token, json!({})).await;
    assert_eq!(manual.status, StatusCode::CREATED, "{}", manual.body);
    assert_eq!(manual.body["registered"], false);
    assert_eq!(manual.body["github_hook_id"], serde_json::Value::Null);
}

#[tokio::test]
async fn repositories_berth_cannot_register_on_are_refused() {
    let github = FakeGitHub::start(TOKEN).await;
    // A repository on another host.
    let (app, token, app_id) = berth(&github.url, "https://gitlab.com/o/r.git").await;
    let uri = format!("/api/v1/apps/{app_id}/webhook");
    let refused = app.post(&uri, &token, json!({"github_token": TOKEN})).await;
    refused.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert!(github.seen().is_empty());
    let shown = app.get(&uri, &token).await;
    assert_eq!(shown.body["configured"], false, "nothing was kept");

    // A repository the token cannot see.
    let other = format!("{}/Codertocat/Private.git", github.url);
    let (app, token, app_id) = berth(&github.url, &other).await;
    let uri = format!("/api/v1/apps/{app_id}/webhook");
    let refused = app.post(&uri, &token, json!({"github_token": TOKEN})).await;
    refused.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert!(refused.body["detail"]
        .as_str()
        .unwrap()
        .contains("admin:repo_hook"));

    // GitHub cannot be reached.
    let (app, token, app_id) = berth("http://127.0.0.1:1", "http://127.0.0.1/o/r.git").await;
    app.post(
        &format!("/api/v1/apps/{app_id}/webhook"),
        &token,
        json!({"github_token": TOKEN}),
    )
    .await
    .assert_problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
}
