//! Per-tenant quotas (M7, issue 11 item 7): apps, resources, queued
//! deployments, open streams (log sockets and event streams together) and
//! log reads in progress; and what `GET /me/quota` shows.

mod common;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use berth_backend::quota::{AppBounds, Quotas};
use berth_backend::server;
use berth_backend::state::{ApiSettings, AppState};
use berth_proto::{BuildRequested, Envelope};
use common::fake_logs::FakeLogs;
use common::{id_of, Response, TestApp};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tower::ServiceExt;
use uuid::Uuid;

fn quotas() -> Quotas {
    Quotas {
        apps: 2,
        queued_deployments: 2,
        streams: 2,
        log_reads: 2,
        memory_mb: 1024,
        cpu_millis: 2000,
        app: AppBounds {
            default_memory_mb: 256,
            default_cpu_millis: 500,
            max_memory_mb: 768,
            max_cpu_millis: 1000,
        },
    }
}

async fn app_with(logs: FakeLogs) -> TestApp {
    let settings = ApiSettings {
        quotas: quotas(),
        ..ApiSettings::default()
    };
    TestApp::with(settings, Arc::new(logs)).await
}

fn assert_quota(response: &Response, status: StatusCode, limit: &str, detail: &str) {
    response.assert_problem(status, "quota-exceeded");
    assert_eq!(response.body["limit"], limit, "{}", response.body);
    let said = response.body["detail"].as_str().unwrap();
    assert!(said.contains(detail), "{said:?} should say {detail:?}");
}

fn web(name: &str) -> Value {
    json!({"name": name, "repo_url": "https://github.com/octo/web"})
}

async fn patch(app: &TestApp, token: &str, id: Uuid, body: Value) -> Response {
    app.call(
        Method::PATCH,
        &format!("/api/v1/apps/{id}"),
        Some(token),
        Some(body),
    )
    .await
}

async fn scale(app: &TestApp, token: &str, id: Uuid, replicas: u32) -> Response {
    app.call(
        Method::PUT,
        &format!("/api/v1/apps/{id}/scale"),
        Some(token),
        Some(json!({ "replicas": replicas })),
    )
    .await
}

#[tokio::test]
async fn apps_over_the_quota_are_refused_with_422_naming_the_limit() {
    let app = app_with(FakeLogs::default()).await;
    let alice = app.token("alice").await;
    let first = id_of(&app.create_app(&alice, web("one")).await);
    app.create_app(&alice, web("two")).await;
    let over = app.post("/api/v1/apps", &alice, web("three")).await;
    assert_quota(
        &over,
        StatusCode::UNPROCESSABLE_ENTITY,
        "apps",
        "you have 2 apps, the limit of your account",
    );
    // Another tenant has a quota of its own.
    let bob = app.token("bob").await;
    app.create_app(&bob, web("three")).await;
    // A deleted app frees its place.
    let deleted = app
        .call(
            Method::DELETE,
            &format!("/api/v1/apps/{first}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED);
    app.create_app(&alice, web("three")).await;
}

#[tokio::test]
async fn concurrent_creates_cannot_slip_past_the_app_quota() {
    let app = app_with(FakeLogs::default()).await;
    let alice = app.token("alice").await;
    let creates = (0..6).map(|n| {
        let app = &app;
        let alice = &alice;
        async move {
            app.post("/api/v1/apps", alice, web(&format!("app-{n}")))
                .await
        }
    });
    let answers = futures::future::join_all(creates).await;
    let created = answers
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    assert_eq!(
        created,
        2,
        "{:?}",
        answers.iter().map(|r| r.status).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn apps_show_their_resources_and_change_them_within_bounds_and_quota() {
    let app = app_with(FakeLogs::default()).await;
    let alice = app.token("alice").await;
    let plain = app.create_app(&alice, web("plain")).await;
    assert_eq!(
        plain["resources"],
        json!({"memory_mb": 256, "cpu_millis": 500})
    );
    let sized = app
        .create_app(
            &alice,
            json!({"name": "sized", "repo_url": "https://github.com/octo/web",
                   "resources": {"memory_mb": 512, "cpu_millis": 1000}}),
        )
        .await;
    assert_eq!(
        sized["resources"],
        json!({"memory_mb": 512, "cpu_millis": 1000})
    );
    let (plain, sized) = (id_of(&plain), id_of(&sized));

    // Past the per-app maximum: a validation problem on the field.
    let too_big = patch(
        &app,
        &alice,
        plain,
        json!({"resources": {"memory_mb": 1024}}),
    )
    .await;
    too_big.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(too_big.invalid_fields(), ["resources.memory_mb"]);

    // 256 + 512 = 768 MB in use of 1024: plain may grow to 512, and then
    // sized to 768 (512 + 768) is over.
    let fits = patch(
        &app,
        &alice,
        plain,
        json!({"resources": {"memory_mb": 512}}),
    )
    .await;
    assert_eq!(fits.status, StatusCode::OK, "{}", fits.body);
    assert_eq!(fits.body["resources"]["memory_mb"], 512);
    assert_eq!(fits.body["resources"]["cpu_millis"], 500);
    let over = patch(
        &app,
        &alice,
        sized,
        json!({"resources": {"memory_mb": 768}}),
    )
    .await;
    assert_quota(
        &over,
        StatusCode::UNPROCESSABLE_ENTITY,
        "memory_mb",
        "your apps would use 1280 MB of memory",
    );
    assert!(over.body["detail"]
        .as_str()
        .unwrap()
        .contains("1024 MB, the limit of your account"));
    // `null` returns a value to the default.
    let reset = patch(
        &app,
        &alice,
        plain,
        json!({"resources": {"memory_mb": null}}),
    )
    .await;
    assert_eq!(reset.body["resources"]["memory_mb"], 256, "{}", reset.body);

    // Scaling counts each replica: 256 + 3 × 512 MB is over.
    assert_quota(
        &scale(&app, &alice, sized, 3).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "memory_mb",
        "memory",
    );
    // 1000 + 1000 millicores is the limit; a second replica of plain is over.
    let cpu = patch(
        &app,
        &alice,
        plain,
        json!({"resources": {"cpu_millis": 1000}}),
    )
    .await;
    assert_eq!(cpu.status, StatusCode::OK, "{}", cpu.body);
    assert_quota(
        &scale(&app, &alice, plain, 2).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "cpu_millis",
        "2000, the limit of your account",
    );
    assert_eq!(
        scale(&app, &alice, sized, 0).await.status,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        scale(&app, &alice, plain, 2).await.status,
        StatusCode::ACCEPTED
    );

    // An operator who lowers the quota leaves apps as they are: shrinking
    // works even while over it, growing does not.
    let lowered = ApiSettings {
        quotas: Quotas {
            memory_mb: 128,
            ..quotas()
        },
        ..ApiSettings::default()
    };
    let mut state = app.state.clone();
    state.settings = Arc::new(lowered);
    let router = server::app(state, Arc::new(|| true), None);
    let scale_to = |replicas: u32| {
        Request::put(format!("/api/v1/apps/{plain}/scale"))
            .header(header::AUTHORIZATION, format!("Bearer {alice}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(json!({ "replicas": replicas }).to_string()))
            .unwrap()
    };
    let down = router.clone().oneshot(scale_to(1)).await.unwrap();
    assert_eq!(down.status(), StatusCode::ACCEPTED);
    let up = router.oneshot(scale_to(2)).await.unwrap();
    assert_eq!(up.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

/// Every release carries the app's effective resources, for the
/// deploy-worker to apply.
#[tokio::test]
async fn builds_carry_the_apps_resources() {
    let app = app_with(FakeLogs::default()).await;
    let alice = app.token("alice").await;
    let id = id_of(
        &app.create_app(
            &alice,
            json!({"name": "web", "repo_url": "https://github.com/octo/web",
                   "resources": {"cpu_millis": 750}}),
        )
        .await,
    );
    let deployed = app
        .post(&format!("/api/v1/apps/{id}/deployments"), &alice, json!({}))
        .await;
    assert_eq!(deployed.status, StatusCode::ACCEPTED, "{}", deployed.body);
    let envelope: sqlx::types::Json<Envelope> =
        sqlx::query_scalar("SELECT envelope FROM outbox WHERE routing_key = 'berth.builds'")
            .fetch_one(app.pool())
            .await
            .unwrap();
    let build: BuildRequested = envelope.0.payload().unwrap();
    assert_eq!(
        build.config.resources,
        berth_proto::Resources {
            cpu_millis: Some(750),
            memory_mb: Some(256)
        }
    );
}

#[tokio::test]
async fn queued_deployments_over_the_quota_answer_429() {
    let app = app_with(FakeLogs::default()).await;
    let alice = app.token("alice").await;
    let one = id_of(&app.create_app(&alice, web("one")).await);
    let two = id_of(&app.create_app(&alice, web("two")).await);
    let deploy = |id: Uuid| {
        let (app, alice) = (&app, &alice);
        async move {
            app.post(&format!("/api/v1/apps/{id}/deployments"), alice, json!({}))
                .await
        }
    };
    let first = deploy(one).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.body);
    assert_eq!(deploy(two).await.status, StatusCode::ACCEPTED);
    assert_quota(
        &deploy(one).await,
        StatusCode::TOO_MANY_REQUESTS,
        "queued_deployments",
        "you have 2 deployments waiting to start, the limit of your account",
    );
    // Once one starts building, there is room again.
    sqlx::query("UPDATE deployments SET state = 'building' WHERE id = $1")
        .bind(id_of(&first.body))
        .execute(app.pool())
        .await
        .unwrap();
    assert_eq!(deploy(one).await.status, StatusCode::ACCEPTED);
}

async fn open_events(router: &axum::Router, token: &str) -> axum::response::Response {
    router
        .clone()
        .oneshot(
            Request::get("/api/v1/events")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap()
}

async fn problem_of(response: axum::response::Response) -> Response {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    Response {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap(),
    }
}

/// Answers that must come at once (a refusal, not a stream or a held read).
async fn within<T>(answer: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), answer)
        .await
        .expect("an answer within 10 s")
}

/// A second backend process on the same database: its own slots.
fn replica(app: &TestApp) -> axum::Router {
    let state = AppState::new(
        app.pool().clone(),
        app.state.key.clone(),
        berth_backend::credentials::tokens::TokenKeys::new(
            b"unused: tokens are checked by the first",
        )
        .unwrap(),
        Arc::new(FakeLogs::default()),
        ApiSettings {
            quotas: quotas(),
            ..ApiSettings::default()
        },
    );
    let state = AppState {
        tokens: app.state.tokens.clone(),
        ..state
    };
    server::app(state, Arc::new(|| true), None)
}

/// M7: event streams were not counted at all; now they share the quota of
/// log sockets, across backend processes.
#[tokio::test(flavor = "multi_thread")]
async fn event_streams_and_log_sockets_share_one_quota_across_processes() {
    let app = app_with(FakeLogs::default()).await;
    let alice = app.token("alice").await;
    let app_id = id_of(&app.create_app(&alice, web("web")).await);
    let first = open_events(&app.router, &alice).await;
    assert_eq!(first.status(), StatusCode::OK);
    let second = open_events(&replica(&app), &alice).await;
    assert_eq!(second.status(), StatusCode::OK);

    let third = within(open_events(&app.router, &alice)).await;
    let third = within(problem_of(third)).await;
    assert_quota(
        &third,
        StatusCode::TOO_MANY_REQUESTS,
        "streams",
        "you have 2 log sockets and event streams open",
    );
    // A log socket counts toward the same quota (refused before upgrading).
    let socket = app
        .get(&format!("/api/v1/apps/{app_id}/logs/ws"), &alice)
        .await;
    assert_quota(&socket, StatusCode::TOO_MANY_REQUESTS, "streams", "open");
    // Another tenant is not affected.
    let bob = app.token("bob").await;
    assert_eq!(
        open_events(&app.router, &bob).await.status(),
        StatusCode::OK
    );

    // Closing a stream frees its place (its row is deleted in the background).
    drop(second);
    let reopened = common::broker::eventually(Duration::from_secs(5), || async {
        let response = open_events(&app.router, &alice).await;
        (response.status() == StatusCode::OK).then_some(response)
    })
    .await;
    assert!(reopened.is_some(), "a closed stream frees its place");
}

#[tokio::test]
async fn slots_of_a_process_that_died_stop_counting() {
    let app = app_with(FakeLogs::default()).await;
    let alice = app.token("alice").await;
    let user: Uuid = sqlx::query_scalar("SELECT id FROM users WHERE username = 'alice'")
        .fetch_one(app.pool())
        .await
        .unwrap();
    // Two streams of a process that stopped beating two minutes ago.
    for _ in 0..2 {
        sqlx::query(
            "INSERT INTO open_slots (id, user_id, kind, process_id, seen_at)
             VALUES ($1, $2, 'stream', $3, now() - interval '2 minutes')",
        )
        .bind(Uuid::now_v7())
        .bind(user)
        .bind(Uuid::now_v7())
        .execute(app.pool())
        .await
        .unwrap();
    }
    assert_eq!(
        open_events(&app.router, &alice).await.status(),
        StatusCode::OK
    );
}

/// M7: each REST log read opens a Kafka consumer; a tenant's reads in
/// progress are bounded.
#[tokio::test(flavor = "multi_thread")]
async fn log_reads_in_progress_over_the_quota_answer_429() {
    let gate = Arc::new(Semaphore::new(0));
    let app = app_with(FakeLogs {
        gate: Some(gate.clone()),
        ..FakeLogs::default()
    })
    .await;
    let alice = app.token("alice").await;
    let app_id = id_of(&app.create_app(&alice, web("web")).await);
    let uri = format!("/api/v1/apps/{app_id}/logs");
    let request = || {
        Request::get(&uri)
            .header(header::AUTHORIZATION, format!("Bearer {alice}"))
            .body(Body::empty())
            .unwrap()
    };
    let held: Vec<_> = (0..2)
        .map(|_| tokio::spawn(app.router.clone().oneshot(request())))
        .collect();
    let in_progress = common::broker::eventually(Duration::from_secs(10), || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM open_slots WHERE kind = 'log_read'")
            .fetch_one(app.pool())
            .await
            .unwrap();
        (n == 2).then_some(())
    })
    .await;
    assert!(in_progress.is_some(), "two reads are in progress");
    let refused = within(app.get(&uri, &alice)).await;
    assert_quota(
        &refused,
        StatusCode::TOO_MANY_REQUESTS,
        "log_reads",
        "you have 2 log reads in progress",
    );
    gate.add_permits(10);
    for read in held {
        assert_eq!(read.await.unwrap().unwrap().status(), StatusCode::OK);
    }
    let again = common::broker::eventually(Duration::from_secs(5), || async {
        let response = app.get(&uri, &alice).await;
        (response.status == StatusCode::OK).then_some(())
    })
    .await;
    assert!(again.is_some(), "finished reads free their places");
}

#[tokio::test]
async fn me_quota_shows_limits_and_use() {
    let app = app_with(FakeLogs::default()).await;
    let alice = app.token("alice").await;
    let id = id_of(&app.create_app(&alice, web("web")).await);
    scale(&app, &alice, id, 2).await;
    app.post(&format!("/api/v1/apps/{id}/deployments"), &alice, json!({}))
        .await;
    let quota = app.get("/api/v1/me/quota", &alice).await;
    assert_eq!(quota.status, StatusCode::OK, "{}", quota.body);
    assert_eq!(
        quota.body,
        json!({
            "apps": {"used": 1, "limit": 2},
            "queued_deployments": {"used": 1, "limit": 2},
            "streams": {"used": 0, "limit": 2},
            "log_reads": {"used": 0, "limit": 2},
            "memory_mb": {"used": 512, "limit": 1024},
            "cpu_millis": {"used": 1000, "limit": 2000},
            "app_default": {"memory_mb": 256, "cpu_millis": 500},
            "app_max": {"memory_mb": 768, "cpu_millis": 1000},
        })
    );
    app.call(Method::GET, "/api/v1/me/quota", None, None)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
}
