//! Pods as the log-streamer sees them: which ones are apps' ([`PodView`]),
//! their container instances as [`Workload`]s, and the lifecycle their
//! status tells ([`lifecycle`]). Pure functions, plus the [`Registry`] of
//! the pods last seen, which says where an instance's log is.

use berth_proto::labels;
use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{ContainerState, ContainerStatus, Pod};
use k8s_openapi::jiff::Timestamp;
use std::collections::HashMap;
use uuid::Uuid;

use crate::source::{Lifecycle, Workload};

/// Whether berth follows the pods of `namespace`: a tenant's apps run in
/// `berth-<tenant>`; its builds run in `berth-<tenant>-build` and the
/// build-worker ships their output itself.
pub fn followed_namespace(namespace: &str) -> bool {
    namespace.starts_with("berth-") && !namespace.ends_with("-build")
}

pub fn to_utc(timestamp: &Timestamp) -> DateTime<Utc> {
    let nanos = i64::try_from(timestamp.as_nanosecond()).unwrap_or_default();
    DateTime::from_timestamp_nanos(nanos)
}

/// One run of a container. A restart makes a new instance with a new id
/// (`containerd://…`), and checkpoints are kept per id: a restarted
/// container is followed from its own start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub id: String,
    pub running: bool,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub exit_code: Option<i64>,
    /// Why it terminated (`OOMKilled`, `Error`, `Completed`).
    pub reason: Option<String>,
}

/// A container of an app's pod: the instance the kubelet runs (or ran
/// last), and the one before it, whose log `previous=true` still reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerView {
    pub name: String,
    pub current: Option<Instance>,
    pub previous: Option<Instance>,
}

/// An app's pod: what records need (app, key, names) and its containers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub app_id: Uuid,
    /// The record key: the `berth.dev/deployment` label, else the pod's uid.
    pub key: String,
    /// Whether the pod has one container (its instances are named after the pod).
    pub single: bool,
    pub containers: Vec<ContainerView>,
    pub resource_version: Option<String>,
}

/// The pod, if it is an app's pod in a followed namespace.
pub fn pod_view(pod: &Pod) -> Option<PodView> {
    let metadata = &pod.metadata;
    let namespace = metadata.namespace.clone()?;
    if !followed_namespace(&namespace) {
        return None;
    }
    let labels = metadata.labels.as_ref()?;
    let app_id = labels.get(labels::APP)?.parse::<Uuid>().ok()?;
    let uid = metadata.uid.clone()?;
    let statuses = pod
        .status
        .as_ref()
        .and_then(|status| status.container_statuses.as_deref())
        .unwrap_or_default();
    let declared = pod.spec.as_ref().map(|spec| spec.containers.len());
    Some(PodView {
        key: labels
            .get(labels::DEPLOYMENT)
            .cloned()
            .unwrap_or_else(|| uid.clone()),
        uid,
        namespace,
        name: metadata.name.clone()?,
        app_id,
        single: declared.unwrap_or(statuses.len()) <= 1,
        containers: statuses.iter().map(container_view).collect(),
        resource_version: metadata.resource_version.clone(),
    })
}

fn container_view(status: &ContainerStatus) -> ContainerView {
    let previous = status
        .last_state
        .as_ref()
        .and_then(|state| instance(None, state));
    // In CrashLoopBackOff the status still carries the id of the instance
    // that died (now `lastState`); it is not a new one.
    let current = status
        .state
        .as_ref()
        .and_then(|state| instance(status.container_id.as_deref(), state))
        .filter(|current| previous.as_ref().is_none_or(|prev| prev.id != current.id));
    ContainerView {
        name: status.name.clone(),
        current,
        previous,
    }
}

/// The instance a container state describes; `None` while it waits (no
/// instance runs) or has no id yet.
fn instance(id: Option<&str>, state: &ContainerState) -> Option<Instance> {
    if let Some(running) = &state.running {
        return Some(Instance {
            id: id.filter(|id| !id.is_empty())?.to_owned(),
            running: true,
            started_at: running.started_at.as_ref().map(|time| to_utc(&time.0)),
            finished_at: None,
            exit_code: None,
            reason: None,
        });
    }
    let terminated = state.terminated.as_ref()?;
    let id = terminated.container_id.as_deref().or(id);
    Some(Instance {
        id: id.filter(|id| !id.is_empty())?.to_owned(),
        running: false,
        started_at: terminated.started_at.as_ref().map(|time| to_utc(&time.0)),
        finished_at: terminated.finished_at.as_ref().map(|time| to_utc(&time.0)),
        exit_code: Some(i64::from(terminated.exit_code)),
        reason: terminated.reason.clone(),
    })
}

impl PodView {
    /// What users see as the record's `instance`: the pod's name, or
    /// `<pod>/<container>` when the pod has several containers.
    pub fn instance_name(&self, container: &str) -> String {
        if self.single {
            self.name.clone()
        } else {
            format!("{}/{container}", self.name)
        }
    }

    pub fn workload(&self, container: &str, instance: &Instance) -> Workload {
        Workload {
            id: instance.id.clone(),
            name: self.instance_name(container),
            app_id: self.app_id,
            key: self.key.clone(),
            running: instance.running,
        }
    }

    /// Every instance whose log can still be read: the previous ones too, so
    /// the lines of an instance that died while the streamer was down are read.
    pub fn workloads(&self) -> Vec<Workload> {
        self.instances()
            .map(|(container, instance)| self.workload(container, instance))
            .collect()
    }

    /// `(container name, instance)`, previous instances first.
    pub fn instances(&self) -> impl Iterator<Item = (&str, &Instance)> {
        self.containers.iter().flat_map(|container| {
            [&container.previous, &container.current]
                .into_iter()
                .flatten()
                .map(|instance| (container.name.as_str(), instance))
        })
    }
}

/// Something that happened, before it gets its place in the events stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Tells the same happening apart when a pod's status is seen again.
    pub identity: String,
    pub at: DateTime<Utc>,
    pub kind: Lifecycle,
    pub workload: Workload,
}

/// What the pod's status says happened to its instances: each one started,
/// and maybe was OOM-killed and exited. A restart (`restartCount` grew)
/// shows as the old instance's exit and the new one's start.
pub fn lifecycle(view: &PodView) -> Vec<Item> {
    let mut items = Vec::new();
    for (container, instance) in view.instances() {
        let workload = view.workload(container, instance);
        let mut add = |kind: &str, at: Option<DateTime<Utc>>, lifecycle: Lifecycle| {
            if let Some(at) = at {
                items.push(Item {
                    identity: format!("{kind}/{}", instance.id),
                    at,
                    kind: lifecycle,
                    workload: workload.clone(),
                });
            }
        };
        add("started", instance.started_at, Lifecycle::Started);
        if instance.reason.as_deref() == Some("OOMKilled") {
            add("oom", instance.finished_at, Lifecycle::OutOfMemory);
        }
        add(
            "died",
            instance.finished_at,
            Lifecycle::Died {
                exit_code: instance.exit_code,
            },
        );
    }
    items
}

/// The pod was deleted: its instances are gone (no record; the streamer
/// forgets their checkpoints).
pub fn removed(view: &PodView, at: DateTime<Utc>) -> Vec<Item> {
    view.instances()
        .map(|(container, instance)| Item {
            identity: format!("removed/{}", instance.id),
            at,
            kind: Lifecycle::Removed,
            workload: view.workload(container, instance),
        })
        .collect()
}

/// Where an instance's log is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    /// The container's previous instance: read with `previous=true`, no follow.
    pub previous: bool,
    pub running: bool,
}

/// The app pods last seen, by uid: kept by the pod watcher (and the lists
/// of [`crate::source::LogSource::workloads`]).
#[derive(Debug, Default)]
pub struct Registry {
    pods: HashMap<String, PodView>,
}

impl Registry {
    /// Stores `view` unless the stored one is newer.
    pub fn upsert(&mut self, view: PodView) {
        if let Some(known) = self.pods.get(&view.uid) {
            if newer(&known.resource_version, &view.resource_version) {
                return;
            }
        }
        self.pods.insert(view.uid.clone(), view);
    }

    pub fn remove(&mut self, uid: &str) -> Option<PodView> {
        self.pods.remove(uid)
    }

    /// After a full list: the pods not in it were deleted; returns them.
    pub fn replace(&mut self, views: Vec<PodView>) -> Vec<PodView> {
        let listed: HashMap<_, _> = views
            .into_iter()
            .map(|view| (view.uid.clone(), view))
            .collect();
        let (kept, gone) = std::mem::take(&mut self.pods)
            .into_iter()
            .partition(|(uid, _)| listed.contains_key(uid));
        self.pods = kept;
        for view in listed.into_values() {
            self.upsert(view);
        }
        gone.into_values().collect()
    }

    pub fn pod(&self, uid: Option<&str>, namespace: &str, name: &str) -> Option<&PodView> {
        match uid.and_then(|uid| self.pods.get(uid)) {
            Some(view) => Some(view),
            None => self
                .pods
                .values()
                .find(|view| view.namespace == namespace && view.name == name),
        }
    }

    /// Where the instance `id` runs or ran; `None` once it is neither a
    /// container's current nor its previous instance (or the pod is gone).
    pub fn locate(&self, id: &str) -> Option<Location> {
        self.pods.values().find_map(|view| {
            view.containers.iter().find_map(|container| {
                let (instance, previous) = match (&container.current, &container.previous) {
                    (Some(current), _) if current.id == id => (current, false),
                    (_, Some(previous)) if previous.id == id => (previous, true),
                    _ => return None,
                };
                Some(Location {
                    namespace: view.namespace.clone(),
                    pod: view.name.clone(),
                    container: container.name.clone(),
                    previous,
                    running: instance.running,
                })
            })
        })
    }
}

/// Whether resource version `a` is known to be newer than `b`. Versions are
/// opaque to clients, but the API server's are etcd revisions: compared as
/// numbers when both are, never otherwise.
fn newer(a: &Option<String>, b: &Option<String>) -> bool {
    let number = |version: &Option<String>| version.as_deref()?.parse::<u64>().ok();
    matches!((number(a), number(b)), (Some(a), Some(b)) if a > b)
}

#[cfg(test)]
#[path = "pods_tests.rs"]
mod tests;
