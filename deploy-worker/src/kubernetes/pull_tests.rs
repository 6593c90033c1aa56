//! Each tenant's image pull Secret: a pull grant of that tenant only, for
//! berth's registry, applied with every deploy and scale-up and named by
//! the app's pods.

use super::fake::*;
use super::{plan, PullSecret};
use crate::registry::RegistryPull;
use crate::runtime::Runtime;
use base64::Engine;
use berth_common::kube_fake::{self, Call};
use berth_common::registry_auth::{unix_now, Access, Credentials, Grant, GrantKey, Grants};
use http::Method;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

const KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
const REGISTRY: &str = "registry.example:5000";
const PULL_SECRET_PATH: &str = "/api/v1/namespaces/berth-acme/secrets/berth-registry-pull";
const DAYS_30: i64 = 30 * 86_400;

fn registry_pull() -> RegistryPull {
    RegistryPull::new(
        &format!("{REGISTRY}/berth"),
        Arc::new(
            Grants::from_secret_key(KEY)
                .unwrap()
                .pull_for(Duration::from_secs(DAYS_30 as u64)),
        ),
    )
}

/// The registries a pull Secret names, and the grant it holds, verified
/// with the installation's key.
fn grant_in(secret: &Value) -> (Vec<String>, Credentials, Grant) {
    assert_eq!(
        secret["type"], "kubernetes.io/dockerconfigjson",
        "{secret:#}"
    );
    let data = secret["data"][".dockerconfigjson"].as_str().unwrap();
    let config: Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap(),
    )
    .unwrap();
    let auths = config["auths"].as_object().unwrap();
    let auth = &auths[REGISTRY];
    let credentials = Credentials {
        username: auth["username"].as_str().unwrap().to_owned(),
        password: auth["password"].as_str().unwrap().to_owned(),
    };
    let grant = GrantKey::from_secret_key(KEY)
        .unwrap()
        .verify(&credentials.username, &credentials.password, unix_now())
        .unwrap();
    (auths.keys().cloned().collect(), credentials, grant)
}

#[test]
fn the_plan_applies_the_tenants_pull_secret_and_its_pods_name_it() {
    let deploy = Deploy::first();
    let pull = PullSecret {
        registry: REGISTRY.into(),
        credentials: registry_pull().for_tenant("acme"),
    };
    let documents = plan(
        &deploy.spec.release,
        deploy.id(),
        &deploy.spec.env,
        &settings(),
        Some(&pull),
    );
    let secret = documents
        .iter()
        .find(|d| d["kind"] == "Secret" && d["metadata"]["name"] == "berth-registry-pull")
        .expect("the tenant's pull secret is in the plan");
    assert_eq!(secret["metadata"]["namespace"], "berth-acme");
    assert!(
        secret["metadata"]["labels"].get("berth.dev/app").is_none(),
        "the tenant's, not an app's: pruning and app removal leave it"
    );
    let (registries, _, grant) = grant_in(secret);
    assert_eq!(registries, [REGISTRY]);
    assert_eq!(
        (grant.tenant.as_str(), grant.access),
        ("acme", Access::Pull)
    );
    let deployment = documents
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .unwrap();
    assert_eq!(
        deployment["spec"]["template"]["spec"]["imagePullSecrets"],
        json!([{"name": "berth-registry-pull"}])
    );
    // Without a registry, nothing of it.
    let plain = deploy.plan();
    assert!(plain
        .iter()
        .all(|d| d["metadata"]["name"] != "berth-registry-pull"));
}

#[test]
fn two_tenants_pull_secrets_hold_grants_of_their_own_tenant_only() {
    let pull = registry_pull();
    let secret_of = |tenant: &str| {
        serde_json::to_value(
            PullSecret {
                registry: pull.host().to_owned(),
                credentials: pull.for_tenant(tenant),
            }
            .secret(tenant),
        )
        .unwrap()
    };
    let (a, b) = (secret_of("acme"), secret_of("other"));
    assert_eq!(b["metadata"]["namespace"], "berth-other");
    let (_, a_credentials, a_grant) = grant_in(&a);
    let (_, b_credentials, b_grant) = grant_in(&b);
    assert_ne!(a_credentials, b_credentials);
    assert_eq!(a_grant.tenant, "acme");
    assert_eq!(b_grant.tenant, "other");
    assert_eq!(b_grant.access, Access::Pull);
}

/// The pull Secret's apply: a fresh pull grant of `acme` for 30 days.
async fn expect_pull_secret(server: &mut kube_fake::ApiServer) -> Credentials {
    let call: Call = server
        .expect(Method::PATCH, PULL_SECRET_PATH)
        .await
        .assert_server_side_apply();
    let (registries, credentials, grant) = grant_in(&call.json());
    call.respond_applied();
    assert_eq!(registries, [REGISTRY]);
    assert_eq!(
        (grant.tenant.as_str(), grant.access),
        ("acme", Access::Pull)
    );
    let lifetime = grant.expires_at - unix_now();
    assert!((DAYS_30 - 5..=DAYS_30).contains(&lifetime), "{lifetime}");
    credentials
}

#[tokio::test]
async fn every_deploy_renews_the_tenants_pull_secret_before_the_pods_that_use_it() {
    let first = Deploy::first();
    let (client, mut server) = kube_fake::pair();
    let runtime = runtime(client).with_image_pull(Some(registry_pull()));
    let spec = first.spec.clone();
    let task = tokio::spawn(async move { runtime.deploy(&spec).await });
    expect_get_deployment(&mut server, None).await;
    let plan = first.plan();
    // The namespace and its fences come first, then the app's objects.
    let fences = plan
        .iter()
        .position(|d| d["metadata"]["labels"].get("berth.dev/app").is_some())
        .expect("the plan has the app's objects");
    for document in &plan[..fences] {
        let kind = document["kind"].as_str().unwrap();
        let call = server.next(kind).await.assert_server_side_apply();
        assert_eq!(&call.json(), document, "{kind}");
        call.respond_applied();
    }
    expect_pull_secret(&mut server).await;
    for document in &plan[fences..] {
        let kind = document["kind"].as_str().unwrap();
        let call = server.next(kind).await.assert_server_side_apply();
        let mut expected = document.clone();
        if kind == "Deployment" {
            expected["spec"]["template"]["spec"]["imagePullSecrets"] =
                json!([{"name": "berth-registry-pull"}]);
        }
        assert_eq!(call.json(), expected, "{kind}");
        call.respond_applied();
    }
    expect_get_deployment(&mut server, Some(first.deployment().rolled_out())).await;
    expect_prune(&mut server, &first, &[&first], &[&first], &[]).await;
    assert_eq!(task.await.unwrap().unwrap(), ENDPOINT);
    server.done().await;
}

#[tokio::test]
async fn scaling_up_renews_the_pull_secret_and_scaling_to_zero_does_not() {
    let app = Deploy::first().spec.release.app;
    let (client, mut server) = kube_fake::pair();
    let runtime = Arc::new(runtime(client).with_image_pull(Some(registry_pull())));
    let up = {
        let (runtime, app) = (runtime.clone(), app.clone());
        tokio::spawn(async move { runtime.scale(&app, 2, None).await })
    };
    expect_pull_secret(&mut server).await;
    let scale = server
        .expect(Method::PATCH, &format!("{DEPLOYMENT}/scale"))
        .await
        .assert_body("/spec/replicas", 2);
    scale.respond_json(json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": {"name": "web", "namespace": "berth-acme"}, "spec": {"replicas": 2}}));
    assert_eq!(up.await.unwrap().unwrap(), 1);
    let down = tokio::spawn(async move { runtime.scale(&app, 0, None).await });
    server
        .expect(Method::PATCH, &format!("{DEPLOYMENT}/scale"))
        .await
        .assert_body("/spec/replicas", 0)
        .respond_json(json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
            "metadata": {"name": "web", "namespace": "berth-acme"}, "spec": {"replicas": 0}}));
    assert_eq!(down.await.unwrap().unwrap(), 1);
    server.done().await;
}
