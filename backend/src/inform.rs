//! The `berth.inform` consumer: applies the workers' progress reports to
//! deployments. Only forward transitions of the state machine are applied;
//! stale and repeated reports are acknowledged and ignored, so redelivery
//! and reordering are harmless.

use crate::deployments::model::commit_summary;
use crate::deployments::{releases, store};
use crate::error::Result;
use crate::github_status;
use async_trait::async_trait;
use berth_common::{DeliveryInfo, Handler, Outcome};
use berth_proto::{DeploymentProgress, DeploymentState, Envelope, Message};
use chrono::Utc;
use sqlx::{PgConnection, PgPool};
use std::sync::Arc;
use tokio::sync::Notify;
use tracing::Instrument;
use uuid::Uuid;

pub struct InformHandler {
    db: PgPool,
    /// Woken after a transition queued reports for GitHub.
    github_status: Option<Arc<Notify>>,
}

/// What a report did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Transitioned {
        from: DeploymentState,
        to: DeploymentState,
    },
    /// Not a forward transition from the current state.
    Ignored {
        current: DeploymentState,
    },
    UnknownDeployment,
}

impl InformHandler {
    pub fn new(db: PgPool) -> Self {
        Self {
            db,
            github_status: None,
        }
    }

    /// Wakes the GitHub status reporter after each transition.
    pub fn with_status_reporter(mut self, wake: Arc<Notify>) -> Self {
        self.github_status = Some(wake);
        self
    }

    /// Applies one report in a transaction holding the deployment's row lock.
    pub async fn apply(
        &self,
        deployment_id: Uuid,
        progress: &DeploymentProgress,
    ) -> Result<Applied> {
        let mut tx = self.db.begin().await?;
        if progress.state == DeploymentState::Live {
            // Going live changes the app too: lock the app before the
            // deployment, in the order deleting an app does, so the two
            // cannot deadlock.
            sqlx::query(
                "SELECT a.id FROM apps a JOIN deployments d ON d.app_id = a.id
                 WHERE d.id = $1 FOR UPDATE OF a",
            )
            .bind(deployment_id)
            .execute(&mut *tx)
            .await?;
        }
        let row = sqlx::query_as::<_, (String, Uuid, String, Uuid)>(
            "SELECT state, app_id, trigger, release_id FROM deployments WHERE id = $1 FOR UPDATE",
        )
        .bind(deployment_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((current, app_id, trigger, release_id)) = row else {
            return Ok(Applied::UnknownDeployment);
        };
        let current: DeploymentState = current
            .parse()
            .map_err(|e| crate::error::Error::internal(format!("stored state: {e}")))?;
        let next = progress.state;
        if !current.can_transition_to(next) {
            return Ok(Applied::Ignored { current });
        }
        let mut release_id = release_id;
        let mut image = None;
        if let Some(release) = &progress.release {
            if release.app.id == app_id {
                releases::insert(&mut tx, release, deployment_id).await?;
                release_id = release.id;
                image = Some(release.image.clone());
            } else {
                tracing::warn!(%deployment_id, reported_app = %release.app.id, %app_id,
                    "a report carries a release of another app; not recorded");
            }
        }
        sqlx::query(
            "UPDATE deployments SET state = $2, state_changed_at = now(), updated_at = now(),
                reason = COALESCE($3, reason), commit_sha = COALESCE($4, commit_sha),
                endpoint = COALESCE($5, endpoint), image = COALESCE($6, image), release_id = $7,
                commit_message = COALESCE($8, commit_message,
                    (SELECT e.commit_message FROM deployments e
                     WHERE e.app_id = deployments.app_id AND e.id <> $1
                       AND e.commit_sha = COALESCE($4, deployments.commit_sha)
                       AND e.commit_message IS NOT NULL
                     ORDER BY e.id DESC LIMIT 1))
             WHERE id = $1",
        )
        .bind(deployment_id)
        .bind(next.as_str())
        .bind(&progress.reason)
        .bind(&progress.commit)
        .bind(&progress.endpoint)
        .bind(image)
        .bind(release_id)
        .bind(progress.commit_message.as_deref().map(commit_summary))
        .execute(&mut *tx)
        .await?;
        store::record_state(&mut tx, deployment_id, next, progress.at).await?;
        github_status::on_state(&mut tx, deployment_id, next).await?;
        if next == DeploymentState::Live {
            // A rollback returns to an earlier release: what ran before it
            // was rolled back; otherwise it was superseded.
            let previous = if trigger == "rollback" {
                DeploymentState::RolledBack
            } else {
                DeploymentState::Superseded
            };
            go_live(&mut tx, app_id, deployment_id, release_id, previous).await?;
        }
        tx.commit().await?;
        if let Some(wake) = &self.github_status {
            wake.notify_one();
        }
        Ok(Applied::Transitioned {
            from: current,
            to: next,
        })
    }
}

/// Makes the release current and ends the app's other live deployments.
async fn go_live(
    conn: &mut PgConnection,
    app_id: Uuid,
    deployment_id: Uuid,
    release_id: Uuid,
    previous: DeploymentState,
) -> Result<()> {
    sqlx::query("UPDATE apps SET current_release_id = $2, updated_at = now() WHERE id = $1")
        .bind(app_id)
        .bind(release_id)
        .execute(&mut *conn)
        .await?;
    let ended = sqlx::query_scalar::<_, Uuid>(
        "UPDATE deployments SET state = $3, state_changed_at = now(), updated_at = now()
         WHERE app_id = $1 AND state = 'live' AND id <> $2 RETURNING id",
    )
    .bind(app_id)
    .bind(deployment_id)
    .bind(previous.as_str())
    .fetch_all(&mut *conn)
    .await?;
    for id in ended {
        store::record_state(conn, id, previous, Utc::now()).await?;
        github_status::on_state(conn, id, previous).await?;
        tracing::info!(deployment_id = %id, state = %previous, "previous live deployment ended");
    }
    Ok(())
}

#[async_trait]
impl Handler for InformHandler {
    async fn handle(
        &self,
        envelope: Envelope,
        message: Message,
        _delivery: DeliveryInfo,
    ) -> Outcome {
        let Message::DeploymentProgress(progress) = message else {
            return Outcome::Reject(format!(
                "`{}` does not belong on berth.inform",
                envelope.kind
            ));
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
            Ok(Applied::Ignored { current }) => {
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
