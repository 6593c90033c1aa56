//! A GitHub on a local port, for signing in to the web UI with GitHub: the
//! OAuth web flow (the authorize page answers as if the user approved at
//! once; the token exchange checks the client, the code, the redirect URI
//! and the PKCE verifier) and the REST endpoints berth reads with the token
//! (`/user`, `/user/emails`, `/user/repos`, a repository's branches), with
//! payloads shaped like GitHub's documented ones. It remembers every call.

use anyhow::Result;
use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub const CLIENT_ID: &str = "Iv1.e2e0b5e7c1a9d2f4";
pub const CLIENT_SECRET: &str = "e2e0c0ffee0c0ffee0c0ffee0c0ffee0c0ffee0";
pub const GITHUB_ID: i64 = 1_296_269;
pub const LOGIN: &str = "octo-dev";
/// Private on the profile: berth has to read it from `/user/emails`.
pub const EMAIL: &str = "octo-dev@example.com";
/// The user's repositories, as (name, private); the first has branches.
pub const REPOS: [(&str, bool); 2] = [("hello-berth", false), ("billing-api", true)];
pub const BRANCHES: [&str; 2] = ["main", "release"];
const TOKEN: &str = "gho_e2eFakeToken0123456789abcdefABCDEF";

#[derive(Default)]
struct Inner {
    /// The callback berth must send the browser back to.
    redirect_uri: Option<String>,
    /// Code handed out → the PKCE challenge it was asked with.
    codes: HashMap<String, String>,
    /// "METHOD /path" of every request, in order.
    calls: Vec<String>,
}

#[derive(Clone)]
pub struct FakeGitHub {
    /// Both the web site and the API (GitHub's are two hosts; one is enough).
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

impl FakeGitHub {
    pub async fn start() -> Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let fake = Self {
            url: format!("http://{}", listener.local_addr()?),
            inner: Arc::default(),
        };
        let router = Router::new()
            .route("/login/oauth/authorize", get(authorize))
            .route("/login/oauth/access_token", post(access_token))
            .route("/user", get(user))
            .route("/user/emails", get(emails))
            .route("/user/repos", get(repos))
            .route("/repos/{owner}/{repo}/branches", get(branches))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Ok(fake)
    }

    /// The backend settings that point berth at this fake.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("BERTH_GITHUB_URL", self.url.clone()),
            ("BERTH_GITHUB_API_URL", self.url.clone()),
            ("BERTH_GITHUB_CLIENT_ID", CLIENT_ID.into()),
            ("BERTH_GITHUB_CLIENT_SECRET", CLIENT_SECRET.into()),
        ]
    }

    /// Only this callback is accepted (known once the backend has a port).
    pub fn expect_redirect_uri(&self, uri: &str) {
        self.inner.lock().unwrap().redirect_uri = Some(uri.to_owned());
    }

    /// "METHOD /path" of every request so far, in order.
    pub fn calls(&self) -> Vec<String> {
        self.inner.lock().unwrap().calls.clone()
    }

    fn record(&self, call: String) {
        self.inner.lock().unwrap().calls.push(call);
    }

    /// Records the call; false unless it carries the token it was given.
    fn authorized(&self, call: String, headers: &HeaderMap) -> bool {
        self.record(call);
        let bearer = format!("Bearer {TOKEN}");
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            == Some(bearer.as_str())
    }
}

fn not_acceptable(why: &str) -> Response {
    (StatusCode::BAD_REQUEST, format!("fake GitHub: {why}\n")).into_response()
}

fn bad_credentials() -> Response {
    let body = json!({"message": "Bad credentials",
        "documentation_url": "https://docs.github.com/rest", "status": "401"});
    (StatusCode::UNAUTHORIZED, Json(body)).into_response()
}

/// The user approves berth at once: back to the callback with a code.
async fn authorize(
    State(fake): State<FakeGitHub>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    fake.record("GET /login/oauth/authorize".into());
    let param = |k: &str| query.get(k).map(String::as_str).unwrap_or_default();
    let mut inner = fake.inner.lock().unwrap();
    if param("client_id") != CLIENT_ID {
        return not_acceptable("unknown client_id");
    }
    if inner.redirect_uri.as_deref() != Some(param("redirect_uri")) {
        return not_acceptable("redirect_uri is not the OAuth app's callback");
    }
    if param("code_challenge_method") != "S256" || param("code_challenge").is_empty() {
        return not_acceptable("PKCE with S256 is required");
    }
    let code = uuid::Uuid::new_v4().simple().to_string();
    inner
        .codes
        .insert(code.clone(), param("code_challenge").to_owned());
    let mut back = url::Url::parse(param("redirect_uri")).expect("checked above");
    back.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", param("state"));
    Redirect::to(back.as_str()).into_response()
}

/// GitHub answers 200 with an `error` field when it refuses.
async fn access_token(
    State(fake): State<FakeGitHub>,
    Form(form): Form<HashMap<String, String>>,
) -> Json<Value> {
    fake.record("POST /login/oauth/access_token".into());
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    let mut inner = fake.inner.lock().unwrap();
    let refuse = |error: &str| Json(json!({"error": error}));
    if field("client_id") != CLIENT_ID || field("client_secret") != CLIENT_SECRET {
        return refuse("incorrect_client_credentials");
    }
    if inner.redirect_uri.as_deref() != Some(field("redirect_uri")) {
        return refuse("redirect_uri_mismatch");
    }
    // A code works once, and only with the verifier of its challenge.
    let Some(challenge) = inner.codes.remove(field("code")) else {
        return refuse("bad_verification_code");
    };
    if B64URL.encode(Sha256::digest(field("code_verifier"))) != challenge {
        return refuse("bad_verification_code");
    }
    Json(json!({"access_token": TOKEN, "token_type": "bearer",
        "scope": "repo,read:user,user:email"}))
}

fn owner() -> Value {
    json!({"login": LOGIN, "id": GITHUB_ID, "node_id": "MDQ6VXNlcjEyOTYyNjk=",
        "avatar_url": "https://avatars.githubusercontent.com/u/1296269?v=4",
        "html_url": format!("https://github.com/{LOGIN}"), "type": "User", "site_admin": false})
}

async fn user(State(fake): State<FakeGitHub>, headers: HeaderMap) -> Response {
    if !fake.authorized("GET /user".into(), &headers) {
        return bad_credentials();
    }
    let mut body = owner();
    body["name"] = json!("Octo Dev");
    body["email"] = Value::Null;
    body["public_repos"] = json!(REPOS.len());
    body["created_at"] = json!("2012-03-05T14:07:35Z");
    Json(body).into_response()
}

async fn emails(State(fake): State<FakeGitHub>, headers: HeaderMap) -> Response {
    if !fake.authorized("GET /user/emails".into(), &headers) {
        return bad_credentials();
    }
    Json(json!([
        {"email": "octo-dev@old.example.com", "primary": false, "verified": true, "visibility": null},
        {"email": EMAIL, "primary": true, "verified": true, "visibility": "private"},
    ]))
    .into_response()
}

fn repo(index: usize, name: &str, private: bool) -> Value {
    let full_name = format!("{LOGIN}/{name}");
    json!({"id": 700_000 + index, "node_id": format!("R_kgDO{index:04}"), "name": name,
        "full_name": full_name, "private": private, "owner": owner(),
        "html_url": format!("https://github.com/{full_name}"), "description": null,
        "fork": false, "url": format!("https://api.github.com/repos/{full_name}"),
        "clone_url": format!("https://github.com/{full_name}.git"),
        "ssh_url": format!("git@github.com:{full_name}.git"), "default_branch": "main",
        "visibility": if private { "private" } else { "public" },
        "created_at": "2026-10-01T09:00:00Z", "updated_at": "2026-11-20T09:00:00Z",
        "pushed_at": format!("2026-11-2{}T09:00:00Z", 9 - index)})
}

/// One page (no `Link` header): everything fits in `per_page=100`.
async fn repos(State(fake): State<FakeGitHub>, headers: HeaderMap) -> Response {
    if !fake.authorized("GET /user/repos".into(), &headers) {
        return bad_credentials();
    }
    let items: Vec<Value> = REPOS
        .iter()
        .enumerate()
        .map(|(i, (name, private))| repo(i, name, *private))
        .collect();
    Json(items).into_response()
}

async fn branches(
    State(fake): State<FakeGitHub>,
    Path((owner, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if !fake.authorized(format!("GET /repos/{owner}/{name}/branches"), &headers) {
        return bad_credentials();
    }
    if owner != LOGIN || !REPOS.iter().any(|(n, _)| *n == name) {
        let body = json!({"message": "Not Found", "status": "404"});
        return (StatusCode::NOT_FOUND, Json(body)).into_response();
    }
    let items: Vec<Value> = BRANCHES
        .iter()
        .enumerate()
        .map(|(i, branch)| {
            let sha = format!("{:x}", Sha256::digest(format!("{name}/{branch}")))[..40].to_owned();
            json!({"name": branch, "protected": i == 0, "commit": {"sha": sha,
                "url": format!("https://api.github.com/repos/{owner}/{name}/commits/{sha}")}})
        })
        .collect();
    Json(items).into_response()
}
