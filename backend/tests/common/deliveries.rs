//! GitHub webhook deliveries as GitHub sends them, to apps hooked in a
//! test berth, and what they left behind (payloads: tests/fixtures/github).

use super::{id_of, Response, TestApp};
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use berth_backend::state::ApiSettings;
use berth_backend::webhook_guard::signature;
use berth_proto::Envelope;
use serde_json::{json, Value};
use std::sync::Arc;
use uuid::Uuid;

pub const REPO: &str = "https://github.com/Codertocat/Hello-World.git";
pub const HEAD: &str = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c";
pub const PUBLIC_URL: &str = "https://berth.example.com";

pub fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/github/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The documented push, made just now (older pushes are refused).
pub fn push() -> Value {
    let mut push = fixture("push");
    push["repository"]["pushed_at"] = json!(chrono::Utc::now().timestamp());
    push
}

pub struct Hooked {
    pub app: TestApp,
    pub token: String,
    pub app_id: Uuid,
    pub secret: String,
}

pub async fn test_app() -> TestApp {
    let settings = ApiSettings {
        public_url: Some(PUBLIC_URL.into()),
        ..ApiSettings::default()
    };
    TestApp::with(settings, Arc::new(super::fake_logs::FakeLogs::default())).await
}

/// Creates an app of `token`'s on [`REPO`] and its webhook; returns its id
/// and secret.
pub async fn hook_app(
    app: &TestApp,
    token: &str,
    name: &str,
    subdirectory: Value,
) -> (Uuid, String) {
    let body =
        json!({"name": name, "repo_url": REPO, "branch": "main", "subdirectory": subdirectory});
    hook_new_app(app, token, body).await
}

/// Creates an app of `token`'s from `body` and its webhook; returns its id
/// and secret.
pub async fn hook_new_app(app: &TestApp, token: &str, body: Value) -> (Uuid, String) {
    let app_id = id_of(&app.create_app(token, body).await);
    let hook = app
        .post(&format!("/api/v1/apps/{app_id}/webhook"), token, json!({}))
        .await;
    assert_eq!(hook.status, StatusCode::CREATED, "{}", hook.body);
    (app_id, hook.body["secret"].as_str().unwrap().to_owned())
}

pub async fn hooked(subdirectory: Value) -> Hooked {
    let app = test_app().await;
    let token = app.token("alice").await;
    let (app_id, secret) = hook_app(&app, &token, "hello", subdirectory).await;
    Hooked {
        app,
        token,
        app_id,
        secret,
    }
}

/// A delivery as GitHub sends it; `signature: None` sends none.
pub struct Delivery<'a> {
    pub event: &'a str,
    pub id: &'a str,
    pub body: Vec<u8>,
    pub signature: Option<String>,
    pub content_type: &'a str,
}

impl<'a> Delivery<'a> {
    pub fn signed(secret: &str, event: &'a str, id: &'a str, payload: &Value) -> Self {
        let body = payload.to_string().into_bytes();
        Self {
            signature: Some(signature::sign(secret.as_bytes(), &body)),
            event,
            id,
            body,
            content_type: "application/json",
        }
    }

    /// To the app's own payload URL.
    pub async fn send(self, app: &TestApp, app_id: Uuid) -> Response {
        self.send_to(app, &format!("/api/v1/webhooks/github/{app_id}"))
            .await
    }

    /// To the repository-wide payload URL.
    pub async fn send_repo_wide(self, app: &TestApp) -> Response {
        self.send_to(app, "/api/v1/webhooks/github").await
    }

    pub async fn send_to(self, app: &TestApp, uri: &str) -> Response {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::CONTENT_TYPE, self.content_type)
            .header(header::USER_AGENT, "GitHub-Hookshot/044aadd")
            .header("X-GitHub-Event", self.event)
            .header("X-GitHub-Delivery", self.id)
            .header("X-GitHub-Hook-ID", "109948940");
        if let Some(signature) = self.signature {
            request = request.header("X-Hub-Signature-256", signature);
        }
        app.send(request.body(Body::from(self.body)).unwrap()).await
    }
}

impl Hooked {
    pub async fn deliver(&self, event: &str, id: &str, payload: &Value) -> Response {
        Delivery::signed(&self.secret, event, id, payload)
            .send(&self.app, self.app_id)
            .await
    }
}

pub async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(app.pool()).await.unwrap()
}

pub async fn deployments(app: &TestApp) -> i64 {
    count(app, "SELECT count(*) FROM deployments").await
}

/// The build requests waiting in the outbox.
pub async fn build_requests(app: &TestApp) -> Vec<Envelope> {
    let rows: Vec<sqlx::types::Json<Envelope>> = sqlx::query_scalar(
        "SELECT envelope FROM outbox WHERE routing_key = 'berth.builds' ORDER BY id",
    )
    .fetch_all(app.pool())
    .await
    .unwrap();
    rows.into_iter().map(|row| row.0).collect()
}

pub fn assert_ignored(response: &Response, because: &str) {
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    let reason = response.body["ignored"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", response.body));
    assert!(
        reason.contains(because),
        "{reason:?} should say {because:?}"
    );
    assert!(response.body.get("deployment_id").is_none());
}
