//! The OAuth and read-only parts of the fake GitHub: authorization (the
//! test plays the browser), the token exchange (checking the client, the
//! code, the redirect URI and the PKCE verifier), `/user`, `/user/emails`,
//! `/user/repos` (3 pages) and a repository's branches (2 pages).

use super::fake_github::{answer, Answer, FakeGitHub};
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

pub const CLIENT_ID: &str = "Iv1.8a61f9b3a7aba766";
pub const CLIENT_SECRET: &str = "1234567890abcdef1234567890abcdef12345678";
pub const GITHUB_ID: i64 = 583231;
pub const LOGIN: &str = "Codertocat";
pub const EMAIL: &str = "codertocat@example.com";

#[derive(Default)]
pub struct OAuthState {
    /// code → (code_challenge, redirect_uri)
    codes: HashMap<String, (String, String)>,
    token_requests: usize,
}

pub fn routes() -> Router<FakeGitHub> {
    Router::new()
        .route("/login/oauth/access_token", post(access_token))
        .route("/user", get(user))
        .route("/user/emails", get(emails))
        .route("/user/repos", get(repos))
        .route("/repos/{owner}/{repo}/branches", get(branches))
}

impl FakeGitHub {
    /// Plays the user approving berth at `authorize_url`: checks it and
    /// returns the code GitHub would send back.
    pub fn authorize(&self, authorize_url: &str) -> String {
        let url = url::Url::parse(authorize_url).unwrap();
        assert_eq!(url.path(), "/login/oauth/authorize");
        let query: HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(query["client_id"], CLIENT_ID);
        assert_eq!(query["code_challenge_method"], "S256");
        let code = format!("code-{}", uuid::Uuid::new_v4().simple());
        let entry = (
            query["code_challenge"].clone(),
            query["redirect_uri"].clone(),
        );
        self.inner
            .lock()
            .unwrap()
            .oauth
            .codes
            .insert(code.clone(), entry);
        code
    }

    /// How many times berth asked for a token.
    pub fn token_requests(&self) -> usize {
        self.inner.lock().unwrap().oauth.token_requests
    }

    fn authorized(&self, method: &'static str, path: String, headers: &HeaderMap) -> bool {
        self.record(method, path, headers);
        let bearer = format!("Bearer {}", self.token);
        headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(bearer.as_str())
    }
}

fn bad_credentials() -> Response {
    answer(
        StatusCode::UNAUTHORIZED,
        json!({"message": "Bad credentials"}),
    )
    .into_response()
}

async fn access_token(
    State(fake): State<FakeGitHub>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Answer {
    fake.record("POST", "/login/oauth/access_token".into(), &headers);
    let mut inner = fake.inner.lock().unwrap();
    inner.oauth.token_requests += 1;
    let refuse = |error: &str| answer(StatusCode::OK, json!({"error": error}));
    if form.get("client_id").map(String::as_str) != Some(CLIENT_ID)
        || form.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET)
    {
        return refuse("incorrect_client_credentials");
    }
    let code = form.get("code").cloned().unwrap_or_default();
    // A code works once.
    let Some((challenge, redirect_uri)) = inner.oauth.codes.remove(&code) else {
        return refuse("bad_verification_code");
    };
    if form.get("redirect_uri") != Some(&redirect_uri) {
        return refuse("redirect_uri_mismatch");
    }
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    if B64URL.encode(Sha256::digest(verifier.as_bytes())) != challenge {
        return refuse("bad_verification_code");
    }
    answer(
        StatusCode::OK,
        json!({"access_token": fake.token, "token_type": "bearer", "scope": "repo,read:user,user:email"}),
    )
}

async fn user(State(fake): State<FakeGitHub>, headers: HeaderMap) -> Response {
    if !fake.authorized("GET", "/user".into(), &headers) {
        return bad_credentials();
    }
    // The email is private: berth has to ask /user/emails.
    let body = json!({"id": GITHUB_ID, "login": LOGIN, "email": null, "name": "The Octocat"});
    answer(StatusCode::OK, body).into_response()
}

async fn emails(State(fake): State<FakeGitHub>, headers: HeaderMap) -> Response {
    if !fake.authorized("GET", "/user/emails".into(), &headers) {
        return bad_credentials();
    }
    let body = json!([
        {"email": "old@example.com", "primary": false, "verified": true},
        {"email": EMAIL, "primary": true, "verified": true},
    ]);
    answer(StatusCode::OK, body).into_response()
}

/// Page `page` of `pages`, with GitHub's `Link` header.
fn page(fake: &FakeGitHub, path: &str, page: usize, pages: usize, items: Value) -> Response {
    let mut response = answer(StatusCode::OK, items).into_response();
    let link = |n: usize, rel: &str| format!("<{}{path}&page={n}>; rel=\"{rel}\"", fake.url);
    let mut links = vec![link(1, "first"), link(pages, "last")];
    if page < pages {
        links.insert(0, link(page + 1, "next"));
    }
    let value = HeaderValue::from_str(&links.join(", ")).unwrap();
    response.headers_mut().insert("link", value);
    response
}

fn page_number(query: &HashMap<String, String>) -> usize {
    query.get("page").and_then(|p| p.parse().ok()).unwrap_or(1)
}

/// Five repositories over three pages; the fake's own repository is private.
async fn repos(
    State(fake): State<FakeGitHub>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if !fake.authorized("GET", "/user/repos".into(), &headers) {
        return bad_credentials();
    }
    let n = page_number(&query);
    let (owner, name) = &fake.repo;
    let names: Vec<(String, bool)> = match n {
        1 => vec![(name.clone(), true), ("one".into(), false)],
        2 => vec![("two".into(), false), ("three".into(), false)],
        _ => vec![("four".into(), false)],
    };
    let items: Vec<Value> = names
        .into_iter()
        .map(|(repo, private)| {
            json!({"id": 1, "full_name": format!("{owner}/{repo}"), "private": private,
                   "default_branch": "main", "clone_url": format!("https://github.com/{owner}/{repo}.git"),
                   "pushed_at": "2026-11-01T10:00:00Z", "owner": {"login": owner}})
        })
        .collect();
    page(
        &fake,
        "/user/repos?per_page=100&sort=pushed",
        n,
        3,
        Value::Array(items),
    )
}

async fn branches(
    State(fake): State<FakeGitHub>,
    Path((owner, repo)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/repos/{owner}/{repo}/branches");
    if !fake.authorized("GET", path.clone(), &headers) {
        return bad_credentials();
    }
    if (owner.as_str(), repo.as_str()) != (fake.repo.0.as_str(), fake.repo.1.as_str()) {
        return answer(StatusCode::NOT_FOUND, json!({"message": "Not Found"})).into_response();
    }
    let n = page_number(&query);
    let branch = if n == 1 { "main" } else { "dev" };
    let items =
        json!([{"name": branch, "commit": {"sha": format!("{n:0>40}")}, "protected": false}]);
    page(&fake, &format!("{path}?per_page=100"), n, 2, items)
}
