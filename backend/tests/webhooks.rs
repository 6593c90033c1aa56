//! GitHub push webhooks, with payloads shaped like GitHub's documented
//! `push` and `ping` events (tests/fixtures/github): signatures, replays,
//! which pushes deploy, and the secret's life cycle.

mod common;

use axum::http::{Method, StatusCode};
use berth_backend::webhook_guard::signature;
use berth_proto::BuildRequested;
use common::deliveries::{
    assert_ignored, build_requests, count, deployments, fixture, hook_app, hooked, push, test_app,
    Delivery, HEAD, PUBLIC_URL, REPO,
};
use serde_json::{json, Value};
use uuid::Uuid;

#[tokio::test]
async fn a_push_to_the_apps_branch_deploys_exactly_that_commit() {
    let hooked = hooked(json!(null)).await;
    let app = &hooked.app;
    let response = hooked.deliver("push", "d1", &push()).await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.body);
    assert_eq!(response.body["commit"], HEAD);
    let deployment_id: Uuid = response.body["deployment_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    let deployment = app
        .get(
            &format!("/api/v1/deployments/{deployment_id}"),
            &hooked.token,
        )
        .await;
    assert_eq!(deployment.status, StatusCode::OK, "{}", deployment.body);
    assert_eq!(deployment.body["trigger"], "push");
    assert_eq!(deployment.body["state"], "queued");
    assert_eq!(deployment.body["ref"], "main");
    assert_eq!(deployment.body["commit"], HEAD);
    assert_eq!(deployment.body["pushed_by"], "Codertocat");
    assert_eq!(
        deployment.body["commit_message"],
        "Update README.md and the API"
    );
    assert_eq!(deployment.body["created_by"], Value::Null);
    let shown = app
        .get(&format!("/api/v1/apps/{}", hooked.app_id), &hooked.token)
        .await;
    let last = &shown.body["last_deploy"];
    assert_eq!(
        (&last["trigger"], &last["pushed_by"]),
        (&json!("push"), &json!("Codertocat"))
    );

    // The same transaction wrote the build request, for exactly that commit.
    let builds = build_requests(app).await;
    assert_eq!(builds.len(), 1);
    assert_eq!(builds[0].kind, "build.requested");
    assert_eq!(builds[0].deployment_id, Some(deployment_id));
    let build: BuildRequested = builds[0].payload().unwrap();
    assert_eq!(build.app.id, hooked.app_id);
    assert_eq!(build.source.repo_url, REPO);
    assert_eq!(build.source.git_ref, "main");
    assert_eq!(build.source.commit.as_deref(), Some(HEAD));
    assert_eq!(build.release_id.to_string(), deployment.body["release_id"]);

    let hook = app
        .get(
            &format!("/api/v1/apps/{}/webhook", hooked.app_id),
            &hooked.token,
        )
        .await;
    assert_eq!(hook.body["last_delivery"]["delivery_id"], "d1");
    assert_eq!(hook.body["last_delivery"]["outcome"], "deployed");
    assert_eq!(
        hook.body["last_delivery"]["deployment_id"],
        deployment_id.to_string()
    );
}

#[tokio::test]
async fn a_missing_or_wrong_signature_is_refused() {
    let hooked = hooked(json!(null)).await;
    let (app, app_id) = (&hooked.app, hooked.app_id);
    let payload = push();
    let mut unsigned = Delivery::signed(&hooked.secret, "push", "d1", &payload);
    unsigned.signature = None;
    let wrong_key = Delivery::signed("not the secret", "push", "d2", &payload);
    let mut other_body = Delivery::signed(&hooked.secret, "push", "d3", &payload);
    other_body.body = push().to_string().replace("main", "dev").into_bytes();
    let mut garbage = Delivery::signed(&hooked.secret, "push", "d4", &payload);
    garbage.signature = Some("sha256=not-hex".into());
    for delivery in [unsigned, wrong_key, other_body, garbage] {
        delivery
            .send(app, app_id)
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    // No such app, or another app's URL: the same answer.
    Delivery::signed(&hooked.secret, "push", "d5", &payload)
        .send(app, Uuid::now_v7())
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(deployments(app).await, 0);
    assert_eq!(
        count(app, "SELECT count(*) FROM webhook_deliveries").await,
        0
    );

    // A removed webhook refuses even a good signature.
    let removed = app
        .call(
            Method::DELETE,
            &format!("/api/v1/apps/{app_id}/webhook"),
            Some(&hooked.token),
            None,
        )
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    hooked
        .deliver("push", "d6", &payload)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(deployments(app).await, 0);
}

#[tokio::test]
async fn a_replayed_delivery_does_nothing() {
    let hooked = hooked(json!(null)).await;
    let payload = push();
    let first = hooked
        .deliver("push", "72d3162e-cc78-11e3-81ab-4c9367dc0958", &payload)
        .await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.body);
    let again = hooked
        .deliver("push", "72d3162e-cc78-11e3-81ab-4c9367dc0958", &payload)
        .await;
    assert_ignored(&again, "already received");
    // The delivery id is not signed: the same signed body under a new id is a replay too.
    let renamed = hooked.deliver("push", "made-up-id", &payload).await;
    assert_ignored(&renamed, "already received");
    assert_eq!(deployments(&hooked.app).await, 1);
    assert_eq!(build_requests(&hooked.app).await.len(), 1);
}

#[tokio::test]
async fn other_branches_tags_deletions_and_stale_pushes_are_ignored() {
    let hooked = hooked(json!(null)).await;
    let mut other_branch = push();
    other_branch["ref"] = json!("refs/heads/feature/x");
    assert_ignored(
        &hooked.deliver("push", "d1", &other_branch).await,
        "branch feature/x",
    );

    let mut tag = push();
    tag["ref"] = json!("refs/tags/v1.0.0");
    assert_ignored(&hooked.deliver("push", "d2", &tag).await, "tag");
    // GitHub's documented example: a tag deleted.
    assert_ignored(
        &hooked
            .deliver("push", "d3", &fixture("push-tag-deleted"))
            .await,
        "tag",
    );

    let mut deleted = push();
    deleted["deleted"] = json!(true);
    deleted["after"] = json!("0".repeat(40));
    deleted["commits"] = json!([]);
    deleted["head_commit"] = Value::Null;
    assert_ignored(&hooked.deliver("push", "d4", &deleted).await, "deleted");

    let mut elsewhere = push();
    elsewhere["repository"]["full_name"] = json!("Codertocat/Fork");
    elsewhere["repository"]["html_url"] = json!("https://github.com/Codertocat/Fork");
    elsewhere["repository"]["clone_url"] = json!("https://github.com/Codertocat/Fork.git");
    assert_ignored(
        &hooked.deliver("push", "d5", &elsewhere).await,
        "Codertocat/Fork",
    );

    // The documented push as it is: made in 2019, far too old to be fresh.
    assert_ignored(
        &hooked.deliver("push", "d6", &fixture("push")).await,
        "days ago",
    );

    assert_eq!(deployments(&hooked.app).await, 0);
    assert!(build_requests(&hooked.app).await.is_empty());
    let outcomes = count(
        &hooked.app,
        "SELECT count(*) FROM webhook_deliveries WHERE outcome LIKE 'ignored: %'",
    )
    .await;
    assert_eq!(outcomes, 6);
}

#[tokio::test]
async fn a_push_outside_the_apps_folder_is_ignored_and_inside_it_deploys() {
    let hooked = hooked(json!("web")).await;
    // The fixture touches README.md and api/app.py: nothing under web/.
    assert_ignored(&hooked.deliver("push", "d1", &push()).await, "web/");
    assert_eq!(deployments(&hooked.app).await, 0);

    let mut inside = push();
    inside["commits"][0]["added"] = json!(["web/index.html"]);
    let response = hooked.deliver("push", "d2", &inside).await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.body);
    assert_eq!(deployments(&hooked.app).await, 1);
}

#[tokio::test]
async fn apps_of_one_repository_each_handle_the_same_event() {
    // A monorepo: two apps, two hooks, and GitHub gives both deliveries of an
    // event the same X-GitHub-Delivery.
    let app = test_app().await;
    let token = app.token("alice").await;
    let (api, api_secret) = hook_app(&app, &token, "api", json!("api")).await;
    let (web, web_secret) = hook_app(&app, &token, "web", json!("web")).await;
    let payload = push();
    let to_api = Delivery::signed(&api_secret, "push", "same-event", &payload)
        .send(&app, api)
        .await;
    assert_eq!(to_api.status, StatusCode::ACCEPTED, "{}", to_api.body);
    let to_web = Delivery::signed(&web_secret, "push", "same-event", &payload)
        .send(&app, web)
        .await;
    assert_ignored(&to_web, "web/");
    // Each app's secret is its own.
    Delivery::signed(&api_secret, "push", "other-event", &payload)
        .send(&app, web)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    let builds = build_requests(&app).await;
    assert_eq!(builds.len(), 1);
    assert_eq!(builds[0].payload::<BuildRequested>().unwrap().app.id, api);
}

#[tokio::test]
async fn ping_answers_and_other_events_are_ignored() {
    let hooked = hooked(json!(null)).await;
    let pong = hooked.deliver("ping", "p1", &fixture("ping")).await;
    assert_eq!(pong.status, StatusCode::OK, "{}", pong.body);
    assert_eq!(pong.body, json!({"pong": true}));
    let issue = hooked
        .deliver(
            "issues",
            "i1",
            &json!({"action": "opened", "issue": {"number": 1}}),
        )
        .await;
    assert_ignored(&issue, "issues");

    // A hook set up with GitHub's form content type works too.
    let payload = push();
    let form: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &payload.to_string())
        .finish();
    let delivery = Delivery {
        signature: Some(signature::sign(hooked.secret.as_bytes(), form.as_bytes())),
        event: "push",
        id: "f1",
        body: form.into_bytes(),
        content_type: "application/x-www-form-urlencoded",
    };
    let response = delivery.send(&hooked.app, hooked.app_id).await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.body);
    assert_eq!(deployments(&hooked.app).await, 1);
}

#[tokio::test]
async fn an_unreadable_delivery_with_a_good_signature_is_a_bad_request() {
    let hooked = hooked(json!(null)).await;
    let mut malformed = Delivery::signed(&hooked.secret, "push", "m1", &json!({}));
    malformed.body = b"{\"ref\": ".to_vec();
    malformed.signature = Some(signature::sign(hooked.secret.as_bytes(), &malformed.body));
    malformed
        .send(&hooked.app, hooked.app_id)
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "bad-request");
    let no_commit = json!({"ref": "refs/heads/main", "repository": {}});
    hooked
        .deliver("push", "m2", &no_commit)
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "bad-request");
    hooked
        .deliver("push", "", &push())
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "bad-request");
    assert_eq!(deployments(&hooked.app).await, 0);
    // Not remembered: GitHub may redeliver them once fixed.
    assert_eq!(
        count(&hooked.app, "SELECT count(*) FROM webhook_deliveries").await,
        0
    );
}

#[tokio::test]
async fn the_secret_is_shown_once_rotated_and_only_to_the_owner() {
    let hooked = hooked(json!(null)).await;
    let (app, app_id, token) = (&hooked.app, hooked.app_id, &hooked.token);
    let uri = format!("/api/v1/apps/{app_id}/webhook");
    let shown = app.get(&uri, token).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    assert_eq!(shown.body["configured"], true);
    let url = format!("{PUBLIC_URL}/api/v1/webhooks/github/{app_id}");
    assert_eq!(shown.body["url"], url);
    assert_eq!(shown.body["last_delivery"], Value::Null);
    assert!(shown.body.get("secret").is_none());
    assert!(!shown.body.to_string().contains(&hooked.secret));
    // At rest it is sealed.
    let stored = count(
        app,
        &format!(
            "SELECT count(*) FROM app_webhooks WHERE secret_sealed::text LIKE '%{}%'",
            hooked.secret
        ),
    )
    .await;
    assert_eq!(stored, 0);

    let rotated = app.post(&uri, token, json!({})).await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{}", rotated.body);
    assert_eq!(rotated.body["url"], url);
    assert_eq!(rotated.body["content_type"], "application/json");
    assert_eq!(rotated.body["events"], json!(["push"]));
    let secret = rotated.body["secret"].as_str().unwrap();
    assert_eq!(secret.len(), 64);
    assert_ne!(secret, hooked.secret);
    hooked
        .deliver("ping", "p1", &fixture("ping"))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    let pong = Delivery::signed(secret, "ping", "p2", &fixture("ping"))
        .send(app, app_id)
        .await;
    assert_eq!(pong.status, StatusCode::OK, "{}", pong.body);

    let mallory = app.token("mallory").await;
    for method in [Method::GET, Method::POST, Method::DELETE] {
        app.call(method, &uri, Some(&mallory), None)
            .await
            .assert_problem(StatusCode::NOT_FOUND, "not-found");
    }
    app.call(Method::GET, &uri, None, None)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");

    let removed = app.call(Method::DELETE, &uri, Some(token), None).await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    let shown = app.get(&uri, token).await;
    assert_eq!(shown.body["configured"], false);
    assert_eq!(shown.body["last_delivery"]["event"], "ping");
}
