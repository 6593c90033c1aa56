//! The OpenAPI document, the ops endpoints and the web UI's static files.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use berth_backend::server;
use common::TestApp;
use std::sync::Arc;
use tower::ServiceExt;
use uuid::Uuid;

/// Every route the API serves.
const ROUTES: [(&str, &str); 50] = [
    ("post", "/api/v1/auth/register"),
    ("post", "/api/v1/auth/register/confirm"),
    ("post", "/api/v1/auth/email-change/confirm"),
    ("post", "/api/v1/auth/login"),
    ("post", "/api/v1/auth/refresh"),
    ("post", "/api/v1/auth/logout"),
    ("get", "/api/v1/me"),
    ("patch", "/api/v1/me"),
    ("delete", "/api/v1/me"),
    ("put", "/api/v1/me/password"),
    ("delete", "/api/v1/me/github"),
    ("get", "/api/v1/me/sessions"),
    ("get", "/api/v1/me/quota"),
    ("delete", "/api/v1/me/sessions/{id}"),
    ("post", "/api/v1/auth/password-reset"),
    ("post", "/api/v1/auth/password-reset/confirm"),
    ("get", "/api/v1/auth/github/start"),
    ("get", "/api/v1/auth/github/callback"),
    ("post", "/api/v1/auth/github/link"),
    ("get", "/api/v1/github/repos"),
    ("get", "/api/v1/github/repos/{owner}/{repo}/branches"),
    ("get", "/api/v1/apps"),
    ("post", "/api/v1/apps"),
    ("get", "/api/v1/apps/{id}"),
    ("patch", "/api/v1/apps/{id}"),
    ("delete", "/api/v1/apps/{id}"),
    ("get", "/api/v1/apps/{id}/env"),
    ("get", "/api/v1/apps/{id}/deployments"),
    ("post", "/api/v1/apps/{id}/deployments"),
    ("get", "/api/v1/deployments/{id}"),
    ("post", "/api/v1/deployments/{id}/cancel"),
    ("get", "/api/v1/apps/{id}/releases"),
    ("put", "/api/v1/apps/{id}/scale"),
    ("get", "/api/v1/apps/{id}/logs"),
    ("get", "/api/v1/apps/{id}/logs/ws"),
    ("post", "/api/v1/ws-tickets"),
    ("post", "/api/v1/webhooks/github/{id}"),
    ("post", "/api/v1/webhooks/github"),
    ("get", "/api/v1/apps/{id}/webhook"),
    ("post", "/api/v1/apps/{id}/webhook"),
    ("delete", "/api/v1/apps/{id}/webhook"),
    ("get", "/api/v1/apps/{id}/domains"),
    ("post", "/api/v1/apps/{id}/domains"),
    ("get", "/api/v1/apps/{id}/domains/{hostname}"),
    ("delete", "/api/v1/apps/{id}/domains/{hostname}"),
    ("post", "/api/v1/apps/{id}/domains/{hostname}/verify"),
    ("get", "/api/v1/audit"),
    ("get", "/api/v1/events"),
    ("get", "/api/v1/registry/token"),
    ("get", "/api/v1/openapi.json"),
];

#[tokio::test]
async fn the_openapi_document_lists_every_route_and_only_served_ones() {
    let app = TestApp::new().await;
    let response = app
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(response.status, StatusCode::OK);
    let doc = response.body;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = Vec::new();
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            documented.push((method.clone(), path.clone()));
        }
    }
    for (method, path) in ROUTES {
        assert!(
            documented.contains(&(method.to_owned(), path.to_owned())),
            "{method} {path} is not documented"
        );
    }
    assert_eq!(documented.len(), ROUTES.len(), "{documented:?}");

    // Every documented route is served (no "no such route", no 405).
    for (method, path) in &documented {
        let uri = path.replace("{id}", &Uuid::now_v7().to_string());
        let request = Request::builder()
            .method(Method::from_bytes(method.to_uppercase().as_bytes()).unwrap())
            .uri(&uri)
            .body(Body::empty())
            .unwrap();
        let response = app.send(request).await;
        assert_ne!(
            response.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {uri}"
        );
        if response.status == StatusCode::NOT_FOUND {
            assert_ne!(response.problem(), "no-such-route", "{method} {uri}");
        }
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert!(doc["components"]["schemas"]["Problem"].is_object());
}

/// L3: `/metrics` is served on the ops listener only, not on the public
/// one, which keeps the health endpoints (probes, load balancers).
#[tokio::test]
async fn health_and_readiness_are_public_and_metrics_is_not() {
    let app = TestApp::new().await;
    for (path, status) in [
        ("/healthz", StatusCode::OK),
        ("/readyz", StatusCode::OK),
        ("/metrics", StatusCode::NOT_FOUND),
    ] {
        let response = app.call(Method::GET, path, None, None).await;
        assert_eq!(response.status, status, "{path}");
    }
    let not_ready = server::app(app.state.clone(), Arc::new(|| false), None);
    let response = not_ready
        .oneshot(Request::get("/readyz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn the_web_ui_is_served_with_an_index_fallback() {
    let app = TestApp::new().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "<html>berth</html>").unwrap();
    std::fs::write(dir.path().join("app.js"), "console.log(1)").unwrap();
    let router = server::app(app.state.clone(), Arc::new(|| true), Some(dir.path()));
    let get = |uri: &'static str| {
        let router = router.clone();
        async move {
            let response = router
                .oneshot(Request::get(uri).body(Body::empty()).unwrap())
                .await
                .unwrap();
            let status = response.status();
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            (status, String::from_utf8_lossy(&body).into_owned())
        }
    };
    assert_eq!(
        get("/app.js").await,
        (StatusCode::OK, "console.log(1)".into())
    );
    assert_eq!(get("/apps/123/logs").await.1, "<html>berth</html>");
    assert_eq!(get("/").await.1, "<html>berth</html>");
    let (status, body) = get("/api/v1/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("no-such-route"));
}
