//! The log routes over a fake reader: the REST page and the WebSocket
//! (ticket or bearer auth, origin check, per-user bound, pings, close reasons).

mod common;

use axum::http::{Method, StatusCode};
use berth_backend::quota::Quotas;
use berth_backend::server;
use berth_backend::state::ApiSettings;
use chrono::{TimeZone, Utc};
use common::fake_logs::{entry, FakeLogs};
use common::{id_of, TestApp};
use futures::StreamExt;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use uuid::Uuid;

fn logs() -> FakeLogs {
    let t = |s| Utc.with_ymd_and_hms(2026, 11, 22, 3, 0, s).unwrap();
    FakeLogs {
        history: vec![
            entry(0, "starting", t(0)),
            entry(1, "listening", t(10)),
            entry(2, "GET /", t(20)),
        ],
        live: vec![entry(3, "GET /health", t(30))],
        ..Default::default()
    }
}

async fn setup(settings: ApiSettings, reader: FakeLogs) -> (TestApp, String, Uuid) {
    let app = TestApp::with(settings, Arc::new(reader)).await;
    let token = app.token("alice").await;
    let app_id = id_of(
        &app.create_app(
            &token,
            json!({"name": "web", "repo_url": "https://x.example/web"}),
        )
        .await,
    );
    (app, token, app_id)
}

fn offsets(page: &Value) -> Vec<i64> {
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["offset"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn the_rest_endpoint_pages_through_the_log() {
    let (app, token, app_id) = setup(ApiSettings::default(), logs()).await;
    let uri = format!("/api/v1/apps/{app_id}/logs");
    let all = app.get(&uri, &token).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.body);
    assert_eq!(offsets(&all.body), [0, 1, 2]);
    assert_eq!(all.body["next_offset"], 3);
    assert_eq!(all.body["entries"][1]["line"], "listening");
    assert_eq!(all.body["entries"][1]["source"], "app");

    let page = app.get(&format!("{uri}?from=1&limit=1"), &token).await;
    assert_eq!(offsets(&page.body), [1]);
    assert_eq!(page.body["next_offset"], 2);
    let since = app
        .get(&format!("{uri}?since=2026-11-22T03:00:15Z"), &token)
        .await;
    assert_eq!(offsets(&since.body), [2]);
    assert_eq!(since.body["truncated"], false);
    // Both: from an offset, entries at or after the time (going on after a
    // page that stopped at its scan budget).
    let both = app
        .get(&format!("{uri}?from=2&since=2026-11-22T03:00:05Z"), &token)
        .await;
    assert_eq!(offsets(&both.body), [2]);

    for bad in [
        "limit=0",
        "limit=5001",
        "from=-1",
        "from=-1&since=2026-11-22T03:00:15Z",
        "since=yesterday",
        "from=x",
    ] {
        app.get(&format!("{uri}?{bad}"), &token)
            .await
            .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    }
    app.call(Method::GET, &uri, None, None)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn an_unavailable_log_store_answers_503() {
    let reader = FakeLogs {
        unavailable: true,
        ..Default::default()
    };
    let (app, token, app_id) = setup(ApiSettings::default(), reader).await;
    let response = app
        .get(&format!("/api/v1/apps/{app_id}/logs"), &token)
        .await;
    response.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert!(!response.body["detail"]
        .as_str()
        .unwrap()
        .contains("broker down"));
}

async fn listen(app: &TestApp) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = server::app(app.state.clone(), Arc::new(|| true), None);
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(url: String, headers: &[(&str, &str)]) -> Result<Socket, StatusCode> {
    let mut request = url.into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(
            tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(tungstenite::Error::Http(response)) => {
            Err(StatusCode::from_u16(response.status().as_u16()).unwrap())
        }
        Err(other) => panic!("{other}"),
    }
}

/// The next text frame as JSON, skipping pings.
async fn next_entry(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("a frame in time")
            .expect("the socket is open")
            .unwrap();
        match message {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

async fn ticket(app: &TestApp, token: &str) -> String {
    let response = app.post("/api/v1/ws-tickets", token, json!({})).await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
    assert_eq!(response.body["expires_in"], 60);
    response.body["ticket"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_socket_sends_history_then_live_entries_to_a_ticket_holder() {
    let settings = ApiSettings {
        websocket_origins: vec!["http://berth.example".into()],
        websocket_ping: Duration::from_millis(100),
        ..Default::default()
    };
    let (app, token, app_id) = setup(settings, logs()).await;
    let addr = listen(&app).await;
    let base = format!("ws://{addr}/api/v1/apps/{app_id}/logs/ws");

    let ticket = ticket(&app, &token).await;
    let mut socket = open(
        format!("{base}?from=1&ticket={ticket}"),
        &[("origin", "http://berth.example")],
    )
    .await
    .expect("the ticket opens the socket");
    let mut seen = Vec::new();
    for _ in 0..3 {
        let entry = next_entry(&mut socket).await;
        seen.push(entry["offset"].as_i64().unwrap());
    }
    assert_eq!(seen, [1, 2, 3], "history from the offset, then live");
    // The server pings while the log is quiet.
    let ping = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            if let Some(Ok(Message::Ping(_))) = socket.next().await {
                return;
            }
        }
    })
    .await;
    assert!(ping.is_ok(), "no ping");
    socket.close(None).await.unwrap();

    // Tickets are single-use.
    assert_eq!(
        open(format!("{base}?ticket={ticket}"), &[]).await.err(),
        Some(StatusCode::UNAUTHORIZED)
    );
    assert_eq!(
        open(base.clone(), &[]).await.err(),
        Some(StatusCode::UNAUTHORIZED)
    );
    // A bearer header works too; a foreign origin does not.
    let bearer = format!("Bearer {token}");
    let mut socket = open(
        format!("{base}?since=2026-11-22T03:00:15Z"),
        &[("authorization", &bearer)],
    )
    .await
    .expect("bearer auth");
    assert_eq!(next_entry(&mut socket).await["offset"], 2);
    assert_eq!(
        open(
            base.clone(),
            &[
                ("authorization", &bearer),
                ("origin", "http://evil.example")
            ]
        )
        .await
        .err(),
        Some(StatusCode::FORBIDDEN)
    );
    // Someone else's app is not found.
    let other = app.token("mallory").await;
    let theirs = format!("Bearer {other}");
    assert_eq!(
        open(base, &[("authorization", &theirs)]).await.err(),
        Some(StatusCode::NOT_FOUND)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sockets_per_user_are_bounded() {
    let settings = ApiSettings {
        quotas: Quotas {
            streams: 2,
            ..Quotas::default()
        },
        ..Default::default()
    };
    let (app, token, app_id) = setup(settings, logs()).await;
    let addr = listen(&app).await;
    let url = format!("ws://{addr}/api/v1/apps/{app_id}/logs/ws");
    let bearer = format!("Bearer {token}");
    let headers = [("authorization", bearer.as_str())];
    let first = open(url.clone(), &headers).await.unwrap();
    let _second = open(url.clone(), &headers).await.unwrap();
    assert_eq!(
        open(url.clone(), &headers).await.err(),
        Some(StatusCode::TOO_MANY_REQUESTS)
    );
    drop(first);
    let reopened = common::broker::eventually(Duration::from_secs(5), || async {
        open(url.clone(), &headers).await.ok()
    })
    .await;
    assert!(reopened.is_some(), "a closed socket frees its slot");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_socket_closes_with_a_reason_when_the_log_store_is_down() {
    let reader = FakeLogs {
        unavailable: true,
        ..Default::default()
    };
    let (app, token, app_id) = setup(ApiSettings::default(), reader).await;
    let addr = listen(&app).await;
    let bearer = format!("Bearer {token}");
    let mut socket = open(
        format!("ws://{addr}/api/v1/apps/{app_id}/logs/ws"),
        &[("authorization", &bearer)],
    )
    .await
    .unwrap();
    match socket.next().await {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!(u16::from(frame.code), 1011);
            assert_eq!(frame.reason.as_str(), "the log store is unavailable");
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
}

/// Waits for the server to close `socket`: the close frame, skipping
/// entries and pings.
async fn close_frame(socket: &mut Socket, within: Duration) -> Option<(u16, String)> {
    let read = async {
        while let Some(message) = socket.next().await {
            match message {
                Ok(Message::Close(Some(frame))) => {
                    return Some((u16::from(frame.code), frame.reason.to_string()))
                }
                Ok(Message::Close(None)) | Err(_) => return None,
                Ok(_) => continue,
            }
        }
        None
    };
    tokio::time::timeout(within, read)
        .await
        .expect("the socket closes in time")
}

async fn change_password(app: &TestApp, token: &str) -> common::Response {
    let body = json!({"current_password": "correct horse battery",
                      "new_password": "a brand new passphrase"});
    app.call(Method::PUT, "/api/v1/me/password", Some(token), Some(body))
        .await
}

/// M2: a socket opened before the password changed (or before its
/// session ended) does not keep streaming: it is closed with 4401. Here by
/// the periodic re-check alone (no session listener runs), within a ping.
#[tokio::test(flavor = "multi_thread")]
async fn a_password_change_closes_the_open_log_sockets_of_its_sessions() {
    let settings = ApiSettings {
        websocket_ping: Duration::from_millis(200),
        ..Default::default()
    };
    let (app, token, app_id) = setup(settings, logs()).await;
    let addr = listen(&app).await;
    let url = format!("ws://{addr}/api/v1/apps/{app_id}/logs/ws");
    let bearer = format!("Bearer {token}");
    let mut by_header = open(url.clone(), &[("authorization", &bearer)])
        .await
        .unwrap();
    let ticket = ticket(&app, &token).await;
    let mut by_ticket = open(format!("{url}?ticket={ticket}"), &[]).await.unwrap();
    for socket in [&mut by_header, &mut by_ticket] {
        assert_eq!(next_entry(socket).await["offset"], 0);
    }

    let changed = change_password(&app, &token).await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    for socket in [&mut by_header, &mut by_ticket] {
        let (code, reason) = close_frame(socket, Duration::from_secs(3))
            .await
            .expect("a close frame");
        assert_eq!(code, 4401, "{reason}");
        assert!(reason.contains("session"), "{reason}");
    }
    // The new session's token opens sockets again.
    let fresh = format!("Bearer {}", changed.body["access_token"].as_str().unwrap());
    let mut socket = open(url, &[("authorization", &fresh)]).await.unwrap();
    assert_eq!(next_entry(&mut socket).await["offset"], 0);
}

/// L9: unused tickets are capped per user, so nobody fills the table.
#[tokio::test]
async fn unused_tickets_are_capped_per_user() {
    let (app, token, _) = setup(ApiSettings::default(), logs()).await;
    for _ in 0..20 {
        ticket(&app, &token).await;
    }
    app.post("/api/v1/ws-tickets", &token, json!({}))
        .await
        .assert_problem(StatusCode::TOO_MANY_REQUESTS, "too-many-requests");
    // Spent and expired tickets do not count.
    sqlx::query("UPDATE ws_tickets SET expires_at = now() - interval '1 second'")
        .execute(app.pool())
        .await
        .unwrap();
    ticket(&app, &token).await;
    let other = app.token("bob").await;
    ticket(&app, &other).await;
}

/// M2: an ended session is announced (a trigger on the refresh tokens,
/// heard by every backend's listener), so its sockets close at once, not
/// at the next re-check (a minute away here): on logout, and when another
/// session signs it out.
#[tokio::test(flavor = "multi_thread")]
async fn ending_a_session_closes_its_log_sockets_at_once() {
    let settings = ApiSettings {
        websocket_ping: Duration::from_secs(60),
        ..Default::default()
    };
    let (app, token, app_id) = setup(settings, logs()).await;
    let stop = tokio_util::sync::CancellationToken::new();
    let (ends, db, until) = (app.state.sessions.clone(), app.pool().clone(), stop.clone());
    tokio::spawn(async move { ends.run(db, until).await });
    app.state.sessions.listening().await;
    let addr = listen(&app).await;
    let url = format!("ws://{addr}/api/v1/apps/{app_id}/logs/ws");

    // Logout.
    let login = json!({"login": "alice", "password": "correct horse battery"});
    let laptop = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(login.clone()),
        )
        .await
        .body;
    let bearer = format!("Bearer {}", laptop["access_token"].as_str().unwrap());
    let mut socket = open(url.clone(), &[("authorization", &bearer)])
        .await
        .unwrap();
    assert_eq!(next_entry(&mut socket).await["offset"], 0);
    let body = json!({"refresh_token": laptop["refresh_token"]});
    let out = app
        .call(Method::POST, "/api/v1/auth/logout", None, Some(body))
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    let (code, _) = close_frame(&mut socket, Duration::from_secs(3))
        .await
        .expect("a close frame");
    assert_eq!(code, 4401);

    // Signed out from another session's list.
    let phone = app
        .call(Method::POST, "/api/v1/auth/login", None, Some(login))
        .await
        .body;
    let bearer = format!("Bearer {}", phone["access_token"].as_str().unwrap());
    let mut socket = open(url, &[("authorization", &bearer)]).await.unwrap();
    assert_eq!(next_entry(&mut socket).await["offset"], 0);
    let sessions = app.get("/api/v1/me/sessions", &token).await.body;
    let phone_session = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == false)
        .expect("the phone's session")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let uri = format!("/api/v1/me/sessions/{phone_session}");
    let ended = app.call(Method::DELETE, &uri, Some(&token), None).await;
    assert_eq!(ended.status, StatusCode::NO_CONTENT, "{}", ended.body);
    let (code, _) = close_frame(&mut socket, Duration::from_secs(3))
        .await
        .expect("a close frame");
    assert_eq!(code, 4401);
    stop.cancel();
}

/// F23 of the reliability review: a client that resumes at an offset the
/// log no longer holds learns of the gap (retention removed the lines) or
/// of the reset (the offsets start again lower), first thing, rather than
/// silently missing lines or dropping every new one as already seen.
#[tokio::test(flavor = "multi_thread")]
async fn a_resume_outside_the_log_says_what_was_skipped() {
    let t = |s| Utc.with_ymd_and_hms(2026, 11, 22, 3, 0, s).unwrap();
    let kept = FakeLogs {
        history: vec![entry(100, "kept", t(0)), entry(101, "kept too", t(1))],
        ..Default::default()
    };
    let (app, token, app_id) = setup(ApiSettings::default(), kept).await;
    let addr = listen(&app).await;
    let bearer = format!("Bearer {token}");
    let headers = [("authorization", bearer.as_str())];
    let socket_from = |from: i64| {
        let url = format!("ws://{addr}/api/v1/apps/{app_id}/logs/ws?from={from}");
        open(url, &headers)
    };

    let mut socket = socket_from(10).await.unwrap();
    assert_eq!(
        next_entry(&mut socket).await,
        json!({"skipped": {"from": 10, "to": 100, "reason": "expired"}})
    );
    assert_eq!(next_entry(&mut socket).await["offset"], 100);

    let mut socket = socket_from(5000).await.unwrap();
    assert_eq!(
        next_entry(&mut socket).await,
        json!({"skipped": {"from": 5000, "to": 102, "reason": "reset"}})
    );

    let mut socket = socket_from(101).await.unwrap();
    assert_eq!(
        next_entry(&mut socket).await["offset"],
        101,
        "nothing skipped"
    );

    let page = app
        .get(&format!("/api/v1/apps/{app_id}/logs?from=10"), &token)
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(page.body["skipped"]["reason"], "expired");
    assert_eq!(page.body["entries"][0]["offset"], 100);
    let page = app
        .get(&format!("/api/v1/apps/{app_id}/logs?from=100"), &token)
        .await;
    assert!(page.body.get("skipped").is_none(), "{}", page.body);
}
