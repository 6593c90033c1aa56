//! What a Deployment and its pods say about a rollout, and which objects a
//! deploy leaves behind. Pure functions, so every diagnosis is unit-tested.

use berth_proto::labels;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeSet;
use uuid::Uuid;

/// The container berth runs in every app pod.
pub const CONTAINER: &str = "app";

fn label(metadata: &ObjectMeta, key: &str) -> Option<Uuid> {
    metadata.labels.as_ref()?.get(key)?.parse().ok()
}

/// The app the Deployment belongs to (its `berth.dev/app` label).
pub fn app_id_of(deployment: &Deployment) -> Option<Uuid> {
    label(&deployment.metadata, labels::APP)
}

/// The deployment the Deployment runs (its `berth.dev/deployment` label).
pub fn deployment_id_of(deployment: &Deployment) -> Option<Uuid> {
    label(&deployment.metadata, labels::DEPLOYMENT)
}

pub fn release_id_of(deployment: &Deployment) -> Option<Uuid> {
    label(&deployment.metadata, labels::RELEASE)
}

/// The Deployment wants pods or still has some: the app is not stopped.
pub fn is_running(deployment: &Deployment) -> bool {
    let wanted = deployment.spec.replicas;
    let existing = deployment.status.as_ref().and_then(|s| s.replicas);
    wanted.unwrap_or(1) > 0 || existing.unwrap_or(0) > 0
}

/// The rollout of the Deployment's current spec is over: the controller
/// has seen the spec, every wanted replica runs it and is available, and no
/// pod of an older spec is left.
pub fn rollout_complete(deployment: &Deployment) -> bool {
    let wanted = deployment.spec.replicas.unwrap_or(1);
    let generation = deployment.metadata.generation.unwrap_or(0);
    let Some(status) = deployment.status.as_ref() else {
        return false;
    };
    status.observed_generation.unwrap_or(0) >= generation
        && status.updated_replicas.unwrap_or(0) == wanted
        && status.available_replicas.unwrap_or(0) == wanted
        && status.replicas.unwrap_or(0) == wanted
}

/// The controller could not create the pods (a quota, an admission policy):
/// the `ReplicaFailure` condition's message.
pub fn replica_failure(deployment: &Deployment) -> Option<String> {
    deployment
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| {
            c.type_.as_deref() == Some("ReplicaFailure") && c.status.as_deref() == Some("True")
        })
        .map(|c| {
            c.message
                .clone()
                .unwrap_or_else(|| "pods were refused".into())
        })
}

/// Why the new pods do not serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodProblem {
    /// The image cannot be pulled (missing, unauthorized, unreachable).
    ImagePull { image: String, message: String },
    /// The image reference itself is refused.
    BadImage { image: String, message: String },
    /// The app exited; its log is that of the `previous` container when it
    /// has been restarted since.
    Exited {
        pod: String,
        code: i32,
        out_of_memory: bool,
        previous: bool,
    },
    /// Not scheduled, or its container could not be created.
    NotStarted(String),
    /// Runs, but its readiness probe never passed.
    NotReady { pod: String },
}

/// A failure no waiting mends, as soon as a new pod shows it.
pub fn definite_failure(pods: &[Pod]) -> Option<PodProblem> {
    pods.iter().find_map(|pod| {
        let (image, status) = app_container(pod)?;
        let state = status.state.as_ref()?;
        if let Some(terminated) = &state.terminated {
            return Some(PodProblem::Exited {
                pod: pod_name(pod),
                code: terminated.exit_code,
                out_of_memory: terminated.reason.as_deref() == Some("OOMKilled"),
                previous: false,
            });
        }
        let waiting = state.waiting.as_ref()?;
        let message = waiting.message.clone().unwrap_or_default();
        match waiting.reason.as_deref()? {
            "ImagePullBackOff" => Some(PodProblem::ImagePull { image, message }),
            "InvalidImageName" | "ErrImageNeverPull" => {
                Some(PodProblem::BadImage { image, message })
            }
            "CrashLoopBackOff" => {
                let last = status.last_state.as_ref()?.terminated.as_ref();
                Some(PodProblem::Exited {
                    pod: pod_name(pod),
                    code: last.map_or(1, |t| t.exit_code),
                    out_of_memory: last.and_then(|t| t.reason.as_deref()) == Some("OOMKilled"),
                    previous: true,
                })
            }
            _ => None,
        }
    })
}

/// The best explanation once the deadline passed: a definite failure, else
/// what keeps a pod from starting, else a pod that runs but is not ready.
pub fn failure_at_deadline(pods: &[Pod]) -> Option<PodProblem> {
    definite_failure(pods)
        .or_else(|| pods.iter().find_map(not_started))
        .or_else(|| {
            pods.iter()
                .find(|pod| app_container(pod).is_some_and(|(_, s)| !s.ready))
                .map(|pod| PodProblem::NotReady { pod: pod_name(pod) })
        })
}

fn not_started(pod: &Pod) -> Option<PodProblem> {
    let unscheduled = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|conditions| {
            conditions
                .iter()
                .find(|c| c.type_ == "PodScheduled" && c.status == "False")
        });
    if let Some(condition) = unscheduled {
        let message = condition.message.clone().unwrap_or_default();
        return Some(PodProblem::NotStarted(format!("not scheduled: {message}")));
    }
    let (image, status) = app_container(pod)?;
    let waiting = status.state.as_ref()?.waiting.as_ref()?;
    let reason = waiting.reason.clone().unwrap_or_default();
    let message = waiting.message.clone().unwrap_or_default();
    match reason.as_str() {
        "ErrImagePull" => Some(PodProblem::ImagePull { image, message }),
        "" => None,
        _ if message.is_empty() => Some(PodProblem::NotStarted(reason)),
        _ => Some(PodProblem::NotStarted(format!("{reason}: {message}"))),
    }
}

fn pod_name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

/// The app container's image (as the pod asks for it) and status.
fn app_container(pod: &Pod) -> Option<(String, &ContainerStatus)> {
    let status = pod
        .status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|s| s.name == CONTAINER)?;
    let image = pod
        .spec
        .as_ref()
        .and_then(|spec| spec.containers.iter().find(|c| c.name == CONTAINER))
        .and_then(|c| c.image.clone())
        .unwrap_or_else(|| status.image.clone());
    Some((image, status))
}

/// The releases the app's ReplicaSets run (their pod templates'
/// `berth.dev/release`): what its Deployment can still roll back to, so
/// the env Secrets a deploy that went live keeps.
pub fn releases_in_history(replica_sets: &[ReplicaSet]) -> BTreeSet<String> {
    replica_sets
        .iter()
        .filter_map(|replica_set| {
            let template = replica_set.spec.template.as_ref()?;
            template
                .metadata
                .as_ref()?
                .labels
                .as_ref()?
                .get(labels::RELEASE)
        })
        .cloned()
        .collect()
}

/// The label selector of the app's env Secrets to prune: those of a
/// release not in `keep`. None when `keep` is empty: that would prune
/// them all (and `notin ()` is no selector).
pub fn prune_selector(app_id: Uuid, keep: &BTreeSet<String>) -> Option<String> {
    if keep.is_empty() {
        return None;
    }
    let keep: Vec<&str> = keep.iter().map(String::as_str).collect();
    Some(format!(
        "{app}={app_id},{release},{release} notin ({})",
        keep.join(","),
        app = labels::APP,
        release = labels::RELEASE,
    ))
}
