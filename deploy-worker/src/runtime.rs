//! The seam between the deploy logic and the thing that runs containers.
//!
//! [`Runtime`] is what the [`crate::service::DeployService`] needs from a
//! runtime; the `docker` driver ([`crate::docker::DockerRuntime`]) implements
//! it on one engine, the `kubernetes` driver on a cluster.

use async_trait::async_trait;
use berth_proto::{AppRef, Release};
use std::collections::{BTreeMap, BTreeSet};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::crash_loop::Failure;
use crate::error::DeployError;

/// What to run: one deployment of one release, with its env vars opened.
#[derive(Debug, Clone)]
pub struct DeploySpec {
    pub deployment_id: Uuid,
    pub release: Release,
    /// The release's env vars in plain text; the runtime adds `PORT`.
    pub env: BTreeMap<String, String>,
    /// Cancelled when the backend no longer wants this deployment. Until
    /// the new workload is ready the runtime then undoes its rollout (the
    /// previous release never stopped serving) and fails with
    /// [`DeployError::Cancelled`]; after that it finishes, and the backend
    /// puts the live release back when the late `live` arrives.
    pub cancelled: CancellationToken,
}

/// One workload a runtime has for an app: a container, or the app's
/// Deployment on Kubernetes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// The runtime's own name for it.
    pub name: String,
    /// The deployment it runs (from its `berth.dev/deployment` label).
    pub deployment_id: Option<Uuid>,
    pub release_id: Option<Uuid>,
    /// It runs or is meant to: a running container; a Deployment that wants
    /// replicas or still has pods. A stopped app's workload is not running,
    /// but the Kubernetes driver's `deploy` still refuses one older than it.
    pub running: bool,
    /// Where it answers, when it publishes a port.
    pub endpoint: Option<String>,
}

/// What the reconciler wants of one app's route on the edge router.
#[derive(Debug, Clone)]
pub struct RouteWant {
    pub app: AppRef,
    /// The live deployment, whose running workloads get the traffic.
    pub live: Option<Uuid>,
    /// Scaled above 0 (a stopped app's host answers with a 503 page).
    pub serving: bool,
    /// Its verified custom domains.
    pub domains: Vec<String>,
}

/// Where a deployed release answers: its stable URL behind the edge
/// router, e.g. `http://shop.acme.localhost`, or without a router the
/// published port, e.g. `http://127.0.0.1:41234`.
pub type Endpoint = String;

#[async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// Every workload the runtime has for the app, running or not.
    async fn instances(&self, app: &AppRef) -> Result<Vec<Instance>, DeployError>;

    /// Runs `spec`, waits until it accepts connections, then retires the
    /// app's older deployments; returns where it answers.
    ///
    /// Idempotent: when a healthy workload for this deployment already runs,
    /// it is kept (and the swap finished). On failure the new workload is
    /// removed and the previous one keeps serving. Fails with
    /// [`DeployError::Superseded`] when a newer deployment of the app went
    /// live meanwhile, and with [`DeployError::Cancelled`] when
    /// `spec.cancelled` fires during the rollout.
    async fn deploy(&self, spec: &DeploySpec) -> Result<Endpoint, DeployError>;

    /// Runs `replicas` instances of the app's current release; `0` stops the
    /// app and keeps everything, so scaling up resumes it. Returns how many
    /// workloads were changed; an app with nothing deployed yet is `Ok(0)`
    /// (its next deploy brings the new scale along). With `live`, only that
    /// deployment's workloads are touched (a deploy in progress elsewhere
    /// is left alone).
    async fn scale(
        &self,
        app: &AppRef,
        replicas: u32,
        live: Option<Uuid>,
    ) -> Result<usize, DeployError>;

    /// Stops and removes every workload of the app; returns how many.
    async fn remove_app(&self, app: &AppRef) -> Result<usize, DeployError>;

    /// Whether [`instances`](Self::instances) lists one workload per
    /// replica (containers), so that the reconciler can count them; the
    /// Kubernetes driver lists one Deployment for all of an app's pods.
    fn runs_an_instance_per_replica(&self) -> bool {
        false
    }

    /// Every app this installation runs workloads of, as their labels name
    /// it; `None` when the runtime cannot list them (the reconciler then
    /// leaves orphans alone).
    async fn apps(&self) -> Result<Option<Vec<AppRef>>, DeployError> {
        Ok(None)
    }

    /// Retires the workloads of one deployment of the app (the docker
    /// driver keeps them, stopped, a while for their logs); returns how
    /// many it changed. `0` when the runtime cannot tell deployments apart.
    async fn retire_deployment(
        &self,
        _app: &AppRef,
        _deployment_id: Option<Uuid>,
    ) -> Result<usize, DeployError> {
        Ok(0)
    }

    /// Removes the app's retired workloads whose keep time for their logs
    /// is over, of any deployment but `live`; returns how many.
    async fn prune_retired(
        &self,
        _app: &AppRef,
        _live: Option<Uuid>,
    ) -> Result<usize, DeployError> {
        Ok(0)
    }

    /// The failures of this installation's instances from now on, as they
    /// happen: each crash, and each deployment whose running instances all
    /// failed their health check for [`UNHEALTHY_FOR`](crate::crash_loop::UNHEALTHY_FOR).
    /// `None` when the runtime cannot follow them (automatic rollback then
    /// has nothing to go on). The stream ends when the runtime's own stream
    /// does (an engine restart); ask again.
    async fn failures(
        &self,
    ) -> Result<Option<futures::stream::BoxStream<'static, Failure>>, DeployError> {
        Ok(None)
    }

    /// The instances of the app's `live` deployment and whether each is
    /// healthy now, for the app's users; empty when the runtime cannot
    /// tell.
    async fn instance_health(
        &self,
        _app: &AppRef,
        _live: Uuid,
    ) -> Result<Vec<berth_proto::InstanceHealth>, DeployError> {
        Ok(Vec::new())
    }

    /// Whether berth restarts crashed instances itself (with growing
    /// pauses, [`crate::restart`]) rather than the runtime doing so.
    fn restarts_crashed_instances(&self) -> bool {
        false
    }

    /// Starts crashed `instance` again, unless it runs, is gone, or a newer
    /// deployment of its app runs (it is being replaced); returns whether
    /// it was started.
    async fn restart_crashed(&self, _instance: &str) -> Result<bool, DeployError> {
        Ok(false)
    }

    /// Makes the edge router's routes match `wants` and what runs: each
    /// app's host to its live deployment's running workloads. Routes of
    /// apps `keep` names stay as they are, and so does the route of an app
    /// that runs a deployment newer than its live one (a deploy the wants
    /// do not know yet). Returns the apps whose route changed; a runtime
    /// without a router of its own (Kubernetes routes with Ingress) has
    /// nothing to do.
    async fn converge_routes(
        &self,
        _wants: &[RouteWant],
        _keep: &(dyn Fn(Uuid) -> bool + Send + Sync),
    ) -> Result<BTreeSet<Uuid>, DeployError> {
        Ok(BTreeSet::new())
    }
}

/// The apps that workloads' labels name, each once, in the order first
/// seen; `label(workload, key)` reads one label of a workload. Workloads
/// without a readable app id are left out.
pub(crate) fn apps_of<W>(
    workloads: impl IntoIterator<Item = W>,
    label: impl Fn(&W, &str) -> Option<String>,
) -> Vec<AppRef> {
    let mut apps: Vec<AppRef> = Vec::new();
    for workload in workloads {
        let read = |key: &str| label(&workload, key).unwrap_or_default();
        let Ok(id) = read(berth_proto::labels::APP).parse::<Uuid>() else {
            continue;
        };
        if apps.iter().all(|app| app.id != id) {
            apps.push(AppRef {
                id,
                name: read(berth_proto::labels::APP_NAME),
                tenant: read(berth_proto::labels::TENANT),
            });
        }
    }
    apps
}
