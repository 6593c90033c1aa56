//! The `kubernetes` driver's log source: the Pods labelled `berth.dev/app`
//! in tenants' app namespaces (`berth-<tenant>`, not `…-build`), one
//! [`Workload`] per container *instance*, and their lifecycle and
//! Kubernetes Events as `source: event` records.
//!
//! * A workload's id is the instance's `containerID` (`containerd://…`): a
//!   restart makes a new instance with a new id and a log of its own, so
//!   checkpoints are per instance and a restarted container is read from
//!   its own start. The previous instance (`lastState.terminated`) is a
//!   workload too, read with `previous=true`: the lines of an instance that
//!   died while the streamer was down are still shipped.
//! * [`logs`] reads an instance's log `sinceTime` the checkpoint's second;
//!   the follower's [`crate::checkpoint::Resume`] skips what was delivered.
//! * [`watch`] watches Pods and [`events`]; [`sequence`] explains the
//!   events' cursors.
//!
//! Known limit: the logs API names a container, not an instance. When an
//! instance's log ends, the streamer asks whether it still runs before
//! following it again; the answer waits up to [`STATUS_LAG`] for the pod's
//! status to show the exit. Should the status lag longer while the kubelet
//! already runs the next instance, a follow request for the old one gets
//! the new one's log: those lines are shipped under both (repeated, never
//! lost).

pub mod events;
pub mod logs;
pub mod pods;
pub mod sequence;
pub mod watch;

#[cfg(test)]
mod fake_cluster;
#[cfg(test)]
mod scenario_tests;

use async_trait::async_trait;
use berth_proto::labels;
use futures::stream::{self, BoxStream};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Client};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::StreamError;
use crate::source::{LogLine, LogSource, Workload, WorkloadEvent};
use pods::Registry;

/// How long the pod's status may lag behind the end of an instance's log.
pub const STATUS_LAG: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct KubeLogSource {
    client: Client,
    /// `berth.dev/app`, plus the configured `key=value`.
    label_selector: String,
    /// The app pods last seen: where each instance's log is.
    registry: Arc<Mutex<Registry>>,
}

impl KubeLogSource {
    /// Follows every pod labelled `berth.dev/app` in the app namespaces.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            label_selector: labels::APP.to_owned(),
            registry: Arc::default(),
        }
    }

    /// Follows only the app pods also labelled `key=value` (e.g. to split
    /// the work between streamers).
    pub fn with_selector(mut self, key: &str, value: &str) -> Self {
        self.label_selector = format!("{},{key}={value}", labels::APP);
        self
    }

    pub fn label_selector(&self) -> &str {
        &self.label_selector
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().expect("registry poisoned")
    }
}

#[async_trait]
impl LogSource for KubeLogSource {
    async fn workloads(&self) -> Result<Vec<Workload>, StreamError> {
        let params = ListParams::default().labels(&self.label_selector);
        let list = Api::<Pod>::all(self.client.clone()).list(&params).await?;
        let views: Vec<_> = list.items.iter().filter_map(pods::pod_view).collect();
        let workloads = views.iter().flat_map(|view| view.workloads()).collect();
        let mut registry = self.registry();
        for view in views {
            registry.upsert(view);
        }
        Ok(workloads)
    }

    /// Asked when the instance's log stream ended, which the kubelet does
    /// when it exits, before the pod's status says so: an instance still
    /// running is given [`STATUS_LAG`] to be seen stopped, so that its
    /// container's next instance is not read under its id.
    async fn is_running(&self, id: &str) -> Result<Option<bool>, StreamError> {
        let deadline = tokio::time::Instant::now() + STATUS_LAG;
        loop {
            let running = self.registry().locate(id).map(|location| location.running);
            if running != Some(true) || tokio::time::Instant::now() >= deadline {
                return Ok(running);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn events(&self, since: Option<i64>) -> BoxStream<'static, Result<WorkloadEvent, StreamError>> {
        watch::stream(
            self.client.clone(),
            self.label_selector.clone(),
            self.registry.clone(),
            since,
        )
    }

    fn logs(&self, id: &str, since: i64) -> BoxStream<'static, Result<LogLine, StreamError>> {
        match self.registry().locate(id) {
            Some(location) => logs::stream(self.client.clone(), location, since),
            None => {
                tracing::debug!(
                    container = id,
                    "no longer in its pod's status; nothing to read"
                );
                stream::empty().boxed()
            }
        }
    }
}
