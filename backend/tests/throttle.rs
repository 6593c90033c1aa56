//! Rate limits and the sign-in backoff, and that neither tells which
//! accounts exist. Against a real PostgreSQL.

mod common;

use axum::http::{header, Method, StatusCode};
use berth_backend::auth::throttle::FREE_FAILURES;
use berth_backend::state::ApiSettings;
use common::fake_logs::FakeLogs;
use common::TestApp;
use serde_json::json;
use std::sync::Arc;

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

    // The email address is the same login name for the backoff only when
    // typed as such; each name as typed has its own count.
    assert_eq!(
        login(&app, "alice@example.com", "correct horse battery")
            .await
            .status,
        StatusCode::OK
    );

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
