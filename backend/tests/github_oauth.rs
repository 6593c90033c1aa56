//! Signing in with GitHub, linking it, listing repositories and branches,
//! and cloning with the linked token: against a local server that speaks
//! GitHub's OAuth and REST API.

mod common;

use axum::http::{Method, StatusCode};
use berth_backend::github::types::OAuthApp;
use berth_backend::state::ApiSettings;
use berth_backend::webhooks::github::ReqwestGitHub;
use berth_proto::{Binding, BuildRequested, Envelope, Sealed};
use common::fake_github::FakeGitHub;
use common::fake_github_oauth::{CLIENT_ID, CLIENT_SECRET, EMAIL, GITHUB_ID};
use common::fake_logs::FakeLogs;
use common::{id_of, Response, TestApp};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

const PUBLIC_URL: &str = "https://berth.example.com";
const TOKEN: &str = "gho_16C7e42F292c6912E7710c838347Ae178B4a";

async fn berth() -> (TestApp, FakeGitHub) {
    let fake = FakeGitHub::start("Codertocat", "Hello-World", TOKEN).await;
    let settings = ApiSettings {
        public_url: Some(PUBLIC_URL.into()),
        // The fake GitHub (and so the repository) is on 127.0.0.1: a
        // development setup, where internal hosts are allowed.
        allow_local_repos: true,
        ..ApiSettings::default()
    };
    let github = ReqwestGitHub::new(&fake.url)
        .unwrap()
        .with_oauth(Some(OAuthApp {
            web_url: fake.url.clone(),
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
        }));
    let app = TestApp::with(settings, Arc::new(FakeLogs::default()))
        .await
        .with_github(Arc::new(github));
    (app, fake)
}

/// `GET /auth/github/start`, as `bearer` if given: the authorize URL.
async fn start(app: &TestApp, bearer: Option<&str>) -> String {
    let started = app
        .call(Method::GET, "/api/v1/auth/github/start", bearer, None)
        .await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.body);
    started.body["url"].as_str().unwrap().to_owned()
}

fn query_of(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

async fn callback(app: &TestApp, code: &str, state: &str) -> Response {
    let uri = format!("/api/v1/auth/github/callback?code={code}&state={state}");
    app.call(Method::GET, &uri, None, None).await
}

/// The whole flow, as `bearer` if given: the callback's answer.
async fn sign_in(app: &TestApp, fake: &FakeGitHub, bearer: Option<&str>) -> Response {
    let url = start(app, bearer).await;
    let code = fake.authorize(&url);
    callback(app, &code, &query_of(&url)["state"]).await
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(app.pool()).await.unwrap()
}

async fn actions(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar("SELECT action FROM audit_events ORDER BY created_at, id")
        .fetch_all(app.pool())
        .await
        .unwrap()
}

async fn stored_token(app: &TestApp) -> (Uuid, String, Sealed) {
    let (user_id, raw): (Uuid, Value) =
        sqlx::query_as("SELECT user_id, token_sealed FROM github_accounts")
            .fetch_one(app.pool())
            .await
            .unwrap();
    (
        user_id,
        raw.to_string(),
        serde_json::from_value(raw).unwrap(),
    )
}

fn access_token(response: &Response) -> String {
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    response.body["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn signing_in_creates_an_account_then_signs_it_in_again() {
    let (app, fake) = berth().await;
    let url = start(&app, None).await;
    assert!(url.starts_with(&format!("{}/login/oauth/authorize?", fake.url)));
    let query = query_of(&url);
    assert_eq!(query["client_id"], CLIENT_ID);
    assert_eq!(
        query["redirect_uri"],
        format!("{PUBLIC_URL}/api/v1/auth/github/callback")
    );
    assert_eq!(query["scope"], "repo read:user user:email");
    assert_eq!(query["state"].len(), 43);
    let code = fake.authorize(&url);

    let signed_in = callback(&app, &code, &query["state"]).await;
    let token = access_token(&signed_in);
    assert!(signed_in.body["refresh_token"].is_string());
    let me = app.get("/api/v1/me", &token).await;
    assert_eq!(me.body["username"], "codertocat");
    assert_eq!(me.body["email"], EMAIL, "the private primary email");
    for body in [&signed_in.body, &me.body] {
        assert!(!body.to_string().contains(TOKEN));
    }

    // The token is sealed at rest, and opens with the server's key.
    let (user_id, raw, sealed) = stored_token(&app).await;
    assert_eq!(user_id, id_of(&me.body));
    assert!(!raw.contains(TOKEN));
    let bound = Binding::github_token(user_id);
    assert_eq!(
        app.state.key.open(&bound, &sealed).unwrap(),
        TOKEN.as_bytes()
    );
    let github_id: i64 = sqlx::query_scalar("SELECT github_id FROM github_accounts")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(github_id, GITHUB_ID);

    // The account has no password: a password login cannot reach it.
    let login = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"login": "codertocat", "password": "correct horse battery"})),
        )
        .await;
    login.assert_problem(StatusCode::UNAUTHORIZED, "invalid-credentials");

    // The state worked once.
    let reused = callback(&app, &code, &query["state"]).await;
    reused.assert_problem(StatusCode::BAD_REQUEST, "bad-request");

    // Signing in again is the same account.
    let again = access_token(&sign_in(&app, &fake, None).await);
    let me_again = app.get("/api/v1/me", &again).await;
    assert_eq!(me_again.body["id"], me.body["id"]);
    assert_eq!(count(&app, "SELECT count(*) FROM users").await, 1);
    assert_eq!(
        actions(&app).await,
        [
            "auth.github_login",
            "auth.login_failed",
            "auth.github_login"
        ]
    );
}

/// `GET /auth/github/start?browser=true`: the authorize URL.
async fn start_in_browser(app: &TestApp) -> String {
    let uri = "/api/v1/auth/github/start?browser=true";
    let started = app.call(Method::GET, uri, None, None).await;
    started.body["url"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_browser_sign_in_ends_at_the_ui_with_the_session_cookie() {
    let (app, fake) = berth().await;
    let url = start_in_browser(&app).await;
    let code = fake.authorize(&url);
    let signed_in = callback(&app, &code, &query_of(&url)["state"]).await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.body
    );
    assert_eq!(signed_in.headers["location"], format!("{PUBLIC_URL}/"));
    let cookie = signed_in.headers["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("berth_refresh="), "{cookie}");
    for part in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/api/v1/auth"] {
        assert!(cookie.contains(part), "{part} in {cookie}");
    }
    assert!(!cookie.contains(TOKEN) && !signed_in.body.to_string().contains(TOKEN));
    assert_eq!(count(&app, "SELECT count(*) FROM refresh_tokens").await, 1);

    // A failure after the state is known goes back to the UI with the reason.
    let url = start_in_browser(&app).await;
    let refused = callback(&app, "a-code-github-never-gave", &query_of(&url)["state"]).await;
    assert_eq!(refused.status, StatusCode::SEE_OTHER);
    let location = refused.headers["location"].to_str().unwrap();
    assert!(
        location.starts_with(&format!("{PUBLIC_URL}/sign-in?error=GitHub+refused")),
        "{location}"
    );
    assert!(refused.headers.get("set-cookie").is_none());
}

#[tokio::test]
async fn a_state_berth_did_not_make_is_refused_before_asking_github() {
    let (app, fake) = berth().await;
    let url = start(&app, None).await;
    let code = fake.authorize(&url);
    let forged = callback(&app, &code, "bm90LXRoZS1zdGF0ZS1iZXJ0aC1tYWRlLWF0LWFsbC0w").await;
    forged.assert_problem(StatusCode::BAD_REQUEST, "bad-request");
    let missing = app
        .call(
            Method::GET,
            &format!("/api/v1/auth/github/callback?code={code}"),
            None,
            None,
        )
        .await;
    missing.assert_problem(StatusCode::BAD_REQUEST, "bad-request");
    assert_eq!(fake.token_requests(), 0, "no token was asked for");
    assert_eq!(count(&app, "SELECT count(*) FROM users").await, 0);
    assert_eq!(count(&app, "SELECT count(*) FROM github_accounts").await, 0);

    // An expired state is refused too.
    let url = start(&app, None).await;
    sqlx::query("UPDATE oauth_states SET expires_at = now() - interval '1 second'")
        .execute(app.pool())
        .await
        .unwrap();
    let code = fake.authorize(&url);
    callback(&app, &code, &query_of(&url)["state"])
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "bad-request");
    assert_eq!(fake.token_requests(), 0);
}

#[tokio::test]
async fn a_signed_in_user_links_github_and_nobody_else_can_take_it() {
    let (app, fake) = berth().await;
    let alice = app.token("alice").await;
    let alice_id = id_of(&app.get("/api/v1/me", &alice).await.body);
    let linked = sign_in(&app, &fake, Some(&alice)).await;
    let token = access_token(&linked);
    assert_eq!(id_of(&app.get("/api/v1/me", &token).await.body), alice_id);
    assert_eq!(stored_token(&app).await.0, alice_id);
    assert_eq!(count(&app, "SELECT count(*) FROM users").await, 1);
    assert!(actions(&app)
        .await
        .contains(&"auth.github_linked".to_owned()));

    // Signing in with GitHub now signs alice in.
    let again = access_token(&sign_in(&app, &fake, None).await);
    assert_eq!(id_of(&app.get("/api/v1/me", &again).await.body), alice_id);

    let bob = app.token("bob").await;
    let taken = sign_in(&app, &fake, Some(&bob)).await;
    taken.assert_problem(StatusCode::CONFLICT, "conflict");
    assert_eq!(stored_token(&app).await.0, alice_id);
}

#[tokio::test]
async fn unlinking_github_needs_a_password_and_deletes_the_token() {
    let (app, fake) = berth().await;
    // An account made by GitHub sign-in has no password: unlinking would
    // lock it out.
    let made = access_token(&sign_in(&app, &fake, None).await);
    let me = app.get("/api/v1/me", &made).await;
    assert_eq!(
        (
            me.body["has_password"].clone(),
            me.body["github_login"].clone()
        ),
        (json!(false), json!("Codertocat"))
    );
    let refused = app
        .call(Method::DELETE, "/api/v1/me/github", Some(&made), None)
        .await;
    refused.assert_problem(StatusCode::CONFLICT, "conflict");
    assert_eq!(count(&app, "SELECT count(*) FROM github_accounts").await, 1);

    let alice = app.token("alice").await;
    let none = app
        .call(Method::DELETE, "/api/v1/me/github", Some(&alice), None)
        .await;
    none.assert_problem(StatusCode::NOT_FOUND, "not-found");
    sqlx::query("DELETE FROM github_accounts")
        .execute(app.pool())
        .await
        .unwrap();
    sign_in(&app, &fake, Some(&alice)).await;
    let unlinked = app
        .call(Method::DELETE, "/api/v1/me/github", Some(&alice), None)
        .await;
    assert_eq!(unlinked.status, StatusCode::NO_CONTENT, "{}", unlinked.body);
    assert_eq!(count(&app, "SELECT count(*) FROM github_accounts").await, 0);
    assert_eq!(
        app.get("/api/v1/me", &alice).await.body["github_login"],
        Value::Null
    );
    assert!(actions(&app)
        .await
        .contains(&"account.github_unlink".to_owned()));
}

#[tokio::test]
async fn repositories_and_branches_are_listed_across_pages() {
    let (app, fake) = berth().await;
    let bob = app.token("bob").await;
    app.get("/api/v1/github/repos", &bob)
        .await
        .assert_problem(StatusCode::CONFLICT, "conflict");

    let token = access_token(&sign_in(&app, &fake, None).await);
    let repos = app.get("/api/v1/github/repos", &token).await;
    assert_eq!(repos.status, StatusCode::OK, "{}", repos.body);
    let names: Vec<&str> = repos
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["full_name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "Codertocat/Hello-World",
            "Codertocat/one",
            "Codertocat/two",
            "Codertocat/three",
            "Codertocat/four"
        ]
    );
    let first = &repos.body[0];
    assert_eq!(first["private"], true);
    assert_eq!(first["default_branch"], "main");
    assert_eq!(
        first["clone_url"],
        "https://github.com/Codertocat/Hello-World.git"
    );
    assert_eq!(first["pushed_at"], "2026-11-01T10:00:00Z");
    assert!(first.get("owner").is_none());
    let pages = fake
        .seen()
        .iter()
        .filter(|s| s.path == "/user/repos")
        .count();
    assert_eq!(pages, 3);

    let branches = app
        .get(
            "/api/v1/github/repos/Codertocat/Hello-World/branches",
            &token,
        )
        .await;
    assert_eq!(branches.status, StatusCode::OK, "{}", branches.body);
    let names: Vec<&str> = branches
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["main", "dev"]);
    app.get("/api/v1/github/repos/Codertocat/Nope/branches", &token)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not-found");
    assert!(!repos.body.to_string().contains(TOKEN));

    // GitHub no longer accepts the token.
    let user_id = stored_token(&app).await.0;
    let sealed = app
        .state
        .key
        .seal(&Binding::github_token(user_id), b"gho_revoked");
    sqlx::query("UPDATE github_accounts SET token_sealed = $1")
        .bind(sqlx::types::Json(&sealed))
        .execute(app.pool())
        .await
        .unwrap();
    let revoked = app.get("/api/v1/github/repos", &token).await;
    revoked.assert_problem(StatusCode::CONFLICT, "conflict");
    assert!(revoked.body["detail"].as_str().unwrap().contains("revoked"));
}

async fn build_request(app: &TestApp) -> (String, BuildRequested) {
    let raw: Value = sqlx::query_scalar(
        "SELECT envelope FROM outbox WHERE routing_key = 'berth.builds' ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    let envelope: Envelope = serde_json::from_value(raw.clone()).unwrap();
    (raw.to_string(), envelope.payload().unwrap())
}

#[tokio::test]
async fn builds_of_the_users_github_repositories_carry_the_sealed_token() {
    let (app, fake) = berth().await;
    let token = access_token(&sign_in(&app, &fake, None).await);
    // The fake serves on 127.0.0.1, so that is where the repository is.
    let repo_url = format!("{}/Codertocat/Hello-World.git", fake.url);
    let created = app
        .create_app(&token, json!({"name": "hello", "repo_url": repo_url}))
        .await;
    let uri = format!("/api/v1/apps/{}/deployments", id_of(&created));
    let deployed = app.post(&uri, &token, json!({})).await;
    assert_eq!(deployed.status, StatusCode::ACCEPTED, "{}", deployed.body);
    let (raw, build) = build_request(&app).await;
    assert!(!raw.contains(TOKEN), "never in clear in the queue");
    let sealed = build.source.token.expect("the token goes with the build");
    let app_id = id_of(&created);
    let for_build = Binding::build_token("codertocat", app_id);
    assert_eq!(
        app.state.key.open(&for_build, &sealed).unwrap(),
        TOKEN.as_bytes()
    );
    // Bound to this app's builds: neither the stored token's binding nor
    // another app's opens it.
    let user_id = stored_token(&app).await.0;
    assert!(app
        .state
        .key
        .open(&Binding::github_token(user_id), &sealed)
        .is_err());
    assert!(app
        .state
        .key
        .open(&Binding::build_token("codertocat", Uuid::now_v7()), &sealed)
        .is_err());

    // Another host's repository does not get it.
    let other = app
        .create_app(
            &token,
            json!({"name": "other", "repo_url": "https://gitlab.com/o/r.git"}),
        )
        .await;
    let uri = format!("/api/v1/apps/{}/deployments", id_of(&other));
    assert_eq!(
        app.post(&uri, &token, json!({})).await.status,
        StatusCode::ACCEPTED
    );
    assert!(build_request(&app).await.1.source.token.is_none());
}

#[tokio::test]
async fn sign_in_is_off_when_not_configured() {
    let app = TestApp::new().await;
    app.call(Method::GET, "/api/v1/auth/github/start", None, None)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not-found");
}
