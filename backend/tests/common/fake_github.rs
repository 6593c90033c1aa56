//! A fake of GitHub, served on a local port: the REST API for repository
//! hooks (list, create, update), which checks the token and remembers every
//! hook and request; deployments and commit statuses (in
//! `fake_github_status`); and on the same port the sign-in fake shared with
//! the end-to-end suite (`berth_common::testing::fake_github`): OAuth, the
//! user, their repositories (5 over 3 pages, the fake's own first and
//! private) and its branches (2 pages).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, patch};
use axum::{Json, Router};
use berth_common::testing::fake_github::{Account, FakeGitHubOAuth};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

pub const GITHUB_ID: i64 = 583231;
pub const EMAIL: &str = "codertocat@example.com";

#[derive(Debug, Clone)]
pub struct Seen {
    pub method: &'static str,
    pub path: String,
    pub headers: HeaderMap,
}

#[derive(Default)]
pub(super) struct Inner {
    hooks: Vec<Value>,
    /// The secret of each hook, by index (GitHub never shows it back).
    secrets: Vec<String>,
    seen: Vec<Seen>,
    /// Deployments and commit statuses.
    pub(super) status: super::fake_github_status::StatusState,
}

#[derive(Clone)]
pub struct FakeGitHub {
    pub url: String,
    pub(super) token: String,
    pub(super) repo: (String, String),
    pub(super) inner: Arc<Mutex<Inner>>,
    /// Sign-in, the user and their repositories; its calls are its own
    /// (`oauth.calls()`), not in `seen`.
    pub oauth: FakeGitHubOAuth,
}

pub(super) type Answer = (StatusCode, Json<Value>);

pub(super) fn answer(status: StatusCode, body: Value) -> Answer {
    (status, Json(body))
}

impl FakeGitHub {
    /// Serves `Codertocat/Hello-World`, accepting only `token`.
    pub async fn start(token: &str) -> Self {
        let (owner, repo) = ("Codertocat", "Hello-World");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let account = Account {
            id: GITHUB_ID,
            login: owner,
            email: EMAIL,
            repo_pages: vec![
                vec![(repo, true), ("one", false)],
                vec![("two", false), ("three", false)],
                vec![("four", false)],
            ],
            branch_pages: vec![vec!["main"], vec!["dev"]],
            token: token.to_owned(),
        };
        let fake = Self {
            oauth: FakeGitHubOAuth::new(&url, account),
            url,
            token: token.to_owned(),
            repo: (owner.to_owned(), repo.to_owned()),
            inner: Arc::default(),
        };
        let router = Router::new()
            .route("/repos/{owner}/{repo}/hooks", get(list).post(create))
            .route("/repos/{owner}/{repo}/hooks/{id}", patch(update))
            .merge(super::fake_github_status::routes())
            .with_state(fake.clone())
            .merge(fake.oauth.router());
        tokio::spawn(async move { axum::serve(listener, router).await });
        fake
    }

    pub fn hooks(&self) -> Vec<Value> {
        self.inner.lock().unwrap().hooks.clone()
    }

    pub fn secrets(&self) -> Vec<String> {
        self.inner.lock().unwrap().secrets.clone()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.inner.lock().unwrap().seen.clone()
    }

    /// Plays the user approving berth at `authorize_url`; the code GitHub
    /// would send back.
    pub fn authorize(&self, authorize_url: &str) -> String {
        self.oauth.authorize(authorize_url)
    }

    /// How many times berth asked for a token.
    pub fn token_requests(&self) -> usize {
        self.oauth.token_requests()
    }

    /// Records the request; refuses a wrong token or another repository.
    fn admit(
        &self,
        method: &'static str,
        (owner, repo): (&str, &str),
        headers: &HeaderMap,
    ) -> Result<(), Answer> {
        self.inner.lock().unwrap().seen.push(Seen {
            method,
            path: format!("/repos/{owner}/{repo}/hooks"),
            headers: headers.clone(),
        });
        let bearer = format!("Bearer {}", self.token);
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(bearer.as_str()) {
            return Err(answer(
                StatusCode::UNAUTHORIZED,
                json!({"message": "Bad credentials"}),
            ));
        }
        if (owner, repo) != (self.repo.0.as_str(), self.repo.1.as_str()) {
            return Err(answer(
                StatusCode::NOT_FOUND,
                json!({"message": "Not Found"}),
            ));
        }
        Ok(())
    }
}

async fn list(
    State(fake): State<FakeGitHub>,
    Path((owner, repo)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    if let Err(refused) = fake.admit("GET", (&owner, &repo), &headers) {
        return refused;
    }
    answer(StatusCode::OK, Value::Array(fake.hooks()))
}

/// The hook as GitHub shows it: the secret masked.
fn shown(id: usize, body: &Value) -> Value {
    let mut config = body["config"].clone();
    config["secret"] = json!("********");
    json!({"type": "Repository", "id": id, "name": "web", "active": body["active"],
           "events": body["events"], "config": config})
}

async fn create(
    State(fake): State<FakeGitHub>,
    Path((owner, repo)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Answer {
    if let Err(refused) = fake.admit("POST", (&owner, &repo), &headers) {
        return refused;
    }
    let mut inner = fake.inner.lock().unwrap();
    let url = &body["config"]["url"];
    if inner.hooks.iter().any(|hook| &hook["config"]["url"] == url) {
        let message = "Validation Failed: Hook already exists on this repository";
        return answer(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"message": message}),
        );
    }
    let hook = shown(inner.hooks.len() + 1, &body);
    inner.hooks.push(hook.clone());
    inner.secrets.push(
        body["config"]["secret"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    );
    answer(StatusCode::CREATED, hook)
}

async fn update(
    State(fake): State<FakeGitHub>,
    Path((owner, repo, id)): Path<(String, String, usize)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Answer {
    if let Err(refused) = fake.admit("PATCH", (&owner, &repo), &headers) {
        return refused;
    }
    let mut inner = fake.inner.lock().unwrap();
    if id == 0 || id > inner.hooks.len() {
        return answer(StatusCode::NOT_FOUND, json!({"message": "Not Found"}));
    }
    let hook = shown(id, &body);
    inner.hooks[id - 1] = hook.clone();
    inner.secrets[id - 1] = body["config"]["secret"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    answer(StatusCode::OK, hook)
}
