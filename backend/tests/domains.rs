//! Custom domains through the API, with a real DNS server of the test's
//! own (pebble-challtestsrv) answering the TXT checks: a domain serves
//! only once its owner proved control of it, one verified name belongs to
//! one app, and the edge router may get certificates only for what berth
//! approves.

mod common;

use axum::http::{Method, StatusCode};
use berth_backend::background::converge::snapshot;
use berth_backend::background::domain_checks::DomainChecks;
use berth_backend::custom_domains::dns::SystemDns;
use berth_backend::custom_domains::Domains;
use berth_common::testing::acme::TestDns;
use common::{id_of, TestApp};
use serde_json::{json, Value};
use std::sync::Arc;
use uuid::Uuid;

struct Setup {
    app: TestApp,
    dns: TestDns,
    domains: Arc<Domains>,
}

async fn setup() -> Setup {
    let dns = TestDns::start().await;
    let mut domains = Domains::with_dns(
        "apps.example.net",
        Arc::new(SystemDns::new(Some(dns.address)).unwrap()),
    );
    domains.console_host = Some("berth.example.net".into());
    let domains = Arc::new(domains);
    let app = TestApp::new().await.with_domains(domains.clone());
    Setup { app, dns, domains }
}

async fn new_app(app: &TestApp, token: &str, name: &str) -> Uuid {
    id_of(
        &app.create_app(
            token,
            json!({"name": name, "repo_url": "https://x.example/r"}),
        )
        .await,
    )
}

fn txt_record(domain: &Value) -> (String, String) {
    let record = domain["dns_records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "TXT")
        .unwrap_or_else(|| panic!("no TXT record in {domain}"));
    (
        record["name"].as_str().unwrap().to_owned(),
        record["value"].as_str().unwrap().to_owned(),
    )
}

/// `POST .../domains/shop.example.org/verify` on app `id`.
async fn verify(app: &TestApp, id: Uuid, token: &str) -> common::Response {
    let url = format!("/api/v1/apps/{id}/domains/shop.example.org/verify");
    app.call(Method::POST, &url, Some(token), None).await
}

/// `DELETE .../domains/shop.example.org` on app `id`.
async fn remove(app: &TestApp, id: Uuid, token: &str) -> common::Response {
    let url = format!("/api/v1/apps/{id}/domains/shop.example.org");
    app.call(Method::DELETE, &url, Some(token), None).await
}

async fn ask(app: &TestApp, host: &str) -> StatusCode {
    app.call(
        Method::GET,
        &format!("/internal/router/tls-ask?domain={host}"),
        None,
        None,
    )
    .await
    .status
}

#[tokio::test]
async fn a_domain_serves_only_after_its_txt_record_proves_control() {
    let Setup { app, dns, .. } = setup().await;
    let token = app.token("alice").await;
    let id = new_app(&app, &token, "shop").await;
    let added = app
        .post(
            &format!("/api/v1/apps/{id}/domains"),
            &token,
            json!({"hostname": "Shop.Example.org."}),
        )
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
    let domain = &added.body;
    assert_eq!(domain["hostname"], "shop.example.org");
    assert_eq!(domain["environment"], "production");
    assert_eq!(domain["status"], "pending_verification");
    assert_eq!(domain["certificate"]["state"], "not_applicable");
    let (name, value) = txt_record(domain);
    assert_eq!(name, "_berth-challenge.shop.example.org");
    assert!(value.starts_with("berth-verification="), "{value}");
    let cname = domain["dns_records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "CNAME");
    assert_eq!(cname.unwrap()["value"], "shop.alice.apps.example.net");

    let missing = verify(&app, id, &token).await;
    assert_eq!(missing.status, StatusCode::OK);
    assert_eq!(missing.body["status"], "pending_verification");
    let why = missing.body["verification"]["error"].as_str().unwrap();
    assert!(
        why.contains("no TXT record at _berth-challenge.shop.example.org"),
        "{why}"
    );
    assert_eq!(ask(&app, "shop.example.org").await, StatusCode::NOT_FOUND);
    let desired = snapshot(app.pool()).await.unwrap();
    assert!(
        desired.apps[0].domains.is_empty(),
        "unverified domains are not routed"
    );

    dns.set_txt(&name, "berth-verification=someone-elses-token")
        .await;
    let wrong = verify(&app, id, &token).await;
    assert_eq!(wrong.body["status"], "pending_verification");
    let why = wrong.body["verification"]["error"].as_str().unwrap();
    assert!(why.contains("someone-elses-token"), "{why}");

    dns.set_txt(&name, &value).await;
    let verified = verify(&app, id, &token).await;
    assert_eq!(verified.body["status"], "verified", "{}", verified.body);
    assert!(verified.body["verified_at"].is_string());
    assert_eq!(ask(&app, "shop.example.org").await, StatusCode::OK);
    assert_eq!(ask(&app, "SHOP.example.org.").await, StatusCode::OK);
    let desired = snapshot(app.pool()).await.unwrap();
    assert_eq!(desired.apps[0].domains, vec!["shop.example.org".to_owned()]);

    let listed = app.get(&format!("/api/v1/apps/{id}/domains"), &token).await;
    assert_eq!(listed.body.as_array().unwrap().len(), 1);
    let removed = remove(&app, id, &token).await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    assert_eq!(ask(&app, "shop.example.org").await, StatusCode::NOT_FOUND);
    assert!(snapshot(app.pool()).await.unwrap().apps[0]
        .domains
        .is_empty());
    let again = remove(&app, id, &token).await;
    again.assert_problem(StatusCode::NOT_FOUND, "not-found");
}

#[tokio::test]
async fn a_verified_domain_belongs_to_one_app_until_it_is_removed() {
    let Setup { app, dns, domains } = setup().await;
    let alice = app.token("alice").await;
    let mallory = app.token("mallory").await;
    let shop = new_app(&app, &alice, "shop").await;
    let evil = new_app(&app, &mallory, "evil").await;
    let add = |id: Uuid, token: String| {
        let app = &app;
        async move {
            app.post(
                &format!("/api/v1/apps/{id}/domains"),
                &token,
                json!({"hostname": "shop.example.org"}),
            )
            .await
        }
    };
    let mine = add(shop, alice.clone()).await;
    let (name, value) = txt_record(&mine.body);
    // Mallory may wait beside a claim that is not proven yet...
    let waiting = add(evil, mallory.clone()).await;
    assert_eq!(waiting.status, StatusCode::CREATED);
    let (_, mallorys_value) = txt_record(&waiting.body);
    assert_ne!(mallorys_value, value, "each claim has its own token");
    // ...but the owner of the DNS proves it, and the background check sees it.
    dns.set_txt(&name, &value).await;
    DomainChecks::new(app.pool().clone(), domains.clone())
        .pass()
        .await
        .unwrap();
    let alices = app
        .get(
            &format!("/api/v1/apps/{shop}/domains/shop.example.org"),
            &alice,
        )
        .await;
    assert_eq!(alices.body["status"], "verified");
    let mallorys = app
        .get(
            &format!("/api/v1/apps/{evil}/domains/shop.example.org"),
            &mallory,
        )
        .await;
    assert_eq!(mallorys.body["status"], "pending_verification");
    // A new claim of a verified name is refused outright.
    let third = new_app(&app, &mallory, "third").await;
    add(third, mallory.clone())
        .await
        .assert_problem(StatusCode::CONFLICT, "conflict");
    // Mallory cannot see or touch Alice's app's domains.
    let peek = app
        .get(&format!("/api/v1/apps/{shop}/domains"), &mallory)
        .await;
    peek.assert_problem(StatusCode::NOT_FOUND, "not-found");
    let take = remove(&app, shop, &mallory).await;
    take.assert_problem(StatusCode::NOT_FOUND, "not-found");
    // Even with a TXT record holding the right token for her own claim,
    // Mallory's claim cannot verify while Alice holds the name.
    dns.set_txt(&name, &mallorys_value).await;
    let tried = verify(&app, evil, &mallory).await;
    assert_eq!(tried.body["status"], "pending_verification");
    let why = tried.body["verification"]["error"].as_str().unwrap();
    assert!(
        why.contains("another app already uses this domain"),
        "{why}"
    );
    let desired = snapshot(app.pool()).await.unwrap();
    let routed: Vec<(Uuid, Vec<String>)> = desired
        .apps
        .iter()
        .map(|a| (a.app.id, a.domains.clone()))
        .collect();
    assert!(
        routed.contains(&(shop, vec!["shop.example.org".into()])),
        "{routed:?}"
    );
    assert!(routed.contains(&(evil, vec![])), "{routed:?}");

    // Deleting Alice's app frees the name.
    let deleted = app
        .call(
            Method::DELETE,
            &format!("/api/v1/apps/{shop}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED);
    assert_eq!(ask(&app, "shop.example.org").await, StatusCode::NOT_FOUND);
    let now = verify(&app, evil, &mallory).await;
    assert_eq!(now.body["status"], "verified", "{}", now.body);
}

#[tokio::test]
async fn malformed_and_reserved_names_get_a_problem_on_the_field() {
    let Setup { app, .. } = setup().await;
    let token = app.token("alice").await;
    let id = new_app(&app, &token, "shop").await;
    let url = format!("/api/v1/apps/{id}/domains");
    for hostname in [
        "https://shop.example.org",
        "*.example.org",
        "shop.localhost",
        "10.0.0.1",
        "web.bob.apps.example.net",
        "berth.example.net",
        "bad_name.example.org",
    ] {
        let response = app.post(&url, &token, json!({"hostname": hostname})).await;
        response.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
        assert_eq!(response.invalid_fields(), vec!["hostname"], "{hostname}");
    }
    let staging = app
        .post(
            &url,
            &token,
            json!({"hostname": "shop.example.org", "environment": "staging"}),
        )
        .await;
    assert_eq!(staging.invalid_fields(), vec!["environment"]);
    let unknown = app
        .post(
            &url,
            &token,
            json!({"hostname": "a.example.org", "wildcard": true}),
        )
        .await;
    assert!(unknown.status.is_client_error(), "{}", unknown.body);
    let nowhere = app
        .post(
            &format!("/api/v1/apps/{}/domains", Uuid::now_v7()),
            &token,
            json!({"hostname": "a.example.org"}),
        )
        .await;
    nowhere.assert_problem(StatusCode::NOT_FOUND, "not-found");
    app.post(&url, &token, json!({"hostname": "a.example.org"}))
        .await;
    let twice = app
        .post(&url, &token, json!({"hostname": "A.example.org"}))
        .await;
    twice.assert_problem(StatusCode::CONFLICT, "conflict");
    for n in 1..20 {
        let response = app
            .post(
                &url,
                &token,
                json!({"hostname": format!("n{n}.example.org")}),
            )
            .await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
    }
    let over = app
        .post(
            &url,
            &token,
            json!({"hostname": "one-too-many.example.org"}),
        )
        .await;
    over.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
}

#[tokio::test]
async fn the_router_gets_certificates_only_for_what_berth_approves() {
    let Setup { app, .. } = setup().await;
    let token = app.token("alice").await;
    new_app(&app, &token, "shop").await;
    // Without HTTPS on the apps domain, apps' own names are not approved.
    assert_eq!(
        ask(&app, "shop.alice.apps.example.net").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(ask(&app, "random.example.org").await, StatusCode::NOT_FOUND);
    let mut domains = (*app.state.domains.clone().unwrap()).clone();
    domains.tls = Some("127.0.0.1:9".parse().unwrap());
    let app = app.with_domains(Arc::new(domains));
    assert_eq!(
        ask(&app, "shop.alice.apps.example.net").await,
        StatusCode::OK
    );
    assert_eq!(ask(&app, "berth.example.net").await, StatusCode::OK);
    assert_eq!(
        ask(&app, "gone.alice.apps.example.net").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        ask(&app, "x.shop.alice.apps.example.net").await,
        StatusCode::NOT_FOUND
    );
}
