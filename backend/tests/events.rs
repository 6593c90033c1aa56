//! Live deployment states as server-sent events, from the database trigger
//! through the hub to each user's stream. Against a real PostgreSQL.

mod common;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use berth_backend::background::inform::InformHandler;
use berth_proto::{DeploymentProgress, DeploymentState};
use common::{id_of, TestApp};
use futures::StreamExt;
use serde_json::{json, Value};
use std::pin::Pin;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use uuid::Uuid;

type Frames = Pin<Box<dyn futures::Stream<Item = Result<axum::body::Bytes, axum::Error>> + Send>>;

/// An open event stream, read event by event.
struct Events {
    frames: Frames,
    buffer: String,
}

impl Events {
    async fn open(app: &TestApp, token: Option<&str>, query: &str) -> Self {
        let mut request = Request::builder()
            .method(Method::GET)
            .uri(format!("/api/v1/events{query}"));
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let response = app
            .router
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/event-stream"
        );
        Self {
            frames: Box::pin(response.into_body().into_data_stream()),
            buffer: String::new(),
        }
    }

    /// The next event that is not a keep-alive: its name and data.
    async fn next(&mut self) -> (String, Value) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let field = |name: &str| {
                    block
                        .lines()
                        .find_map(|line| line.strip_prefix(name))
                        .map(str::to_owned)
                };
                if let (Some(event), Some(data)) = (field("event: "), field("data: ")) {
                    return (event, serde_json::from_str(&data).unwrap());
                }
                continue;
            }
            let frame = tokio::time::timeout_at(deadline, self.frames.next())
                .await
                .expect("an event within 10 s")
                .expect("the stream stays open")
                .unwrap();
            self.buffer.push_str(std::str::from_utf8(&frame).unwrap());
        }
    }
}

impl Events {
    /// Reads until the server ends the stream (within `within`): the names
    /// of the events sent before the end.
    async fn ended(&mut self, within: Duration) -> Vec<String> {
        let read = async {
            while let Some(frame) = self.frames.next().await {
                self.buffer
                    .push_str(std::str::from_utf8(&frame.unwrap()).unwrap());
            }
        };
        tokio::time::timeout(within, read)
            .await
            .expect("the stream ends in time");
        self.buffer
            .lines()
            .filter_map(|line| line.strip_prefix("event: "))
            .map(str::to_owned)
            .collect()
    }
}

async fn deploy(app: &TestApp, token: &str, name: &str) -> (Uuid, Uuid) {
    let body = json!({"name": name, "repo_url": "https://github.com/octo/web"});
    let app_id = id_of(&app.create_app(token, body).await);
    let uri = format!("/api/v1/apps/{app_id}/deployments");
    let deployment = app.post(&uri, token, json!({"ref": "main"})).await;
    assert_eq!(
        deployment.status,
        StatusCode::ACCEPTED,
        "{}",
        deployment.body
    );
    (app_id, id_of(&deployment.body))
}

#[tokio::test(flavor = "multi_thread")]
async fn each_user_sees_their_own_deployments_change_state_live() {
    let app = TestApp::new().await;
    let stop = CancellationToken::new();
    let (hub, db, token) = (app.state.events.clone(), app.pool().clone(), stop.clone());
    tokio::spawn(async move { hub.run(db, token).await });
    app.state.events.listening().await;

    let alice = app.token("alice").await;
    let bob = app.token("bob").await;
    let mut alices = Events::open(&app, Some(&alice), "").await;
    let ticket = app.post("/api/v1/ws-tickets", &bob, json!({})).await.body["ticket"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut bobs = Events::open(&app, None, &format!("?ticket={ticket}")).await;

    let (app_id, deployment) = deploy(&app, &alice, "web").await;
    let (event, data) = alices.next().await;
    assert_eq!(event, "deployment");
    assert_eq!(data["deployment_id"], deployment.to_string());
    assert_eq!(data["app_id"], app_id.to_string());
    assert_eq!(data["state"], "queued");
    assert!(data.get("owner_id").is_none(), "{data}");

    let inform = InformHandler::new(app.pool().clone());
    for state in [DeploymentState::Cloning, DeploymentState::Building] {
        inform
            .apply(deployment, &DeploymentProgress::new(state))
            .await
            .unwrap();
    }
    assert_eq!(alices.next().await.1["state"], "cloning");
    assert_eq!(alices.next().await.1["state"], "building");

    // Bob's first event is his own deployment: none of alice's reached him.
    let (_, bobs_deployment) = deploy(&app, &bob, "api").await;
    let (_, data) = bobs.next().await;
    assert_eq!(data["deployment_id"], bobs_deployment.to_string());
    stop.cancel();
}

#[tokio::test]
async fn the_stream_needs_a_token_or_a_ticket() {
    let app = TestApp::new().await;
    let anonymous = app.call(Method::GET, "/api/v1/events", None, None).await;
    anonymous.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    let spent = app
        .call(
            Method::GET,
            "/api/v1/events?ticket=not-a-ticket",
            None,
            None,
        )
        .await;
    spent.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
}

/// M2: a stream opened before the password changed ends with a
/// `session-ended` event (by the periodic re-check here: no session
/// listener runs).
#[tokio::test(flavor = "multi_thread")]
async fn a_password_change_ends_the_event_streams_of_its_sessions() {
    let settings = berth_backend::state::ApiSettings {
        websocket_ping: Duration::from_millis(200),
        ..Default::default()
    };
    let app = TestApp::with(
        settings,
        std::sync::Arc::new(common::fake_logs::FakeLogs::default()),
    )
    .await;
    let token = app.token("alice").await;
    let mut by_header = Events::open(&app, Some(&token), "").await;
    let ticket = app.post("/api/v1/ws-tickets", &token, json!({})).await.body["ticket"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut by_ticket = Events::open(&app, None, &format!("?ticket={ticket}")).await;
    let body = json!({"current_password": "correct horse battery",
                      "new_password": "a brand new passphrase"});
    let changed = app
        .call(Method::PUT, "/api/v1/me/password", Some(&token), Some(body))
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    for stream in [&mut by_header, &mut by_ticket] {
        let events = stream.ended(Duration::from_secs(3)).await;
        assert_eq!(events, ["session-ended"]);
    }
}
