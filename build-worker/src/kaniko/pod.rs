//! The objects of a Kaniko build, rendered as pure functions: the Pod and
//! the per-build registry Secret it pushes with. The Secret holds a push
//! grant of the build's tenant only (its app images and its layer cache),
//! lives as long as the Pod may run, and is deleted with the Pod: a
//! Dockerfile that reads it gains nothing beyond its own tenant.

use super::KanikoSettings;
use crate::docker::BuildJob;
use berth_common::kubernetes::{base_labels, build_namespace, meta, SERVICE_ACCOUNT};
use berth_common::registry_auth::Credentials;
use berth_proto::labels;
use k8s_openapi::api::core::v1::{
    Capabilities, Container, KeyToPath, Pod, PodSecurityContext, PodSpec, ResourceRequirements,
    SeccompProfile, Secret, SecretVolumeSource, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::ByteString;
use serde_json::json;
use std::collections::BTreeMap;
use uuid::Uuid;

/// The build container's name.
pub const CONTAINER: &str = "kaniko";
/// `build` on build Pods, so what follows app Pods can leave them out.
pub const ROLE_LABEL: &str = "berth.dev/role";
/// Where Kaniko writes the pushed image's digest: the container's
/// termination message, which the worker reads from the Pod's status.
pub const DIGEST_FILE: &str = "/dev/termination-log";
/// Kaniko's `DOCKER_CONFIG`: the registry Secret is mounted here.
pub const DOCKER_CONFIG_DIR: &str = "/kaniko/.docker";
const CREDENTIALS_VOLUME: &str = "registry-credentials";

/// What Kaniko needs as root besides nothing: it unpacks image layers with
/// their owners and modes (CHOWN, DAC_OVERRIDE, FOWNER, FSETID, SETFCAP)
/// and runs `RUN` steps as the Dockerfile's `USER` (SETUID, SETGID). All
/// are in Pod Security `baseline`, which the build namespace enforces.
pub const CAPABILITIES: [&str; 7] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "SETFCAP",
    "SETGID",
    "SETUID",
];

/// When the attempt that owns a build Pod last said it is alive (RFC 3339):
/// a duplicate attempt of the same build (a redelivery, a second worker)
/// leaves a Pod with a fresh stamp alone instead of killing a build that
/// is going well.
pub const ATTEMPT_ALIVE_AT: &str = "berth.dev/attempt-alive-at";

/// `build-<deployment id>`: one Pod per deployment, so a redelivered build
/// finds (and replaces) the Pod an earlier, dead attempt left behind. The whole id:
/// the first characters of a UUIDv7 are a timestamp shared by deployments
/// made in the same minute.
pub fn pod_name(deployment_id: Uuid) -> String {
    format!("build-{}", deployment_id.simple())
}

/// `build-<deployment id>-registry`: the build's own registry Secret.
pub fn secret_name(deployment_id: Uuid) -> String {
    secret_name_of_pod(&pod_name(deployment_id))
}

/// The registry Secret of the build Pod `pod`.
pub fn secret_name_of_pod(pod: &str) -> String {
    format!("{pod}-registry")
}

/// The labels of a build's objects: the tenant's, the app, the deployment
/// and the build role.
fn build_labels(job: &BuildJob) -> BTreeMap<String, String> {
    let mut labels = base_labels(&job.app.tenant);
    labels.extend([
        (labels::APP.to_owned(), job.app.id.to_string()),
        (labels::APP_NAME.to_owned(), job.app.name.clone()),
        (labels::DEPLOYMENT.to_owned(), job.deployment_id.to_string()),
        (ROLE_LABEL.to_owned(), "build".to_owned()),
    ]);
    labels
}

/// The tenant's layer cache: tenants never share cached layers.
pub fn cache_repo(settings: &KanikoSettings, tenant: &str) -> String {
    format!("{}/{tenant}", settings.cache_repo)
}

/// Kaniko's arguments: the context from stdin (a gzipped tar), the
/// destination, the digest into the termination message, the tenant's
/// cache, the image labels, then the operator's extra flags (last, so they
/// win).
pub fn kaniko_args(job: &BuildJob, settings: &KanikoSettings) -> Vec<String> {
    let mut args = vec![
        "--context=tar://stdin".to_owned(),
        format!("--dockerfile={}", job.dockerfile),
        format!("--destination={}", job.image()),
        format!("--digest-file={DIGEST_FILE}"),
        "--cache=true".to_owned(),
        format!("--cache-repo={}", cache_repo(settings, &job.app.tenant)),
    ];
    if settings.insecure_registry {
        let host = registry_host(&settings.registry.registry);
        args.push("--insecure".to_owned());
        args.push(format!("--insecure-registry={host}"));
    }
    let labels: BTreeMap<_, _> = job.labels.iter().collect();
    args.extend(
        labels
            .into_iter()
            .map(|(key, value)| format!("--label={key}={value}")),
    );
    args.extend(settings.extra_flags.iter().cloned());
    args
}

/// The build Pod of `job`, in the tenant's build namespace.
pub fn build_pod(job: &BuildJob, settings: &KanikoSettings) -> Pod {
    let namespace = build_namespace(&job.app.tenant);
    let pod_labels = build_labels(job);
    let resources = BTreeMap::from([
        ("cpu".to_owned(), Quantity(settings.cpu.clone())),
        ("memory".to_owned(), Quantity(settings.memory.clone())),
        (
            "ephemeral-storage".to_owned(),
            Quantity(settings.ephemeral_storage.clone()),
        ),
    ]);
    let container = Container {
        name: CONTAINER.to_owned(),
        image: Some(settings.image.clone()),
        args: Some(kaniko_args(job, settings)),
        // The context arrives on stdin; stdin closes after the first attach.
        stdin: Some(true),
        stdin_once: Some(true),
        tty: Some(false),
        termination_message_path: Some(DIGEST_FILE.to_owned()),
        termination_message_policy: Some("File".to_owned()),
        resources: Some(ResourceRequirements {
            requests: Some(resources.clone()),
            limits: Some(resources),
            ..Default::default()
        }),
        volume_mounts: Some(vec![VolumeMount {
            name: CREDENTIALS_VOLUME.to_owned(),
            mount_path: DOCKER_CONFIG_DIR.to_owned(),
            read_only: Some(true),
            ..Default::default()
        }]),
        security_context: Some(SecurityContext {
            // Kaniko unpacks images as root: the reason the build namespace
            // enforces `baseline`, not `restricted`.
            run_as_user: Some(0),
            run_as_non_root: Some(false),
            privileged: Some(false),
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                add: Some(CAPABILITIES.iter().map(|c| (*c).to_owned()).collect()),
            }),
            seccomp_profile: Some(runtime_default()),
            ..Default::default()
        }),
        ..Default::default()
    };
    Pod {
        metadata: meta(pod_name(job.deployment_id), Some(&namespace), pod_labels),
        spec: Some(PodSpec {
            containers: vec![container],
            restart_policy: Some("Never".to_owned()),
            active_deadline_seconds: Some(
                settings.deadline.as_secs().try_into().unwrap_or(i64::MAX),
            ),
            service_account_name: Some(SERVICE_ACCOUNT.to_owned()),
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            termination_grace_period_seconds: Some(10),
            security_context: Some(PodSecurityContext {
                seccomp_profile: Some(runtime_default()),
                ..Default::default()
            }),
            volumes: Some(vec![Volume {
                name: CREDENTIALS_VOLUME.to_owned(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(secret_name(job.deployment_id)),
                    items: Some(vec![KeyToPath {
                        key: ".dockerconfigjson".to_owned(),
                        path: "config.json".to_owned(),
                        ..Default::default()
                    }]),
                    default_mode: Some(0o400),
                    optional: Some(false),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The build's dockerconfigjson Secret in its tenant's build namespace:
/// `credentials` (a push grant of the build's tenant) for the registry.
pub fn build_secret(
    job: &BuildJob,
    settings: &KanikoSettings,
    credentials: &Credentials,
) -> Secret {
    let namespace = build_namespace(&job.app.tenant);
    let config = json!({ "auths": {
        registry_host(&settings.registry.registry): {
            "username": credentials.username,
            "password": credentials.password,
            "auth": credentials.basic_auth(),
        }
    }})
    .to_string();
    Secret {
        metadata: meta(
            secret_name(job.deployment_id),
            Some(&namespace),
            build_labels(job),
        ),
        type_: Some("kubernetes.io/dockerconfigjson".to_owned()),
        data: Some(BTreeMap::from([(
            ".dockerconfigjson".to_owned(),
            ByteString(config.into_bytes()),
        )])),
        ..Default::default()
    }
}

/// `host[:port]` of `host[:port][/prefix]`.
fn registry_host(registry: &str) -> &str {
    registry.split('/').next().unwrap_or(registry)
}

fn runtime_default() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".to_owned(),
        localhost_profile: None,
    }
}

#[cfg(test)]
#[path = "pod_tests.rs"]
mod tests;
