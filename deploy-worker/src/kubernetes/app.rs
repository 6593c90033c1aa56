//! What one deployment of a release is made of on Kubernetes.

use berth_proto::{labels, AppRef, Release};
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvFromSource, EnvVar, HTTPGetAction, Lifecycle,
    LifecycleHandler, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements,
    SeccompProfile, Secret, SecretEnvSource, SecurityContext, Service, ServicePort, ServiceSpec,
    SleepAction, TCPSocketAction,
};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::ByteString;
use std::collections::BTreeMap;
use uuid::Uuid;

use super::KubernetesSettings;
use berth_common::kubernetes::{app_namespace, base_labels, document, meta, SERVICE_ACCOUNT};

/// The objects of one deployment, in apply order: the Secret before the
/// Deployment that reads it, the Service before the Ingress that routes to it.
#[derive(Debug, Clone, PartialEq)]
pub struct AppObjects {
    pub secret: Secret,
    pub deployment: Deployment,
    pub service: Service,
    pub ingress: Ingress,
}

impl AppObjects {
    /// The objects as JSON documents in apply order, for apply or YAML.
    pub fn to_documents(&self) -> Vec<serde_json::Value> {
        vec![
            document(&self.secret),
            document(&self.deployment),
            document(&self.service),
            document(&self.ingress),
        ]
    }
}

/// `<app>.<tenant>.<base domain>`: where the app answers.
pub fn app_host(app: &AppRef, settings: &KubernetesSettings) -> String {
    format!("{}.{}.{}", app.name, app.tenant, settings.base_domain)
}

/// `<app>-tls`: the Secret cert-manager writes the app's certificate into.
pub fn tls_secret_name(app_name: &str) -> String {
    format!("{app_name}-tls")
}

/// `<app>-env-<release id>`: one immutable Secret per release, because a
/// release's env is frozen. Pods of the previous release keep the env they
/// started with while the new one rolls out, and a rollback finds its env.
pub fn env_secret_name(release: &Release) -> String {
    format!("{}-env-{}", release.app.name, release.id.simple())
}

/// The Secret, Deployment, Service and Ingress of `deployment_id`, which runs
/// `release` with `env` (already opened). Objects are named after the app:
/// app names are DNS-1123 labels, unique within the tenant's namespace.
pub fn app_objects(
    release: &Release,
    deployment_id: Uuid,
    env: &BTreeMap<String, String>,
    settings: &KubernetesSettings,
) -> AppObjects {
    let namespace = app_namespace(&release.app.tenant);
    let ns = Some(namespace.as_str());
    let name = release.app.name.as_str();
    let mut release_labels = base_labels(&release.app.tenant);
    release_labels.extend(selector(release));
    release_labels.insert(labels::APP_NAME.to_owned(), name.to_owned());
    release_labels.insert(labels::RELEASE.to_owned(), release.id.to_string());
    let mut pod_labels = release_labels.clone();
    pod_labels.insert(labels::DEPLOYMENT.to_owned(), deployment_id.to_string());

    let secret = Secret {
        metadata: meta(env_secret_name(release), ns, release_labels),
        data: Some(
            env.iter()
                .filter(|(key, _)| key.as_str() != "PORT")
                .map(|(key, value)| (key.clone(), ByteString(value.clone().into_bytes())))
                .collect(),
        ),
        immutable: Some(true),
        type_: Some("Opaque".to_owned()),
        ..Default::default()
    };
    let deployment = Deployment {
        metadata: meta(name, ns, pod_labels.clone()),
        spec: deployment_spec(release, pod_labels.clone(), settings),
        ..Default::default()
    };
    let mut app_labels = base_labels(&release.app.tenant);
    app_labels.extend(selector(release));
    app_labels.insert(labels::APP_NAME.to_owned(), name.to_owned());
    let service = Service {
        metadata: meta(name, ns, app_labels.clone()),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(selector(release)),
            ports: Some(vec![ServicePort {
                name: Some("http".to_owned()),
                protocol: Some("TCP".to_owned()),
                port: i32::from(release.config.port),
                target_port: Some(IntOrString::Int(i32::from(release.config.port))),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let ingress = ingress(release, settings, meta(name, ns, app_labels));
    AppObjects {
        secret,
        deployment,
        service,
        ingress,
    }
}

/// Only the app id: a Deployment's selector is immutable, and the Service
/// must route to every release of the app during a rollout.
fn selector(release: &Release) -> BTreeMap<String, String> {
    BTreeMap::from([(labels::APP.to_owned(), release.app.id.to_string())])
}

/// Rolls out one new pod at a time and takes no old pod down before a new
/// one is ready, so the app keeps serving; replicas come from the release.
/// Kubernetes keeps `release_history` old ReplicaSets to roll back to: the
/// env Secrets of their releases are kept, the others pruned.
fn deployment_spec(
    release: &Release,
    pod_labels: BTreeMap<String, String>,
    settings: &KubernetesSettings,
) -> DeploymentSpec {
    DeploymentSpec {
        replicas: Some(i32::try_from(release.config.replicas).unwrap_or(i32::MAX)),
        revision_history_limit: Some(i32::try_from(settings.release_history).unwrap_or(i32::MAX)),
        selector: LabelSelector {
            match_labels: Some(selector(release)),
            ..Default::default()
        },
        strategy: Some(DeploymentStrategy {
            type_: Some("RollingUpdate".to_owned()),
            rolling_update: Some(RollingUpdateDeployment {
                max_unavailable: Some(IntOrString::Int(0)),
                max_surge: Some(IntOrString::Int(1)),
            }),
        }),
        template: PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(pod_labels),
                ..Default::default()
            }),
            spec: Some(pod_spec(release, settings)),
        },
        ..Default::default()
    }
}

/// A pod that meets Pod Security `restricted` (the app namespace enforces
/// it, so anything less is refused), holds no API token, reads its env from
/// the release's Secret and is ready once its port accepts connections.
fn pod_spec(release: &Release, settings: &KubernetesSettings) -> PodSpec {
    let port = i32::from(release.config.port);
    let container = Container {
        name: "app".to_owned(),
        image: Some(release.image.clone()),
        ports: Some(vec![ContainerPort {
            name: Some("http".to_owned()),
            container_port: port,
            protocol: Some("TCP".to_owned()),
            ..Default::default()
        }]),
        // `env` wins over `envFrom`: berth probes the port it told the app.
        env: Some(vec![EnvVar {
            name: "PORT".to_owned(),
            value: Some(release.config.port.to_string()),
            ..Default::default()
        }]),
        env_from: Some(vec![EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: env_secret_name(release),
                optional: Some(false),
            }),
            ..Default::default()
        }]),
        readiness_probe: Some(readiness(release, port)),
        // The endpoint of a pod being stopped leaves the Service and the
        // Ingress controller's upstreams a moment after the pod is told to
        // stop; the pause keeps it answering meanwhile, so a rollout or a
        // scale down drops no request.
        lifecycle: Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                sleep: Some(SleepAction {
                    seconds: DRAIN_SECS,
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        resources: Some(resources(release, settings)),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                add: None,
            }),
            seccomp_profile: Some(runtime_default()),
            ..Default::default()
        }),
        ..Default::default()
    };
    PodSpec {
        containers: vec![container],
        service_account_name: Some(SERVICE_ACCOUNT.to_owned()),
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            seccomp_profile: Some(runtime_default()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn runtime_default() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".to_owned(),
        localhost_profile: None,
    }
}

/// The release's CPU and memory, or the settings' defaults where it states
/// none, as both request and limit: what the app is promised is what it may
/// use, so a busy neighbour cannot squeeze it, and the namespace quota
/// (which counts limits) always knows what the pod costs.
fn resources(release: &Release, settings: &KubernetesSettings) -> ResourceRequirements {
    let wanted = &release.config.resources;
    let millis = wanted
        .cpu_millis
        .unwrap_or(settings.tenant.default_cpu_millis);
    let mb = wanted
        .memory_mb
        .unwrap_or(settings.tenant.default_memory_mb);
    let amounts = BTreeMap::from([
        ("cpu".to_owned(), Quantity(format!("{millis}m"))),
        ("memory".to_owned(), Quantity(format!("{mb}Mi"))),
    ]);
    ResourceRequirements {
        requests: Some(amounts.clone()),
        limits: Some(amounts),
        ..Default::default()
    }
}

/// HTTPS on `<app>.<tenant>.<base domain>`; cert-manager sees the annotation
/// and issues the certificate into `<app>-tls`.
fn ingress(release: &Release, settings: &KubernetesSettings, mut metadata: ObjectMeta) -> Ingress {
    let host = app_host(&release.app, settings);
    metadata.annotations = Some(BTreeMap::from([(
        "cert-manager.io/cluster-issuer".to_owned(),
        settings.cluster_issuer.clone(),
    )]));
    Ingress {
        metadata,
        spec: Some(IngressSpec {
            ingress_class_name: Some(settings.ingress_class.clone()),
            tls: Some(vec![IngressTLS {
                hosts: Some(vec![host.clone()]),
                secret_name: Some(tls_secret_name(&release.app.name)),
            }]),
            rules: Some(vec![IngressRule {
                host: Some(host),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some("/".to_owned()),
                        path_type: "Prefix".to_owned(),
                        backend: IngressBackend {
                            service: Some(IngressServiceBackend {
                                name: release.app.name.clone(),
                                port: Some(ServiceBackendPort {
                                    number: Some(i32::from(release.config.port)),
                                    name: None,
                                }),
                            }),
                            resource: None,
                        },
                    }],
                }),
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// How long a pod keeps serving after it was told to stop (its preStop
/// pause), as the docker driver's `BERTH_DRAIN_SECS` default.
pub const DRAIN_SECS: i64 = 5;

/// Ready once the port accepts connections, or, with a health check path,
/// once it answers there (Kubernetes counts 2xx and 3xx as passing). A pod
/// not ready gets no traffic from its Service.
fn readiness(release: &Release, port: i32) -> Probe {
    let (tcp_socket, http_get) = match &release.config.health_check_path {
        None => (
            Some(TCPSocketAction {
                port: IntOrString::Int(port),
                host: None,
            }),
            None,
        ),
        Some(path) => (
            None,
            Some(HTTPGetAction {
                path: Some(path.clone()),
                port: IntOrString::Int(port),
                ..Default::default()
            }),
        ),
    };
    Probe {
        tcp_socket,
        http_get,
        period_seconds: Some(2),
        timeout_seconds: Some(crate::router::HEALTH_CHECK_TIMEOUT.as_secs() as i32),
        failure_threshold: Some(3),
        ..Default::default()
    }
}
