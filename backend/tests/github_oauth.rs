//! Signing in with GitHub, linking it, listing repositories and branches,
//! and cloning with the linked token: against a local server that speaks
//! GitHub's OAuth and REST API.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use berth_backend::github_api::OAuthApp;
use berth_backend::github_api::ReqwestGitHub;
use berth_backend::state::ApiSettings;
use berth_common::testing::fake_github::{CLIENT_ID, CLIENT_SECRET};
use berth_proto::{Binding, BuildRequested, Envelope, Sealed};
use common::fake_github::FakeGitHub;
use common::fake_github::{EMAIL, GITHUB_ID};
use common::fake_logs::FakeLogs;
use common::{id_of, Response, TestApp};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

const PUBLIC_URL: &str = "https://berth.example.com";
const TOKEN: &str = "gho_16C7e42F292c6912E7710c838347Ae178B4a";

async fn berth() -> (TestApp, FakeGitHub) {
    let fake = FakeGitHub::start(TOKEN).await;
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

/// A started GitHub sign-in: the authorize URL, and the cookie `start` gave
/// the browser (`name=value`, as a `Cookie` header sends it back).
struct Started {
    url: String,
    cookie: Option<String>,
}

impl Started {
    fn state(&self) -> String {
        query_of(&self.url)["state"].clone()
    }
}

/// The `Set-Cookie` line of a response for the cookie whose name ends in
/// `name`.
fn set_cookie_line(response: &Response, name: &str) -> Option<String> {
    response
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|value| value.to_str().unwrap())
        .find(|set| set.split('=').next().unwrap_or("").ends_with(name))
        .map(str::to_owned)
}

/// The `name=value` of that cookie, as a `Cookie` header sends it back.
fn cookie_set(response: &Response, name: &str) -> Option<String> {
    set_cookie_line(response, name).map(|set| set.split(';').next().unwrap().to_owned())
}

async fn start_flow(app: &TestApp, bearer: Option<&str>, query: &str) -> Started {
    let uri = format!("/api/v1/auth/github/start{query}");
    let started = app.call(Method::GET, &uri, bearer, None).await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.body);
    Started {
        url: started.body["url"].as_str().unwrap().to_owned(),
        cookie: cookie_set(&started, "berth_oauth"),
    }
}

fn query_of(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// GitHub sends the browser back, with the cookies it holds.
async fn callback_with(app: &TestApp, code: &str, state: &str, cookie: Option<&str>) -> Response {
    let uri = format!("/api/v1/auth/github/callback?code={code}&state={state}");
    let mut request = Request::builder().method(Method::GET).uri(uri);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    app.send(request.body(Body::empty()).unwrap()).await
}

/// The callback in the browser that started `started`.
async fn finish(app: &TestApp, code: &str, started: &Started) -> Response {
    callback_with(app, code, &started.state(), started.cookie.as_deref()).await
}

/// The whole sign-in flow: the callback's answer.
async fn sign_in(app: &TestApp, fake: &FakeGitHub) -> Response {
    let started = start_flow(app, None, "").await;
    let code = fake.authorize(&started.url);
    finish(app, &code, &started).await
}

const PASSWORD: &str = "correct horse battery";

/// `POST /auth/github/link` as `bearer` with `body`.
async fn start_link(app: &TestApp, bearer: &str, body: Value) -> Response {
    app.call(
        Method::POST,
        "/api/v1/auth/github/link",
        Some(bearer),
        Some(body),
    )
    .await
}

/// Links GitHub to `bearer`'s account (with `body`'s password and mode),
/// the whole flow: the callback's answer.
async fn link_with(app: &TestApp, fake: &FakeGitHub, bearer: &str, body: Value) -> Response {
    let started = start_link(app, bearer, body).await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.body);
    let flow = Started {
        url: started.body["url"].as_str().unwrap().to_owned(),
        cookie: cookie_set(&started, "berth_oauth"),
    };
    assert!(
        flow.cookie.is_some(),
        "the link's start sets the flow cookie"
    );
    let code = fake.authorize(&flow.url);
    finish(app, &code, &flow).await
}

async fn link(app: &TestApp, fake: &FakeGitHub, bearer: &str) -> Response {
    link_with(app, fake, bearer, json!({"current_password": PASSWORD})).await
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
    let started = start_flow(&app, None, "").await;
    let url = started.url.clone();
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

    let signed_in = finish(&app, &code, &started).await;
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
    let reused = finish(&app, &code, &started).await;
    reused.assert_problem(StatusCode::BAD_REQUEST, "bad-request");

    // Signing in again is the same account.
    let again = access_token(&sign_in(&app, &fake).await);
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

/// `GET /auth/github/start?browser=true`, as the web UI does.
async fn start_in_browser(app: &TestApp) -> Started {
    start_flow(app, None, "?browser=true").await
}

#[tokio::test]
async fn a_browser_sign_in_ends_at_the_ui_with_the_session_cookie() {
    let (app, fake) = berth().await;
    let started = start_in_browser(&app).await;
    let code = fake.authorize(&started.url);
    let signed_in = finish(&app, &code, &started).await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.body
    );
    assert_eq!(signed_in.headers["location"], format!("{PUBLIC_URL}/"));
    let cookie = set_cookie_line(&signed_in, "berth_refresh").expect("the session cookie");
    // Over https the session cookie is `__Host-` prefixed (L5).
    assert!(cookie.starts_with("__Host-berth_refresh="), "{cookie}");
    for part in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/;"] {
        assert!(format!("{cookie};").contains(part), "{part} in {cookie}");
    }
    // The flow's cookie is spent.
    let flow = set_cookie_line(&signed_in, "berth_oauth").expect("the flow cookie removed");
    assert!(flow.contains("Max-Age=0"), "{flow}");
    assert!(!cookie.contains(TOKEN) && !signed_in.body.to_string().contains(TOKEN));
    assert_eq!(count(&app, "SELECT count(*) FROM refresh_tokens").await, 1);

    // A failure after the state is known goes back to the UI with the reason.
    let started = start_in_browser(&app).await;
    let refused = finish(&app, "a-code-github-never-gave", &started).await;
    assert_eq!(refused.status, StatusCode::SEE_OTHER);
    let location = refused.headers["location"].to_str().unwrap();
    assert!(
        location.starts_with(&format!("{PUBLIC_URL}/sign-in?error=GitHub+refused")),
        "{location}"
    );
    assert!(set_cookie_line(&refused, "berth_refresh").is_none());
}

#[tokio::test]
async fn a_state_berth_did_not_make_is_refused_before_asking_github() {
    let (app, fake) = berth().await;
    let started = start_flow(&app, None, "").await;
    let code = fake.authorize(&started.url);
    let forged = callback_with(
        &app,
        &code,
        "bm90LXRoZS1zdGF0ZS1iZXJ0aC1tYWRlLWF0LWFsbC0w",
        started.cookie.as_deref(),
    )
    .await;
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
    let started = start_flow(&app, None, "").await;
    sqlx::query("UPDATE oauth_states SET expires_at = now() - interval '1 second'")
        .execute(app.pool())
        .await
        .unwrap();
    let code = fake.authorize(&started.url);
    finish(&app, &code, &started)
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "bad-request");
    assert_eq!(fake.token_requests(), 0);
}

/// H4: the state alone is not enough. Login CSRF: someone starts a
/// sign-in, approves it with their own GitHub and sends the callback link
/// to a victim, whose browser would sign in to the sender's account. The
/// victim's browser does not hold the cookie `start` gave the sender's.
#[tokio::test]
async fn a_callback_without_the_starting_browsers_cookie_is_refused() {
    let (app, fake) = berth().await;
    for query in ["", "?browser=true"] {
        // The victim's browser: no cookie, or the one of its own sign-in.
        let victims = start_flow(&app, None, query).await;
        for cookie in [None, victims.cookie.as_deref()] {
            let attackers = start_flow(&app, None, query).await;
            let code = fake.authorize(&attackers.url);
            let refused = callback_with(&app, &code, &attackers.state(), cookie).await;
            refused.assert_problem(StatusCode::BAD_REQUEST, "bad-request");
            assert!(cookie_set(&refused, "berth_refresh").is_none());
        }
    }
    assert_eq!(fake.token_requests(), 0, "GitHub was not asked");
    assert_eq!(count(&app, "SELECT count(*) FROM github_accounts").await, 0);
    assert_eq!(count(&app, "SELECT count(*) FROM users").await, 0);
    assert_eq!(count(&app, "SELECT count(*) FROM refresh_tokens").await, 0);
}

#[tokio::test]
async fn a_signed_in_user_links_github_and_nobody_else_can_take_it() {
    let (app, fake) = berth().await;
    let alice = app.token("alice").await;
    let alice_id = id_of(&app.get("/api/v1/me", &alice).await.body);
    let linked = link(&app, &fake, &alice).await;
    assert_eq!(linked.status, StatusCode::OK, "{}", linked.body);
    assert_eq!(linked.body, json!({"github_login": "Codertocat"}));
    assert_eq!(stored_token(&app).await.0, alice_id);
    assert_eq!(count(&app, "SELECT count(*) FROM users").await, 1);
    assert!(actions(&app)
        .await
        .contains(&"auth.github_linked".to_owned()));

    // Signing in with GitHub now signs alice in.
    let again = access_token(&sign_in(&app, &fake).await);
    assert_eq!(id_of(&app.get("/api/v1/me", &again).await.body), alice_id);

    let bob = app.token("bob").await;
    let taken = link(&app, &fake, &bob).await;
    taken.assert_problem(StatusCode::CONFLICT, "conflict");
    assert_eq!(stored_token(&app).await.0, alice_id);
}

/// H4: a link's callback hands out no session: the browser that started
/// it has one, and a leaked link state must not sign anyone in to the
/// linking account. The web UI's flow goes back to the account page.
#[tokio::test]
async fn a_link_issues_no_session_and_the_browser_goes_back_to_the_account() {
    let (app, fake) = berth().await;
    let alice = app.token("alice").await;
    let before = count(&app, "SELECT count(*) FROM refresh_tokens").await;
    let body = json!({"current_password": PASSWORD, "browser": true});
    let linked = link_with(&app, &fake, &alice, body).await;
    assert_eq!(linked.status, StatusCode::SEE_OTHER, "{}", linked.body);
    assert_eq!(
        linked.headers["location"],
        format!("{PUBLIC_URL}/account?github=linked")
    );
    assert!(cookie_set(&linked, "berth_refresh").is_none());
    assert!(linked.body.get("access_token").is_none(), "{}", linked.body);
    assert_eq!(count(&app, "SELECT count(*) FROM github_accounts").await, 1);
    assert_eq!(
        count(&app, "SELECT count(*) FROM refresh_tokens").await,
        before,
        "no session was made"
    );

    // The API client's flow answers the login, not tokens.
    sqlx::query("DELETE FROM github_accounts")
        .execute(app.pool())
        .await
        .unwrap();
    let linked = link(&app, &fake, &alice).await;
    assert_eq!(linked.body, json!({"github_login": "Codertocat"}));
    assert!(cookie_set(&linked, "berth_refresh").is_none());
    assert_eq!(
        count(&app, "SELECT count(*) FROM refresh_tokens").await,
        before
    );
}

/// M1: a stolen access token alone cannot link the thief's GitHub (which
/// would open the account for good), nor replace a link.
#[tokio::test]
async fn linking_needs_the_password_and_never_replaces_a_link() {
    let (app, fake) = berth().await;
    let alice = app.token("alice").await;
    for body in [json!({}), json!({"current_password": "not the password"})] {
        let refused = start_link(&app, &alice, body).await;
        refused.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
        assert_eq!(refused.invalid_fields(), ["current_password"]);
    }
    // The old way (a bearer on the sign-in start) does not link either.
    app.call(Method::GET, "/api/v1/auth/github/start", Some(&alice), None)
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "bad-request");
    assert_eq!(count(&app, "SELECT count(*) FROM oauth_states").await, 0);

    let linked = link(&app, &fake, &alice).await;
    assert_eq!(linked.status, StatusCode::OK, "{}", linked.body);
    let again = start_link(&app, &alice, json!({"current_password": PASSWORD})).await;
    again.assert_problem(StatusCode::CONFLICT, "conflict");
    assert!(again.body["detail"].as_str().unwrap().contains("unlink"));
    app.call(Method::DELETE, "/api/v1/me/github", Some(&alice), None)
        .await;
    let relinked = link(&app, &fake, &alice).await;
    assert_eq!(relinked.status, StatusCode::OK, "{}", relinked.body);
}

/// M1: an account made by GitHub sign-in has no password to confirm with:
/// changing its address or deleting it needs a session that signed in
/// (with GitHub) within the last minutes; a refresh does not count.
#[tokio::test]
async fn a_github_only_account_needs_a_recent_sign_in_for_email_and_deletion() {
    let (app, fake) = berth().await;
    let signed_in = sign_in(&app, &fake).await;
    let token = access_token(&signed_in);
    let patch = json!({"email": "new@example.com"});
    let fresh = app
        .call(
            Method::PATCH,
            "/api/v1/me",
            Some(&token),
            Some(patch.clone()),
        )
        .await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.body);

    // The session signed in ten minutes ago, and refreshed since.
    sqlx::query("UPDATE refresh_tokens SET signed_in_at = now() - interval '10 minutes'")
        .execute(app.pool())
        .await
        .unwrap();
    let body = json!({"refresh_token": signed_in.body["refresh_token"]});
    let refreshed = app
        .call(Method::POST, "/api/v1/auth/refresh", None, Some(body))
        .await;
    let token = access_token(&refreshed);
    let patch = json!({"email": "attacker@example.com"});
    let stale = app
        .call(Method::PATCH, "/api/v1/me", Some(&token), Some(patch))
        .await;
    stale.assert_problem(StatusCode::FORBIDDEN, "recent-sign-in-required");
    assert!(stale.body["detail"].as_str().unwrap().contains("GitHub"));
    let delete = json!({"confirm": "codertocat"});
    let body = Some(delete.clone());
    app.call(Method::DELETE, "/api/v1/me", Some(&token), body)
        .await
        .assert_problem(StatusCode::FORBIDDEN, "recent-sign-in-required");
    assert_eq!(
        app.get("/api/v1/me", &token).await.body["email"],
        "new@example.com"
    );

    // Signing in with GitHub again is the recent sign-in.
    let again = access_token(&sign_in(&app, &fake).await);
    let deleted = app
        .call(Method::DELETE, "/api/v1/me", Some(&again), Some(delete))
        .await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED, "{}", deleted.body);
}

#[tokio::test]
async fn unlinking_github_needs_a_password_and_deletes_the_token() {
    let (app, fake) = berth().await;
    // An account made by GitHub sign-in has no password: unlinking would
    // lock it out.
    let made = access_token(&sign_in(&app, &fake).await);
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
    let linked = link(&app, &fake, &alice).await;
    assert_eq!(linked.status, StatusCode::OK, "{}", linked.body);
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

    let token = access_token(&sign_in(&app, &fake).await);
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
    assert_eq!(first["pushed_at"], "2026-11-29T09:00:00Z");
    assert!(first.get("owner").is_none());
    let pages = fake
        .oauth
        .calls()
        .iter()
        .filter(|call| *call == "GET /user/repos")
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
    let token = access_token(&sign_in(&app, &fake).await);
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

/// M1: linking GitHub is mailed to the account's address, where its owner
/// hears of a link they did not make.
#[tokio::test]
async fn the_account_address_is_mailed_when_github_is_linked() {
    let (app, fake) = berth().await;
    let app = app.with_mailer(Arc::new(common::mailbox::smtp_mailer()));
    let name = format!("linker-{}", &Uuid::new_v4().simple().to_string()[..12]);
    let email = format!("{name}@example.com");
    let tokens = app.signup_by_mail(&name, &email).await;
    let access = tokens["access_token"].as_str().unwrap();
    let linked = link(&app, &fake, access).await;
    assert_eq!(linked.status, StatusCode::OK, "{}", linked.body);
    let mail = common::mailbox::wait_for_message(&email, 2).await;
    assert_eq!(mail.subject, "GitHub was linked to your berth account");
    assert!(mail.body.contains("Codertocat"), "{}", mail.body);
    assert!(mail.body.contains(&name), "{}", mail.body);
}
