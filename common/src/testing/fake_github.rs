//! A fake of GitHub's sign-in, for the backend's tests and the end-to-end
//! suite alike: the OAuth web flow with PKCE and the REST endpoints berth
//! reads with the user's token (`/user`, `/user/emails`, `/user/repos`, a
//! repository's branches), with payloads shaped like GitHub's documented
//! ones and its `Link` pagination. It remembers every call.
//!
//! The authorization step comes two ways: over HTTP
//! (`GET /login/oauth/authorize` approves at once and redirects back, for a
//! real browser), or played by the test ([`FakeGitHubOAuth::authorize`]).
//! The token exchange checks the client, that the code is used once, the
//! redirect URI it was issued for, and the PKCE verifier. Serve it alone
//! ([`FakeGitHubOAuth::start`]) or merge [`FakeGitHubOAuth::router`] into a
//! bigger fake that shares its port (the backend's adds hooks and statuses).

use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The OAuth app berth is configured with against this fake.
pub const CLIENT_ID: &str = "Iv1.8a61f9b3a7aba766";
pub const CLIENT_SECRET: &str = "1234567890abcdef1234567890abcdef12345678";

/// The GitHub user who signs in, and what they can see.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: i64,
    pub login: &'static str,
    /// Their verified primary address, private on the profile: berth has
    /// to read it from `/user/emails`.
    pub email: &'static str,
    /// Their repositories, page by page, most recently pushed first, as
    /// (name, private).
    pub repo_pages: Vec<Vec<(&'static str, bool)>>,
    /// The branches of each of those repositories, page by page.
    pub branch_pages: Vec<Vec<&'static str>>,
    /// The token the code is exchanged for; the only one the REST
    /// endpoints accept.
    pub token: String,
}

#[derive(Default)]
struct Inner {
    /// The callback the HTTP authorize step accepts.
    redirect_uri: Option<String>,
    /// Code handed out → (PKCE challenge, redirect URI it was issued for).
    codes: HashMap<String, (String, String)>,
    token_requests: usize,
    /// "METHOD /path" of every request, in order.
    calls: Vec<String>,
}

#[derive(Clone)]
pub struct FakeGitHubOAuth {
    /// Both the web site and the API (GitHub's are two hosts; one is enough).
    pub url: String,
    account: Arc<Account>,
    inner: Arc<Mutex<Inner>>,
}

impl FakeGitHubOAuth {
    /// The fake, to be served at `url` (see [`Self::router`]).
    pub fn new(url: &str, account: Account) -> Self {
        Self {
            url: url.trim_end_matches('/').to_owned(),
            account: Arc::new(account),
            inner: Arc::default(),
        }
    }

    /// Serves the fake alone on a local port.
    pub async fn start(account: Account) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let fake = Self::new(&format!("http://{}", listener.local_addr()?), account);
        let router = fake.router();
        tokio::spawn(async move { axum::serve(listener, router).await });
        Ok(fake)
    }

    /// The fake's endpoints, ready to serve or to merge into another router.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/login/oauth/authorize", get(authorize))
            .route("/login/oauth/access_token", post(access_token))
            .route("/user", get(user))
            .route("/user/emails", get(emails))
            .route("/user/repos", get(repos))
            .route("/repos/{owner}/{repo}/branches", get(branches))
            .with_state(self.clone())
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

    pub fn account(&self) -> &Account {
        &self.account
    }

    /// The only callback the HTTP authorize step accepts (known once the
    /// backend has a port).
    pub fn expect_redirect_uri(&self, uri: &str) {
        self.inner.lock().unwrap().redirect_uri = Some(uri.to_owned());
    }

    /// Plays the user approving berth at `authorize_url`: checks it and
    /// returns the code GitHub would send back.
    pub fn authorize(&self, authorize_url: &str) -> String {
        let url = url::Url::parse(authorize_url).unwrap();
        assert_eq!(url.path(), "/login/oauth/authorize");
        let query: HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(query["client_id"], CLIENT_ID);
        assert_eq!(query["code_challenge_method"], "S256");
        self.issue_code(&query["code_challenge"], &query["redirect_uri"])
    }

    /// How many times berth asked for a token.
    pub fn token_requests(&self) -> usize {
        self.inner.lock().unwrap().token_requests
    }

    /// "METHOD /path" of every request so far, in order.
    pub fn calls(&self) -> Vec<String> {
        self.inner.lock().unwrap().calls.clone()
    }

    fn issue_code(&self, challenge: &str, redirect_uri: &str) -> String {
        let code = format!("code-{}", uuid::Uuid::new_v4().simple());
        let entry = (challenge.to_owned(), redirect_uri.to_owned());
        self.inner.lock().unwrap().codes.insert(code.clone(), entry);
        code
    }

    fn record(&self, call: String) {
        self.inner.lock().unwrap().calls.push(call);
    }

    /// Records the call; false unless it carries the account's token.
    fn authorized(&self, call: String, headers: &HeaderMap) -> bool {
        self.record(call);
        let bearer = format!("Bearer {}", self.account.token);
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
    State(fake): State<FakeGitHubOAuth>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    fake.record("GET /login/oauth/authorize".into());
    let param = |k: &str| query.get(k).map(String::as_str).unwrap_or_default();
    if param("client_id") != CLIENT_ID {
        return not_acceptable("unknown client_id");
    }
    let expected = fake.inner.lock().unwrap().redirect_uri.clone();
    if expected.as_deref() != Some(param("redirect_uri")) {
        return not_acceptable("redirect_uri is not the OAuth app's callback");
    }
    if param("code_challenge_method") != "S256" || param("code_challenge").is_empty() {
        return not_acceptable("PKCE with S256 is required");
    }
    let code = fake.issue_code(param("code_challenge"), param("redirect_uri"));
    let mut back = url::Url::parse(param("redirect_uri")).expect("checked above");
    back.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", param("state"));
    Redirect::to(back.as_str()).into_response()
}

/// GitHub answers 200 with an `error` field when it refuses.
async fn access_token(
    State(fake): State<FakeGitHubOAuth>,
    Form(form): Form<HashMap<String, String>>,
) -> Json<Value> {
    fake.record("POST /login/oauth/access_token".into());
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    let mut inner = fake.inner.lock().unwrap();
    inner.token_requests += 1;
    let refuse = |error: &str| Json(json!({"error": error}));
    if field("client_id") != CLIENT_ID || field("client_secret") != CLIENT_SECRET {
        return refuse("incorrect_client_credentials");
    }
    // A code works once, for the callback it was issued for, and only with
    // the verifier of its challenge.
    let Some((challenge, redirect_uri)) = inner.codes.remove(field("code")) else {
        return refuse("bad_verification_code");
    };
    if field("redirect_uri") != redirect_uri {
        return refuse("redirect_uri_mismatch");
    }
    if B64URL.encode(Sha256::digest(field("code_verifier"))) != challenge {
        return refuse("bad_verification_code");
    }
    Json(
        json!({"access_token": fake.account.token, "token_type": "bearer",
        "scope": "repo,read:user,user:email"}),
    )
}

fn owner(account: &Account) -> Value {
    json!({"login": account.login, "id": account.id, "node_id": "MDQ6VXNlcjEyOTYyNjk=",
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{}?v=4", account.id),
        "html_url": format!("https://github.com/{}", account.login), "type": "User",
        "site_admin": false})
}

async fn user(State(fake): State<FakeGitHubOAuth>, headers: HeaderMap) -> Response {
    if !fake.authorized("GET /user".into(), &headers) {
        return bad_credentials();
    }
    let mut body = owner(&fake.account);
    body["name"] = json!(fake.account.login);
    body["email"] = Value::Null;
    body["public_repos"] = json!(fake.account.repo_pages.iter().flatten().count());
    body["created_at"] = json!("2012-03-05T14:07:35Z");
    Json(body).into_response()
}

async fn emails(State(fake): State<FakeGitHubOAuth>, headers: HeaderMap) -> Response {
    if !fake.authorized("GET /user/emails".into(), &headers) {
        return bad_credentials();
    }
    let old = format!("{}@old.example.com", fake.account.login.to_lowercase());
    Json(json!([
        {"email": old, "primary": false, "verified": true, "visibility": null},
        {"email": fake.account.email, "primary": true, "verified": true, "visibility": "private"},
    ]))
    .into_response()
}

fn page_number(query: &HashMap<String, String>) -> usize {
    query
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1)
}

/// Page `page` of `pages` of `items`, with GitHub's `Link` header: the
/// same URL as asked, with `page=` set.
fn page(fake: &FakeGitHubOAuth, uri: &Uri, page: usize, pages: usize, items: Value) -> Response {
    let mut response = Json(items).into_response();
    let others: Vec<&str> = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("page="))
        .collect();
    let link = |n: usize, rel: &str| {
        let mut query = others.clone();
        let page = format!("page={n}");
        query.push(&page);
        format!(
            "<{}{}?{}>; rel=\"{rel}\"",
            fake.url,
            uri.path(),
            query.join("&")
        )
    };
    let mut links = vec![link(1, "first"), link(pages, "last")];
    if page < pages {
        links.insert(0, link(page + 1, "next"));
    }
    let value = HeaderValue::from_str(&links.join(", ")).unwrap();
    response.headers_mut().insert("link", value);
    response
}

fn repo(account: &Account, index: usize, name: &str, private: bool) -> Value {
    let full_name = format!("{}/{name}", account.login);
    json!({"id": 700_000 + index, "node_id": format!("R_kgDO{index:04}"), "name": name,
        "full_name": full_name, "private": private, "owner": owner(account),
        "html_url": format!("https://github.com/{full_name}"), "description": null,
        "fork": false, "url": format!("https://api.github.com/repos/{full_name}"),
        "clone_url": format!("https://github.com/{full_name}.git"),
        "ssh_url": format!("git@github.com:{full_name}.git"), "default_branch": "main",
        "visibility": if private { "private" } else { "public" },
        "created_at": "2026-10-01T09:00:00Z", "updated_at": "2026-11-20T09:00:00Z",
        "pushed_at": format!("2026-11-{:02}T09:00:00Z", 29 - index.min(27))})
}

async fn repos(
    State(fake): State<FakeGitHubOAuth>,
    Query(query): Query<HashMap<String, String>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if !fake.authorized("GET /user/repos".into(), &headers) {
        return bad_credentials();
    }
    let account = &fake.account;
    let n = page_number(&query);
    let before: usize = account.repo_pages.iter().take(n - 1).map(Vec::len).sum();
    let items: Vec<Value> = account
        .repo_pages
        .get(n - 1)
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, (name, private))| repo(account, before + i, name, *private))
        .collect();
    page(
        &fake,
        &uri,
        n,
        account.repo_pages.len(),
        Value::Array(items),
    )
}

async fn branches(
    State(fake): State<FakeGitHubOAuth>,
    Path((owner, name)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if !fake.authorized(format!("GET /repos/{owner}/{name}/branches"), &headers) {
        return bad_credentials();
    }
    let account = &fake.account;
    let known = account.repo_pages.iter().flatten().any(|(n, _)| *n == name);
    if owner != account.login || !known {
        let body = json!({"message": "Not Found", "status": "404"});
        return (StatusCode::NOT_FOUND, Json(body)).into_response();
    }
    let n = page_number(&query);
    let first = account
        .branch_pages
        .iter()
        .take(n - 1)
        .map(Vec::len)
        .sum::<usize>();
    let items: Vec<Value> = account
        .branch_pages
        .get(n - 1)
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, branch)| {
            let sha = format!("{:x}", Sha256::digest(format!("{name}/{branch}")))[..40].to_owned();
            json!({"name": branch, "protected": first + i == 0, "commit": {"sha": sha,
                "url": format!("https://api.github.com/repos/{owner}/{name}/commits/{sha}")}})
        })
        .collect();
    page(
        &fake,
        &uri,
        n,
        account.branch_pages.len(),
        Value::Array(items),
    )
}
