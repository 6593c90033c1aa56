//! Accounts and sessions against a real PostgreSQL.

mod common;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use common::TestApp;
use serde_json::json;

#[tokio::test]
async fn register_log_in_by_username_or_email_and_read_me() {
    let app = TestApp::new().await;
    let response = app
        .call(
            Method::POST,
            "/api/v1/auth/register",
            None,
            Some(json!({"username": "alice", "email": "Alice@Example.com", "password": "correct horse battery"})),
        )
        .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
    assert_eq!(response.body["username"], "alice");
    assert!(response.body.get("password_hash").is_none());
    let user_id = response.body["id"].clone();

    for login in ["alice", "alice@example.com"] {
        let response = app
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"login": login, "password": "correct horse battery"})),
            )
            .await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.body);
        assert_eq!(response.body["token_type"], "Bearer");
        assert_eq!(response.body["expires_in"], 900);
        let token = response.body["access_token"].as_str().unwrap();
        let me = app.get("/api/v1/me", token).await;
        assert_eq!(me.status, StatusCode::OK);
        assert_eq!(me.body["id"], user_id);
    }
    let stored: String = sqlx::query_scalar("SELECT password_hash FROM users")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert!(stored.starts_with("$argon2id$"));
}

#[tokio::test]
async fn registration_is_validated_and_names_are_unique() {
    let app = TestApp::new().await;
    let response = app
        .call(
            Method::POST,
            "/api/v1/auth/register",
            None,
            Some(json!({"username": "Not_A_Label", "email": "nope", "password": "short"})),
        )
        .await;
    response.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(response.invalid_fields(), ["username", "email", "password"]);

    app.signup("bob").await;
    let again = app
        .call(
            Method::POST,
            "/api/v1/auth/register",
            None,
            Some(json!({"username": "bob", "email": "other@example.com", "password": "correct horse battery"})),
        )
        .await;
    again.assert_problem(StatusCode::CONFLICT, "conflict");
    assert_eq!(again.invalid_fields(), ["username"]);
    let same_email = app
        .call(
            Method::POST,
            "/api/v1/auth/register",
            None,
            Some(json!({"username": "bobby", "email": "BOB@example.com", "password": "correct horse battery"})),
        )
        .await;
    same_email.assert_problem(StatusCode::CONFLICT, "conflict");
    assert_eq!(same_email.invalid_fields(), ["email"]);
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_get_the_same_answer() {
    let app = TestApp::new().await;
    app.signup("carol").await;
    let wrong_password = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"login": "carol", "password": "not the password"})),
        )
        .await;
    let unknown_user = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"login": "nobody", "password": "not the password"})),
        )
        .await;
    wrong_password.assert_problem(StatusCode::UNAUTHORIZED, "invalid-credentials");
    assert_eq!(wrong_password.status, unknown_user.status);
    assert_eq!(wrong_password.body, unknown_user.body);
    assert_eq!(
        wrong_password.headers[header::WWW_AUTHENTICATE],
        unknown_user.headers[header::WWW_AUTHENTICATE]
    );
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_token_revokes_its_family() {
    let app = TestApp::new().await;
    let first = app.signup("dave").await;
    let r1 = first["refresh_token"].as_str().unwrap();
    let refresh = |token: String| {
        let app = &app;
        async move {
            app.call(
                Method::POST,
                "/api/v1/auth/refresh",
                None,
                Some(json!({ "refresh_token": token })),
            )
            .await
        }
    };
    let second = refresh(r1.to_owned()).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    let r2 = second.body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r2, r1);
    let me = app
        .get("/api/v1/me", second.body["access_token"].as_str().unwrap())
        .await;
    assert_eq!(me.body["username"], "dave");

    // r1 was rotated away: using it again is refused and revokes r2 too.
    refresh(r1.to_owned())
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    refresh(r2)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    refresh("made-up".into())
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM refresh_tokens WHERE revoked_at IS NULL")
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(stored, 0);
}

#[tokio::test]
async fn logout_revokes_the_refresh_token() {
    let app = TestApp::new().await;
    let tokens = app.signup("erin").await;
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    let logout = app
        .call(
            Method::POST,
            "/api/v1/auth/logout",
            None,
            Some(json!({ "refresh_token": refresh_token })),
        )
        .await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    app.call(
        Method::POST,
        "/api/v1/auth/refresh",
        None,
        Some(json!({ "refresh_token": refresh_token })),
    )
    .await
    .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
}

/// M2: ending a session ends its access tokens at once, not when they
/// expire: logging out, and signing a session out from the session list.
#[tokio::test]
async fn an_ended_sessions_access_token_stops_working_at_once() {
    let app = TestApp::new().await;
    let tokens = app.signup("erin").await;
    let access = tokens["access_token"].as_str().unwrap();
    let other = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"login": "erin", "password": "correct horse battery"})),
        )
        .await
        .body;
    let other_access = other["access_token"].as_str().unwrap();
    assert_eq!(app.get("/api/v1/me", access).await.status, StatusCode::OK);
    let ticket = app.post("/api/v1/ws-tickets", access, json!({})).await.body["ticket"]
        .as_str()
        .unwrap()
        .to_owned();

    let logout = app
        .call(
            Method::POST,
            "/api/v1/auth/logout",
            None,
            Some(json!({ "refresh_token": tokens["refresh_token"] })),
        )
        .await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    app.get("/api/v1/me", access)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    app.post("/api/v1/ws-tickets", access, json!({}))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    // A ticket the session got before belongs to it and ended with it.
    let uri = format!("/api/v1/events?ticket={ticket}");
    app.call(Method::GET, &uri, None, None)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    // The other session goes on, until it is signed out from the list.
    let sessions = app.get("/api/v1/me/sessions", other_access).await;
    assert_eq!(sessions.status, StatusCode::OK, "{}", sessions.body);
    let id = sessions.body[0]["id"].as_str().unwrap().to_owned();
    let uri = format!("/api/v1/me/sessions/{id}");
    let ended = app
        .call(Method::DELETE, &uri, Some(other_access), None)
        .await;
    assert_eq!(ended.status, StatusCode::NO_CONTENT, "{}", ended.body);
    app.get("/api/v1/me", other_access)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn missing_or_invalid_tokens_answer_401_with_www_authenticate() {
    let app = TestApp::new().await;
    for token in [None, Some("not-a-jwt")] {
        let response = app.call(Method::GET, "/api/v1/me", token, None).await;
        response.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
        assert!(response.headers[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Bearer"));
    }
    let basic = Request::get("/api/v1/apps")
        .header(header::AUTHORIZATION, "Basic YTpi")
        .body(Body::empty())
        .unwrap();
    app.send(basic)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn unreadable_requests_are_problems_too() {
    let app = TestApp::new().await;
    let malformed = Request::post("/api/v1/auth/login")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{\"login\": "))
        .unwrap();
    let response = app.send(malformed).await;
    response.assert_problem(StatusCode::BAD_REQUEST, "bad-request");
    assert!(response.body["detail"].as_str().unwrap().contains("JSON"));

    let missing = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"login": "x"})),
        )
        .await;
    missing.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(missing.invalid_fields(), ["password"]);

    let wrong_type = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"login": "x", "password": 5})),
        )
        .await;
    wrong_type.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(wrong_type.invalid_fields(), ["password"]);

    let not_json = Request::post("/api/v1/auth/login")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("hi"))
        .unwrap();
    app.send(not_json)
        .await
        .assert_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type");

    app.call(Method::GET, "/api/v1/nothing-here", None, None)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "no-such-route");
    app.call(Method::DELETE, "/api/v1/auth/login", None, None)
        .await
        .assert_problem(StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed");
}
