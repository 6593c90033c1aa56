//! The `berth.inform` consumer: applies the workers' progress reports to
//! deployments through [`transitions`]. Only forward transitions of the state
//! machine are applied; stale and repeated reports are acknowledged and
//! ignored, so redelivery and reordering are harmless. A report that says
//! something runs which should not (a late `live` of an ended deployment, or
//! of a deleted app) queues its repair in the same transaction.

use crate::apps_store;
use crate::deployments::model::commit_summary;
use crate::deployments::transitions::{self, Change};
use crate::deployments::{auto_rollback, releases, repair, store};
use crate::error::Result;
use async_trait::async_trait;
use berth_common::{DeliveryInfo, Handler, Outcome};
use berth_proto::{
    AppStatus, DeploymentProgress, DeploymentState, DeploymentWaiting, Envelope, Message,
    ReleaseFailing, RuntimeStatus,
};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tracing::Instrument;
use uuid::Uuid;

pub struct InformHandler {
    db: PgPool,
    /// Woken after a transition queued reports for GitHub.
    github_status: Option<Arc<Notify>>,
    /// Woken after a report queued a repair.
    outbox: Option<Arc<Notify>>,
    /// Automatic rollback, when on.
    rollback: Option<AutoRollback>,
}

/// How automatic rollback is set up.
#[derive(Debug, Clone)]
pub struct AutoRollback {
    /// A release that crash-loops this long after it went live is rolled
    /// back; later, it is left to its users.
    pub window: Duration,
    /// Where the apps' repositories live, for the rollback's GitHub status.
    pub github_host: String,
}

pub use crate::deployments::transitions::Applied;

impl InformHandler {
    pub fn new(db: PgPool) -> Self {
        Self {
            db,
            github_status: None,
            outbox: None,
            rollback: None,
        }
    }

    /// Rolls back releases that crash-loop soon after going live.
    pub fn with_auto_rollback(mut self, rollback: AutoRollback) -> Self {
        self.rollback = Some(rollback);
        self
    }

    /// Wakes the GitHub status reporter after each transition.
    pub fn with_status_reporter(mut self, wake: Arc<Notify>) -> Self {
        self.github_status = Some(wake);
        self
    }

    /// Wakes the outbox relay after a report queued a repair.
    pub fn with_outbox(mut self, wake: Arc<Notify>) -> Self {
        self.outbox = Some(wake);
        self
    }

    /// Applies one report in a transaction holding the app's and the
    /// deployment's row locks.
    pub async fn apply(
        &self,
        deployment_id: Uuid,
        progress: &DeploymentProgress,
    ) -> Result<Applied> {
        let mut tx = self.db.begin().await?;
        let Some(locked) = transitions::lock(&mut tx, deployment_id).await? else {
            return Ok(Applied::UnknownDeployment);
        };
        // The release is recorded whatever the report does to the state: a
        // `live` applied before its `deploying` must still leave the live
        // release on record.
        let mut release_id = None;
        let mut image = None;
        if let Some(release) = &progress.release {
            if release.app.id == locked.app.id {
                releases::insert(&mut tx, release, deployment_id).await?;
                release_id = Some(release.id);
                image = Some(release.image.as_str());
            } else {
                tracing::warn!(%deployment_id, reported_app = %release.app.id, app_id = %locked.app.id,
                    "a report carries a release of another app; not recorded");
            }
        }
        let commit_message = progress.commit_message.as_deref().map(commit_summary);
        let change = Change {
            reason: progress.reason.as_deref(),
            commit: progress.commit.as_deref(),
            commit_message: commit_message.as_deref(),
            endpoint: progress.endpoint.as_deref(),
            image,
            release_id,
            at: Some(progress.at),
            stop_work: false,
        };
        let applied =
            transitions::transition_locked(&mut tx, deployment_id, &locked, progress.state, change)
                .await?;
        let repaired = match &applied {
            Applied::Ignored { current, .. } if progress.state == DeploymentState::Live => {
                repair::late_live(&mut tx, deployment_id, &locked, *current).await?
            }
            Applied::Ignored { .. } => {
                store::record_late_facts(
                    &mut tx,
                    deployment_id,
                    progress.commit.as_deref(),
                    commit_message.as_deref(),
                )
                .await?;
                false
            }
            _ => false,
        };
        tx.commit().await?;
        if let Some(wake) = &self.github_status {
            wake.notify_one();
        }
        if repaired {
            if let Some(wake) = &self.outbox {
                wake.notify_one();
            }
        }
        Ok(applied)
    }
}

impl InformHandler {
    /// A deployment's work waits for another attempt; shown on it.
    async fn waiting(&self, deployment_id: Option<Uuid>, waiting: &DeploymentWaiting) -> Outcome {
        let Some(deployment_id) = deployment_id else {
            return Outcome::Reject("a waiting report must name its deployment".into());
        };
        match store::record_waiting(&self.db, deployment_id, &waiting.reason, waiting.retry_at)
            .await
        {
            Ok(recorded) => {
                tracing::info!(%deployment_id, reason = %waiting.reason, retry_at = %waiting.retry_at,
                    recorded, "the deployment's work waits for another attempt");
                Outcome::Done
            }
            Err(error) => Outcome::Retry(error.to_string()),
        }
    }

    /// A live release crash-loops: roll back, when it went live recently.
    async fn release_failing(
        &self,
        deployment_id: Option<Uuid>,
        failing: &ReleaseFailing,
    ) -> Outcome {
        let Some(deployment_id) = deployment_id else {
            return Outcome::Reject("a release.failing report must name its deployment".into());
        };
        let Some(rollback) = &self.rollback else {
            tracing::warn!(%deployment_id, reason = %failing.reason,
                "a release crash-loops; automatic rollback is off");
            return Outcome::Done;
        };
        let decided = auto_rollback::release_failing(
            &self.db,
            deployment_id,
            failing,
            rollback.window,
            &rollback.github_host,
        )
        .await;
        match decided {
            Ok(decision) => {
                tracing::warn!(%deployment_id, app_id = %failing.app.id, reason = %failing.reason,
                    ?decision, "a release crash-loops");
                if !matches!(decision, auto_rollback::Decision::Ignored(_)) {
                    metrics::counter!("berth_auto_rollbacks_total").increment(1);
                    for wake in [&self.outbox, &self.github_status].into_iter().flatten() {
                        wake.notify_one();
                    }
                }
                Outcome::Done
            }
            Err(error) => Outcome::Retry(error.to_string()),
        }
    }

    /// What a reconciler pass found running; shown on each app.
    async fn runtime_status(&self, status: &RuntimeStatus) -> Outcome {
        match apps_store::record_runtime(&self.db, status).await {
            Ok(changed) => {
                for app in &status.apps {
                    if app.status == AppStatus::Degraded {
                        tracing::warn!(app_id = %app.app_id, reason = ?app.reason, "an app is degraded");
                    }
                    metrics::counter!("berth_app_runtime_reports_total", "status" => app.status.as_str())
                        .increment(1);
                }
                tracing::debug!(apps = status.apps.len(), changed, "runtime status recorded");
                Outcome::Done
            }
            Err(error) => Outcome::Retry(error.to_string()),
        }
    }
}

#[async_trait]
impl Handler for InformHandler {
    async fn handle(
        &self,
        envelope: Envelope,
        message: Message,
        _delivery: DeliveryInfo,
    ) -> Outcome {
        let progress = match message {
            Message::DeploymentProgress(progress) => progress,
            Message::RuntimeStatus(status) => return self.runtime_status(&status).await,
            Message::ReleaseFailing(failing) => {
                return self.release_failing(envelope.deployment_id, &failing).await
            }
            Message::DeploymentWaiting(waiting) => {
                return self.waiting(envelope.deployment_id, &waiting).await
            }
            _ => {
                return Outcome::Reject(format!(
                    "`{}` does not belong on berth.inform",
                    envelope.kind
                ))
            }
        };
        let Some(deployment_id) = envelope.deployment_id else {
            return Outcome::Reject("a progress report must name its deployment".into());
        };
        let span = tracing::info_span!("inform", %deployment_id, state = %progress.state,
            seq = progress.seq);
        match self.apply(deployment_id, &progress).instrument(span).await {
            Ok(Applied::Transitioned { from, to }) => {
                metrics::counter!("berth_inform_transitions_total", "outcome" => "applied", "state" => to.as_str()).increment(1);
                tracing::info!(%deployment_id, %from, %to, "deployment moved");
                Outcome::Done
            }
            Ok(Applied::Ignored { current, .. }) => {
                metrics::counter!("berth_inform_transitions_total", "outcome" => "ignored", "state" => progress.state.as_str()).increment(1);
                tracing::info!(%deployment_id, %current, reported = %progress.state,
                    "stale or repeated report ignored");
                Outcome::Done
            }
            Ok(Applied::UnknownDeployment) => {
                metrics::counter!("berth_inform_transitions_total", "outcome" => "unknown", "state" => progress.state.as_str()).increment(1);
                tracing::warn!(%deployment_id, "report for an unknown deployment ignored");
                Outcome::Done
            }
            Err(error) => {
                tracing::warn!(%deployment_id, %error, "cannot apply a report now");
                Outcome::Retry(error.to_string())
            }
        }
    }
}
