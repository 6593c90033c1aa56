//! The Kubernetes driver's failures, for automatic rollback: the kubelet
//! restarts a crashed container itself (with its own growing pauses,
//! `CrashLoopBackOff`), so berth only looks. Every few seconds it lists
//! the pods of berth's apps, namespace by namespace (the deploy-worker may
//! read pods only in tenants' namespaces), and reports:
//!
//! * each restart of an app container since the last look, with how its
//!   last run ended (exit code, `OOMKilled`), as a crash;
//! * a deployment none of whose running pods has been ready for
//!   [`UNHEALTHY_FOR`] (its readiness probe, the health check path), as
//!   unhealthy.
//!
//! Restarts that happened before the worker first saw a pod are not
//! reported (they may be long past), except in pods made after it started
//! looking.

use berth_proto::{labels, AppRef};
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;
use uuid::Uuid;

use super::KubeRuntime;
use crate::crash_loop::{Failure, FailureKind, UNHEALTHY_FOR};

/// What was last seen of the pods: restarts per container of each pod.
#[derive(Default)]
pub(super) struct Seen {
    restarts: HashMap<(String, String), i32>,
}

impl KubeRuntime {
    /// Looks every `every` until the returned stream is dropped.
    pub(super) fn pod_failures(&self, every: Duration) -> BoxStream<'static, Failure> {
        let (sender, receiver) = tokio::sync::mpsc::channel(64);
        let client = self.client.clone();
        let started = Utc::now();
        tokio::spawn(async move {
            let mut seen = Seen::default();
            loop {
                match look(&client, &mut seen, started, Utc::now()).await {
                    Ok(failures) => {
                        for failure in failures {
                            if sender.send(failure).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "could not look at the apps' pods for crashes")
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = sender.closed() => return,
                }
            }
        });
        Box::pin(futures::stream::unfold(
            receiver,
            |mut receiver| async move { receiver.recv().await.map(|failure| (failure, receiver)) },
        ))
    }
}

/// One look at every app pod of the cluster.
pub(super) async fn look(
    client: &kube::Client,
    seen: &mut Seen,
    started: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Vec<Failure>, kube::Error> {
    let selector = format!(
        "{}={},{}",
        labels::MANAGED_BY,
        labels::MANAGED_BY_VALUE,
        labels::APP
    );
    let deployments: Api<Deployment> = Api::all(client.clone());
    let namespaces: BTreeSet<String> = deployments
        .list_metadata(&ListParams::default().labels(&selector))
        .await?
        .items
        .into_iter()
        .filter_map(|d| d.metadata.namespace)
        .collect();
    let mut failures = Vec::new();
    let mut still_there = BTreeSet::new();
    for namespace in namespaces {
        let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
        let list = pods.list(&ListParams::default().labels(&selector)).await?;
        let mut unready: HashMap<Uuid, (AppRef, usize, usize)> = HashMap::new();
        for pod in &list.items {
            let Some((app, deployment_id)) = owner(pod) else {
                continue;
            };
            let name = pod.metadata.name.clone().unwrap_or_default();
            let made_after_start = pod
                .metadata
                .creation_timestamp
                .as_ref()
                .is_some_and(|t| chrono_of(t) > started);
            for container in pod
                .status
                .iter()
                .flat_map(|s| s.container_statuses.iter().flatten())
            {
                let key = (format!("{namespace}/{name}"), container.name.clone());
                still_there.insert(key.clone());
                let before = seen.restarts.insert(key.clone(), container.restart_count);
                let baseline = match before {
                    Some(count) => count,
                    None if made_after_start => 0,
                    None => container.restart_count,
                };
                if container.restart_count > baseline {
                    let ended = container
                        .last_state
                        .as_ref()
                        .and_then(|s| s.terminated.as_ref());
                    let exit_code = ended.map(|t| i64::from(t.exit_code));
                    let oom = ended.and_then(|t| t.reason.as_deref()) == Some("OOMKilled");
                    if Failure::is_crash(exit_code, oom) {
                        failures.push(Failure {
                            app: app.clone(),
                            deployment_id,
                            kind: FailureKind::Crashed {
                                instance: name.clone(),
                                exit_code,
                                oom,
                            },
                            at: ended
                                .and_then(|t| t.finished_at.as_ref())
                                .map_or(now, chrono_of),
                        });
                    }
                }
            }
            if running(pod) {
                let entry = unready.entry(deployment_id).or_insert((app, 0, 0));
                entry.1 += 1;
                if unready_since(pod).is_some_and(|since| since <= now - unhealthy_for()) {
                    entry.2 += 1;
                }
            }
        }
        for (deployment_id, (app, running, unhealthy)) in unready {
            if running > 0 && unhealthy == running {
                failures.push(Failure {
                    app,
                    deployment_id,
                    kind: FailureKind::Unhealthy {
                        said: "the readiness probe on its health check path kept failing".into(),
                    },
                    at: now,
                });
            }
        }
    }
    seen.restarts.retain(|key, _| still_there.contains(key));
    Ok(failures)
}

fn unhealthy_for() -> chrono::Duration {
    chrono::Duration::from_std(UNHEALTHY_FOR).unwrap_or_default()
}

/// The app and deployment a pod's labels name.
fn owner(pod: &Pod) -> Option<(AppRef, Uuid)> {
    let labels = pod.metadata.labels.as_ref()?;
    let app = AppRef {
        id: labels.get(labels::APP)?.parse().ok()?,
        name: labels.get(labels::APP_NAME).cloned().unwrap_or_default(),
        tenant: labels.get(labels::TENANT).cloned().unwrap_or_default(),
    };
    Some((app, labels.get(labels::DEPLOYMENT)?.parse().ok()?))
}

/// Its containers all run (a pod waiting to restart is a crash, not a
/// failing health check).
fn running(pod: &Pod) -> bool {
    let statuses = pod
        .status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten());
    let mut any = false;
    for status in statuses {
        any = true;
        if status
            .state
            .as_ref()
            .and_then(|s| s.running.as_ref())
            .is_none()
        {
            return false;
        }
    }
    any
}

/// A pod as the app's users see it in its instances.
pub(super) fn instance_health(pod: &Pod) -> berth_proto::InstanceHealth {
    let is_running = running(pod);
    let unready = unready_since(pod);
    berth_proto::InstanceHealth {
        name: pod.metadata.name.clone().unwrap_or_default(),
        running: is_running,
        healthy: is_running.then_some(unready.is_none()),
        said: (is_running && unready.is_some())
            .then(|| "not ready: its readiness probe fails".to_owned()),
    }
}

/// Since when the pod has not been ready, when it is not.
fn unready_since(pod: &Pod) -> Option<DateTime<Utc>> {
    let ready = pod
        .status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready")?;
    if ready.status == "True" {
        return None;
    }
    ready.last_transition_time.as_ref().map(chrono_of)
}

fn chrono_of(time: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> DateTime<Utc> {
    DateTime::from_timestamp(
        time.0.as_second(),
        time.0.subsec_nanosecond().unsigned_abs(),
    )
    .unwrap_or_default()
}
