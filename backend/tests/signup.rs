//! Sign-up and email change confirmed from the inbox, through the local
//! stack's real SMTP sink: no answer says whether an email or a username
//! is taken; the mail to the address does. Against a real PostgreSQL.

mod common;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use berth_backend::state::ApiSettings;
use common::fake_logs::FakeLogs;
use common::mailbox::{messages_to, smtp_mailer, token_in, wait_for_message};
use common::TestApp;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

const PASSWORD: &str = "correct horse battery";

/// A name no other test (or earlier run) shares, so its mail is its own.
fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &Uuid::new_v4().simple().to_string()[..12])
}

fn address(username: &str) -> String {
    format!("{username}@example.com")
}

async fn mailing_app() -> TestApp {
    let settings = ApiSettings {
        public_url: Some("https://berth.example.com".into()),
        ..ApiSettings::default()
    };
    TestApp::with(settings, Arc::new(FakeLogs::default()))
        .await
        .with_mailer(Arc::new(smtp_mailer()))
}

async fn register(app: &TestApp, username: &str, email: &str) -> common::Response {
    let body = json!({"username": username, "email": email, "password": PASSWORD});
    app.call(Method::POST, "/api/v1/auth/register", None, Some(body))
        .await
}

async fn confirm(app: &TestApp, token: &str) -> common::Response {
    confirm_with(app, json!({"token": token, "password": PASSWORD})).await
}

async fn confirm_with(app: &TestApp, body: Value) -> common::Response {
    app.call(
        Method::POST,
        "/api/v1/auth/register/confirm",
        None,
        Some(body),
    )
    .await
}

async fn login(app: &TestApp, login: &str) -> StatusCode {
    let body = json!({"login": login, "password": PASSWORD});
    app.call(Method::POST, "/api/v1/auth/login", None, Some(body))
        .await
        .status
}

async fn actions_of(app: &TestApp, username: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT a.action FROM audit_events a JOIN users u ON u.id = a.user_id
         WHERE u.username = $1 ORDER BY a.id",
    )
    .bind(username)
    .fetch_all(app.pool())
    .await
    .unwrap()
}

/// The answer with the address it names taken out: the rest must not differ.
fn without_address(response: &common::Response, email: &str) -> (StatusCode, String) {
    let status = response.body["status"].as_str().unwrap_or_default();
    (response.status, status.replace(email, "(address)"))
}

#[tokio::test]
async fn a_sign_up_answers_alike_for_taken_names_and_the_mail_says_which() {
    let app = mailing_app().await;
    let owner = unique("olga");
    app.signup_by_mail(&owner, &address(&owner)).await;

    let fresh = unique("finn");
    let taken_name = address(&unique("tess"));
    let answers = [
        (
            register(&app, &fresh, &address(&fresh)).await,
            address(&fresh),
        ),
        (
            register(&app, &unique("new"), &address(&owner)).await,
            address(&owner),
        ),
        (
            register(&app, &owner, &taken_name).await,
            taken_name.clone(),
        ),
    ];
    let shapes: Vec<_> = answers
        .iter()
        .map(|(response, email)| without_address(response, email))
        .collect();
    assert_eq!(shapes[0].0, StatusCode::ACCEPTED, "{}", answers[0].0.body);
    assert!(shapes.iter().all(|shape| *shape == shapes[0]), "{shapes:?}");
    assert_eq!(
        login(&app, &fresh).await,
        StatusCode::UNAUTHORIZED,
        "not yet"
    );

    let existing = wait_for_message(&address(&owner), 2).await;
    assert_eq!(existing.subject, "You already have a berth account");
    assert!(existing.body.contains(&owner), "{}", existing.body);
    assert!(existing
        .body
        .contains("https://berth.example.com/forgot-password"));
    assert!(!existing.body.contains("token"), "{}", existing.body);
    let taken = wait_for_message(&taken_name, 1).await;
    assert_eq!(taken.subject, "Choose another berth username");
    assert!(taken.body.contains(&owner), "{}", taken.body);
    assert!(actions_of(&app, &owner)
        .await
        .contains(&"auth.register_existing_email".to_owned()));

    let welcome = wait_for_message(&address(&fresh), 1).await;
    assert_eq!(welcome.subject, "Confirm your berth account");
    let token = token_in(&welcome);
    let link = format!("https://berth.example.com/confirm-registration#token={token}");
    assert!(welcome.body.contains(&link), "{}", welcome.body);
    let confirmed = confirm(&app, &token).await;
    assert_eq!(confirmed.status, StatusCode::CREATED, "{}", confirmed.body);
    let access = confirmed.body["access_token"].as_str().unwrap();
    let me = app.get("/api/v1/me", access).await;
    assert_eq!(me.body["username"], fresh.as_str(), "{}", me.body);
    assert_eq!(me.body["email"], address(&fresh));
    assert_eq!(login(&app, &fresh).await, StatusCode::OK);
    assert_eq!(
        actions_of(&app, &fresh).await,
        ["auth.register", "auth.login"]
    );
    confirm(&app, &token)
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
}

#[tokio::test]
async fn a_confirmation_fails_when_the_name_was_taken_since_and_when_it_expired() {
    let app = mailing_app().await;
    let name = unique("twin");
    let (first, second) = (address(&unique("one")), address(&unique("two")));
    for email in [&first, &second] {
        assert_eq!(
            register(&app, &name, email).await.status,
            StatusCode::ACCEPTED
        );
    }
    let first_token = token_in(&wait_for_message(&first, 1).await);
    let second_token = token_in(&wait_for_message(&second, 1).await);
    assert_eq!(
        confirm(&app, &first_token).await.status,
        StatusCode::CREATED
    );
    confirm(&app, &second_token)
        .await
        .assert_problem(StatusCode::CONFLICT, "conflict");

    let late = unique("late");
    register(&app, &late, &address(&late)).await;
    let token = token_in(&wait_for_message(&address(&late), 1).await);
    sqlx::query("UPDATE pending_registrations SET expires_at = now() - interval '1 second'")
        .execute(app.pool())
        .await
        .unwrap();
    let expired = confirm(&app, &token).await;
    assert_eq!(expired.invalid_fields(), ["token"]);
    let stored: Vec<String> = sqlx::query_scalar("SELECT password_hash FROM pending_registrations")
        .fetch_all(app.pool())
        .await
        .unwrap();
    assert!(
        stored.iter().all(|hash| hash.starts_with("$argon2")),
        "{stored:?}"
    );
}

#[tokio::test]
async fn confirming_from_the_browser_puts_the_session_in_the_cookie() {
    let app = mailing_app().await;
    let name = unique("cookie");
    register(&app, &name, &address(&name)).await;
    let token = token_in(&wait_for_message(&address(&name), 1).await);
    let request = Request::post("/api/v1/auth/register/confirm")
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-berth-session", "cookie")
        .body(Body::from(
            json!({"token": token, "password": PASSWORD}).to_string(),
        ))
        .unwrap();
    let confirmed = app.send(request).await;
    assert_eq!(confirmed.status, StatusCode::CREATED, "{}", confirmed.body);
    assert_eq!(confirmed.body["refresh_token"], Value::Null);
    let cookie = confirmed.headers[header::SET_COOKIE].to_str().unwrap();
    // https: the `__Host-` prefixed name (L5).
    assert!(cookie.starts_with("__Host-berth_refresh="), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
}

#[tokio::test]
async fn an_address_gets_at_most_five_unasked_mails_an_hour() {
    let app = mailing_app().await;
    let email = address(&unique("flooded"));
    for _ in 0..6 {
        let answer = register(&app, &unique("x"), &email).await;
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
    }
    wait_for_message(&email, 5).await;
    // The sixth sign-up's work has finished when its quota row would exist.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(messages_to(&email).len(), 5);
}

#[tokio::test]
async fn a_new_address_counts_once_confirmed_and_a_taken_one_looks_the_same() {
    let app = mailing_app().await;
    let name = unique("moving");
    let tokens = app.signup_by_mail(&name, &address(&name)).await;
    let access = tokens["access_token"].as_str().unwrap();
    let other = unique("other");
    app.signup_by_mail(&other, &address(&other)).await;

    let patch = |email: String| {
        let body = json!({"email": email, "current_password": PASSWORD});
        app.call(Method::PATCH, "/api/v1/me", Some(access), Some(body))
    };
    let taken = patch(address(&other)).await;
    assert_eq!(taken.status, StatusCode::OK, "{}", taken.body);
    assert_eq!(taken.body["pending_email"], address(&other));
    let offered = wait_for_message(&address(&other), 2).await;
    assert_eq!(
        offered.subject,
        "Your address was offered to another berth account"
    );
    assert!(!offered.body.contains(&name), "the mover is not named");

    let new = address(&unique("new-home"));
    let moved = patch(new.clone()).await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.body);
    assert_eq!(
        moved.body["email"],
        address(&name),
        "not before it is confirmed"
    );
    assert_eq!(moved.body["pending_email"], new.as_str());
    assert_eq!(login(&app, &new).await, StatusCode::UNAUTHORIZED);

    let mail = wait_for_message(&new, 1).await;
    assert_eq!(mail.subject, "Confirm your new berth email address");
    let token = token_in(&mail);
    assert!(mail.body.contains(&format!(
        "https://berth.example.com/confirm-email#token={token}"
    )));
    let body = json!({"token": token});
    let uri = "/api/v1/auth/email-change/confirm";
    let done = app.call(Method::POST, uri, None, Some(body.clone())).await;
    assert_eq!(done.status, StatusCode::NO_CONTENT, "{}", done.body);
    let me = app.get("/api/v1/me", access).await.body;
    assert_eq!(
        (&me["email"], &me["pending_email"]),
        (&json!(new), &Value::Null)
    );
    assert_eq!(login(&app, &new).await, StatusCode::OK);
    let again = app.call(Method::POST, uri, None, Some(body)).await;
    assert_eq!(again.invalid_fields(), ["token"]);
    // M1: the old address hears that the account moved.
    let told = wait_for_message(&address(&name), 2).await;
    assert_eq!(told.subject, "Your berth account has a new email address");
    assert!(told.body.contains(&name), "{}", told.body);
    let actions = actions_of(&app, &name).await;
    for action in ["account.email_change_requested", "account.email_change"] {
        assert!(actions.contains(&action.to_owned()), "{actions:?}");
    }
}

/// L2: a sign-up for someone else's address must not become an account
/// with the signer's password when the address's owner opens the link.
/// Confirming needs the password chosen at sign-up: whoever only holds the
/// mailbox cannot finish it (and a wrong guess does not spend the link).
#[tokio::test]
async fn confirming_a_sign_up_needs_the_password_it_was_made_with() {
    let app = mailing_app().await;
    let name = unique("victim");
    register(&app, &name, &address(&name)).await;
    let token = token_in(&wait_for_message(&address(&name), 1).await);

    let without = confirm_with(&app, json!({"token": token})).await;
    without.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(without.invalid_fields(), ["password"]);
    let wrong = confirm_with(
        &app,
        json!({"token": token, "password": "the owner's own guess"}),
    )
    .await;
    wrong.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(wrong.invalid_fields(), ["password"]);
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(users, 0, "no account was made");

    // The one who signed up (and reads the mailbox) finishes it.
    let confirmed = confirm(&app, &token).await;
    assert_eq!(confirmed.status, StatusCode::CREATED, "{}", confirmed.body);
}

/// M4: a username is a tenant name. `berth-<x>-build` is tenant x's build
/// namespace and some names are berth's own: those are refused, with a
/// reason, before anything is mailed.
#[tokio::test]
async fn usernames_that_collide_with_namespaces_or_reserved_names_are_refused() {
    for app in [mailing_app().await, TestApp::new().await] {
        for (username, reason) in [
            ("victim-build", "-build"),
            ("system", "reserved"),
            ("cache", "reserved"),
            ("admin", "reserved"),
            ("kube", "reserved"),
        ] {
            let email = address(&unique("taken"));
            let refused = register(&app, username, &email).await;
            refused.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
            assert_eq!(refused.invalid_fields(), ["username"], "{username}");
            let message = refused.body["errors"][0]["message"].as_str().unwrap();
            assert!(message.contains(reason), "{username}: {message}");
        }
        // Names that merely contain such words are fine.
        let fine = unique("builder");
        let answer = register(&app, &fine, &address(&fine)).await;
        assert!(answer.status.is_success(), "{}", answer.body);
    }
}
