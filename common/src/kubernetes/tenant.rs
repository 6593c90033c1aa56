//! The namespaces a tenant owns and the fences around them.

use k8s_openapi::api::core::v1::{
    LimitRange, LimitRangeItem, LimitRangeSpec, Namespace, ResourceQuota, ResourceQuotaSpec,
    ServiceAccount,
};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

use super::{
    app_namespace, base_labels, build_namespace, document, meta, TenantSettings,
    NAMESPACE_NAME_LABEL, SERVICE_ACCOUNT, TENANT_READERS, TENANT_READER_ROLE,
};

/// Which of a tenant's two namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantNamespaceKind {
    Apps,
    Builds,
}

/// One tenant namespace and the objects that fence it in, in apply order
/// (the namespace first).
#[derive(Debug, Clone, PartialEq)]
pub struct TenantNamespace {
    pub kind: TenantNamespaceKind,
    pub namespace: Namespace,
    pub quota: ResourceQuota,
    pub limit_range: LimitRange,
    pub network_policy: NetworkPolicy,
    pub service_account: ServiceAccount,
    /// Apps only: lets berth's deploy-worker and log-streamer read this
    /// namespace's pods, their logs and events (nowhere else).
    pub readers: Option<RoleBinding>,
}

impl TenantNamespace {
    /// The objects as JSON documents, namespace first, for apply or YAML.
    pub fn to_documents(&self) -> Vec<serde_json::Value> {
        let mut documents = vec![
            document(&self.namespace),
            document(&self.quota),
            document(&self.limit_range),
            document(&self.network_policy),
            document(&self.service_account),
        ];
        documents.extend(self.readers.as_ref().map(document));
        documents
    }
}

/// `berth-<tenant>` for apps and `berth-<tenant>-build` for builds.
///
/// Tenants share a cluster, so each namespace is fenced: a quota so one
/// tenant cannot starve the others, a LimitRange so a container that states
/// no resources still counts against it, a default-deny NetworkPolicy so a
/// tenant's pods reach neither another tenant's pods nor the cluster's
/// internals, and a ServiceAccount whose token is never mounted.
pub fn tenant_namespaces(tenant: &str, settings: &TenantSettings) -> Vec<TenantNamespace> {
    [TenantNamespaceKind::Apps, TenantNamespaceKind::Builds]
        .into_iter()
        .map(|kind| tenant_namespace(tenant, kind, settings))
        .collect()
}

/// One of a tenant's namespaces with its fences; each worker applies its own
/// (the build-worker the build namespace, the deploy-worker the apps one).
pub fn tenant_namespace(
    tenant: &str,
    kind: TenantNamespaceKind,
    settings: &TenantSettings,
) -> TenantNamespace {
    let name = match kind {
        TenantNamespaceKind::Apps => app_namespace(tenant),
        TenantNamespaceKind::Builds => build_namespace(tenant),
    };
    let labels = base_labels(tenant);
    let ns = Some(name.as_str());
    TenantNamespace {
        kind,
        namespace: Namespace {
            metadata: meta(&name, None, namespace_labels(tenant, kind)),
            ..Default::default()
        },
        quota: ResourceQuota {
            metadata: meta("berth-quota", ns, labels.clone()),
            spec: Some(quota_spec(settings)),
            ..Default::default()
        },
        limit_range: LimitRange {
            metadata: meta("berth-limits", ns, labels.clone()),
            spec: Some(limit_range_spec(settings)),
        },
        network_policy: NetworkPolicy {
            metadata: meta("berth-default-deny", ns, labels.clone()),
            spec: Some(network_policy_spec(kind, settings)),
        },
        service_account: ServiceAccount {
            metadata: meta(SERVICE_ACCOUNT, ns, labels.clone()),
            automount_service_account_token: Some(false),
            ..Default::default()
        },
        readers: (kind == TenantNamespaceKind::Apps).then(|| readers(ns, labels, settings)),
    }
}

/// berth's readers (deploy-worker, log-streamer) may read pods, pod logs
/// and events here: a RoleBinding per tenant namespace rather than a
/// ClusterRoleBinding, so they read nothing outside tenants' namespaces.
fn readers(
    namespace: Option<&str>,
    labels: BTreeMap<String, String>,
    settings: &TenantSettings,
) -> RoleBinding {
    RoleBinding {
        metadata: meta("berth-readers", namespace, labels),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".to_owned()),
            kind: "ClusterRole".to_owned(),
            name: TENANT_READER_ROLE.to_owned(),
        },
        subjects: Some(
            TENANT_READERS
                .iter()
                .map(|name| Subject {
                    kind: "ServiceAccount".to_owned(),
                    name: (*name).to_owned(),
                    namespace: Some(settings.system_namespace.clone()),
                    api_group: None,
                })
                .collect(),
        ),
    }
}

/// Pod Security admission labels. Apps must meet `restricted` (non-root, no
/// privilege escalation, no capabilities, RuntimeDefault seccomp), enforced
/// against the newest policy version. Builds run Kaniko, which unpacks image
/// layers as root and so cannot meet `restricted`: that namespace enforces
/// `baseline` (no privileged pods, host namespaces or host paths) and warns
/// at `restricted`.
fn namespace_labels(tenant: &str, kind: TenantNamespaceKind) -> BTreeMap<String, String> {
    let enforce = match kind {
        TenantNamespaceKind::Apps => "restricted",
        TenantNamespaceKind::Builds => "baseline",
    };
    let mut labels = base_labels(tenant);
    for (key, value) in [
        ("pod-security.kubernetes.io/enforce", enforce),
        ("pod-security.kubernetes.io/enforce-version", "latest"),
        ("pod-security.kubernetes.io/warn", "restricted"),
        ("pod-security.kubernetes.io/warn-version", "latest"),
    ] {
        labels.insert(key.to_owned(), value.to_owned());
    }
    labels
}

fn quota_spec(settings: &TenantSettings) -> ResourceQuotaSpec {
    let cpu = Quantity(settings.quota_cpu.clone());
    let memory = Quantity(settings.quota_memory.clone());
    ResourceQuotaSpec {
        hard: Some(BTreeMap::from([
            ("requests.cpu".to_owned(), cpu.clone()),
            ("limits.cpu".to_owned(), cpu),
            ("requests.memory".to_owned(), memory.clone()),
            ("limits.memory".to_owned(), memory),
            ("pods".to_owned(), Quantity(settings.quota_pods.to_string())),
        ])),
        ..Default::default()
    }
}

/// A ResourceQuota on limits rejects pods without limits; the LimitRange
/// fills them in so a container that states none still runs, and counts.
fn limit_range_spec(settings: &TenantSettings) -> LimitRangeSpec {
    let defaults = BTreeMap::from([
        (
            "cpu".to_owned(),
            Quantity(format!("{}m", settings.default_cpu_millis)),
        ),
        (
            "memory".to_owned(),
            Quantity(format!("{}Mi", settings.default_memory_mb)),
        ),
    ]);
    LimitRangeSpec {
        limits: vec![LimitRangeItem {
            type_: "Container".to_owned(),
            default: Some(defaults.clone()),
            default_request: Some(defaults),
            ..Default::default()
        }],
    }
}

/// Default deny in both directions for every pod of the namespace, then the
/// exceptions: connections in only from the ingress controller's namespace,
/// out only to DNS in kube-system; builds also fetch base images and
/// dependencies (80, 443) and push to the registry.
fn network_policy_spec(kind: TenantNamespaceKind, settings: &TenantSettings) -> NetworkPolicySpec {
    let mut egress = vec![NetworkPolicyEgressRule {
        to: Some(vec![namespace_peer("kube-system")]),
        ports: Some(vec![port("UDP", 53), port("TCP", 53)]),
    }];
    if kind == TenantNamespaceKind::Builds {
        egress.extend(build_egress(settings));
    }
    NetworkPolicySpec {
        pod_selector: Some(LabelSelector::default()),
        policy_types: Some(vec!["Ingress".to_owned(), "Egress".to_owned()]),
        ingress: Some(vec![NetworkPolicyIngressRule {
            from: Some(vec![namespace_peer(&settings.ingress_namespace)]),
            ports: None,
        }]),
        egress: Some(egress),
    }
}

/// A build runs a stranger's Dockerfile: it reaches the internet's package
/// registries (80, 443) and the registry, and nothing inside: every address
/// but the denied ranges (private networks, the cluster's pod and service
/// CIDRs, link-local with the metadata addresses), IPv4 and IPv6. An
/// in-cluster registry, a registry on a private address and the backend's
/// token endpoint are allowed by name, on their port only.
fn build_egress(settings: &TenantSettings) -> Vec<NetworkPolicyEgressRule> {
    let denied: Vec<&String> = settings
        .build_egress_deny
        .iter()
        .chain(&settings.cluster_cidrs)
        .collect();
    let except = |v6: bool| {
        let mut list: Vec<String> = Vec::new();
        for cidr in denied.iter().filter(|cidr| cidr.contains(':') == v6) {
            if !list.contains(cidr) {
                list.push((*cidr).clone());
            }
        }
        (!list.is_empty()).then_some(list)
    };
    let anywhere_but = |cidr: &str, v6: bool| NetworkPolicyPeer {
        ip_block: Some(IPBlock {
            cidr: cidr.to_owned(),
            except: except(v6),
        }),
        ..Default::default()
    };
    let registry_port = || vec![port("TCP", settings.registry_port)];
    let mut rules = vec![NetworkPolicyEgressRule {
        to: Some(vec![
            anywhere_but("0.0.0.0/0", false),
            anywhere_but("::/0", true),
        ]),
        ports: Some(vec![
            port("TCP", 443),
            port("TCP", 80),
            port("TCP", settings.registry_port),
        ]),
    }];
    if let Some(namespace) = settings
        .registry_namespace
        .as_deref()
        .filter(|n| !n.is_empty())
    {
        rules.push(NetworkPolicyEgressRule {
            to: Some(vec![namespace_peer(namespace)]),
            ports: Some(registry_port()),
        });
    }
    if !settings.registry_cidrs.is_empty() {
        let blocks = settings
            .registry_cidrs
            .iter()
            .map(|cidr| NetworkPolicyPeer {
                ip_block: Some(IPBlock {
                    cidr: cidr.clone(),
                    except: None,
                }),
                ..Default::default()
            })
            .collect();
        rules.push(NetworkPolicyEgressRule {
            to: Some(blocks),
            ports: Some(registry_port()),
        });
    }
    if let Some(namespace) = settings
        .token_namespace
        .as_deref()
        .filter(|n| !n.is_empty())
    {
        let mut backend = namespace_peer(namespace);
        backend.pod_selector = Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(
                "app.kubernetes.io/name".to_owned(),
                "berth-backend".to_owned(),
            )])),
            ..Default::default()
        });
        rules.push(NetworkPolicyEgressRule {
            to: Some(vec![backend]),
            ports: Some(vec![port("TCP", settings.token_port)]),
        });
    }
    rules
}

fn namespace_peer(namespace: &str) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(
                NAMESPACE_NAME_LABEL.to_owned(),
                namespace.to_owned(),
            )])),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn port(protocol: &str, number: u16) -> NetworkPolicyPort {
    NetworkPolicyPort {
        protocol: Some(protocol.to_owned()),
        port: Some(IntOrString::Int(i32::from(number))),
        end_port: None,
    }
}
