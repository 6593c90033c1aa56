use super::*;
use k8s_openapi::api::networking::v1::{NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

fn settings() -> TenantSettings {
    TenantSettings {
        ingress_namespace: "edge".into(),
        registry_port: 5443,
        ..Default::default()
    }
}

fn namespaces() -> (TenantNamespace, TenantNamespace) {
    let mut all = tenant_namespaces("acme", &settings());
    assert_eq!(all.len(), 2);
    let builds = all.pop().unwrap();
    let apps = all.pop().unwrap();
    assert_eq!(apps.kind, TenantNamespaceKind::Apps);
    assert_eq!(builds.kind, TenantNamespaceKind::Builds);
    (apps, builds)
}

fn label<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.labels.as_ref()?.get(key).map(String::as_str)
}

fn namespace_of(peer: &NetworkPolicyPeer) -> &str {
    let selector = peer.namespace_selector.as_ref().unwrap();
    assert!(peer.pod_selector.is_none(), "the whole namespace, any pod");
    &selector.match_labels.as_ref().unwrap()[NAMESPACE_NAME_LABEL]
}

fn ports(ports: &[NetworkPolicyPort]) -> Vec<(&str, i32)> {
    ports
        .iter()
        .map(|port| match port.port {
            Some(IntOrString::Int(number)) => (port.protocol.as_deref().unwrap(), number),
            ref other => panic!("port by number, got {other:?}"),
        })
        .collect()
}

#[test]
fn the_namespaces_are_named_after_the_tenant() {
    let (apps, builds) = namespaces();
    assert_eq!(apps.namespace.metadata.name.as_deref(), Some("berth-acme"));
    assert_eq!(
        builds.namespace.metadata.name.as_deref(),
        Some("berth-acme-build")
    );
    for ns in [&apps, &builds] {
        let name = ns.namespace.metadata.name.as_deref();
        assert_eq!(ns.namespace.metadata.namespace, None);
        for meta in [
            &ns.quota.metadata,
            &ns.limit_range.metadata,
            &ns.network_policy.metadata,
            &ns.service_account.metadata,
        ] {
            assert_eq!(meta.namespace.as_deref(), name);
        }
    }
}

#[test]
fn every_object_is_labelled_managed_by_berth() {
    let (apps, builds) = namespaces();
    for ns in [&apps, &builds] {
        for meta in [
            &ns.namespace.metadata,
            &ns.quota.metadata,
            &ns.limit_range.metadata,
            &ns.network_policy.metadata,
            &ns.service_account.metadata,
        ] {
            assert_eq!(label(meta, "app.kubernetes.io/managed-by"), Some("berth"));
            assert_eq!(label(meta, "berth.dev/tenant"), Some("acme"));
        }
    }
}

#[test]
fn apps_enforce_pod_security_restricted_at_the_latest_version() {
    let (apps, builds) = namespaces();
    let meta = &apps.namespace.metadata;
    assert_eq!(
        label(meta, "pod-security.kubernetes.io/enforce"),
        Some("restricted")
    );
    assert_eq!(
        label(meta, "pod-security.kubernetes.io/enforce-version"),
        Some("latest")
    );
    let meta = &builds.namespace.metadata;
    assert_eq!(
        label(meta, "pod-security.kubernetes.io/enforce"),
        Some("baseline"),
        "Kaniko runs as root"
    );
    assert_eq!(
        label(meta, "pod-security.kubernetes.io/warn"),
        Some("restricted")
    );
}

#[test]
fn quota_and_limit_range_come_from_the_settings() {
    let (apps, _) = namespaces();
    let hard = apps.quota.spec.unwrap().hard.unwrap();
    assert_eq!(hard["requests.cpu"].0, "4");
    assert_eq!(hard["limits.cpu"].0, "4");
    assert_eq!(hard["requests.memory"].0, "8Gi");
    assert_eq!(hard["limits.memory"].0, "8Gi");
    assert_eq!(hard["pods"].0, "20");
    let item = &apps.limit_range.spec.unwrap().limits[0];
    assert_eq!(item.type_, "Container");
    for defaults in [item.default.as_ref(), item.default_request.as_ref()] {
        let defaults = defaults.unwrap();
        assert_eq!(defaults["cpu"].0, "250m");
        assert_eq!(defaults["memory"].0, "256Mi");
    }
}

#[test]
fn the_network_policy_denies_all_but_the_ingress_controller_and_dns() {
    let (apps, _) = namespaces();
    let spec = apps.network_policy.spec.unwrap();
    assert_eq!(
        spec.pod_selector,
        Some(Default::default()),
        "every pod of the namespace"
    );
    assert_eq!(
        spec.policy_types.as_deref(),
        Some(&["Ingress".to_owned(), "Egress".to_owned()][..])
    );
    let ingress = spec.ingress.unwrap();
    assert_eq!(ingress.len(), 1);
    let from = ingress[0].from.as_ref().unwrap();
    assert_eq!(from.len(), 1);
    assert_eq!(namespace_of(&from[0]), "edge");
    let egress = spec.egress.unwrap();
    assert_eq!(egress.len(), 1, "apps reach nothing but DNS");
    let to = egress[0].to.as_ref().unwrap();
    assert_eq!(namespace_of(&to[0]), "kube-system");
    assert_eq!(
        ports(egress[0].ports.as_ref().unwrap()),
        [("UDP", 53), ("TCP", 53)]
    );
}

#[test]
fn builds_may_also_fetch_over_http_and_push_to_the_registry() {
    let (_, builds) = namespaces();
    let spec = builds.network_policy.spec.unwrap();
    assert_eq!(spec.policy_types.unwrap(), ["Ingress", "Egress"]);
    let from = spec.ingress.unwrap()[0].from.clone().unwrap();
    assert_eq!(from.len(), 1);
    assert_eq!(namespace_of(&from[0]), "edge");
    let egress = spec.egress.unwrap();
    assert_eq!(egress.len(), 2);
    assert_eq!(
        namespace_of(&egress[0].to.as_ref().unwrap()[0]),
        "kube-system"
    );
    assert_eq!(
        ports(egress[0].ports.as_ref().unwrap()),
        [("UDP", 53), ("TCP", 53)]
    );
    assert_eq!(
        ports(egress[1].ports.as_ref().unwrap()),
        [("TCP", 443), ("TCP", 80), ("TCP", 5443)]
    );
}

#[test]
fn service_accounts_mount_no_token() {
    let (apps, builds) = namespaces();
    for ns in [apps, builds] {
        assert_eq!(
            ns.service_account.metadata.name.as_deref(),
            Some(SERVICE_ACCOUNT)
        );
        assert_eq!(
            ns.service_account.automount_service_account_token,
            Some(false)
        );
    }
}

#[test]
fn the_yaml_carries_kind_and_api_version_namespace_first() {
    let (apps, _) = namespaces();
    let yaml = render_yaml(&apps.to_documents()).unwrap();
    assert_eq!(yaml.matches("---\n").count(), 5);
    let first = yaml.find("\"kind\": \"Namespace\"").unwrap();
    let policy = yaml.find("\"kind\": \"NetworkPolicy\"").unwrap();
    assert!(first < policy);
    assert!(yaml.contains("\"apiVersion\": \"networking.k8s.io/v1\""));
}
