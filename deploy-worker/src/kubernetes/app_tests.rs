use super::*;
use crate::fixture::ReleaseFixture;
use berth_common::kubernetes::{render_yaml, SERVICE_ACCOUNT};
use berth_proto::Release;
use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;
use uuid::Uuid;

const DEPLOYMENT_ID: &str = "01936d2a-7b3c-7def-8123-456789abcdef";

fn settings() -> KubernetesSettings {
    KubernetesSettings {
        base_domain: "berth.example".into(),
        cluster_issuer: "letsencrypt-prod".into(),
        ingress_class: "traefik".into(),
        ..Default::default()
    }
}

fn env() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("DATABASE_URL".into(), "postgres://x".into()),
        ("PORT".into(), "9999".into()),
    ])
}

fn render(release: &Release) -> AppObjects {
    app_objects(release, DEPLOYMENT_ID.parse().unwrap(), &env(), &settings())
}

fn pod(objects: &AppObjects) -> PodSpec {
    let spec = objects.deployment.spec.clone();
    spec.template.spec.unwrap()
}

fn container(objects: &AppObjects) -> Container {
    let pod = pod(objects);
    assert_eq!(pod.containers.len(), 1);
    pod.containers[0].clone()
}

#[test]
fn objects_are_named_after_the_app_in_the_tenant_namespace() {
    let release = ReleaseFixture::new().app("acme", "shop").build();
    let objects = render(&release);
    for meta in [
        &objects.deployment.metadata,
        &objects.service.metadata,
        &objects.ingress.metadata,
    ] {
        assert_eq!(meta.name.as_deref(), Some("shop"));
        assert_eq!(meta.namespace.as_deref(), Some("berth-acme"));
    }
    assert_eq!(
        objects.secret.metadata.namespace.as_deref(),
        Some("berth-acme")
    );
}

#[test]
fn the_deployment_and_its_pods_carry_berths_labels() {
    let release = ReleaseFixture::new().build();
    let objects = render(&release);
    let spec = objects.deployment.spec.clone();
    let pod_labels = spec.template.metadata.unwrap().labels.unwrap();
    for labels in [objects.deployment.metadata.labels.unwrap(), pod_labels] {
        assert_eq!(labels["berth.dev/app"], release.app.id.to_string());
        assert_eq!(labels["berth.dev/release"], release.id.to_string());
        assert_eq!(labels["berth.dev/deployment"], DEPLOYMENT_ID);
        assert_eq!(labels["app.kubernetes.io/managed-by"], "berth");
    }
    let selector = spec.selector.match_labels.unwrap();
    assert_eq!(
        selector,
        BTreeMap::from([("berth.dev/app".to_owned(), release.app.id.to_string())]),
        "the selector is immutable, so only the app"
    );
    for meta in [
        &objects.secret.metadata,
        &objects.service.metadata,
        &objects.ingress.metadata,
    ] {
        let labels = meta.labels.as_ref().unwrap();
        assert_eq!(labels["app.kubernetes.io/managed-by"], "berth");
        assert_eq!(labels["berth.dev/app"], release.app.id.to_string());
    }
}

#[test]
fn the_deployment_runs_the_image_with_replicas_and_a_safe_rollout() {
    let release = ReleaseFixture::new().replicas(3).build();
    let objects = render(&release);
    let spec = objects.deployment.spec.clone();
    assert_eq!(spec.replicas, Some(3));
    let strategy = spec.strategy.unwrap();
    assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
    let rolling = strategy.rolling_update.unwrap();
    assert_eq!(rolling.max_unavailable, Some(IntOrString::Int(0)));
    assert_eq!(rolling.max_surge, Some(IntOrString::Int(1)));
    assert_eq!(container(&objects).image, Some(release.image));
}

#[test]
fn pods_meet_pod_security_restricted_and_mount_no_token() {
    let objects = render(&ReleaseFixture::new().build());
    let pod = pod(&objects);
    assert_eq!(pod.automount_service_account_token, Some(false));
    assert_eq!(pod.service_account_name.as_deref(), Some(SERVICE_ACCOUNT));
    let pod_context = pod.security_context.unwrap();
    assert_eq!(pod_context.run_as_non_root, Some(true));
    assert_eq!(pod_context.seccomp_profile.unwrap().type_, "RuntimeDefault");
    let context = container(&objects).security_context.unwrap();
    assert_eq!(context.run_as_non_root, Some(true));
    assert_eq!(context.allow_privilege_escalation, Some(false));
    assert_eq!(context.privileged, None);
    let capabilities = context.capabilities.unwrap();
    assert_eq!(capabilities.drop, Some(vec!["ALL".to_owned()]));
    assert_eq!(capabilities.add, None);
    assert_eq!(context.seccomp_profile.unwrap().type_, "RuntimeDefault");
}

#[test]
fn the_pod_is_ready_once_its_port_accepts_connections() {
    let objects = render(&ReleaseFixture::new().port(3000).build());
    let container = container(&objects);
    let probe = container.readiness_probe.unwrap();
    assert_eq!(probe.tcp_socket.unwrap().port, IntOrString::Int(3000));
    assert_eq!(probe.http_get, None);
    assert_eq!(container.ports.unwrap()[0].container_port, 3000);
}

#[test]
fn a_stopping_pod_keeps_serving_while_it_leaves_the_service() {
    let objects = render(&ReleaseFixture::new().replicas(3).build());
    let pre_stop = container(&objects).lifecycle.unwrap().pre_stop.unwrap();
    assert_eq!(pre_stop.sleep.unwrap().seconds, 5);
    let spec = objects.deployment.spec;
    assert_eq!(spec.replicas, Some(3));
    let rolling = spec.strategy.unwrap().rolling_update.unwrap();
    assert_eq!(rolling.max_unavailable, Some(IntOrString::Int(0)));
}

#[test]
fn with_a_health_check_path_the_pod_is_ready_once_it_answers_there() {
    let release = ReleaseFixture::new()
        .port(3000)
        .health_check_path("/healthz")
        .build();
    let probe = container(&render(&release)).readiness_probe.unwrap();
    let get = probe.http_get.unwrap();
    assert_eq!(get.path.as_deref(), Some("/healthz"));
    assert_eq!(get.port, IntOrString::Int(3000));
    assert_eq!(probe.tcp_socket, None);
    assert_eq!(probe.timeout_seconds, Some(2));
}

#[test]
fn resources_come_from_the_release_or_the_defaults() {
    let objects = render(&ReleaseFixture::new().resources(500, 384).build());
    let resources = container(&objects).resources.unwrap();
    for amounts in [resources.requests.unwrap(), resources.limits.unwrap()] {
        assert_eq!(amounts["cpu"].0, "500m");
        assert_eq!(amounts["memory"].0, "384Mi");
    }
    let objects = render(&ReleaseFixture::new().build());
    let limits = container(&objects).resources.unwrap().limits.unwrap();
    assert_eq!(limits["cpu"].0, "250m");
    assert_eq!(limits["memory"].0, "256Mi");
}

#[test]
fn the_env_comes_from_the_secret_and_port_is_berths() {
    let release = ReleaseFixture::new().port(8000).build();
    let objects = render(&release);
    let secret_name = objects.secret.metadata.name.clone().unwrap();
    assert_eq!(secret_name, env_secret_name(&release));
    let data = objects.secret.data.clone().unwrap();
    assert_eq!(data["DATABASE_URL"].0, b"postgres://x");
    assert!(
        !data.contains_key("PORT"),
        "PORT is berth's, not the user's"
    );
    assert_eq!(objects.secret.immutable, Some(true));
    let container = container(&objects);
    let from = container.env_from.unwrap();
    assert_eq!(from[0].secret_ref.as_ref().unwrap().name, secret_name);
    let env = container.env.unwrap();
    assert_eq!(env.len(), 1);
    assert_eq!(env[0].name, "PORT");
    assert_eq!(env[0].value.as_deref(), Some("8000"));
}

#[test]
fn the_service_routes_the_app_port_to_every_pod_of_the_app() {
    let release = ReleaseFixture::new().port(8080).build();
    let spec = render(&release).service.spec.unwrap();
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    assert_eq!(
        spec.selector.unwrap(),
        BTreeMap::from([("berth.dev/app".to_owned(), release.app.id.to_string())])
    );
    let port = &spec.ports.unwrap()[0];
    assert_eq!(port.port, 8080);
    assert_eq!(port.target_port, Some(IntOrString::Int(8080)));
}

#[test]
fn the_ingress_serves_https_on_the_apps_host() {
    let release = ReleaseFixture::new().app("acme", "shop").port(8080).build();
    let ingress = render(&release).ingress;
    let annotations = ingress.metadata.annotations.unwrap();
    assert_eq!(
        annotations["cert-manager.io/cluster-issuer"],
        "letsencrypt-prod"
    );
    let spec = ingress.spec.unwrap();
    assert_eq!(spec.ingress_class_name.as_deref(), Some("traefik"));
    let tls = &spec.tls.unwrap()[0];
    assert_eq!(tls.hosts, Some(vec!["shop.acme.berth.example".to_owned()]));
    assert_eq!(tls.secret_name.as_deref(), Some("shop-tls"));
    let rule = &spec.rules.unwrap()[0];
    assert_eq!(rule.host.as_deref(), Some("shop.acme.berth.example"));
    let path = &rule.http.as_ref().unwrap().paths[0];
    assert_eq!(path.path.as_deref(), Some("/"));
    assert_eq!(path.path_type, "Prefix");
    let backend = path.backend.service.as_ref().unwrap();
    assert_eq!(backend.name, "shop");
    assert_eq!(backend.port.as_ref().unwrap().number, Some(8080));
}

#[test]
fn a_new_release_gets_its_own_env_secret() {
    let first = ReleaseFixture::new().build();
    let mut second = first.clone();
    second.id = Uuid::now_v7();
    assert_ne!(env_secret_name(&first), env_secret_name(&second));
    assert!(env_secret_name(&first).starts_with("web-env-"));
}

#[test]
fn the_yaml_lists_the_objects_in_apply_order() {
    let objects = render(&ReleaseFixture::new().build());
    let yaml = render_yaml(&objects.to_documents()).unwrap();
    let order: Vec<usize> = ["Secret", "Deployment", "Service", "Ingress"]
        .iter()
        .map(|kind| yaml.find(&format!("\"kind\": \"{kind}\"")).unwrap())
        .collect();
    assert!(order.windows(2).all(|pair| pair[0] < pair[1]), "{order:?}");
}
