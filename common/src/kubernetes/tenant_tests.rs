use super::*;
use k8s_openapi::api::networking::v1::{
    NetworkPolicyEgressRule, NetworkPolicyPeer, NetworkPolicyPort,
};
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
    assert_eq!(egress.len(), 2, "DNS, then the internet");
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

/// The internet rule's ipBlocks as (cidr, except).
fn blocks(rule: &NetworkPolicyEgressRule) -> Vec<(String, Vec<String>)> {
    rule.to
        .as_ref()
        .expect("a build may not reach just anywhere")
        .iter()
        .map(|peer| {
            let block = peer.ip_block.as_ref().expect("an ipBlock");
            (block.cidr.clone(), block.except.clone().unwrap_or_default())
        })
        .collect()
}

fn covers(cidr: &str, address: &str) -> bool {
    let (net, prefix) = cidr.split_once('/').unwrap();
    let prefix: u32 = prefix.parse().unwrap();
    let bits = |ip: std::net::IpAddr| match ip {
        std::net::IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
        std::net::IpAddr::V6(v6) => (u128::from(v6), 128),
    };
    let (net, width) = bits(net.parse().unwrap());
    let (ip, ip_width) = bits(address.parse().unwrap());
    let shift = width - prefix;
    width == ip_width && net.checked_shr(shift).unwrap_or(0) == ip.checked_shr(shift).unwrap_or(0)
}

/// H3: builds reach 80, 443 and the registry port on the internet only:
/// not the cluster's pods and services, private networks, CGNAT, or the
/// metadata service (169.254.169.254, fd00:ec2::254). Before, the rule had
/// no `to` at all: any address.
#[test]
fn build_egress_excludes_the_cluster_private_ranges_and_the_metadata_service() {
    let settings = TenantSettings {
        cluster_cidrs: vec![
            "10.244.0.0/16".into(),
            "198.18.0.0/15".into(),
            "fd12:3456::/48".into(),
        ],
        ..settings()
    };
    let builds = tenant_namespace("acme", TenantNamespaceKind::Builds, &settings);
    let egress = builds.network_policy.spec.unwrap().egress.unwrap();
    assert_eq!(egress.len(), 2);
    let internet = &egress[1];
    assert_eq!(
        ports(internet.ports.as_ref().unwrap()),
        [("TCP", 443), ("TCP", 80), ("TCP", 5443)]
    );
    let v4: Vec<String> = [
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "169.254.0.0/16",
        "127.0.0.0/8",
        "0.0.0.0/8",
        "10.244.0.0/16",
        "198.18.0.0/15",
    ]
    .map(str::to_owned)
    .to_vec();
    let v6: Vec<String> = ["fc00::/7", "fe80::/10", "::1/128", "fd12:3456::/48"]
        .map(str::to_owned)
        .to_vec();
    assert_eq!(
        blocks(internet),
        [
            ("0.0.0.0/0".to_owned(), v4.clone()),
            ("::/0".to_owned(), v6.clone())
        ]
    );
    for (address, list) in [
        ("169.254.169.254", &v4),
        ("10.244.3.7", &v4),
        ("10.96.0.1", &v4),
        ("100.100.100.200", &v4),
        ("fd00:ec2::254", &v6),
        ("fe80::1", &v6),
    ] {
        assert!(
            list.iter().any(|cidr| covers(cidr, address)),
            "{address} is reachable"
        );
    }
    assert!(!v4.iter().any(|cidr| covers(cidr, "140.82.121.4")));
}

#[test]
fn an_in_cluster_registry_and_the_token_endpoint_are_allowed_by_name() {
    let settings = TenantSettings {
        registry_namespace: Some("berth-deps".into()),
        registry_cidrs: vec!["10.20.0.5/32".into()],
        token_namespace: Some("berth-system".into()),
        token_port: 8080,
        ..settings()
    };
    let builds = tenant_namespace("acme", TenantNamespaceKind::Builds, &settings);
    let egress = builds.network_policy.spec.unwrap().egress.unwrap();
    assert_eq!(egress.len(), 5);
    assert_eq!(
        namespace_of(&egress[2].to.as_ref().unwrap()[0]),
        "berth-deps"
    );
    assert_eq!(ports(egress[2].ports.as_ref().unwrap()), [("TCP", 5443)]);
    assert_eq!(
        blocks(&egress[3]),
        [("10.20.0.5/32".to_owned(), Vec::<String>::new())]
    );
    assert_eq!(ports(egress[3].ports.as_ref().unwrap()), [("TCP", 5443)]);
    let backend = &egress[4].to.as_ref().unwrap()[0];
    assert_eq!(
        backend
            .namespace_selector
            .as_ref()
            .unwrap()
            .match_labels
            .as_ref()
            .unwrap()[NAMESPACE_NAME_LABEL],
        "berth-system"
    );
    assert_eq!(
        backend
            .pod_selector
            .as_ref()
            .unwrap()
            .match_labels
            .as_ref()
            .unwrap()["app.kubernetes.io/name"],
        "berth-backend"
    );
    assert_eq!(ports(egress[4].ports.as_ref().unwrap()), [("TCP", 8080)]);
    // Apps still reach nothing but DNS.
    let apps = tenant_namespace("acme", TenantNamespaceKind::Apps, &settings);
    assert_eq!(apps.network_policy.spec.unwrap().egress.unwrap().len(), 1);
}

#[test]
fn cidrs_are_checked_when_the_flags_are_read() {
    assert_eq!(parse_cidr(" 10.0.0.0/8 ").unwrap(), "10.0.0.0/8");
    assert_eq!(
        parse_cidr("fd00:ec2::254/128").unwrap(),
        "fd00:ec2::254/128"
    );
    assert_eq!(
        parse_cidr("169.254.169.254/32").unwrap(),
        "169.254.169.254/32"
    );
    for bad in ["10.0.0.0", "10.0.0.1/8", "10.0.0.0/33", "x/8", "fd00::1/64"] {
        assert!(parse_cidr(bad).is_err(), "{bad}");
    }
}

/// L7: berth's deploy-worker and log-streamer read pods, logs and events
/// in a tenant's app namespace through a RoleBinding applied with it, not
/// through a ClusterRoleBinding that reaches every namespace.
#[test]
fn berths_readers_are_let_into_the_app_namespace_only() {
    let (apps, builds) = namespaces();
    assert!(builds.readers.is_none(), "builds are the build-worker's");
    let binding = apps.readers.unwrap();
    assert_eq!(binding.metadata.namespace.as_deref(), Some("berth-acme"));
    assert_eq!(
        label(&binding.metadata, "app.kubernetes.io/managed-by"),
        Some("berth")
    );
    assert_eq!(
        (
            binding.role_ref.kind.as_str(),
            binding.role_ref.name.as_str()
        ),
        ("ClusterRole", TENANT_READER_ROLE)
    );
    let subjects: Vec<(String, String, Option<String>)> = binding
        .subjects
        .unwrap()
        .into_iter()
        .map(|s| (s.kind, s.name, s.namespace))
        .collect();
    let system = Some("berth-system".to_owned());
    assert_eq!(
        subjects,
        [
            (
                "ServiceAccount".into(),
                "berth-deploy-worker".into(),
                system.clone()
            ),
            ("ServiceAccount".into(), "berth-log-streamer".into(), system),
        ]
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
    assert_eq!(yaml.matches("---\n").count(), 6);
    let first = yaml.find("\"kind\": \"Namespace\"").unwrap();
    let policy = yaml.find("\"kind\": \"NetworkPolicy\"").unwrap();
    assert!(first < policy);
    assert!(yaml.contains("\"apiVersion\": \"networking.k8s.io/v1\""));
}
