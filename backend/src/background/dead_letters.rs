//! Dead letters become a definite state. A message that ends in a
//! dead-letter queue (refused as unreadable, or out of retries after an
//! outage longer than the retry budget) would otherwise leave its
//! deployment in progress until the reaper, with a reason that says nothing.
//!
//! * a build or deploy request: its deployment fails at once, saying berth
//!   gave up and why; the workers hear it, in case one still holds it;
//! * a progress report: it is applied again (it usually failed because the
//!   database was away for longer than the retry budget);
//! * anything else is logged for the operator and counted.
//!
//! Each is acked once handled; the queues' length limit and TTL bound the
//! rest (see `berth_common::broker`).

use super::inform::InformHandler;
use crate::deployments::transitions::{self, Applied, Change};
use async_trait::async_trait;
use berth_common::{DeadLetter, DeadLetterHandler};
use berth_proto::{DeploymentState, Message};
use sqlx::PgPool;
use std::sync::Arc;
use tokio::sync::Notify;

/// The longest part of a dead letter's reason a user is shown.
const REASON_CHARS: usize = 300;

pub struct DeadLetterSettler {
    db: PgPool,
    inform: Arc<InformHandler>,
    /// Woken after a deployment failed: its cancellation goes out.
    outbox: Arc<Notify>,
}

impl DeadLetterSettler {
    pub fn new(db: PgPool, inform: Arc<InformHandler>, outbox: Arc<Notify>) -> Self {
        Self { db, inform, outbox }
    }

    async fn fail(&self, dead: &DeadLetter, deployment_id: uuid::Uuid) -> Result<(), String> {
        let why: String = dead.reason.chars().take(REASON_CHARS).collect();
        let reason = format!(
            "berth gave up on this deployment after {} retries: {why}",
            dead.retries
        );
        let mut tx = self.db.begin().await.map_err(|e| e.to_string())?;
        let applied = transitions::transition(
            &mut tx,
            deployment_id,
            DeploymentState::Failed,
            Change::ended_by_berth(&reason),
        )
        .await
        .map_err(|e| e.to_string())?;
        tx.commit().await.map_err(|e| e.to_string())?;
        if matches!(applied, Applied::Transitioned { .. }) {
            tracing::warn!(%deployment_id, queue = dead.queue, reason = %dead.reason,
                "a dead-lettered request failed its deployment");
            metrics::counter!("berth_dead_letters_settled_total", "queue" => dead.queue, "outcome" => "failed").increment(1);
            self.outbox.notify_one();
        }
        Ok(())
    }
}

#[async_trait]
impl DeadLetterHandler for DeadLetterSettler {
    async fn handle(&self, dead: DeadLetter) -> Result<(), String> {
        let decoded = dead.envelope.as_ref().map(|envelope| {
            (
                envelope.deployment_id,
                envelope.kind.clone(),
                envelope.decode(),
            )
        });
        match decoded {
            Some((Some(id), _, Ok(Message::BuildRequested(_) | Message::DeployRequested(_)))) => {
                self.fail(&dead, id).await
            }
            Some((Some(id), _, Ok(Message::DeploymentProgress(progress)))) => {
                let applied = self
                    .inform
                    .apply(id, &progress)
                    .await
                    .map_err(|e| e.to_string())?;
                tracing::info!(deployment_id = %id, ?applied, "a dead-lettered report was applied");
                metrics::counter!("berth_dead_letters_settled_total", "queue" => dead.queue, "outcome" => "applied").increment(1);
                Ok(())
            }
            Some((_, kind, _)) => {
                tracing::error!(queue = dead.queue, %kind, reason = %dead.reason,
                    "a dead-lettered message berth cannot settle by itself");
                metrics::counter!("berth_dead_letters_settled_total", "queue" => dead.queue, "outcome" => "unsettled").increment(1);
                Ok(())
            }
            None => {
                tracing::error!(queue = dead.queue, reason = %dead.reason, bytes = dead.body.len(),
                    "an unreadable dead letter dropped");
                metrics::counter!("berth_dead_letters_settled_total", "queue" => dead.queue, "outcome" => "unreadable").increment(1);
                Ok(())
            }
        }
    }
}
