//! The repository-wide payload URL, `/api/v1/webhooks/github`: a delivery
//! acts for exactly the apps of its repository whose secret signed it, and
//! anything else gets the per-app URL's 401.

mod common;

use axum::body::{Body, Bytes};
use axum::http::{header, Request, StatusCode};
use berth_backend::state::ApiSettings;
use berth_backend::webhooks::repo_wide::{
    MAX_BODY_BYTES, MAX_CANDIDATES, MAX_CANDIDATES_PER_OWNER,
};
use berth_proto::BuildRequested;
use common::deliveries::{
    build_requests, count, deployments, fixture, hook_app, hook_new_app, push, test_app, Delivery,
    HEAD, REPO,
};
use common::{Response, TestApp};
use futures::StreamExt;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// The per-app outcomes of a repository-wide delivery, by app.
fn outcomes(response: &Response) -> Vec<(Uuid, Value)> {
    let deliveries = response.body["deliveries"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", response.body));
    deliveries
        .iter()
        .map(|d| {
            let mut outcome = d.clone();
            let app_id = outcome.as_object_mut().unwrap().remove("app_id").unwrap();
            (app_id.as_str().unwrap().parse().unwrap(), outcome)
        })
        .collect()
}

async fn deliveries_of(app: &TestApp, app_id: Uuid) -> i64 {
    count(
        app,
        &format!("SELECT count(*) FROM webhook_deliveries WHERE app_id = '{app_id}'"),
    )
    .await
}

#[tokio::test]
async fn a_signed_push_deploys_the_app_whose_secret_signed_it() {
    let app = test_app().await;
    let token = app.token("alice").await;
    let (hello, secret) = hook_app(&app, &token, "hello", Value::Null).await;
    let other_repo =
        json!({"name": "other", "repo_url": "https://github.com/Codertocat/Other.git"});
    let (other, _) = hook_new_app(&app, &token, other_repo).await;

    let response = Delivery::signed(&secret, "push", "r1", &push())
        .send_repo_wide(&app)
        .await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.body);
    let outcomes = outcomes(&response);
    assert_eq!(outcomes.len(), 1, "{}", response.body);
    assert_eq!(outcomes[0].0, hello);
    assert_eq!(outcomes[0].1["commit"], HEAD);
    let deployment_id = outcomes[0].1["deployment_id"].as_str().unwrap();
    let deployment = app
        .get(&format!("/api/v1/deployments/{deployment_id}"), &token)
        .await;
    assert_eq!(deployment.body["trigger"], "push", "{}", deployment.body);
    assert_eq!(deployment.body["commit"], HEAD);
    assert_eq!(deployment.body["pushed_by"], "Codertocat");
    let builds = build_requests(&app).await;
    assert_eq!(builds.len(), 1);
    let build: BuildRequested = builds[0].payload().unwrap();
    assert_eq!(
        (build.app.id, build.source.repo_url.as_str()),
        (hello, REPO)
    );
    assert_eq!(deliveries_of(&app, other).await, 0);

    // A ping from the repository's hook answers too.
    let pong = Delivery::signed(&secret, "ping", "p1", &fixture("ping"))
        .send_repo_wide(&app)
        .await;
    assert_eq!(pong.status, StatusCode::OK, "{}", pong.body);
    assert_eq!(
        pong.body,
        json!({"deliveries": [{"app_id": hello, "pong": true}]})
    );
}

#[tokio::test]
async fn of_two_apps_on_one_repository_only_the_one_whose_secret_signed_acts() {
    let app = test_app().await;
    let alice = app.token("alice").await;
    let bob = app.token("bob").await;
    let (api, api_secret) = hook_app(&app, &alice, "api", Value::Null).await;
    // Another tenant, the same repository spelled another way.
    let spelled = json!({"name": "web", "repo_url": "https://GitHub.com/codertocat/hello-world/"});
    let (web, web_secret) = hook_new_app(&app, &bob, spelled).await;
    let payload = push();

    let to_web = Delivery::signed(&web_secret, "push", "same-event", &payload)
        .send_repo_wide(&app)
        .await;
    assert_eq!(to_web.status, StatusCode::ACCEPTED, "{}", to_web.body);
    assert_eq!(
        outcomes(&to_web).iter().map(|o| o.0).collect::<Vec<_>>(),
        [web]
    );
    assert_eq!(deliveries_of(&app, api).await, 0);
    let builds = build_requests(&app).await;
    assert_eq!(builds.len(), 1);
    assert_eq!(builds[0].payload::<BuildRequested>().unwrap().app.id, web);

    // The same event from api's hook (GitHub reuses the delivery id).
    let to_api = Delivery::signed(&api_secret, "push", "same-event", &payload)
        .send_repo_wide(&app)
        .await;
    assert_eq!(to_api.status, StatusCode::ACCEPTED, "{}", to_api.body);
    assert_eq!(
        outcomes(&to_api).iter().map(|o| o.0).collect::<Vec<_>>(),
        [api]
    );
    assert_eq!(deployments(&app).await, 2);
    assert_eq!(deliveries_of(&app, web).await, 1);
}

#[tokio::test]
async fn wrong_signatures_and_unknown_repositories_get_the_same_401() {
    let app = test_app().await;
    let token = app.token("alice").await;
    let (_, secret) = hook_app(&app, &token, "hello", Value::Null).await;
    // An app of the repository without a webhook is no candidate either.
    app.create_app(&token, json!({"name": "unhooked", "repo_url": REPO}))
        .await;
    let payload = push();
    let mut unsigned = Delivery::signed(&secret, "push", "d1", &payload);
    unsigned.signature = None;
    let wrong_key = Delivery::signed("not the secret", "push", "d2", &payload);
    let mut garbage = Delivery::signed(&secret, "push", "d3", &payload);
    garbage.signature = Some("sha256=not-hex".into());
    let mut unknown_repo = push();
    unknown_repo["repository"]["html_url"] = json!("https://github.com/Codertocat/Unknown");
    unknown_repo["repository"]["clone_url"] = json!("https://github.com/Codertocat/Unknown.git");
    let unknown = Delivery::signed(&secret, "push", "d4", &unknown_repo);
    let no_repo = Delivery::signed(&secret, "push", "d5", &json!({"zen": "hi"}));
    let mut unreadable = Delivery::signed(&secret, "push", "d6", &json!({}));
    unreadable.body = b"{\"repository\": ".to_vec();
    unreadable.signature = Some(berth_backend::webhook_guard::signature::sign(
        secret.as_bytes(),
        &unreadable.body,
    ));
    let mut bodies = Vec::new();
    for delivery in [unsigned, wrong_key, garbage, unknown, no_repo, unreadable] {
        let response = delivery.send_repo_wide(&app).await;
        bodies.push(response.body.clone());
        response.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
    assert_eq!(deployments(&app).await, 0);
    assert_eq!(
        count(&app, "SELECT count(*) FROM webhook_deliveries").await,
        0
    );
}

#[tokio::test]
async fn a_replay_at_either_url_does_nothing() {
    let app = test_app().await;
    let token = app.token("alice").await;
    let (hello, secret) = hook_app(&app, &token, "hello", Value::Null).await;
    let payload = push();
    let first = Delivery::signed(&secret, "push", "r1", &payload)
        .send_repo_wide(&app)
        .await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.body);
    for id in ["r1", "another-id"] {
        let again = Delivery::signed(&secret, "push", id, &payload)
            .send_repo_wide(&app)
            .await;
        assert_eq!(again.status, StatusCode::OK, "{}", again.body);
        let outcomes = outcomes(&again);
        assert_eq!(outcomes.len(), 1);
        assert!(
            outcomes[0].1["ignored"]
                .as_str()
                .is_some_and(|r| r.contains("already received")),
            "{}",
            again.body
        );
    }
    let at_app = Delivery::signed(&secret, "push", "r1", &payload)
        .send(&app, hello)
        .await;
    assert_eq!(at_app.status, StatusCode::OK, "{}", at_app.body);
    assert!(at_app.body["ignored"]
        .as_str()
        .unwrap()
        .contains("already received"));
    assert_eq!(deployments(&app).await, 1);
    assert_eq!(build_requests(&app).await.len(), 1);
}

/// A tenant made in the database: M6's attacker needs many apps, and
/// signing up dozens of accounts through the API is slow.
async fn insert_owner(app: &TestApp, name: &str) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query("INSERT INTO users (id, username, email) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(name)
        .bind(format!("{name}@example.com"))
        .execute(app.pool())
        .await
        .unwrap();
    id
}

/// An app of `owner` on [`REPO`] with a webhook, made in the database;
/// returns its id and secret.
async fn insert_hooked(app: &TestApp, owner: Uuid, name: &str) -> (Uuid, String) {
    let id = Uuid::now_v7();
    let tenant: String = sqlx::query_scalar("SELECT username FROM users WHERE id = $1")
        .bind(owner)
        .fetch_one(app.pool())
        .await
        .unwrap();
    let env = app.state.key.seal_json(
        &berth_proto::Binding::app_env(&tenant, id),
        &std::collections::BTreeMap::<String, String>::new(),
    );
    sqlx::query(
        "INSERT INTO apps (id, owner_id, name, repo_url, branch, port, env_sealed)
         VALUES ($1, $2, $3, $4, 'main', 8000, $5)",
    )
    .bind(id)
    .bind(owner)
    .bind(name)
    .bind(REPO)
    .bind(sqlx::types::Json(env))
    .execute(app.pool())
    .await
    .unwrap();
    let secret = format!("secret-of-{id}");
    let sealed = app
        .state
        .key
        .seal(&berth_proto::Binding::webhook_secret(id), secret.as_bytes());
    sqlx::query("INSERT INTO app_webhooks (app_id, secret_sealed) VALUES ($1, $2)")
        .bind(id)
        .bind(sqlx::types::Json(sealed))
        .execute(app.pool())
        .await
        .unwrap();
    (id, secret)
}

async fn app_with(settings: ApiSettings) -> TestApp {
    let settings = ApiSettings {
        public_url: Some(common::deliveries::PUBLIC_URL.into()),
        ..settings
    };
    TestApp::with(settings, Arc::new(common::fake_logs::FakeLogs::default())).await
}

#[tokio::test]
async fn only_the_oldest_hooks_of_a_repository_are_checked() {
    let app = test_app().await;
    let owners = MAX_CANDIDATES / MAX_CANDIDATES_PER_OWNER;
    for o in 0..owners {
        let owner = insert_owner(&app, &format!("owner-{o}")).await;
        for n in 0..MAX_CANDIDATES_PER_OWNER {
            insert_hooked(&app, owner, &format!("app-{n}")).await;
        }
    }
    let late_owner = insert_owner(&app, "late").await;
    let (late, secret) = insert_hooked(&app, late_owner, "late").await;
    let payload = push();
    let before = app.state.webhooks.signature_checks();
    Delivery::signed(&secret, "push", "c1", &payload)
        .send_repo_wide(&app)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(
        app.state.webhooks.signature_checks() - before,
        MAX_CANDIDATES as u64
    );
    // Its own URL still works.
    let response = Delivery::signed(&secret, "push", "c1", &payload)
        .send(&app, late)
        .await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.body);
}

/// M6: one account's many hooked apps of one repository cannot make an
/// unauthenticated delivery check more than a few secrets.
#[tokio::test]
async fn one_owners_many_hooks_cost_a_delivery_a_few_checks_at_most() {
    let app = test_app().await;
    let attacker = insert_owner(&app, "attacker").await;
    let mut hooked = Vec::new();
    for n in 0..60 {
        hooked.push(insert_hooked(&app, attacker, &format!("app-{n}")).await);
    }
    let payload = push();
    let before = app.state.webhooks.signature_checks();
    Delivery::signed("nobody's secret", "push", "m6", &payload)
        .send_repo_wide(&app)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    let checked = app.state.webhooks.signature_checks() - before;
    assert_eq!(checked, MAX_CANDIDATES_PER_OWNER as u64);

    // The owner's oldest hooks are the candidates; a later one signs at
    // its own URL only.
    let (oldest, oldest_secret) = &hooked[0];
    let response = Delivery::signed(oldest_secret, "push", "m6-a", &payload)
        .send_repo_wide(&app)
        .await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.body);
    assert_eq!(outcomes(&response)[0].0, *oldest);
    let (later, later_secret) = &hooked[MAX_CANDIDATES_PER_OWNER as usize];
    Delivery::signed(later_secret, "push", "m6-b", &payload)
        .send_repo_wide(&app)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    let response = Delivery::signed(later_secret, "push", "m6-b", &payload)
        .send(&app, *later)
        .await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.body);
}

/// A body that sends `megabytes` MiB and then never ends.
fn endless_body(megabytes: usize) -> Body {
    let chunk = Bytes::from(vec![b' '; 1024 * 1024]);
    let chunks = (0..megabytes).map(move |_| Ok::<_, std::io::Error>(chunk.clone()));
    Body::from_stream(futures::stream::iter(chunks).chain(futures::stream::pending()))
}

fn repo_wide_request(body: Body, length: Option<usize>) -> Request<Body> {
    let mut request = Request::post("/api/v1/webhooks/github")
        .header(header::CONTENT_TYPE, "application/json")
        .header("X-GitHub-Event", "push")
        .header("X-GitHub-Delivery", "big")
        .header("X-Hub-Signature-256", "sha256=00");
    if let Some(length) = length {
        request = request.header(header::CONTENT_LENGTH, length);
    }
    request.body(body).unwrap()
}

/// M6: a body over the cap is refused at the cap, not read to its end.
#[tokio::test]
async fn an_oversized_body_is_refused_before_it_is_all_read() {
    let app = test_app().await;
    assert_eq!(MAX_BODY_BYTES, 5 * 1024 * 1024);
    // A 30 MB upload that is still sending when the cap is reached.
    let response = tokio::time::timeout(
        Duration::from_secs(20),
        app.send(repo_wide_request(endless_body(6), None)),
    )
    .await
    .expect("answered before the body ended");
    response.assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large");
    // A declared length over the cap is refused before reading anything.
    let declared = tokio::time::timeout(
        Duration::from_secs(5),
        app.send(repo_wide_request(endless_body(0), Some(30_000_000))),
    )
    .await
    .expect("answered at once");
    declared.assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large");
    assert_eq!(app.state.webhooks.signature_checks(), 0);
}

/// M6: each client address gets a budget of webhook requests, shared by
/// both URLs, spent before a body is read.
#[tokio::test]
async fn webhook_requests_are_rate_limited_per_address() {
    let app = app_with(ApiSettings {
        webhook_rate_per_minute: 3,
        ..ApiSettings::default()
    })
    .await;
    let payload = push();
    for id in ["a", "b"] {
        Delivery::signed("wrong", "push", id, &payload)
            .send_repo_wide(&app)
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    Delivery::signed("wrong", "push", "c", &payload)
        .send(&app, Uuid::now_v7())
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    let checks = app.state.webhooks.signature_checks();
    for throttled in [
        Delivery::signed("wrong", "push", "d", &payload)
            .send_repo_wide(&app)
            .await,
        Delivery::signed("wrong", "push", "e", &payload)
            .send(&app, Uuid::now_v7())
            .await,
    ] {
        throttled.assert_problem(StatusCode::TOO_MANY_REQUESTS, "too-many-requests");
        assert!(throttled.headers.contains_key(header::RETRY_AFTER));
    }
    assert_eq!(app.state.webhooks.signature_checks(), checks);
}
