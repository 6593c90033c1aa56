//! Custom domains on Kubernetes against a scripted API server: the
//! reconciler's wants become `<app>-domains` Ingresses with cert-manager,
//! applied only when they change, deleted (with their certificates) when
//! an app has no domain left.

use super::fake::*;
use super::{domain_secret_name, domains_ingress};
use crate::runtime::{RouteWant, Runtime};
use berth_common::kube_fake::{self, ApiServer};
use berth_proto::AppRef;
use http::Method;
use serde_json::json;
use uuid::Uuid;

const INGRESSES: &str = "/apis/networking.k8s.io/v1/namespaces/berth-acme/ingresses";

fn app(name: &str) -> AppRef {
    AppRef {
        id: Uuid::now_v7(),
        name: name.into(),
        tenant: "acme".into(),
    }
}

fn want(app: &AppRef, domains: &[&str]) -> RouteWant {
    RouteWant {
        app: app.clone(),
        live: Some(Uuid::now_v7()),
        serving: true,
        domains: domains.iter().map(|d| (*d).to_owned()).collect(),
    }
}

/// The DELETE of one domain's certificate Secret.
async fn expect_certificate_delete(
    server: &mut ApiServer,
    app: &AppRef,
    domain: &str,
) -> berth_common::kube_fake::Call {
    let secret = domain_secret_name(app, domain);
    server
        .expect(
            Method::DELETE,
            &format!("/api/v1/namespaces/berth-acme/secrets/{secret}"),
        )
        .await
}

fn existing(app: &AppRef, domains: &[&str]) -> serde_json::Value {
    let domains: Vec<String> = domains.iter().map(|d| (*d).to_owned()).collect();
    let mut ingress = serde_json::to_value(domains_ingress(app, &domains, &settings())).unwrap();
    ingress["apiVersion"] = json!("networking.k8s.io/v1");
    ingress["kind"] = json!("Ingress");
    ingress
}

#[tokio::test]
async fn domains_become_an_ingress_of_their_own_with_a_certificate_each() {
    let shop = app("shop");
    let (blog, gone) = (app("blog"), app("old"));
    let wants = vec![
        want(&shop, &["www.shop.example", "shop.example"]),
        want(&blog, &["blog.example"]),
    ];
    let (client, mut server) = kube_fake::pair();
    let keep_nothing = |_: Uuid| false;
    let task =
        tokio::spawn(async move { runtime(client).converge_routes(&wants, &keep_nothing).await });

    server
        .expect(Method::GET, "/apis/networking.k8s.io/v1/ingresses")
        .await
        .assert_query(
            "labelSelector",
            "app.kubernetes.io/managed-by=berth,berth.dev/domains",
        )
        .respond_json(
            json!({"apiVersion": "v1", "kind": "IngressList", "metadata": {},
            "items": [existing(&blog, &["blog.example"]), existing(&gone, &["old.example"])]}),
        );
    // shop's domains are new: applied, one TLS entry (and Secret) each.
    let applied = server
        .expect(Method::PATCH, &format!("{INGRESSES}/shop-domains"))
        .await
        .assert_server_side_apply()
        .assert_body(
            "/metadata/annotations/cert-manager.io~1cluster-issuer",
            "letsencrypt",
        )
        .assert_body("/metadata/labels/berth.dev~1app", shop.id.to_string())
        .assert_body("/spec/rules/0/host", "shop.example")
        .assert_body("/spec/rules/1/host", "www.shop.example")
        .assert_body("/spec/rules/0/http/paths/0/backend/service/name", "shop")
        .assert_body(
            "/spec/rules/0/http/paths/0/backend/service/port/name",
            "http",
        )
        .assert_body("/spec/tls/0/hosts", json!(["shop.example"]))
        .assert_body(
            "/spec/tls/0/secretName",
            domain_secret_name(&shop, "shop.example"),
        )
        .assert_body(
            "/spec/tls/1/secretName",
            domain_secret_name(&shop, "www.shop.example"),
        );
    applied.respond_applied();
    // blog's are as wanted: nothing. The deleted app's go, with its
    // certificate.
    server
        .expect(Method::DELETE, &format!("{INGRESSES}/old-domains"))
        .await
        .respond_json(success_status());
    expect_certificate_delete(&mut server, &gone, "old.example")
        .await
        .respond_not_found();
    assert!(
        task.await.unwrap().unwrap().is_empty(),
        "domains move no traffic"
    );
    server.done().await;
}

#[tokio::test]
async fn a_removed_domain_loses_its_certificate_and_the_last_one_its_ingress() {
    let shop = app("shop");
    let blog = app("blog");
    let wants = vec![want(&shop, &["shop.example"]), want(&blog, &[])];
    let (client, mut server) = kube_fake::pair();
    let task =
        tokio::spawn(async move { runtime(client).converge_routes(&wants, &|_| false).await });
    server
        .expect(Method::GET, "/apis/networking.k8s.io/v1/ingresses")
        .await
        .respond_json(json!({"apiVersion": "v1", "kind": "IngressList", "metadata": {},
            "items": [existing(&shop, &["shop.example", "old.shop.example"]), existing(&blog, &["blog.example"])]}));
    let applied = server
        .expect(Method::PATCH, &format!("{INGRESSES}/shop-domains"))
        .await
        .assert_body(
            "/spec/rules",
            json!([{"host": "shop.example", "http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "shop", "port": {"name": "http"}}}}]}}]),
        );
    applied.respond_applied();
    expect_certificate_delete(&mut server, &shop, "old.shop.example")
        .await
        .respond_json(success_status());
    server
        .expect(Method::DELETE, &format!("{INGRESSES}/blog-domains"))
        .await
        .respond_json(success_status());
    expect_certificate_delete(&mut server, &blog, "blog.example")
        .await
        .respond_json(success_status());
    task.await.unwrap().unwrap();
    server.done().await;
}

/// cert-manager does not delete the Secrets it wrote: deleting an app
/// deletes its domains' certificates with its Ingresses.
#[tokio::test]
async fn deleting_an_app_deletes_its_domains_certificates() {
    let shop = app("web");
    let removing = shop.clone();
    let (client, mut server) = kube_fake::pair();
    let task = tokio::spawn(async move { runtime(client).remove_app(&removing).await });
    let selector = format!("berth.dev/app={}", shop.id);
    server
        .expect(Method::DELETE, INGRESSES)
        .await
        .assert_query("labelSelector", &selector)
        .respond_json(json!({"apiVersion": "v1", "kind": "IngressList", "metadata": {},
            "items": [{"metadata": {"name": "web", "namespace": "berth-acme"}}, existing(&shop, &["shop.example"])]}));
    expect_certificate_delete(&mut server, &shop, "shop.example")
        .await
        .respond_json(success_status());
    server
        .expect(Method::GET, "/api/v1/namespaces/berth-acme/services")
        .await
        .respond_json(json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList", "metadata": {}, "items": []}));
    for path in [
        "/apis/apps/v1/namespaces/berth-acme/deployments",
        "/api/v1/namespaces/berth-acme/secrets",
    ] {
        server
            .expect(Method::DELETE, path)
            .await
            .assert_query("labelSelector", &selector)
            .respond_json(json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": []}));
    }
    server
        .expect(
            Method::DELETE,
            "/api/v1/namespaces/berth-acme/secrets/web-tls",
        )
        .await
        .respond_not_found();
    assert_eq!(
        task.await.unwrap().unwrap(),
        3,
        "2 Ingresses and a certificate"
    );
    server.done().await;
}
