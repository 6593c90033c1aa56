//! Payloads of the messages on berth's queues.

use crate::envelope::Payload;
use crate::names::{
    BUILDS_QUEUE, CONTROL_ROUTING_KEY, DEPLOYS_QUEUE, INFORM_QUEUE, RECONCILE_QUEUE,
};
use crate::sealed::Sealed;
use crate::state::DeploymentState;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Which app a message is about, with what the workers need to name things.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppRef {
    pub id: Uuid,
    /// The app's DNS-1123 name, unique per tenant.
    pub name: String,
    /// The owning tenant's DNS-1123 slug; images live under `<registry>/<tenant>/<app>`.
    pub tenant: String,
}

/// Where the code comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub repo_url: String,
    /// Branch or tag to resolve when no commit is given.
    pub git_ref: String,
    /// An exact commit to build; wins over `git_ref`.
    #[serde(default)]
    pub commit: Option<String>,
    /// Folder inside the repository that holds the app.
    #[serde(default)]
    pub subdirectory: Option<String>,
    /// A token for private repositories, sealed with the shared key for
    /// [`Binding::build_token`](crate::Binding::build_token) of the message's app.
    #[serde(default)]
    pub token: Option<Sealed>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    #[serde(default)]
    pub cpu_millis: Option<u32>,
    #[serde(default)]
    pub memory_mb: Option<u32>,
}

/// The configuration a release runs with, frozen when the release is made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseConfig {
    /// The port the app listens on; given to it as `PORT`.
    pub port: u16,
    /// Env vars as a sealed JSON object of strings, sealed for
    /// [`Binding::app_env`](crate::Binding::app_env) of the release's app:
    /// it opens for that app (tenant and id) only.
    pub env: Sealed,
    /// Which version of the app's env var set this is.
    pub env_version: i64,
    pub replicas: u32,
    #[serde(default)]
    pub resources: Resources,
    /// The path an instance answers 2xx on when it is healthy (`/healthz`);
    /// `None`: accepting connections on the port is healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_path: Option<String>,
}

/// An immutable, deployable release: a commit, its image by digest and config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub id: Uuid,
    pub app: AppRef,
    pub commit: String,
    /// `registry/tenant/app@sha256:...`
    pub image: String,
    pub config: ReleaseConfig,
}

/// An image berth built (and recorded as a release) for one of the app's
/// commits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownImage {
    /// The full commit SHA.
    pub commit: String,
    /// The manifest digest berth read from the registry after its push:
    /// `sha256:…`.
    pub digest: String,
}

/// Build `source` and then deploy it as release `release_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRequested {
    pub app: AppRef,
    pub release_id: Uuid,
    pub source: Source,
    pub config: ReleaseConfig,
    /// The images berth recorded for the app's recent commits (the exact
    /// commit's when one is asked for). The build is skipped only when the
    /// commit it resolves to is here and the registry still has that
    /// digest: an image is trusted by the digest berth recorded, never by a
    /// tag, which anyone who could push to the repository could have moved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub known_images: Vec<KnownImage>,
}

impl Payload for BuildRequested {
    const TYPE: &'static str = "build.requested";
    const VERSION: u32 = 1;
    const QUEUE: &'static str = BUILDS_QUEUE;
}

/// Make the runtime run `release` and nothing older.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployRequested {
    pub release: Release,
}

impl Payload for DeployRequested {
    const TYPE: &'static str = "deploy.requested";
    const VERSION: u32 = 1;
    const QUEUE: &'static str = DEPLOYS_QUEUE;
}

/// Remove everything the app runs; sent when an app is deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppRemovalRequested {
    pub app: AppRef,
}

impl Payload for AppRemovalRequested {
    const TYPE: &'static str = "app.removal_requested";
    const VERSION: u32 = 1;
    const QUEUE: &'static str = DEPLOYS_QUEUE;
}

/// Run `replicas` instances of the app's live release; `0` stops the app
/// without removing anything, so scaling up again resumes it.
///
/// Scale is the app's, not a release's: later deploys keep it (the backend
/// puts the app's current replicas into every deploy it requests).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppScaleRequested {
    pub app: AppRef,
    pub replicas: u32,
    /// The app's live deployment when the scale was asked: only its
    /// workloads are started or stopped, so a scale handled beside another
    /// worker's deploy never stops the release still serving. `None`
    /// (nothing live, or an older backend): every workload but the newest
    /// is stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_deployment_id: Option<Uuid>,
}

impl Payload for AppScaleRequested {
    const TYPE: &'static str = "app.scale_requested";
    const VERSION: u32 = 1;
    const QUEUE: &'static str = DEPLOYS_QUEUE;
}

/// Work the backend no longer wants: one deployment (cancelled by a user,
/// superseded, timed out) or, without `deployment_id`, everything of an app
/// being deleted. Workers stop such work where it is and refuse it when it
/// arrives later. Heard by every worker process (see
/// [`crate::names::CONTROL_ROUTING_KEY`]); a worker that missed it is
/// caught by the backend's compensation of late reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancellation {
    pub app: AppRef,
    #[serde(default)]
    pub deployment_id: Option<Uuid>,
    /// What the user is told, e.g. "cancelled by alice".
    pub reason: String,
    /// The state the backend ended the deployment in.
    pub state: DeploymentState,
}

impl Cancellation {
    /// Whether this cancels work of `deployment_id` of `app_id`.
    pub fn covers(&self, app_id: Uuid, deployment_id: Option<Uuid>) -> bool {
        self.app.id == app_id
            && (self.deployment_id.is_none() || self.deployment_id == deployment_id)
    }
}

impl Payload for Cancellation {
    const TYPE: &'static str = "work.cancelled";
    const VERSION: u32 = 1;
    const QUEUE: &'static str = CONTROL_ROUTING_KEY;
}

/// What should run in the installation, as the database says at `at`: sent
/// periodically by the backend; the deploy-worker compares it with what the
/// runtime runs and repairs the difference (level-triggered convergence).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredState {
    /// When the backend read it. Workloads of apps made after it are not
    /// named here and are left alone.
    pub at: DateTime<Utc>,
    /// Every app that exists; an app's workload not named here belongs to a
    /// deleted app.
    pub apps: Vec<DesiredApp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredApp {
    pub app: AppRef,
    /// The live deployment and its release; `None` when nothing should run.
    #[serde(default)]
    pub live: Option<LiveRelease>,
    pub replicas: u32,
    /// A deployment of the app is on its way: its workloads are the
    /// deploy's to manage, and the app is left alone this round.
    #[serde(default)]
    pub busy: bool,
    /// The app's verified custom domains: the router answers for them too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveRelease {
    pub deployment_id: Uuid,
    pub release: Release,
}

impl Payload for DesiredState {
    const TYPE: &'static str = "runtime.desired";
    const VERSION: u32 = 1;
    const QUEUE: &'static str = RECONCILE_QUEUE;
}

/// What the reconciler found each app it looked at running once it had
/// repaired what it could: one message per pass, so users see an app that
/// berth cannot bring back (and why) instead of a green "live".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeStatus {
    /// When the snapshot the pass acted on was read.
    pub at: DateTime<Utc>,
    pub apps: Vec<AppHealth>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppHealth {
    pub app_id: Uuid,
    pub status: AppStatus,
    /// Why it is degraded, in words for the app's users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Its live deployment's instances as the pass found them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instances: Vec<InstanceHealth>,
}

/// One instance (a container, or a pod) of an app's live deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceHealth {
    /// The runtime's name of it (container or pod).
    pub name: String,
    pub running: bool,
    /// Whether it passed its health check (its health check path, else
    /// accepting connections); `None` when not running or not known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
    /// What the check got when it failed ("answered 500").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub said: Option<String>,
}

/// An app's runtime status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppStatus {
    /// Its live release runs as wanted.
    Running,
    /// It should run, but does not, and the repair failed.
    Degraded,
    /// It is scaled to 0.
    Stopped,
}

impl AppStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Degraded => "degraded",
            Self::Stopped => "stopped",
        }
    }
}

/// A worker's word that work of a deployment hit a passing failure and is
/// tried again at `retry_at`: the deployment keeps its state, and its users
/// read why it waits ("the container engine is unavailable, next attempt in
/// 40 s") instead of a step that looks stuck.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentWaiting {
    pub reason: String,
    pub retry_at: DateTime<Utc>,
}

impl Payload for DeploymentWaiting {
    const TYPE: &'static str = "deployment.waiting";
    const VERSION: u32 = 1;
    const QUEUE: &'static str = INFORM_QUEUE;
}

/// The deploy-worker's word that a live deployment fails where it runs:
/// its instances crash-loop. Sent with the deployment's id in the envelope.
/// The backend rolls the app back by itself to its previous release that
/// did not fail, when the deployment went live within the rollback window;
/// repeated reports of one deployment change nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseFailing {
    pub app: AppRef,
    /// What the app's users read, e.g. "its instances exited 3 times within
    /// 2 minutes (last exit code 1)".
    pub reason: String,
    pub at: DateTime<Utc>,
}

impl Payload for ReleaseFailing {
    const TYPE: &'static str = "release.failing";
    const VERSION: u32 = 1;
    const QUEUE: &'static str = INFORM_QUEUE;
}

impl Payload for RuntimeStatus {
    const TYPE: &'static str = "runtime.status";
    const VERSION: u32 = 1;
    const QUEUE: &'static str = INFORM_QUEUE;
}

/// A worker's report that a deployment reached `state`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentProgress {
    /// Grows with every report on one deployment (the state's rank), so the
    /// backend can refuse stale and repeated reports.
    pub seq: u32,
    pub state: DeploymentState,
    pub at: DateTime<Utc>,
    /// Why it failed, in words a user can act on.
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub commit: Option<String>,
    /// The first line of the commit's message, once the source is cloned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_message: Option<String>,
    /// Set once the image is pushed: the release about to be deployed.
    #[serde(default)]
    pub release: Option<Release>,
    /// Where the app answers, once live.
    #[serde(default)]
    pub endpoint: Option<String>,
}

impl DeploymentProgress {
    pub fn new(state: DeploymentState) -> Self {
        Self {
            seq: state.rank(),
            state,
            at: Utc::now(),
            reason: None,
            commit: None,
            commit_message: None,
            release: None,
            endpoint: None,
        }
    }

    pub fn failed(reason: impl Into<String>) -> Self {
        Self {
            reason: Some(reason.into()),
            ..Self::new(DeploymentState::Failed)
        }
    }

    pub fn with_commit(mut self, commit: impl Into<String>) -> Self {
        self.commit = Some(commit.into());
        self
    }

    pub fn with_commit_message(mut self, message: Option<String>) -> Self {
        self.commit_message = message;
        self
    }

    pub fn with_release(mut self, release: Release) -> Self {
        self.commit = Some(release.commit.clone());
        self.release = Some(release);
        self
    }

    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }
}

impl Payload for DeploymentProgress {
    const TYPE: &'static str = "deployment.progress";
    const VERSION: u32 = 1;
    const QUEUE: &'static str = INFORM_QUEUE;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_request_without_known_images_trusts_no_image() {
        let json = serde_json::json!({
            "app": {"id": Uuid::nil(), "name": "web", "tenant": "acme"},
            "release_id": Uuid::nil(),
            "source": {"repo_url": "https://example.com/r.git", "git_ref": "main"},
            "config": {"port": 8000, "env": {"nonce": "", "ciphertext": ""},
                       "env_version": 1, "replicas": 1},
        });
        let request: BuildRequested = serde_json::from_value(json).unwrap();
        assert!(request.known_images.is_empty());
        let with = BuildRequested {
            known_images: vec![KnownImage {
                commit: "a".repeat(40),
                digest: format!("sha256:{}", "b".repeat(64)),
            }],
            ..request
        };
        let back: BuildRequested =
            serde_json::from_value(serde_json::to_value(&with).unwrap()).unwrap();
        assert_eq!(back, with);
    }
}
