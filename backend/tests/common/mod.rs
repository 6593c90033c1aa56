//! Test support: a fresh database per test on the local stack's PostgreSQL,
//! an app state with a fake log reader, and request helpers.
#![allow(dead_code)]

pub mod broker;
pub mod deliveries;
pub mod fake_github;
pub mod fake_github_status;
pub mod fake_logs;
pub mod github_status_setup;
pub mod mailbox;
pub mod one_app;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use berth_backend::credentials::tokens::TokenKeys;
use berth_backend::github_api::GitHubClient;
use berth_backend::logs::LogReader;
use berth_backend::mail::Mailer;
use berth_backend::state::{ApiSettings, AppState};
use berth_backend::{db, server};
use berth_common::testing::setting;
use berth_proto::SecretKey;
use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, Executor, PgConnection, PgPool};
use std::sync::Arc;
use tower::ServiceExt;
use uuid::Uuid;

/// A database of its own, dropped (with its connections) when this is.
pub struct TestDb {
    pub pool: PgPool,
    pub name: String,
}

fn database_url(name: &str) -> String {
    let mut url = url::Url::parse(&setting("BERTH_PG_ADMIN_URL")).expect("admin URL parses");
    url.set_path(name);
    url.to_string()
}

impl TestDb {
    pub async fn new() -> Self {
        let db = Self::empty().await;
        db::migrate(&db.pool).await.expect("migrations apply");
        db
    }

    /// A database with no tables yet.
    pub async fn empty() -> Self {
        let name = format!("berth_test_{}", Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&setting("BERTH_PG_ADMIN_URL"))
            .await
            .expect("the local stack's PostgreSQL answers (infra/local/stack.sh up)");
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create the test database");
        admin.close().await.ok();
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect(&database_url(&name))
            .await
            .expect("connect to the test database");
        Self { pool, name }
    }
}

impl TestDb {
    pub fn url(&self) -> String {
        database_url(&self.name)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime: do the async work on a thread of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                if let Ok(mut admin) = PgConnection::connect(&setting("BERTH_PG_ADMIN_URL")).await {
                    let _ = admin
                        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                        .await;
                }
            });
        })
        .join();
    }
}

pub struct TestApp {
    pub state: AppState,
    pub router: Router,
    pub db: TestDb,
}

pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Response {
    /// The problem's `type` slug.
    pub fn problem(&self) -> &str {
        self.body["type"]
            .as_str()
            .and_then(|t| t.strip_prefix("https://berth.dev/problems/"))
            .unwrap_or_else(|| panic!("not a problem: {}", self.body))
    }

    pub fn assert_problem(&self, status: StatusCode, slug: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(
            self.headers[header::CONTENT_TYPE],
            "application/problem+json",
            "{}",
            self.body
        );
        assert_eq!(self.problem(), slug, "{}", self.body);
        assert_eq!(self.body["status"], status.as_u16());
        assert!(self.body["title"].is_string());
        assert!(self.body["detail"].is_string());
    }

    /// Fields named in a validation problem.
    pub fn invalid_fields(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("no errors list: {}", self.body))
            .iter()
            .map(|e| e["field"].as_str().unwrap().to_owned())
            .collect()
    }
}

pub fn secret_key() -> SecretKey {
    SecretKey::from_base64(&SecretKey::generate_base64()).unwrap()
}

impl TestApp {
    pub async fn new() -> Self {
        Self::with(
            ApiSettings::default(),
            Arc::new(fake_logs::FakeLogs::default()),
        )
        .await
    }

    pub async fn with(settings: ApiSettings, logs: Arc<dyn LogReader>) -> Self {
        let db = TestDb::new().await;
        let tokens = TokenKeys::new(Uuid::new_v4().simple().to_string().as_bytes()).unwrap();
        let state = AppState::new(db.pool.clone(), secret_key(), tokens, logs, settings);
        let router = server::app(state.clone(), Arc::new(|| true), None);
        Self { state, router, db }
    }

    /// Talks to `github` instead of api.github.com.
    pub fn with_github(mut self, github: Arc<dyn GitHubClient>) -> Self {
        self.state = self.state.clone().with_github(github);
        self.router = server::app(self.state.clone(), Arc::new(|| true), None);
        self
    }

    /// Serves custom domains with `domains`.
    pub fn with_domains(mut self, domains: Arc<berth_backend::custom_domains::Domains>) -> Self {
        self.state = self.state.clone().with_domains(domains);
        self.router = server::app(self.state.clone(), Arc::new(|| true), None);
        self
    }

    /// Seals and opens with `key` (a test that needs to know it).
    pub fn with_key(mut self, key: SecretKey) -> Self {
        self.state.key = key;
        self.router = server::app(self.state.clone(), Arc::new(|| true), None);
        self
    }

    /// Sends mail through `mailer`.
    pub fn with_mailer(mut self, mailer: Arc<dyn Mailer>) -> Self {
        self.state = self.state.clone().with_mailer(mailer);
        self.router = server::app(self.state.clone(), Arc::new(|| true), None);
        self
    }

    pub fn pool(&self) -> &PgPool {
        &self.db.pool
    }

    pub async fn send(&self, request: Request<Body>) -> Response {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Response {
            status,
            headers,
            body,
        }
    }

    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = match body {
            Some(body) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        };
        self.send(request.unwrap()).await
    }

    pub async fn get(&self, uri: &str, token: &str) -> Response {
        self.call(Method::GET, uri, Some(token), None).await
    }

    pub async fn post(&self, uri: &str, token: &str, body: Value) -> Response {
        self.call(Method::POST, uri, Some(token), Some(body)).await
    }

    /// Registers `username` and logs in; returns the token response.
    pub async fn signup(&self, username: &str) -> Value {
        let password = "correct horse battery";
        let response = self
            .call(
                Method::POST,
                "/api/v1/auth/register",
                None,
                Some(json!({"username": username, "email": format!("{username}@example.com"), "password": password})),
            )
            .await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
        let response = self
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"login": username, "password": password})),
            )
            .await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.body);
        response.body
    }

    /// Signs up through the mail (the app has a mailer): registers, finds
    /// the confirmation link in the SMTP sink and opens it. Returns the
    /// token response; `email` must be this test's own.
    pub async fn signup_by_mail(&self, username: &str, email: &str) -> Value {
        let body =
            json!({"username": username, "email": email, "password": "correct horse battery"});
        let response = self
            .call(Method::POST, "/api/v1/auth/register", None, Some(body))
            .await;
        assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.body);
        let mail = mailbox::wait_for_message(email, 1).await;
        let body = json!({"token": mailbox::token_in(&mail), "password": "correct horse battery"});
        let response = self
            .call(
                Method::POST,
                "/api/v1/auth/register/confirm",
                None,
                Some(body),
            )
            .await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
        response.body
    }

    /// Registers `username` and returns an access token.
    pub async fn token(&self, username: &str) -> String {
        self.signup(username).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Creates an app and returns it.
    pub async fn create_app(&self, token: &str, body: Value) -> Value {
        let response = self.post("/api/v1/apps", token, body).await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
        response.body
    }

    /// This backend's outbox relay, publishing to `broker`.
    pub fn relay(
        &self,
        broker: berth_common::Broker,
        settings: berth_backend::background::relay::RelaySettings,
    ) -> berth_backend::background::relay::Relay<berth_common::Broker> {
        berth_backend::background::relay::Relay::new(
            self.pool().clone(),
            broker,
            self.state.outbox.clone(),
            settings,
        )
    }

    /// Creates the app `name` and asks for its first build; returns the
    /// deployment's id.
    pub async fn app_with_a_build(&self, token: &str, name: &str) -> Uuid {
        let created = self
            .create_app(
                token,
                serde_json::json!({"name": name, "repo_url": "https://x.example/r"}),
            )
            .await;
        let response = self
            .call(
                axum::http::Method::POST,
                &format!("/api/v1/apps/{}/deployments", id_of(&created)),
                Some(token),
                None,
            )
            .await;
        assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.body);
        id_of(&response.body)
    }
}

pub fn id_of(value: &Value) -> Uuid {
    value["id"].as_str().unwrap().parse().unwrap()
}
