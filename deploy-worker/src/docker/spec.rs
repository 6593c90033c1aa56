//! The container a release runs in: name, labels, env, ports, limits. Pure
//! functions, so the shape of what berth asks the engine for is unit-tested.

use berth_proto::{labels, AppRef};
use bollard::models::{
    ContainerCreateBody, ContainerSummary, ContainerSummaryStateEnum, HostConfig,
    HostConfigLogConfig, PortBinding, RestartPolicy,
};
use std::collections::HashMap;
use uuid::Uuid;

use crate::config::DockerConfig;
use crate::error::DeployError;
use crate::runtime::{DeploySpec, Instance};

/// `berth-<tenant>-<app>-<time>-<random>` from the deployment id. The
/// log-streamer follows only containers named so ([`labels::container_name`]).
pub fn container_name(app: &AppRef, deployment_id: Uuid) -> String {
    labels::container_name(&app.tenant, &app.name, deployment_id)
}

/// The name of instance `replica` of the deployment.
pub fn replica_name(app: &AppRef, deployment_id: Uuid, replica: u32) -> String {
    labels::replica_name(&app.tenant, &app.name, deployment_id, replica)
}

/// The berth labels every container of a deployment carries.
pub fn container_labels(spec: &DeploySpec, installation: &str) -> HashMap<String, String> {
    let release = &spec.release;
    let health = release.config.health_check_path.clone();
    let mut labels = HashMap::from([
        (labels::INSTALLATION.to_owned(), installation.to_owned()),
        (labels::APP.to_owned(), release.app.id.to_string()),
        (labels::APP_NAME.to_owned(), release.app.name.clone()),
        (labels::TENANT.to_owned(), release.app.tenant.clone()),
        (labels::RELEASE.to_owned(), release.id.to_string()),
        (
            labels::DEPLOYMENT.to_owned(),
            spec.deployment_id.to_string(),
        ),
        (
            labels::MANAGED_BY.to_owned(),
            labels::MANAGED_BY_VALUE.to_owned(),
        ),
    ]);
    if let Some(path) = health {
        labels.insert(labels::HEALTH_CHECK_PATH.to_owned(), path);
    }
    labels
}

/// The health check path a container's release has, from its label.
pub fn health_check_path_of(labels: Option<&HashMap<String, String>>) -> Option<String> {
    labels?.get(labels::HEALTH_CHECK_PATH).cloned()
}

/// The release's env vars plus `PORT`, which always wins: berth health-checks
/// the port it told the app to use.
pub fn container_env(spec: &DeploySpec) -> Vec<String> {
    spec.env
        .iter()
        .filter(|(key, _)| key.as_str() != "PORT")
        .map(|(key, value)| format!("{key}={value}"))
        .chain([format!("PORT={}", spec.release.config.port)])
        .collect()
}

/// Capabilities an app keeps: enough for a root process to own its files,
/// drop to another user and bind a low port. Gone from the engine's
/// defaults: `NET_RAW` (spoofing neighbours on the bridge), `MKNOD`,
/// `SYS_CHROOT`, `SETFCAP`, `SETPCAP`, `AUDIT_WRITE`.
pub const CAPABILITIES: [&str; 8] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "NET_BIND_SERVICE",
    "SETGID",
    "SETUID",
];

/// What `create_container` is asked for: the app on its tenant's
/// `network`, with limits (the release's, else the defaults), no new
/// privileges and only [`CAPABILITIES`].
pub fn container_body(
    spec: &DeploySpec,
    config: &DockerConfig,
    network: &str,
    replica: u32,
) -> ContainerCreateBody {
    let port_key = format!("{}/tcp", spec.release.config.port);
    let resources = &spec.release.config.resources;
    let limits = &config.limits;
    let memory =
        i64::from(resources.memory_mb.unwrap_or(limits.app_default_memory_mb)) * 1024 * 1024;
    let cpu_millis = resources
        .cpu_millis
        .unwrap_or(limits.app_default_cpu_millis);
    let host_config = HostConfig {
        // The engine picks a free host port; it is read back after start.
        port_bindings: Some(HashMap::from([(
            port_key.clone(),
            Some(vec![PortBinding {
                host_ip: Some(config.publish_addr.clone()),
                host_port: Some(String::new()),
            }]),
        )])),
        restart_policy: Some(RestartPolicy {
            name: Some(config.restart_policy.policy),
            maximum_retry_count: config.restart_policy.max_retries,
        }),
        // An init as PID 1 forwards SIGTERM, so apps started through a shell
        // stop within the grace period instead of being killed after it.
        init: Some(true),
        network_mode: Some(network.to_owned()),
        memory: Some(memory),
        // Equal to the memory: no swap.
        memory_swap: Some(memory),
        nano_cpus: Some(i64::from(cpu_millis) * 1_000_000),
        pids_limit: Some(limits.app_pids_limit),
        cap_drop: Some(vec!["ALL".to_owned()]),
        cap_add: Some(CAPABILITIES.iter().map(|c| (*c).to_owned()).collect()),
        security_opt: Some(vec!["no-new-privileges".to_owned()]),
        log_config: Some(HostConfigLogConfig {
            typ: None,
            config: Some(HashMap::from([(
                "max-size".to_owned(),
                limits.app_log_max_size.clone(),
            )])),
        }),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(spec.release.image.clone()),
        env: Some(container_env(spec)),
        labels: Some({
            let mut labels = container_labels(spec, &config.installation);
            labels.insert(labels::REPLICA.to_owned(), replica.to_string());
            labels
        }),
        exposed_ports: Some(vec![port_key]),
        host_config: Some(host_config),
        ..Default::default()
    }
}

/// Checks `name[:tag][@sha256:<64 hex>]` before the engine sees it, so a
/// malformed reference fails the deploy with a clear reason instead of a
/// retry loop.
pub fn validate_image(image: &str) -> Result<(), DeployError> {
    let bad = |reason: &str| DeployError::BadImage {
        image: image.to_owned(),
        reason: reason.to_owned(),
    };
    if image.is_empty() {
        return Err(bad("it is empty"));
    }
    if image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("it contains whitespace"));
    }
    let name = match image.split_once('@') {
        Some((name, digest)) => {
            let hex = digest
                .strip_prefix("sha256:")
                .ok_or_else(|| bad("the digest must start with sha256:"))?;
            if hex.len() != 64 || !hex.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')) {
                return Err(bad("the digest must be 64 lowercase hex digits"));
            }
            name
        }
        None => image,
    };
    if name.is_empty() || name.starts_with('/') || name.ends_with('/') || name.contains("//") {
        return Err(bad("the repository name is malformed"));
    }
    Ok(())
}

/// The registry host of a fully qualified reference (`127.0.0.1:5000/t/a@...`).
pub fn registry_host(image: &str) -> Option<&str> {
    let (first, _) = image.split_once('/')?;
    (first.contains('.') || first.contains(':') || first == "localhost").then_some(first)
}

/// A berth label of a listed container that holds an id.
pub fn id_label(summary: &ContainerSummary, key: &str) -> Option<Uuid> {
    summary
        .labels
        .as_ref()
        .and_then(|labels| labels.get(key))
        .and_then(|value| value.parse().ok())
}

/// The app a container's labels name.
pub fn app_of(labels: &HashMap<String, String>) -> Option<AppRef> {
    Some(AppRef {
        id: labels.get(labels::APP)?.parse().ok()?,
        name: labels.get(labels::APP_NAME)?.clone(),
        tenant: labels.get(labels::TENANT)?.clone(),
    })
}

/// The deployment a listed container runs.
pub fn deployment_of(summary: &ContainerSummary) -> Option<Uuid> {
    id_label(summary, labels::DEPLOYMENT)
}

/// The instance number of a container (0 for one made before apps had
/// several).
pub fn replica_of(summary: &ContainerSummary) -> u32 {
    summary
        .labels
        .as_ref()
        .and_then(|l| l.get(labels::REPLICA))
        .and_then(|replica| replica.parse().ok())
        .unwrap_or(0)
}

/// A listed container as a runtime [`Instance`].
pub fn instance_of(summary: &ContainerSummary, public_host: &str) -> Instance {
    let label = |key: &str| id_label(summary, key);
    let endpoint = summary
        .ports
        .iter()
        .flatten()
        .find_map(|port| port.public_port)
        .map(|port| endpoint(public_host, port));
    Instance {
        name: summary
            .names
            .iter()
            .flatten()
            .next()
            .map(|name| name.trim_start_matches('/').to_owned())
            .or_else(|| summary.id.clone())
            .unwrap_or_default(),
        deployment_id: label(labels::DEPLOYMENT),
        release_id: label(labels::RELEASE),
        running: summary.state == Some(ContainerSummaryStateEnum::RUNNING),
        endpoint,
    }
}

pub fn endpoint(public_host: &str, port: u16) -> String {
    format!("http://{public_host}:{port}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::ReleaseFixture;
    use std::collections::BTreeMap;

    fn spec() -> DeploySpec {
        DeploySpec {
            deployment_id: "01936d2a-7b3c-7def-8123-456789abcdef".parse().unwrap(),
            release: ReleaseFixture::new().resources(500, 256).build(),
            env: BTreeMap::from([
                ("DATABASE_URL".into(), "postgres://x".into()),
                ("PORT".into(), "9999".into()),
            ]),
            cancelled: Default::default(),
        }
    }

    #[test]
    fn the_name_carries_tenant_app_and_deployment() {
        let spec = spec();
        assert_eq!(
            container_name(&spec.release.app, spec.deployment_id),
            "berth-acme-web-01936d2a7b3c-89abcdef"
        );
    }

    fn config() -> DockerConfig {
        use clap::Parser;
        #[derive(Parser)]
        struct Flags {
            #[command(flatten)]
            docker: DockerConfig,
        }
        let mut config = Flags::parse_from(["test"]).docker;
        config.installation = "test-installation".into();
        config.restart_policy = "on-failure:5".parse().unwrap();
        config
    }

    #[test]
    fn the_container_has_labels_env_port_and_limits() {
        let spec = spec();
        let body = container_body(&spec, &config(), "berth-test-installation-acme", 0);
        let labels = body.labels.unwrap();
        assert_eq!(labels[labels::APP], spec.release.app.id.to_string());
        assert_eq!(labels[labels::DEPLOYMENT], spec.deployment_id.to_string());
        assert_eq!(labels[labels::RELEASE], spec.release.id.to_string());
        assert_eq!(labels[labels::MANAGED_BY], "berth");
        assert_eq!(labels[labels::TENANT], "acme");
        assert_eq!(labels[labels::APP_NAME], "web");
        assert_eq!(labels[labels::INSTALLATION], "test-installation");
        assert_eq!(
            body.env.unwrap(),
            vec!["DATABASE_URL=postgres://x", "PORT=8000"],
            "PORT is berth's, not the user's"
        );
        let host = body.host_config.unwrap();
        let binding = &host.port_bindings.unwrap()["8000/tcp"].clone().unwrap()[0];
        assert_eq!(binding.host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(binding.host_port.as_deref(), Some(""));
        assert_eq!(host.memory, Some(256 * 1024 * 1024));
        assert_eq!(host.memory_swap, Some(256 * 1024 * 1024));
        assert_eq!(host.nano_cpus, Some(500_000_000));
        assert_eq!(host.init, Some(true));
        assert_eq!(
            host.network_mode.as_deref(),
            Some("berth-test-installation-acme")
        );
        let restart = host.restart_policy.unwrap();
        assert_eq!(restart.maximum_retry_count, Some(5));
        assert_eq!(body.exposed_ports.unwrap(), vec!["8000/tcp"]);
    }

    #[test]
    fn every_container_is_fenced_and_limited_even_when_its_release_names_no_limits() {
        let mut spec = spec();
        spec.release.config.resources = Default::default();
        let host = container_body(&spec, &config(), "net", 0)
            .host_config
            .unwrap();
        // Before: no limit at all when the release named none.
        assert_eq!(host.memory, Some(512 * 1024 * 1024));
        assert_eq!(host.nano_cpus, Some(1_000_000_000));
        assert_eq!(host.pids_limit, Some(512));
        assert_eq!(host.cap_drop.unwrap(), ["ALL"]);
        let caps = host.cap_add.unwrap();
        assert!(
            !caps.iter().any(|c| c == "NET_RAW" || c == "SYS_ADMIN"),
            "{caps:?}"
        );
        assert_eq!(host.security_opt.unwrap(), ["no-new-privileges"]);
        assert_eq!(host.log_config.unwrap().config.unwrap()["max-size"], "10m");
    }

    #[test]
    fn image_references_are_checked() {
        let digest = format!("sha256:{}", "0".repeat(64));
        assert!(validate_image(&format!("127.0.0.1:5000/t/a@{digest}")).is_ok());
        assert!(validate_image("localhost/berth/static:latest").is_ok());
        for bad in [
            "",
            "a b",
            "127.0.0.1:5000/t/a@sha256:abc",
            "127.0.0.1:5000/t/a@md5:00",
            "/t/a",
        ] {
            assert!(
                matches!(validate_image(bad), Err(DeployError::BadImage { .. })),
                "{bad:?}"
            );
        }
        assert_eq!(
            registry_host("127.0.0.1:5000/t/a@x"),
            Some("127.0.0.1:5000")
        );
        assert_eq!(registry_host("library/busybox"), None);
    }
}
