//! The plan as a whole: what a reviewer of `render` and the cluster's
//! admission both rely on. Each test fails when one object or field that
//! fences a tenant in goes missing.

use super::fake::{settings, Deploy};
use super::{plan, KubernetesSettings};
use serde_json::{json, Value};

fn documents() -> Vec<Value> {
    Deploy::first().plan()
}

fn find<'a>(documents: &'a [Value], kind: &str) -> &'a Value {
    documents
        .iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("the plan has no {kind}"))
}

#[test]
fn the_plan_is_the_apps_namespace_then_the_release_in_apply_order() {
    let documents = documents();
    let kinds: Vec<&str> = documents
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "Namespace",
            "ResourceQuota",
            "LimitRange",
            "NetworkPolicy",
            "ServiceAccount",
            "RoleBinding",
            "Secret",
            "Deployment",
            "Service",
            "Ingress"
        ]
    );
}

#[test]
fn every_object_is_berths_and_lives_in_the_tenants_namespace() {
    for document in documents() {
        let labels = &document["metadata"]["labels"];
        assert_eq!(
            labels["app.kubernetes.io/managed-by"], "berth",
            "{document:#}"
        );
        assert_eq!(labels["berth.dev/tenant"], "acme", "{document:#}");
        if document["kind"] != "Namespace" {
            assert_eq!(
                document["metadata"]["namespace"], "berth-acme",
                "{document:#}"
            );
        }
    }
}

#[test]
fn the_namespace_enforces_pod_security_restricted() {
    let documents = documents();
    let labels = &find(&documents, "Namespace")["metadata"]["labels"];
    assert_eq!(labels["pod-security.kubernetes.io/enforce"], "restricted");
    assert_eq!(
        labels["pod-security.kubernetes.io/enforce-version"],
        "latest"
    );
}

#[test]
fn the_namespace_denies_all_traffic_but_the_ingress_controller_and_dns() {
    let documents = documents();
    let spec = &find(&documents, "NetworkPolicy")["spec"];
    assert_eq!(spec["podSelector"], json!({}), "every pod");
    assert_eq!(spec["policyTypes"], json!(["Ingress", "Egress"]));
    let from = &spec["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"];
    assert_eq!(from["kubernetes.io/metadata.name"], "ingress-nginx");
    assert_eq!(spec["egress"].as_array().unwrap().len(), 1, "only DNS");
    assert_eq!(spec["egress"][0]["ports"][0]["port"], 53);
}

#[test]
fn the_namespace_has_a_quota_default_limits_and_a_tokenless_service_account() {
    let documents = documents();
    let hard = &find(&documents, "ResourceQuota")["spec"]["hard"];
    for key in [
        "limits.cpu",
        "limits.memory",
        "requests.cpu",
        "requests.memory",
        "pods",
    ] {
        assert!(hard.get(key).is_some(), "quota on {key}");
    }
    let limits = &find(&documents, "LimitRange")["spec"]["limits"][0];
    assert_eq!(limits["type"], "Container");
    assert!(limits["default"]["memory"].is_string());
    let account = find(&documents, "ServiceAccount");
    assert_eq!(account["automountServiceAccountToken"], false);
}

#[test]
fn the_app_container_is_restricted_probed_and_limited() {
    let documents = documents();
    let pod = &find(&documents, "Deployment")["spec"]["template"]["spec"];
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let app = &containers[0];
    assert_eq!(app["name"], "app");
    let context = &app["securityContext"];
    assert_eq!(context["allowPrivilegeEscalation"], false);
    assert_eq!(context["runAsNonRoot"], true);
    assert_eq!(context["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(context["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(app["readinessProbe"]["tcpSocket"]["port"], 8000);
    for amounts in ["limits", "requests"] {
        assert!(
            app["resources"][amounts]["cpu"].is_string(),
            "{amounts}.cpu"
        );
        assert!(
            app["resources"][amounts]["memory"].is_string(),
            "{amounts}.memory"
        );
    }
}

#[test]
fn the_ingress_asks_cert_manager_for_tls_with_the_configured_issuer_and_class() {
    let custom = KubernetesSettings {
        cluster_issuer: "internal-ca".into(),
        ingress_class: "traefik".into(),
        ..settings()
    };
    let deploy = Deploy::first();
    let documents = plan(
        &deploy.spec.release,
        deploy.id(),
        &deploy.spec.env,
        &custom,
        None,
    );
    let ingress = find(&documents, "Ingress");
    assert_eq!(
        ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"],
        "internal-ca"
    );
    assert_eq!(ingress["spec"]["ingressClassName"], "traefik");
    assert_eq!(
        ingress["spec"]["tls"][0]["hosts"][0],
        "web.acme.apps.example"
    );
    assert_eq!(ingress["spec"]["tls"][0]["secretName"], "web-tls");
}

#[test]
fn the_deployment_keeps_the_configured_rollout_history() {
    let documents = documents();
    let spec = &find(&documents, "Deployment")["spec"];
    assert_eq!(spec["revisionHistoryLimit"], 3, "the default");
    let custom = KubernetesSettings {
        release_history: 7,
        ..settings()
    };
    let deploy = Deploy::first();
    let documents = plan(
        &deploy.spec.release,
        deploy.id(),
        &deploy.spec.env,
        &custom,
        None,
    );
    let spec = &find(&documents, "Deployment")["spec"];
    assert_eq!(
        spec["revisionHistoryLimit"], 7,
        "old ReplicaSets, and so env Secrets, kept to roll back to"
    );
}

#[test]
fn the_same_release_renders_the_same_documents() {
    let deploy = Deploy::first();
    assert_eq!(
        deploy.plan(),
        deploy.plan(),
        "applying again changes nothing"
    );
}
