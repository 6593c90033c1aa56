//! The image registry's token service, as the backend serves it: per-tenant
//! grants in, tokens for that tenant's repositories out.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use berth_common::registry_auth::{
    Access, Claims, GrantKey, IssuerSettings, RegistryCredentials, RepositoryLayout, TokenIssuer,
};
use berth_common::testing::registry::{SigningFiles, ISSUER, SERVICE};
use common::TestApp;
use std::sync::Arc;
use std::time::Duration;

fn claims_of(token: &str) -> Claims {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn the_backend_turns_a_tenants_grant_into_a_token_for_its_repositories_only() {
    let secret = berth_proto::SecretKey::generate_base64();
    let dir = tempfile::tempdir().unwrap();
    let files = SigningFiles::generate(dir.path());
    let issuer = TokenIssuer::from_files(
        GrantKey::from_secret_key(&secret).unwrap(),
        &files.key,
        &files.certificate,
        IssuerSettings {
            issuer: ISSUER.into(),
            service: SERVICE.into(),
            layout: RepositoryLayout::from_registry("127.0.0.1:5000"),
            token_ttl: berth_backend::config::REGISTRY_TOKEN_TTL,
        },
    )
    .unwrap();
    let mut app = TestApp::new().await;
    app.state = app.state.clone().with_registry_tokens(Arc::new(issuer));
    app.router = berth_backend::server::app(app.state.clone(), Arc::new(|| true), None);

    let grant = berth_common::registry_auth::Grants::from_secret_key(&secret)
        .unwrap()
        .push_for(Duration::from_secs(600))
        .for_tenant("alice", Access::Push);
    let request = Request::get(
        "/api/v1/registry/token?service=berth-registry\
         &scope=repository:alice/web:pull,push&scope=repository:bob/web:pull,push\
         &scope=repository:cache/alice:pull,push&scope=repository:cache/bob:push",
    )
    .header("authorization", format!("Basic {}", grant.basic_auth()))
    .body(Body::empty())
    .unwrap();
    let response = app.send(request).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    let claims = claims_of(response.body["token"].as_str().unwrap());
    let granted: Vec<(&str, Vec<&str>)> = claims
        .access
        .iter()
        .map(|a| {
            (
                a.name.as_str(),
                a.actions.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        granted,
        [
            ("alice/web", vec!["pull", "push"]),
            ("cache/alice", vec!["pull", "push"])
        ]
    );
    assert_eq!(claims.sub, "push.alice");
    assert!(response.body["expires_in"].as_i64().unwrap() <= 600);

    let anonymous = app
        .send(
            Request::get("/api/v1/registry/token?service=berth-registry")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    anonymous.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn a_backend_without_a_signing_key_says_it_issues_no_registry_tokens() {
    let app = TestApp::new().await;
    let response = app
        .send(
            Request::get("/api/v1/registry/token")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    response.assert_problem(StatusCode::NOT_FOUND, "not-found");
    assert_eq!(response.body["detail"], "no such registry token service");
    let post = app
        .send(
            Request::post("/api/v1/registry/token")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    post.assert_problem(StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed");
}
