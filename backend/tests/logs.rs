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
