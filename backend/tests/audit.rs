//! The audit log: what is recorded (with actor, target and source address),
//! who sees it, filters and paging, and what is never in it.

mod common;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Method, Request, StatusCode};
use berth_backend::state::ApiSettings;
use berth_backend::web_security::proxies::parse_list;
use berth_backend::webhook_guard::signature;
use common::fake_logs::FakeLogs;
use common::{id_of, Response, TestApp};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use uuid::Uuid;

const PASSWORD: &str = "correct horse battery";
const REPO: &str = "https://github.com/Codertocat/Hello-World.git";
const SECRET_VALUE: &str = "s3cr3t-value-never-logged";
/// The peer every request here comes from: a trusted proxy.
const PROXY: &str = "10.0.0.7:40000";
/// The client the proxy forwards for.
const CLIENT: &str = "203.0.113.9";

async fn test_app() -> TestApp {
    let settings = ApiSettings {
        trusted_proxies: parse_list(&["10.0.0.0/8".into()]).unwrap(),
        ..ApiSettings::default()
    };
    TestApp::with(settings, Arc::new(FakeLogs::default())).await
}

/// A request from `CLIENT` through the trusted proxy, as the served app sees it.
async fn call(
    app: &TestApp,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Response {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header("x-forwarded-for", format!("198.51.100.66, {CLIENT}"));
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let mut request = match body {
        Some(body) => request
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string())),
        None => request.body(Body::empty()),
    }
    .unwrap();
    let peer: SocketAddr = PROXY.parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(peer));
    app.send(request).await
}

async fn login(app: &TestApp, login: &str, password: &str) -> Response {
    let body = json!({"login": login, "password": password});
    call(app, Method::POST, "/api/v1/auth/login", None, Some(body)).await
}

async fn signup(app: &TestApp, username: &str) -> String {
    let body = json!({"username": username, "email": format!("{username}@example.com"), "password": PASSWORD});
    let registered = call(app, Method::POST, "/api/v1/auth/register", None, Some(body)).await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{}",
        registered.body
    );
    let response = login(app, username, PASSWORD).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    response.body["access_token"].as_str().unwrap().to_owned()
}

async fn audit(app: &TestApp, token: &str, query: &str) -> Vec<Value> {
    let response = app.get(&format!("/api/v1/audit{query}"), token).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    response.body.as_array().unwrap().clone()
}

fn actions(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect()
}

/// Everything alice does; returns her token, app id and webhook secret.
async fn alice_does_everything(app: &TestApp) -> (String, Uuid, String) {
    let token = signup(app, "alice").await;
    let refused = login(app, "alice", "wrong password!!").await;
    refused.assert_problem(StatusCode::UNAUTHORIZED, "invalid-credentials");
    let created = call(
        app,
        Method::POST,
        "/api/v1/apps",
        Some(&token),
        Some(json!({"name": "hello", "repo_url": REPO, "branch": "main",
                    "env": {"API_KEY": SECRET_VALUE}})),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let app_id = id_of(&created.body);
    let apps = format!("/api/v1/apps/{app_id}");
    let updated = call(
        app,
        Method::PATCH,
        &apps,
        Some(&token),
        Some(json!({"port": 9000, "env": {"API_KEY": format!("{SECRET_VALUE}-2")}})),
    )
    .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    let scaled = call(
        app,
        Method::PUT,
        &format!("{apps}/scale"),
        Some(&token),
        Some(json!({"replicas": 2})),
    )
    .await;
    assert_eq!(scaled.status, StatusCode::ACCEPTED, "{}", scaled.body);
    let deployed = call(
        app,
        Method::POST,
        &format!("{apps}/deployments"),
        Some(&token),
        Some(json!({})),
    )
    .await;
    assert_eq!(deployed.status, StatusCode::ACCEPTED, "{}", deployed.body);
    let hook = call(
        app,
        Method::POST,
        &format!("{apps}/webhook"),
        Some(&token),
        Some(json!({})),
    )
    .await;
    assert_eq!(hook.status, StatusCode::CREATED, "{}", hook.body);
    let secret = hook.body["secret"].as_str().unwrap().to_owned();
    push(app, app_id, &secret).await;
    let unhooked = call(
        app,
        Method::DELETE,
        &format!("{apps}/webhook"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(unhooked.status, StatusCode::NO_CONTENT, "{}", unhooked.body);
    let deleted = call(app, Method::DELETE, &apps, Some(&token), None).await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED, "{}", deleted.body);
    (token, app_id, secret)
}

/// A signed push delivery of the app's branch, from GitHub's address.
async fn push(app: &TestApp, app_id: Uuid, secret: &str) {
    let path = format!(
        "{}/tests/fixtures/github/push.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut payload: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    payload["repository"]["pushed_at"] = json!(chrono::Utc::now().timestamp());
    let body = payload.to_string().into_bytes();
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(format!("/api/v1/webhooks/github/{app_id}"))
        .header(header::CONTENT_TYPE, "application/json")
        .header("X-GitHub-Event", "push")
        .header("X-GitHub-Delivery", Uuid::new_v4().to_string())
        .header(
            "X-Hub-Signature-256",
            signature::sign(secret.as_bytes(), &body),
        )
        .body(Body::from(body))
        .unwrap();
    let github: SocketAddr = "140.82.115.1:443".parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(github));
    let response = app.send(request).await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.body);
}

#[tokio::test]
async fn every_action_is_listed_to_its_owner_with_actor_target_and_source() {
    let app = test_app().await;
    let (token, app_id, hook_secret) = alice_does_everything(&app).await;
    let events = audit(&app, &token, "").await;
    assert_eq!(
        actions(&events),
        [
            "app.delete",
            "app.webhook_deleted",
            "deployment.create",
            "app.webhook_set",
            "deployment.create",
            "app.scale",
            "app.update",
            "app.create",
            "auth.login_failed",
            "auth.login",
            "auth.register",
        ],
        "{events:#?}"
    );
    let alice: Uuid = sqlx::query_scalar("SELECT id FROM users WHERE username = 'alice'")
        .fetch_one(app.pool())
        .await
        .unwrap();
    for event in &events {
        let pushed = event["details"]["trigger"] == "push";
        let (actor, source) = if pushed {
            ("github:Codertocat", "140.82.115.1")
        } else {
            ("alice", CLIENT)
        };
        assert_eq!(event["actor"], actor, "{event}");
        assert_eq!(event["source_ip"], source, "{event}");
        assert!(event["created_at"].is_string());
        let target: Uuid = event["target_id"].as_str().unwrap().parse().unwrap();
        match event["target_type"].as_str().unwrap() {
            "user" => assert_eq!(target, alice),
            "app" => assert_eq!(target, app_id),
            "deployment" => assert_eq!(event["details"]["app_id"], app_id.to_string()),
            other => panic!("unexpected target type {other}"),
        }
    }
    assert_eq!(events[2]["details"]["trigger"], "push");
    assert_eq!(events[2]["details"]["commit"].as_str().unwrap().len(), 40);
    assert_eq!(events[4]["details"]["trigger"], "user");
    assert_eq!(events[5]["details"]["replicas"], 2);
    assert_eq!(events[6]["details"]["changes"]["port"], 9000);
    assert_eq!(events[6]["details"]["changes"]["env_changed"], true);
    assert_eq!(events[7]["details"]["env_names"], json!(["API_KEY"]));

    // Never a value, a secret or a token, in any event's details.
    let stored: Vec<String> = sqlx::query_scalar("SELECT details::text FROM audit_events")
        .fetch_all(app.pool())
        .await
        .unwrap();
    assert_eq!(stored.len(), 11);
    for details in stored {
        assert!(!details.contains(SECRET_VALUE), "{details}");
        assert!(!details.contains(&hook_secret), "{details}");
        assert!(!details.contains(PASSWORD) && !details.contains("wrong password"));
    }

    // Another user sees none of it.
    let bob = signup(&app, "bob").await;
    let theirs = audit(&app, &bob, "").await;
    assert_eq!(actions(&theirs), ["auth.login", "auth.register"]);
    assert!(theirs.iter().all(|e| e["actor"] == "bob"));
}

#[tokio::test]
async fn failed_logins_for_unknown_users_are_stored_for_nobody() {
    let app = test_app().await;
    let token = signup(&app, "carol").await;
    let unknown = login(&app, "mallory", "whatever-password").await;
    let known = login(&app, "carol", "whatever-password").await;
    // The same answer whether the account exists or not.
    unknown.assert_problem(StatusCode::UNAUTHORIZED, "invalid-credentials");
    known.assert_problem(StatusCode::UNAUTHORIZED, "invalid-credentials");
    assert_eq!(unknown.body["detail"], known.body["detail"]);
    let stored: Vec<(Option<Uuid>, String)> = sqlx::query_as(
        "SELECT user_id, actor FROM audit_events WHERE action = 'auth.login_failed' ORDER BY id",
    )
    .fetch_all(app.pool())
    .await
    .unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0], (None, "mallory".to_owned()));
    assert!(stored[1].0.is_some());
    let listed = audit(&app, &token, "?action=auth.login_failed").await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["actor"], "carol");
}

#[tokio::test]
async fn filters_and_paging() {
    let app = test_app().await;
    let (token, app_id, _) = alice_does_everything(&app).await;
    let all = audit(&app, &token, "").await;
    assert_eq!(all.len(), 11);

    let deploys = audit(&app, &token, "?action=deployment.create").await;
    assert_eq!(deploys.len(), 2);
    let about_app = audit(&app, &token, &format!("?target_id={app_id}")).await;
    assert_eq!(
        actions(&about_app),
        [
            "app.delete",
            "app.webhook_deleted",
            "app.webhook_set",
            "app.scale",
            "app.update",
            "app.create"
        ]
    );
    let future = audit(&app, &token, "?since=2999-01-01T00:00:00Z").await;
    assert!(future.is_empty());
    let past = audit(&app, &token, "?until=2000-01-01T00:00:00Z").await;
    assert!(past.is_empty());
    let now = audit(
        &app,
        &token,
        "?since=2000-01-01T00:00:00Z&until=2999-01-01T00:00:00Z",
    )
    .await;
    assert_eq!(now.len(), 11);

    // Pages of 4 walk the whole log, newest first, without overlap.
    let mut seen = Vec::new();
    let mut query = "?limit=4".to_owned();
    loop {
        let page = audit(&app, &token, &query).await;
        assert!(page.len() <= 4);
        if page.is_empty() {
            break;
        }
        let last = page.last().unwrap()["id"].as_str().unwrap().to_owned();
        seen.extend(page);
        query = format!("?limit=4&before={last}");
    }
    assert_eq!(seen, all);

    for (query, field) in [
        ("?limit=0", "limit"),
        ("?limit=201", "limit"),
        ("?action=", "action"),
        ("?action=DROP%20TABLE", "action"),
        ("?since=yesterday", "since"),
        ("?target_id=nope", "target_id"),
        ("?before=nope", "before"),
        (
            "?since=2020-01-02T00:00:00Z&until=2020-01-01T00:00:00Z",
            "until",
        ),
    ] {
        let response = app.get(&format!("/api/v1/audit{query}"), &token).await;
        response.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
        assert_eq!(
            response.invalid_fields(),
            [field],
            "{query}: {}",
            response.body
        );
    }
    let anonymous = app.call(Method::GET, "/api/v1/audit", None, None).await;
    anonymous.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn without_a_peer_address_the_source_is_unknown() {
    let app = TestApp::new().await;
    let token = app.token("dave").await;
    let events = audit(&app, &token, "").await;
    assert_eq!(actions(&events), ["auth.login", "auth.register"]);
    assert!(events.iter().all(|e| e["source_ip"].is_null()));
}
