//! Apps: CRUD, validation, tenancy, sealed env vars.

mod common;

use axum::http::{Method, StatusCode};
use berth_backend::state::ApiSettings;
use common::{fake_logs::FakeLogs, id_of, TestApp};
use serde_json::json;
use std::sync::Arc;

#[tokio::test]
async fn create_read_update_list_and_delete_an_app() {
    let app = TestApp::new().await;
    let token = app.token("alice").await;
    let created = app
        .create_app(
            &token,
            json!({"name": "hello-web", "repo_url": "https://github.com/berth-dev/hello.git",
                   "env": {"DATABASE_URL": "postgres://secret", "DEBUG": "1"}}),
        )
        .await;
    assert_eq!(created["branch"], "main");
    assert_eq!(created["port"], 8000);
    assert_eq!(created["tenant"], "alice");
    assert_eq!(created["env_names"], json!(["DATABASE_URL", "DEBUG"]));
    assert_eq!(created["env_version"], 1);
    assert_eq!(created["state"], json!(null));
    assert_eq!(created["url"], json!(null));
    assert!(!created.to_string().contains("postgres://secret"));
    let id = id_of(&created);

    // Values are stored sealed, never in clear.
    let stored: String = sqlx::query_scalar("SELECT env_sealed::text FROM apps")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert!(!stored.contains("postgres://secret") && !stored.contains("DATABASE_URL"));

    let env = app.get(&format!("/api/v1/apps/{id}/env"), &token).await;
    assert_eq!(env.status, StatusCode::OK);
    assert_eq!(env.body["env"]["DATABASE_URL"], "postgres://secret");

    let patched = app
        .call(
            Method::PATCH,
            &format!("/api/v1/apps/{id}"),
            Some(&token),
            Some(json!({"port": 5000, "subdirectory": "web", "env": {"DEBUG": "0"}})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.body["port"], 5000);
    assert_eq!(patched.body["subdirectory"], "web");
    assert_eq!(patched.body["env_names"], json!(["DEBUG"]));
    assert_eq!(patched.body["env_version"], 2);

    // The same env again is not a new version; null clears the subdirectory.
    let same = app
        .call(
            Method::PATCH,
            &format!("/api/v1/apps/{id}"),
            Some(&token),
            Some(json!({"env": {"DEBUG": "0"}, "subdirectory": null})),
        )
        .await;
    assert_eq!(same.body["env_version"], 2);
    assert_eq!(same.body["subdirectory"], json!(null));

    let list = app.get("/api/v1/apps", &token).await;
    assert_eq!(list.body.as_array().unwrap().len(), 1);

    let in_progress = app
        .post(&format!("/api/v1/apps/{id}/deployments"), &token, json!({}))
        .await;
    assert_eq!(in_progress.status, StatusCode::ACCEPTED);
    let deleted = app
        .call(
            Method::DELETE,
            &format!("/api/v1/apps/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED);
    let (state, reason): (String, String) =
        sqlx::query_as("SELECT state, reason FROM deployments WHERE id = $1")
            .bind(id_of(&in_progress.body))
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(
        (state.as_str(), reason.as_str()),
        ("cancelled", "the app was deleted")
    );
    app.get(&format!("/api/v1/apps/{id}"), &token)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not-found");
    assert_eq!(app.get("/api/v1/apps", &token).await.body, json!([]));

    // The runtime is asked to remove the app, through the outbox.
    let (routing_key, kind): (String, String) = sqlx::query_as(
        "SELECT routing_key, envelope->>'type' FROM outbox ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!(
        (routing_key.as_str(), kind.as_str()),
        ("berth.deploys", "app.removal_requested")
    );

    // The name is free again.
    app.create_app(
        &token,
        json!({"name": "hello-web", "repo_url": "https://github.com/berth-dev/hello.git"}),
    )
    .await;
}

#[tokio::test]
async fn invalid_apps_are_refused_with_every_reason() {
    let app = TestApp::new().await;
    let token = app.token("bob").await;
    let cases = [
        (
            json!({"name": "Bad_Name", "repo_url": "https://x.example/r"}),
            "name",
            None,
        ),
        (
            json!({"name": "a", "repo_url": "http://github.com/o/r"}),
            "repo_url",
            Some("https"),
        ),
        (
            json!({"name": "a", "repo_url": "file:///srv/repo"}),
            "repo_url",
            Some("local repositories are not allowed"),
        ),
        (
            json!({"name": "a", "repo_url": "/srv/repo"}),
            "repo_url",
            Some("local repositories are not allowed"),
        ),
        (
            json!({"name": "a", "repo_url": "https://x.example/r", "env": {"1BAD": "x"}}),
            "env.1BAD",
            None,
        ),
        (
            json!({"name": "a", "repo_url": "https://x.example/r", "env": {"PORT": "1"}}),
            "env.PORT",
            None,
        ),
        (
            json!({"name": "a", "repo_url": "https://x.example/r", "port": 70000}),
            "port",
            None,
        ),
        (json!({"repo_url": "https://x.example/r"}), "name", None),
        (
            json!({"name": "9lives", "repo_url": "https://x.example/r"}),
            "name",
            Some("must start with a lowercase letter"),
        ),
        (
            json!({"name": "a", "repo_url": "https://x.example/r", "env": {"A": 1}}),
            "env.A",
            None,
        ),
    ];
    for (body, field, detail) in cases {
        let response = app.post("/api/v1/apps", &token, body.clone()).await;
        response.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
        assert!(
            response.invalid_fields().iter().any(|f| f == field),
            "{body}: {}",
            response.body
        );
        if let Some(detail) = detail {
            assert!(
                response.body["detail"].as_str().unwrap().contains(detail),
                "{}",
                response.body
            );
        }
    }
    let several = app
        .post(
            "/api/v1/apps",
            &token,
            json!({"name": "-x", "repo_url": "ftp://x", "env": {"A-B": "1"}}),
        )
        .await;
    assert_eq!(several.invalid_fields(), ["name", "repo_url", "env.A-B"]);

    let body = json!({"name": "twice", "repo_url": "https://x.example/r"});
    app.create_app(&token, body.clone()).await;
    let twice = app.post("/api/v1/apps", &token, body).await;
    twice.assert_problem(StatusCode::CONFLICT, "conflict");
    assert_eq!(
        twice.invalid_fields(),
        ["name"],
        "the form shows it at the name"
    );

    app.get("/api/v1/apps/not-a-uuid", &token)
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "bad-request");
    let id = id_of(&app.get("/api/v1/apps", &token).await.body[0]);
    app.call(
        Method::PATCH,
        &format!("/api/v1/apps/{id}"),
        Some(&token),
        Some(json!({"name": "renamed"})),
    )
    .await
    .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
}

#[tokio::test]
async fn local_repositories_are_accepted_when_allowed() {
    let settings = ApiSettings {
        allow_local_repos: true,
        local_repo_root: Some("/srv".into()),
        ..Default::default()
    };
    let app = TestApp::with(settings, Arc::new(FakeLogs::default())).await;
    let token = app.token("carol").await;
    for (name, url) in [
        ("a", "file:///srv/repo"),
        ("b", "/srv/repo"),
        ("c", "http://127.0.0.1:3000/r"),
    ] {
        app.create_app(&token, json!({"name": name, "repo_url": url}))
            .await;
    }
}

/// L1: a repository on an internal host (the metadata service, the
/// cluster, the backend's own machine) is refused, http://localhost too,
/// unless the server is a local development one.
#[tokio::test]
async fn repositories_on_internal_hosts_are_refused() {
    let app = TestApp::new().await;
    let token = app.token("dave").await;
    let id = id_of(
        &app.create_app(
            &token,
            json!({"name": "ok", "repo_url": "https://github.com/o/r"}),
        )
        .await,
    );
    for url in [
        "http://localhost/o/r",
        "http://127.0.0.1:3000/o/r",
        "https://169.254.169.254/latest/meta-data",
        "https://10.0.0.1/o/r",
        "https://[::1]/o/r",
        "https://kubernetes.default.svc/o/r",
    ] {
        let created = app
            .post(
                "/api/v1/apps",
                &token,
                json!({"name": "x", "repo_url": url}),
            )
            .await;
        created.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
        assert_eq!(created.invalid_fields(), ["repo_url"], "{url}");
        let changed = app
            .call(
                Method::PATCH,
                &format!("/api/v1/apps/{id}"),
                Some(&token),
                Some(json!({"repo_url": url})),
            )
            .await;
        changed.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    }
}

/// L4: with local repositories on, only folders inside the root, judged
/// after following symlinks.
#[tokio::test]
async fn local_repositories_outside_the_root_are_refused() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("mine")).unwrap();
    std::os::unix::fs::symlink("/etc", root.path().join("sneaky")).unwrap();
    let settings = ApiSettings {
        allow_local_repos: true,
        local_repo_root: Some(root.path().to_path_buf()),
        ..Default::default()
    };
    let app = TestApp::with(settings, Arc::new(FakeLogs::default())).await;
    let token = app.token("erin").await;
    let inside = root.path().join("mine").display().to_string();
    app.create_app(&token, json!({"name": "mine", "repo_url": inside}))
        .await;
    for url in [
        "/etc".to_owned(),
        "file:///root/.ssh".to_owned(),
        root.path().join("sneaky").display().to_string(),
        format!("{}/mine/../..", root.path().display()),
    ] {
        let created = app
            .post(
                "/api/v1/apps",
                &token,
                json!({"name": "x", "repo_url": url}),
            )
            .await;
        created.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
        assert!(
            created.body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("local repositories must be inside"),
            "{url}: {}",
            created.body
        );
    }
}

#[tokio::test]
async fn another_users_app_is_not_found() {
    let app = TestApp::new().await;
    let owner = app.token("owner").await;
    let other = app.token("other").await;
    let created = app
        .create_app(
            &owner,
            json!({"name": "mine", "repo_url": "https://x.example/r", "env": {"K": "v"}}),
        )
        .await;
    let id = id_of(&created);
    for (method, uri, body) in [
        (Method::GET, format!("/api/v1/apps/{id}"), None),
        (
            Method::PATCH,
            format!("/api/v1/apps/{id}"),
            Some(json!({"port": 1})),
        ),
        (Method::DELETE, format!("/api/v1/apps/{id}"), None),
        (Method::GET, format!("/api/v1/apps/{id}/env"), None),
        (
            Method::PUT,
            format!("/api/v1/apps/{id}/scale"),
            Some(json!({"replicas": 0})),
        ),
        (Method::GET, format!("/api/v1/apps/{id}/deployments"), None),
        (
            Method::POST,
            format!("/api/v1/apps/{id}/deployments"),
            Some(json!({})),
        ),
        (Method::GET, format!("/api/v1/apps/{id}/releases"), None),
        (Method::GET, format!("/api/v1/apps/{id}/logs"), None),
    ] {
        let response = app.call(method.clone(), &uri, Some(&other), body).await;
        response.assert_problem(StatusCode::NOT_FOUND, "not-found");
    }
    assert_eq!(app.get("/api/v1/apps", &other).await.body, json!([]));
    // Still there for its owner.
    let mine = app.get(&format!("/api/v1/apps/{id}"), &owner).await;
    assert_eq!(mine.status, StatusCode::OK);
}

#[tokio::test]
async fn scaling_is_kept_on_the_app_and_sent_to_the_runtime() {
    let app = TestApp::new().await;
    let token = app.token("scaler").await;
    let created = app
        .create_app(
            &token,
            json!({"name": "web", "repo_url": "https://x.example/r"}),
        )
        .await;
    assert_eq!(created["replicas"], 1);
    let id = id_of(&created);
    let uri = format!("/api/v1/apps/{id}/scale");

    for replicas in [3, 0] {
        let response = app
            .call(
                Method::PUT,
                &uri,
                Some(&token),
                Some(json!({ "replicas": replicas })),
            )
            .await;
        assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.body);
        assert_eq!(response.body["replicas"], replicas);
        let (kind, message_replicas, app_id): (String, i64, String) = sqlx::query_as(
            "SELECT envelope->>'type', (envelope->'payload'->>'replicas')::bigint,
                    envelope->'payload'->'app'->>'id'
             FROM outbox ORDER BY id DESC LIMIT 1",
        )
        .fetch_one(app.pool())
        .await
        .unwrap();
        assert_eq!(kind, "app.scale_requested");
        assert_eq!(message_replicas, replicas);
        assert_eq!(app_id, id.to_string());
    }
    assert_eq!(
        app.get(&format!("/api/v1/apps/{id}"), &token).await.body["replicas"],
        0
    );

    for body in [
        json!({"replicas": 21}),
        json!({"replicas": -1}),
        json!({"count": 2}),
    ] {
        let response = app
            .call(Method::PUT, &uri, Some(&token), Some(body.clone()))
            .await;
        assert!(
            response.status.is_client_error(),
            "{body}: {}",
            response.status
        );
        assert!(
            response.body["detail"].is_string(),
            "{body}: a readable problem: {}",
            response.body
        );
    }
    let too_many = app
        .call(
            Method::PUT,
            &uri,
            Some(&token),
            Some(json!({"replicas": 21})),
        )
        .await;
    too_many.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(too_many.invalid_fields(), ["replicas"]);
}
