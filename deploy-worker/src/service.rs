//! What the deploy-worker does with each message on `berth.deploys`,
//! independent of the runtime and the broker.
//!
//! Delivery is at least once and messages may arrive late, so every step is
//! checked against what the runtime already runs:
//!
//! * a deploy whose deployment already serves reports `live` again (with the
//!   same endpoint) instead of starting a second container;
//! * a deploy older (deployment ids are UUIDv7, so they order by creation)
//!   than a deployment the app already runs is skipped and reported
//!   `cancelled` with the reason "a newer deployment is already running":
//!   the backend then ends it instead of leaving it in progress until the
//!   reaper times it out; a deployment that already ended ignores the report;
//! * deploys of one app are serialized within a worker; across workers the
//!   runtime re-checks for a newer deployment before it retires older ones;
//! * a cancellation heard while the new release rolls out undoes the rollout
//!   (see [`DeploySpec::cancelled`]).

use async_trait::async_trait;
use berth_common::control::Cancellations;
use berth_common::{DeliveryInfo, Handler, LogSink, MessagePublisher, Outcome};
use berth_proto::{
    AppRef, Binding, DeploymentProgress, DeploymentState, Envelope, Message, Release, SecretKey,
};
use chrono::Utc;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

use crate::error::DeployError;
use crate::runtime::{DeploySpec, Runtime};

pub struct DeployService<R, P> {
    runtime: R,
    publisher: P,
    key: SecretKey,
    app_locks: Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>,
    cancellations: Cancellations,
    /// Where repairs are written into the app's own log; `None` logs them
    /// only in this process's log.
    pub(crate) events: Option<Arc<dyn LogSink>>,
}

impl<R: Runtime, P: MessagePublisher> DeployService<R, P> {
    pub fn new(runtime: R, publisher: P, key: SecretKey) -> Self {
        Self {
            runtime,
            publisher,
            key,
            app_locks: Mutex::new(HashMap::new()),
            cancellations: Cancellations::new(),
            events: None,
        }
    }

    /// Where the reconciler tells an app's users what it repaired.
    pub fn with_events(mut self, events: Arc<dyn LogSink>) -> Self {
        self.events = Some(events);
        self
    }

    /// Where this worker hears of deployments the backend no longer wants:
    /// their deploys are refused (checked again after waiting for the app's
    /// lock, where a deploy may have waited behind another).
    pub fn with_cancellations(mut self, cancellations: Cancellations) -> Self {
        self.cancellations = cancellations;
        self
    }

    pub fn runtime(&self) -> &R {
        &self.runtime
    }

    pub(crate) fn publisher(&self) -> &P {
        &self.publisher
    }

    fn app_lock(&self, app_id: Uuid) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.app_locks.lock().expect("lock map poisoned");
        locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        locks.entry(app_id).or_default().clone()
    }

    async fn report(
        &self,
        deployment_id: Uuid,
        attempt: u32,
        progress: DeploymentProgress,
    ) -> Result<(), Outcome> {
        let state = progress.state;
        self.publisher
            .send(Some(deployment_id), attempt, &progress)
            .await
            .map_err(|error| {
                Outcome::Retry(format!(
                    "could not report `{state}` for {deployment_id}: {error}"
                ))
            })
    }

    /// Runs a release; see the module docs for the idempotency rules.
    pub async fn deploy(&self, deployment_id: Uuid, attempt: u32, release: Release) -> Outcome {
        self.deploy_for_reason(deployment_id, attempt, release)
            .await
            .0
    }

    /// Like [`Self::deploy`], with why the release did not run when it
    /// failed for good (reported, and the outcome is `Done`).
    pub(crate) async fn deploy_for_reason(
        &self,
        deployment_id: Uuid,
        attempt: u32,
        release: Release,
    ) -> (Outcome, Option<String>) {
        let mut failure = None;
        let outcome = match self
            .try_deploy(deployment_id, attempt, release, &mut failure)
            .await
        {
            Ok(outcome) | Err(outcome) => outcome,
        };
        (outcome, failure)
    }

    async fn try_deploy(
        &self,
        deployment_id: Uuid,
        attempt: u32,
        release: Release,
        failure: &mut Option<String>,
    ) -> Result<Outcome, Outcome> {
        let app_id = release.app.id;
        let lock = self.app_lock(app_id);
        let _serialized = lock.lock().await;
        let watched = self.cancellations.watch(app_id, Some(deployment_id));
        if let Some(reason) = watched.reason() {
            tracing::info!(%deployment_id, %app_id, %reason, "deploy no longer wanted; refused");
            metrics::counter!("berth_deploys_refused_total", "why" => "cancelled").increment(1);
            return Ok(Outcome::Done);
        }

        let instances = self
            .runtime
            .instances(&release.app)
            .await
            .map_err(|error| Outcome::Retry(error.to_string()))?;
        let newer = instances
            .iter()
            .filter(|instance| instance.running)
            .filter_map(|instance| instance.deployment_id)
            .filter(|id| *id > deployment_id)
            .max();
        if let Some(newer) = newer {
            tracing::info!(%deployment_id, %app_id, %newer, "skipping a stale deploy");
            let reason = DeployError::Superseded { newer }.to_string();
            self.report(deployment_id, attempt, cancelled(reason))
                .await?;
            return Ok(Outcome::Done);
        }
        let already_running = instances
            .iter()
            .any(|instance| instance.running && instance.deployment_id == Some(deployment_id));
        if !already_running {
            let deploying =
                DeploymentProgress::new(DeploymentState::Deploying).with_release(release.clone());
            self.report(deployment_id, attempt, deploying).await?;
        }

        // Sealed for this app: env copied from another app's release (or a
        // forged message) does not open, and the deploy fails.
        let binding = Binding::app_env(&release.app.tenant, app_id);
        let env = match self
            .key
            .open_json::<BTreeMap<String, String>>(&binding, &release.config.env)
        {
            Ok(env) => env,
            Err(error) => {
                let reason = DeployError::Secrets(error).to_string();
                tracing::warn!(%deployment_id, %app_id, reason, "deploy failed");
                *failure = Some(reason.clone());
                self.report(deployment_id, attempt, DeploymentProgress::failed(reason))
                    .await?;
                return Ok(Outcome::Done);
            }
        };
        let spec = DeploySpec {
            deployment_id,
            release,
            env,
            cancelled: watched.token(),
        };
        let started = std::time::Instant::now();
        let result = self.runtime.deploy(&spec).await;
        let outcome = match &result {
            Ok(_) => "live",
            Err(DeployError::Superseded { .. } | DeployError::Cancelled) => "cancelled",
            Err(error) if error.is_transient() => "retry",
            Err(_) => "failed",
        };
        metrics::counter!("berth_deploys_total", "outcome" => outcome).increment(1);
        metrics::histogram!("berth_deploy_duration_seconds", "outcome" => outcome)
            .record(started.elapsed().as_secs_f64());
        let progress = match result {
            Ok(endpoint) => {
                tracing::info!(%deployment_id, %app_id, endpoint, "deployment is live");
                // The release rides along: a `live` applied before its
                // `deploying` must still record it.
                DeploymentProgress::new(DeploymentState::Live)
                    .with_release(spec.release.clone())
                    .with_endpoint(endpoint)
            }
            Err(error @ DeployError::Superseded { .. }) => cancelled(error.to_string()),
            Err(error @ DeployError::Cancelled) => {
                let why = watched.reason().unwrap_or_default();
                tracing::info!(%deployment_id, %app_id, why, "rollout cancelled and undone");
                cancelled(format!("{error} ({why})"))
            }
            Err(error) if error.is_transient() => {
                tracing::warn!(%deployment_id, %app_id, %error, "deploy hit a passing failure");
                return Err(Outcome::Retry(error.to_string()));
            }
            Err(error) => {
                tracing::warn!(%deployment_id, %app_id, reason = %error, "deploy failed");
                *failure = Some(error.to_string());
                DeploymentProgress::failed(error.to_string())
            }
        };
        let progress = DeploymentProgress {
            commit: Some(spec.release.commit.clone()),
            ..progress
        };
        self.report(deployment_id, attempt, progress).await?;
        Ok(Outcome::Done)
    }

    /// Sets how many instances of the app run. Idempotent: scaling to the
    /// scale it has changes nothing.
    pub async fn scale(&self, app: AppRef, replicas: u32, live: Option<Uuid>) -> Outcome {
        let lock = self.app_lock(app.id);
        let _serialized = lock.lock().await;
        match self.runtime.scale(&app, replicas, live).await {
            Ok(changed) => {
                tracing::info!(app_id = %app.id, replicas, changed, "app scaled");
                Outcome::Done
            }
            Err(error) if error.is_transient() => Outcome::Retry(error.to_string()),
            Err(error) => {
                tracing::error!(app_id = %app.id, replicas, %error, "scaling failed");
                Outcome::Reject(error.to_string())
            }
        }
    }

    /// Removes everything the app runs. Idempotent: an app with nothing left
    /// is done.
    pub async fn remove_app(&self, app: AppRef) -> Outcome {
        let lock = self.app_lock(app.id);
        let _serialized = lock.lock().await;
        match self.runtime.remove_app(&app).await {
            Ok(removed) => {
                tracing::info!(app_id = %app.id, removed, "app removed");
                Outcome::Done
            }
            Err(error) if error.is_transient() => Outcome::Retry(error.to_string()),
            Err(error) => {
                tracing::error!(app_id = %app.id, %error, "app removal failed");
                Outcome::Reject(error.to_string())
            }
        }
    }
}

fn cancelled(reason: String) -> DeploymentProgress {
    DeploymentProgress {
        reason: Some(reason),
        ..DeploymentProgress::new(DeploymentState::Cancelled)
    }
}

#[async_trait]
impl<R: Runtime, P: MessagePublisher> Handler for DeployService<R, P> {
    async fn handle(
        &self,
        envelope: Envelope,
        message: Message,
        _delivery: DeliveryInfo,
    ) -> Outcome {
        match message {
            Message::DeployRequested(_) if envelope.is_expired(Utc::now()) => {
                let Some(deployment_id) = envelope.deployment_id else {
                    return Outcome::Reject("deploy.requested carries no deployment_id".into());
                };
                tracing::info!(%deployment_id, deadline = ?envelope.deadline,
                    "deploy request past its deadline; refused");
                metrics::counter!("berth_deploys_refused_total", "why" => "expired").increment(1);
                let progress = DeploymentProgress {
                    reason: Some("waited for a deploy worker past its deadline".into()),
                    ..DeploymentProgress::new(DeploymentState::TimedOut)
                };
                match self.report(deployment_id, envelope.attempt, progress).await {
                    Ok(()) => Outcome::Done,
                    Err(outcome) => outcome,
                }
            }
            Message::DeployRequested(request) => match envelope.deployment_id {
                Some(deployment_id) => {
                    self.deploy(deployment_id, envelope.attempt, request.release)
                        .await
                }
                None => Outcome::Reject("deploy.requested carries no deployment_id".into()),
            },
            Message::AppRemovalRequested(request) => self.remove_app(request.app).await,
            Message::DesiredState(desired) => self.reconcile(desired).await,
            Message::AppScaleRequested(request) => {
                self.scale(request.app, request.replicas, request.live_deployment_id)
                    .await
            }
            _ => Outcome::Reject(format!(
                "`{}` is not handled by the deploy-worker",
                envelope.kind
            )),
        }
    }

    async fn retrying(&self, envelope: &Envelope, delay: std::time::Duration, reason: &str) {
        self.publisher.tell_waiting(envelope, delay, reason).await;
    }
}

#[path = "reconcile.rs"]
mod reconcile;

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
