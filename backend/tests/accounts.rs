//! The account: profile, password change, deletion, and password reset
//! through the local stack's real SMTP sink. Against a real PostgreSQL.

mod common;

use axum::http::{Method, StatusCode};
use berth_backend::state::ApiSettings;
use common::fake_logs::FakeLogs;
use common::mailbox::{smtp_mailer, token_in, wait_for_message};
use common::{id_of, TestApp};
use serde_json::{json, Value};
use std::sync::Arc;
use uuid::Uuid;

const PASSWORD: &str = "correct horse battery";

/// A username no other test (or earlier run) shares, so its mail is its own.
fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &Uuid::new_v4().simple().to_string()[..12])
}

async fn login(app: &TestApp, login: &str, password: &str) -> common::Response {
    let body = json!({"login": login, "password": password});
    app.call(Method::POST, "/api/v1/auth/login", None, Some(body))
        .await
}

async fn refresh(app: &TestApp, tokens: &Value) -> StatusCode {
    let body = json!({"refresh_token": tokens["refresh_token"]});
    app.call(Method::POST, "/api/v1/auth/refresh", None, Some(body))
        .await
        .status
}

fn access(tokens: &Value) -> &str {
    tokens["access_token"].as_str().unwrap()
}

async fn actions(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar("SELECT action FROM audit_events ORDER BY id")
        .fetch_all(app.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn the_profile_is_read_and_updated() {
    let app = TestApp::new().await;
    let token = app.token("alice").await;
    let me = app.get("/api/v1/me", &token).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(me.body["username"], "alice");
    assert_eq!(me.body["email"], "alice@example.com");
    assert_eq!(me.body["display_name"], Value::Null);
    assert_eq!(me.body["has_password"], true);
    assert_eq!(me.body["github_login"], Value::Null);

    let patch = |body: Value| app.call(Method::PATCH, "/api/v1/me", Some(&token), Some(body));
    let named = patch(json!({"display_name": "  Alice Liddell "})).await;
    assert_eq!(named.status, StatusCode::OK, "{}", named.body);
    assert_eq!(named.body["display_name"], "Alice Liddell");

    // A new address needs the current password.
    let refused = patch(json!({"email": "new@example.com"})).await;
    assert_eq!(refused.invalid_fields(), ["current_password"]);
    let wrong = patch(json!({"email": "new@example.com", "current_password": "nope"})).await;
    assert_eq!(wrong.invalid_fields(), ["current_password"]);
    // Without mail there is nothing to confirm with: the change is at once.
    let moved = patch(json!({"email": "new@example.com", "current_password": PASSWORD})).await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.body);
    assert_eq!(moved.body["email"], "new@example.com");
    assert_eq!(moved.body["display_name"], "Alice Liddell", "untouched");
    assert_eq!(
        login(&app, "new@example.com", PASSWORD).await.status,
        StatusCode::OK
    );

    let invalid = patch(json!({"email": "not an address", "display_name": "a\u{7}b"})).await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(invalid.invalid_fields(), ["email", "display_name"]);

    app.token("bob").await;
    let taken = patch(json!({"email": "bob@example.com", "current_password": PASSWORD})).await;
    taken.assert_problem(StatusCode::CONFLICT, "conflict");

    let cleared = patch(json!({"display_name": null})).await;
    assert_eq!(cleared.body["display_name"], Value::Null);
    let details: Vec<Value> = sqlx::query_scalar(
        "SELECT details FROM audit_events WHERE action = 'account.update' ORDER BY id",
    )
    .fetch_all(app.pool())
    .await
    .unwrap();
    assert_eq!(details[0], json!({"changed": ["display_name"]}));
    assert_eq!(details[1], json!({"changed": ["email"]}));
    assert!(
        !details
            .iter()
            .any(|d| d.to_string().contains("new@example.com")),
        "values stay out of the audit log"
    );
}

#[tokio::test]
async fn changing_the_password_ends_every_other_session() {
    let app = TestApp::new().await;
    let first = app.signup("carol").await;
    let second = login(&app, "carol", PASSWORD).await.body;
    assert_eq!(
        app.get("/api/v1/me", access(&second)).await.status,
        StatusCode::OK
    );

    let change = |current: &str| {
        let body = json!({"current_password": current, "new_password": "a brand new passphrase"});
        app.call(
            Method::PUT,
            "/api/v1/me/password",
            Some(access(&first)),
            Some(body),
        )
    };
    let wrong = change("not it").await;
    assert_eq!(wrong.invalid_fields(), ["current_password"]);
    let changed = change(PASSWORD).await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);

    for old in [&first, &second] {
        let me = app.get("/api/v1/me", access(old)).await;
        me.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
        assert_eq!(refresh(&app, old).await, StatusCode::UNAUTHORIZED);
    }
    // The answer is the one session left.
    assert_eq!(
        app.get("/api/v1/me", access(&changed.body)).await.status,
        StatusCode::OK
    );
    assert_eq!(refresh(&app, &changed.body).await, StatusCode::OK);
    assert_eq!(
        login(&app, "carol", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login(&app, "carol", "a brand new passphrase").await.status,
        StatusCode::OK
    );
    assert!(actions(&app)
        .await
        .contains(&"account.password_change".to_owned()));
}

#[tokio::test]
async fn a_password_is_reset_with_the_emailed_token_once() {
    let settings = ApiSettings {
        public_url: Some("https://berth.example.com".into()),
        ..ApiSettings::default()
    };
    let app = TestApp::with(settings, Arc::new(FakeLogs::default()))
        .await
        .with_mailer(Arc::new(smtp_mailer()));
    let username = unique("dora");
    let email = format!("{username}@example.com");
    let session = app.signup_by_mail(&username, &email).await;

    let ask = |address: String| {
        app.call(
            Method::POST,
            "/api/v1/auth/password-reset",
            None,
            Some(json!({"email": address})),
        )
    };
    let known = ask(email.to_uppercase()).await;
    let unknown = ask(format!("nobody-{username}@example.com")).await;
    assert_eq!(known.status, StatusCode::ACCEPTED, "{}", known.body);
    assert_eq!(
        (unknown.status, &unknown.body),
        (known.status, &known.body),
        "same answer"
    );

    let mail = wait_for_message(&email, 2).await;
    assert_eq!(mail.subject, "Reset your berth password");
    assert_eq!(mail.from, "berth <berth@localhost>");
    assert!(mail.body.contains(&username), "{}", mail.body);
    let token = token_in(&mail);
    let link = format!("https://berth.example.com/reset-password#token={token}");
    assert!(mail.body.contains(&link), "{}", mail.body);
    assert_eq!(token.len(), 43, "32 random bytes, base64url: {token}");
    // A second ask within the minute sends nothing more.
    assert_eq!(ask(email.clone()).await.status, StatusCode::ACCEPTED);
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("SELECT token_hash FROM password_resets")
        .fetch_all(app.pool())
        .await
        .unwrap();
    assert_eq!(stored.len(), 1, "one token, stored hashed");
    assert_ne!(stored[0], token.as_bytes());

    let confirm = |token: &str, password: &str| {
        let body = json!({"token": token, "new_password": password});
        app.call(
            Method::POST,
            "/api/v1/auth/password-reset/confirm",
            None,
            Some(body),
        )
    };
    let short = confirm(&token, "short").await;
    assert_eq!(short.invalid_fields(), ["new_password"]);
    let done = confirm(&token, "reset and remembered").await;
    assert_eq!(done.status, StatusCode::NO_CONTENT, "{}", done.body);
    let again = confirm(&token, "another new password").await;
    assert_eq!(again.invalid_fields(), ["token"], "a token works once");

    app.get("/api/v1/me", access(&session))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(refresh(&app, &session).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        login(&app, &username, PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login(&app, &username, "reset and remembered").await.status,
        StatusCode::OK
    );
    let recorded = actions(&app).await;
    assert!(recorded.contains(&"account.password_reset_requested".to_owned()));
    assert!(recorded.contains(&"account.password_reset".to_owned()));
    assert!(
        common::mailbox::messages_to(&format!("nobody-{username}@example.com")).is_empty(),
        "an unknown address gets no mail"
    );
}

#[tokio::test]
async fn an_expired_token_in_is_refused_and_reset_needs_mail_configured() {
    let app = TestApp::new().await;
    let off = app
        .call(
            Method::POST,
            "/api/v1/auth/password-reset",
            None,
            Some(json!({"email": "a@example.com"})),
        )
        .await;
    off.assert_problem(StatusCode::NOT_FOUND, "not-found");
    let detail = off.body["detail"].as_str().unwrap();
    assert!(detail.contains("BERTH_SMTP_URL"), "{detail}");

    let app = app.with_mailer(Arc::new(smtp_mailer()));
    let username = unique("erin");
    let email = format!("{username}@example.com");
    app.signup_by_mail(&username, &email).await;
    let body = json!({"email": email});
    app.call(
        Method::POST,
        "/api/v1/auth/password-reset",
        None,
        Some(body),
    )
    .await;
    let token = token_in(&wait_for_message(&email, 2).await);
    sqlx::query("UPDATE password_resets SET expires_at = now() - interval '1 second'")
        .execute(app.pool())
        .await
        .unwrap();
    let body = json!({"token": token, "new_password": "too late for this"});
    let late = app
        .call(
            Method::POST,
            "/api/v1/auth/password-reset/confirm",
            None,
            Some(body),
        )
        .await;
    assert_eq!(late.invalid_fields(), ["token"]);
    assert_eq!(
        login(&app, &username, PASSWORD).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn deleting_the_account_deletes_its_apps_and_ends_its_sessions() {
    let app = TestApp::new().await;
    let tokens = app.signup("frank").await;
    let token = access(&tokens).to_owned();
    let mut apps = Vec::new();
    for name in ["web", "worker"] {
        let body = json!({"name": name, "repo_url": "https://github.com/frank/web"});
        apps.push(id_of(&app.create_app(&token, body).await));
    }
    let other = app.token("grace").await;
    let kept = id_of(
        &app.create_app(
            &other,
            json!({"name": "web", "repo_url": "https://github.com/g/web"}),
        )
        .await,
    );

    let delete = |body: Value| app.call(Method::DELETE, "/api/v1/me", Some(&token), Some(body));
    let unconfirmed = delete(json!({"confirm": "someone", "password": PASSWORD})).await;
    assert_eq!(unconfirmed.invalid_fields(), ["confirm"]);
    let wrong = delete(json!({"confirm": "frank", "password": "not it"})).await;
    assert_eq!(wrong.invalid_fields(), ["password"]);
    let deleted = delete(json!({"confirm": "frank", "password": PASSWORD})).await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED, "{}", deleted.body);

    let removed: Vec<(Uuid, bool)> =
        sqlx::query_as("SELECT id, deleted_at IS NOT NULL FROM apps ORDER BY id")
            .fetch_all(app.pool())
            .await
            .unwrap();
    for (id, gone) in removed {
        assert_eq!(gone, id != kept, "app {id}");
    }
    let removals: Vec<String> = sqlx::query_scalar(
        "SELECT envelope->'payload'->'app'->>'id' FROM outbox
         WHERE envelope->>'type' = 'app.removal_requested' ORDER BY id",
    )
    .fetch_all(app.pool())
    .await
    .unwrap();
    let expected: Vec<String> = apps.iter().map(Uuid::to_string).collect();
    assert_eq!(
        removals, expected,
        "each app goes through the normal delete path"
    );

    app.get("/api/v1/me", &token)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    app.get("/api/v1/apps", &token)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(refresh(&app, &tokens).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        login(&app, "frank", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    let (email, hash): (Option<String>, Option<String>) =
        sqlx::query_as("SELECT email, password_hash FROM users WHERE username = 'frank'")
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!((email, hash), (None, None), "personal data is erased");

    // The username is a tenant name and stays taken; the address is free.
    let reuse = |username: &str| {
        let body =
            json!({"username": username, "email": "frank@example.com", "password": PASSWORD});
        app.call(Method::POST, "/api/v1/auth/register", None, Some(body))
    };
    assert_eq!(reuse("frank").await.status, StatusCode::CONFLICT);
    assert_eq!(reuse("frank2").await.status, StatusCode::CREATED);
    let recorded = actions(&app).await;
    assert_eq!(recorded.iter().filter(|a| *a == "app.delete").count(), 2);
    assert!(recorded.contains(&"account.delete".to_owned()));
}

#[tokio::test]
async fn sessions_are_listed_and_one_can_be_signed_out() {
    let app = TestApp::new().await;
    let laptop = app.signup("heidi").await;
    let phone = login(&app, "heidi", PASSWORD).await.body;
    // A refresh keeps the session (the family), with a new token.
    let body = json!({"refresh_token": phone["refresh_token"]});
    let phone = app
        .call(Method::POST, "/api/v1/auth/refresh", None, Some(body))
        .await
        .body;
    let other = app.signup("ivan").await;

    let listed = app.get("/api/v1/me/sessions", access(&laptop)).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let sessions = listed.body.as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{}", listed.body);
    let phone_session = &sessions[0];
    assert_ne!(phone_session["started_at"], phone_session["refreshed_at"]);
    let phone_id = phone_session["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (&phone_session["current"], &sessions[1]["current"]),
        (&json!(false), &json!(true)),
        "the laptop asked: {}",
        listed.body
    );

    // Someone else's session is not found.
    let theirs = app.get("/api/v1/me/sessions", access(&other)).await.body[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let uri = format!("/api/v1/me/sessions/{theirs}");
    app.call(Method::DELETE, &uri, Some(access(&laptop)), None)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not-found");

    let uri = format!("/api/v1/me/sessions/{phone_id}");
    let ended = app
        .call(Method::DELETE, &uri, Some(access(&laptop)), None)
        .await;
    assert_eq!(ended.status, StatusCode::NO_CONTENT, "{}", ended.body);
    assert_eq!(refresh(&app, &phone).await, StatusCode::UNAUTHORIZED);
    assert_eq!(refresh(&app, &laptop).await, StatusCode::OK);
    let left = app.get("/api/v1/me/sessions", access(&laptop)).await.body;
    assert_eq!(left.as_array().unwrap().len(), 1, "{left}");
    assert_ne!(left[0]["id"], phone_id);
    let again = app
        .call(Method::DELETE, &uri, Some(access(&laptop)), None)
        .await;
    again.assert_problem(StatusCode::NOT_FOUND, "not-found");
    assert!(actions(&app)
        .await
        .contains(&"account.session_end".to_owned()));
}
