//! L9: the tables anyone can grow without signing in (failed sign-ins,
//! started GitHub sign-ins, rate limit counters) and the ticket table are
//! pruned by the reaper's housekeeping. Against a real PostgreSQL.

mod common;

use axum::http::{Method, StatusCode};
use berth_backend::background::reaper::{Reaper, ReaperSettings};
use berth_backend::github_api::OAuthApp;
use berth_backend::github_api::ReqwestGitHub;
use berth_backend::state::ApiSettings;
use berth_common::testing::fake_github::{CLIENT_ID, CLIENT_SECRET};
use common::fake_github::FakeGitHub;
use common::fake_logs::FakeLogs;
use common::TestApp;
use serde_json::json;
use std::sync::Arc;

async fn berth() -> (TestApp, FakeGitHub) {
    let fake = FakeGitHub::start("gho_token").await;
    let settings = ApiSettings {
        public_url: Some("https://berth.example.com".into()),
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

async fn rows(app: &TestApp, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(app.pool())
        .await
        .unwrap()
}

async fn execute(app: &TestApp, sql: &str) {
    sqlx::query(sql).execute(app.pool()).await.unwrap();
}

async fn failed_login(app: &TestApp, login: &str) {
    let body = json!({"login": login, "password": "wrong password"});
    let answer = app
        .call(Method::POST, "/api/v1/auth/login", None, Some(body))
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
}

#[tokio::test]
async fn housekeeping_prunes_what_nobody_needs_any_more() {
    let (app, _fake) = berth().await;
    let token = app.token("alice").await;

    // Failed sign-ins: one forgotten (older than the day they count for,
    // not blocked), one still counting.
    failed_login(&app, "old-guess").await;
    failed_login(&app, "new-guess").await;
    execute(
        &app,
        "UPDATE login_failures SET last_failed_at = now() - interval '2 days',
                blocked_until = now() - interval '2 days' WHERE login = 'old-guess'",
    )
    .await;
    // Started GitHub sign-ins, from anyone: one abandoned, one under way.
    for _ in 0..2 {
        let started = app
            .call(Method::GET, "/api/v1/auth/github/start", None, None)
            .await;
        assert_eq!(started.status, StatusCode::OK, "{}", started.body);
    }
    execute(
        &app,
        "UPDATE oauth_states SET expires_at = now() - interval '1 second'
         WHERE created_at = (SELECT min(created_at) FROM oauth_states)",
    )
    .await;
    // Tickets: one expired, one still usable.
    for _ in 0..2 {
        let ticket = app.post("/api/v1/ws-tickets", &token, json!({})).await;
        assert_eq!(ticket.status, StatusCode::CREATED, "{}", ticket.body);
    }
    execute(
        &app,
        "UPDATE ws_tickets SET expires_at = now() - interval '1 second'
         WHERE ctid = (SELECT min(ctid) FROM ws_tickets)",
    )
    .await;

    // Rate limit budgets: one spent a while ago (full again), one just now.
    execute(
        &app,
        "INSERT INTO auth_rate_limits (route, client, tat)
         VALUES ('login', '192.0.2.1', now() - interval '1 minute'),
                ('login', '192.0.2.2', now() + interval '1 minute')",
    )
    .await;

    Reaper::new(app.pool().clone(), ReaperSettings::default())
        .reap()
        .await
        .unwrap();

    let left: Vec<String> = sqlx::query_scalar("SELECT login FROM login_failures")
        .fetch_all(app.pool())
        .await
        .unwrap();
    assert_eq!(left, ["new-guess"]);
    assert_eq!(rows(&app, "oauth_states").await, 1);
    assert_eq!(rows(&app, "ws_tickets").await, 1);
    let clients: Vec<String> =
        sqlx::query_scalar("SELECT client FROM auth_rate_limits WHERE client LIKE '192.0.2.%'")
            .fetch_all(app.pool())
            .await
            .unwrap();
    assert_eq!(clients, ["192.0.2.2"]);
}
