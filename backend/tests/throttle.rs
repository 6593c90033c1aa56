//! Rate limits and the sign-in backoff, and that neither tells which
//! accounts exist. Against a real PostgreSQL.

mod common;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use berth_backend::credentials::throttle::FREE_FAILURES;
use berth_backend::credentials::tokens::TokenKeys;
use berth_backend::server;
use berth_backend::state::ApiSettings;
use berth_backend::state::AppState;
use common::fake_logs::FakeLogs;
use common::TestApp;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use tower::ServiceExt;

async fn login(app: &TestApp, login: &str, password: &str) -> common::Response {
    let body = json!({"login": login, "password": password});
    app.call(Method::POST, "/api/v1/auth/login", None, Some(body))
        .await
}

/// What a client sees of one answer: status and problem type.
fn seen(response: &common::Response) -> (StatusCode, String) {
    (response.status, response.body["type"].to_string())
}

/// The seconds a 429 says to wait.
fn retry_after(response: &common::Response) -> u64 {
    let value = response.headers[header::RETRY_AFTER].to_str().unwrap();
    value.parse().unwrap()
}

#[tokio::test]
async fn repeated_failures_back_off_alike_for_known_and_unknown_logins() {
    let app = TestApp::new().await;
    app.signup("alice").await;
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..FREE_FAILURES {
        known.push(seen(&login(&app, "alice", "wrong password").await));
        unknown.push(seen(&login(&app, "nobody", "wrong password").await));
    }
    assert!(known
        .iter()
        .all(|(status, _)| *status == StatusCode::UNAUTHORIZED));
    assert_eq!(known, unknown);

    // Blocked now, even with the right password, and told for how long.
    let blocked = login(&app, "alice", "correct horse battery").await;
    blocked.assert_problem(StatusCode::TOO_MANY_REQUESTS, "too-many-requests");
    let retry = retry_after(&blocked);
    assert!(
        (29..=30).contains(&retry),
        "the first block is 30 s: {retry}"
    );
    let unknown_blocked = login(&app, "NOBODY", "whatever").await;
    assert_eq!(
        seen(&unknown_blocked),
        seen(&blocked),
        "no difference to see"
    );

    // L10: the account's email address is the same name to the backoff,
    // so a username and its email do not get two budgets of guesses.
    let by_email = login(&app, "Alice@Example.com", "correct horse battery").await;
    by_email.assert_problem(StatusCode::TOO_MANY_REQUESTS, "too-many-requests");

    // Once the block is over, a success clears the count.
    sqlx::query("UPDATE login_failures SET blocked_until = now()")
        .execute(app.pool())
        .await
        .unwrap();
    assert_eq!(
        login(&app, "alice", "correct horse battery").await.status,
        StatusCode::OK
    );
    let left: Vec<String> = sqlx::query_scalar("SELECT login FROM login_failures")
        .fetch_all(app.pool())
        .await
        .unwrap();
    assert_eq!(left, ["nobody"]);

    // Each further failure doubles the block.
    sqlx::query("UPDATE login_failures SET blocked_until = now()")
        .execute(app.pool())
        .await
        .unwrap();
    login(&app, "nobody", "wrong").await;
    login(&app, "nobody", "wrong").await;
    let blocked = login(&app, "nobody", "wrong").await;
    assert_eq!(blocked.status, StatusCode::TOO_MANY_REQUESTS);
    let retry = retry_after(&blocked);
    assert!(
        (59..=60).contains(&retry),
        "the second block is 60 s: {retry}"
    );
}

#[tokio::test]
async fn login_register_and_reset_are_rate_limited_per_address() {
    let settings = ApiSettings {
        auth_rate_per_minute: 3,
        ..ApiSettings::default()
    };
    let app = TestApp::with(settings, Arc::new(FakeLogs::default())).await;
    for n in 0..3 {
        let body = json!({"username": format!("user{n}"), "email": format!("u{n}@example.com"),
                          "password": "correct horse battery"});
        let response = app
            .call(Method::POST, "/api/v1/auth/register", None, Some(body))
            .await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
    }
    let body = json!({"username": "user3", "email": "u3@example.com", "password": "correct horse battery"});
    let limited = app
        .call(Method::POST, "/api/v1/auth/register", None, Some(body))
        .await;
    limited.assert_problem(StatusCode::TOO_MANY_REQUESTS, "too-many-requests");
    assert!(limited.headers.contains_key(header::RETRY_AFTER));
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE username = 'user3')")
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert!(!exists, "a refused registration does nothing");

    // Login has a budget of its own.
    for _ in 0..3 {
        assert_eq!(
            login(&app, "user0", "correct horse battery").await.status,
            StatusCode::OK
        );
    }
    let limited = login(&app, "user0", "correct horse battery").await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);

    for _ in 0..3 {
        let body = json!({"email": "u0@example.com"});
        app.call(
            Method::POST,
            "/api/v1/auth/password-reset",
            None,
            Some(body),
        )
        .await;
    }
    let body = json!({"email": "u0@example.com"});
    let limited = app
        .call(
            Method::POST,
            "/api/v1/auth/password-reset",
            None,
            Some(body),
        )
        .await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
}

/// A failed login (wrong password for a name nobody has) from `peer`,
/// through `router`: its status.
async fn login_from(router: &Router, peer: &str) -> StatusCode {
    let body = json!({"login": "nobody", "password": "wrong password"});
    let mut request = Request::post("/api/v1/auth/login")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let peer: SocketAddr = peer.parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(peer));
    router.clone().oneshot(request).await.unwrap().status()
}

fn limited(per_minute: u32) -> ApiSettings {
    ApiSettings {
        auth_rate_per_minute: per_minute,
        ..ApiSettings::default()
    }
}

/// M3: the budget is kept where every backend replica sees it. A second
/// backend process over the same database (its own state and router)
/// shares the client's budget with the first.
#[tokio::test]
async fn backends_over_one_database_share_a_clients_budget() {
    let first = TestApp::with(limited(3), Arc::new(FakeLogs::default())).await;
    let keys = TokenKeys::new(uuid::Uuid::new_v4().simple().to_string().as_bytes()).unwrap();
    let state = AppState::new(
        first.pool().clone(),
        common::secret_key(),
        keys,
        Arc::new(FakeLogs::default()),
        limited(3),
    );
    let second = server::app(state, Arc::new(|| true), None);
    let peer = "192.0.2.7:40000";
    for router in [&first.router, &second, &first.router] {
        assert_eq!(login_from(router, peer).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        login_from(&second, peer).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        login_from(&first.router, peer).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        login_from(&second, "192.0.2.8:40000").await,
        StatusCode::UNAUTHORIZED,
        "another address has its own budget"
    );
}

/// M3: an IPv6 client is keyed by its /64, which one subscriber usually
/// holds whole: rotating addresses inside it buys no new budget.
#[tokio::test]
async fn ipv6_clients_share_a_budget_per_64() {
    let app = TestApp::with(limited(2), Arc::new(FakeLogs::default())).await;
    let router = &app.router;
    assert_eq!(
        login_from(router, "[2001:db8::1]:1").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login_from(router, "[2001:db8::2]:1").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login_from(router, "[2001:db8::ffff:1]:1").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        login_from(router, "[2001:db8:0:1::1]:1").await,
        StatusCode::UNAUTHORIZED,
        "the next /64 is another client"
    );
}
