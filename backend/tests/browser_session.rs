//! Browser sessions: the refresh token in an HttpOnly cookie that is only
//! honoured with `X-Berth-Session: cookie`. Against a real PostgreSQL.

mod common;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use common::{Response, TestApp};
use serde_json::{json, Value};

const MODE: (&str, &str) = ("x-berth-session", "cookie");

/// A POST with a JSON body, the mode header when `cookie_mode`, and the
/// session cookie when given.
async fn post(
    app: &TestApp,
    uri: &str,
    body: Value,
    cookie_mode: bool,
    cookie: Option<&str>,
) -> Response {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json");
    if cookie_mode {
        request = request.header(MODE.0, MODE.1);
    }
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, format!("berth_refresh={cookie}"));
    }
    app.send(request.body(Body::from(body.to_string())).unwrap())
        .await
}

/// The session cookie a response sets: its value and its attributes.
fn set_cookie(response: &Response) -> (String, String) {
    let set = response
        .headers
        .get(header::SET_COOKIE)
        .unwrap_or_else(|| panic!("no Set-Cookie: {:?}", response.headers))
        .to_str()
        .unwrap()
        .to_owned();
    let value = set
        .strip_prefix("berth_refresh=")
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("not the session cookie: {set}"))
        .to_owned();
    (value, set)
}

#[tokio::test]
async fn the_refresh_token_lives_in_an_http_only_cookie_for_browsers() {
    let app = TestApp::new().await;
    app.signup("alice").await;
    let login = json!({"login": "alice", "password": "correct horse battery"});
    let signed_in = post(&app, "/api/v1/auth/login", login, true, None).await;
    assert_eq!(signed_in.status, StatusCode::OK, "{}", signed_in.body);
    assert!(signed_in.body["access_token"].is_string());
    assert!(
        signed_in.body.get("refresh_token").is_none(),
        "not in the body: {}",
        signed_in.body
    );
    let (first, attributes) = set_cookie(&signed_in);
    for part in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/api/v1/auth",
        "Max-Age=",
    ] {
        assert!(attributes.contains(part), "{part} in {attributes}");
    }

    // Without the mode header the cookie is not used (a forged cross-site
    // request cannot add the header).
    let forged = post(&app, "/api/v1/auth/refresh", json!({}), false, Some(&first)).await;
    forged.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");

    let refreshed = post(&app, "/api/v1/auth/refresh", json!({}), true, Some(&first)).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
    let (second, _) = set_cookie(&refreshed);
    assert_ne!(second, first, "rotated");
    let token = refreshed.body["access_token"].as_str().unwrap();
    assert_eq!(app.get("/api/v1/me", token).await.status, StatusCode::OK);
    // The old cookie was spent.
    let replayed = post(&app, "/api/v1/auth/refresh", json!({}), true, Some(&first)).await;
    assert_eq!(replayed.status, StatusCode::UNAUTHORIZED);

    // Replaying revoked the session's family, so log in again, then out.
    let login = json!({"login": "alice", "password": "correct horse battery"});
    let (third, _) = set_cookie(&post(&app, "/api/v1/auth/login", login, true, None).await);
    let out = post(&app, "/api/v1/auth/logout", json!({}), true, Some(&third)).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    let (cleared, attributes) = set_cookie(&out);
    assert_eq!(cleared, "");
    assert!(attributes.contains("Max-Age=0"), "{attributes}");
    let after = post(&app, "/api/v1/auth/refresh", json!({}), true, Some(&third)).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    let actions: Vec<String> = sqlx::query_scalar("SELECT action FROM audit_events ORDER BY id")
        .fetch_all(app.pool())
        .await
        .unwrap();
    assert_eq!(actions.last().unwrap(), "auth.logout");
}

#[tokio::test]
async fn api_clients_keep_the_refresh_token_in_the_body() {
    let app = TestApp::new().await;
    let tokens = app.signup("bob").await;
    assert!(tokens["refresh_token"].is_string());
    let body = json!({"refresh_token": tokens["refresh_token"]});
    let refreshed = post(&app, "/api/v1/auth/refresh", body, false, None).await;
    assert_eq!(refreshed.status, StatusCode::OK);
    assert!(refreshed.headers.get(header::SET_COOKIE).is_none());
    assert!(refreshed.body["refresh_token"].is_string());
    let missing = post(&app, "/api/v1/auth/refresh", json!({}), false, None).await;
    missing.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
}

/// L5: on https the cookie is `__Host-` prefixed (Secure, `Path=/`, no
/// Domain). A tenant app on a sibling subdomain can set cookies for the
/// parent domain, but browsers refuse it a `__Host-` one, and berth reads
/// no other: a tossed `berth_refresh` is ignored.
#[tokio::test]
async fn on_https_the_session_cookie_cannot_be_tossed_from_a_sibling_domain() {
    let settings = berth_backend::state::ApiSettings {
        public_url: Some("https://berth.example.com".into()),
        ..Default::default()
    };
    let app = TestApp::with(
        settings,
        std::sync::Arc::new(common::fake_logs::FakeLogs::default()),
    )
    .await;
    // The attacker's own session, whose refresh token a sibling app tosses.
    let attackers = app.signup("mallory").await;
    let tossed = attackers["refresh_token"].as_str().unwrap();
    app.signup("alice").await;
    let login = json!({"login": "alice", "password": "correct horse battery"});
    let signed_in = post(&app, "/api/v1/auth/login", login, true, None).await;
    let set = signed_in.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(set.starts_with("__Host-berth_refresh="), "{set}");
    for part in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/;"] {
        assert!(format!("{set};").contains(part), "{part} in {set}");
    }
    assert!(!set.contains("Domain"), "{set}");

    let refresh = Request::post("/api/v1/auth/refresh")
        .header(header::CONTENT_TYPE, "application/json")
        .header(MODE.0, MODE.1)
        .header(header::COOKIE, format!("berth_refresh={tossed}"))
        .body(Body::from("{}"))
        .unwrap();
    app.send(refresh)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
}
