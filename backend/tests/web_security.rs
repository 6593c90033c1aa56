//! L8: the security headers every answer carries (CSP for the web UI,
//! nosniff, no framing, referrer policy, HSTS behind https) and the Host
//! check against DNS rebinding.

mod common;

use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use berth_backend::server;
use berth_backend::state::ApiSettings;
use common::fake_logs::FakeLogs;
use common::TestApp;
use std::sync::Arc;
use tower::ServiceExt;

async fn app_at(public_url: Option<&str>) -> (TestApp, tempfile::TempDir, axum::Router) {
    let settings = ApiSettings {
        public_url: public_url.map(str::to_owned),
        allowed_hosts: vec!["berth.internal".into()],
        ..ApiSettings::default()
    };
    let app = TestApp::with(settings, Arc::new(FakeLogs::default())).await;
    let ui = tempfile::tempdir().unwrap();
    std::fs::write(ui.path().join("index.html"), "<html>berth</html>").unwrap();
    let router = server::app(app.state.clone(), Arc::new(|| true), Some(ui.path()));
    (app, ui, router)
}

async fn get(router: &axum::Router, path: &str, host: Option<&str>) -> (StatusCode, HeaderMap) {
    let mut request = Request::get(path);
    if let Some(host) = host {
        request = request.header(header::HOST, host);
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    (response.status(), response.headers().clone())
}

#[tokio::test]
async fn the_web_ui_and_the_api_send_the_security_headers() {
    let (_app, _ui, router) = app_at(Some("http://127.0.0.1:8080")).await;
    for path in ["/", "/apps/123", "/api/v1/apps", "/api/v1/nope", "/healthz"] {
        let (_, headers) = get(&router, path, None).await;
        let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "object-src 'none'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{path}");
        assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY", "{path}");
        assert_eq!(headers[header::REFERRER_POLICY], "no-referrer", "{path}");
        // Plain http: no HSTS (a browser would ignore it, and a later https
        // host of the same name would inherit it).
        assert!(
            !headers.contains_key(header::STRICT_TRANSPORT_SECURITY),
            "{path}"
        );
    }
}

#[tokio::test]
async fn hsts_is_sent_when_the_public_url_is_https() {
    let (_app, _ui, router) = app_at(Some("https://berth.example.com")).await;
    let (status, headers) = get(&router, "/", Some("berth.example.com")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers[header::STRICT_TRANSPORT_SECURITY],
        "max-age=31536000"
    );
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(
        csp.contains("connect-src 'self' wss://berth.example.com;"),
        "{csp}"
    );
}

#[tokio::test]
async fn requests_for_another_host_name_are_refused() {
    let (_app, _ui, router) = app_at(Some("https://berth.example.com")).await;
    for host in [
        "berth.example.com",
        "berth.internal:8080",
        "10.0.0.7:8080",
        "[::1]:8080",
        "localhost:5173",
    ] {
        let (status, _) = get(&router, "/healthz", Some(host)).await;
        assert_eq!(status, StatusCode::OK, "{host}");
    }
    // A DNS-rebinding page sends its own name.
    for path in ["/api/v1/apps", "/", "/healthz"] {
        let (status, headers) = get(&router, path, Some("rebind.attacker.example")).await;
        assert_eq!(status, StatusCode::MISDIRECTED_REQUEST, "{path}");
        assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    }
    // Without a public URL there is no name to compare with: no check.
    let (_app, _ui, open) = app_at(None).await;
    let (status, _) = get(&open, "/healthz", Some("rebind.attacker.example")).await;
    assert_eq!(status, StatusCode::OK);
}
