//! The reaper: nothing stays in progress forever. A deployment that stayed
//! in a state longer than the state's deadline ends `timed_out`, and the
//! workers are told to stop its work (see `deployments::transitions`).

use crate::credentials::throttle::FAILURE_WINDOW;
use crate::deployments::transitions::{self, Applied, Change};
use crate::error::Result;
use crate::webhooks::store::DELIVERY_RETENTION_DAYS;
use berth_proto::DeploymentState;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct ReaperSettings {
    pub interval: Duration,
    /// Multiplies every state's deadline.
    pub deadline_scale: f64,
}

impl Default for ReaperSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(15),
            deadline_scale: 1.0,
        }
    }
}

impl ReaperSettings {
    pub fn deadline(&self, state: DeploymentState) -> Option<Duration> {
        state
            .deadline()
            .map(|deadline| deadline.mul_f64(self.deadline_scale.max(0.0)))
    }
}

pub struct Reaper {
    db: PgPool,
    settings: ReaperSettings,
    /// Woken after timing out: the cancellations go out through the outbox.
    outbox: Option<Arc<Notify>>,
}

/// "12 minutes", "1 minute", "0.5 minutes".
fn minutes(duration: Duration) -> String {
    let minutes = duration.as_secs_f64() / 60.0;
    let text = if minutes.fract() == 0.0 {
        format!("{minutes:.0}")
    } else {
        format!("{minutes:.1}")
    };
    if text == "1" {
        "1 minute".into()
    } else {
        format!("{text} minutes")
    }
}

impl Reaper {
    pub fn new(db: PgPool, settings: ReaperSettings) -> Self {
        Self {
            db,
            settings,
            outbox: None,
        }
    }

    pub fn with_outbox(mut self, wake: Arc<Notify>) -> Self {
        self.outbox = Some(wake);
        self
    }

    fn wake_outbox(&self) {
        if let Some(wake) = &self.outbox {
            wake.notify_one();
        }
    }

    pub async fn run(self, shutdown: CancellationToken) {
        super::every(self.settings.interval, shutdown, || async {
            if let Err(error) = self.reap().await {
                tracing::warn!(%error, "the reaper could not run");
            }
        })
        .await;
    }

    /// Times out every overdue deployment; returns their ids.
    pub async fn reap(&self) -> Result<Vec<Uuid>> {
        let mut reaped = Vec::new();
        for state in DeploymentState::ALL {
            let Some(deadline) = self.settings.deadline(state) else {
                continue;
            };
            let reason = format!("no progress while {state} for {}", minutes(deadline));
            let overdue = sqlx::query_as::<_, (Uuid, Uuid)>(
                // A queued build waiting for a slot is never overdue: its
                // deadline counts from its dispatch.
                "SELECT id, app_id FROM deployments
                 WHERE state = $1
                   AND CASE WHEN state = 'queued' THEN dispatched_at ELSE state_changed_at END
                       < now() - make_interval(secs => $2)
                 ORDER BY id",
            )
            .bind(state.as_str())
            .bind(deadline.as_secs_f64())
            .fetch_all(&self.db)
            .await?;
            for (deployment_id, app_id) in overdue {
                // The transition re-checks the state under the row locks, so
                // a report applied meanwhile wins.
                let mut tx = self.db.begin().await?;
                let applied = transitions::transition(
                    &mut tx,
                    deployment_id,
                    DeploymentState::TimedOut,
                    Change::ended_by_berth(&reason),
                )
                .await?;
                tx.commit().await?;
                if !matches!(applied, Applied::Transitioned { .. }) {
                    continue;
                }
                tracing::warn!(%deployment_id, %app_id, %reason, "deployment timed out");
                metrics::counter!("berth_deployments_timed_out_total", "state" => state.as_str())
                    .increment(1);
                reaped.push(deployment_id);
            }
        }
        if !reaped.is_empty() {
            self.wake_outbox();
        }
        self.housekeeping().await?;
        Ok(reaped)
    }

    /// Forgets what nobody needs any more: expired tickets, dead refresh
    /// tokens, outbox rows published long ago, GitHub reports sent (or
    /// abandoned) long ago, old webhook deliveries
    /// (pushes that old are refused anyway, see `webhooks::push::MAX_PUSH_AGE`).
    /// And what anyone can make without signing in: failed sign-ins no
    /// longer counted, abandoned GitHub sign-ins, full rate limit budgets,
    /// expired sign-ups and mail counts.
    async fn housekeeping(&self) -> Result<()> {
        sqlx::query(
            "DELETE FROM webhook_deliveries WHERE received_at < now() - make_interval(days => $1)",
        )
        .bind(DELIVERY_RETENTION_DAYS)
        .execute(&self.db)
        .await?;
        sqlx::query(
            "DELETE FROM login_failures
             WHERE last_failed_at < now() - make_interval(secs => $1) AND blocked_until < now()",
        )
        .bind(FAILURE_WINDOW.as_secs_f64())
        .execute(&self.db)
        .await?;
        for statement in [
            "DELETE FROM oauth_states WHERE expires_at < now()",
            // A passed arrival time means a full budget: the row says nothing.
            "DELETE FROM auth_rate_limits WHERE tat < now()",
            "DELETE FROM pending_registrations WHERE expires_at < now() - interval '1 day'",
            "DELETE FROM email_changes WHERE expires_at < now() - interval '1 day'",
            "DELETE FROM password_resets WHERE expires_at < now() - interval '1 day'",
            "DELETE FROM unsolicited_mails WHERE sent_at < now() - interval '1 hour'",
            "DELETE FROM ws_tickets WHERE expires_at < now()",
            "DELETE FROM refresh_tokens
             WHERE expires_at < now() - interval '1 day' OR revoked_at < now() - interval '30 days'",
            "DELETE FROM outbox WHERE published_at < now() - interval '7 days'",
            // The GitHub Deployment ids (github_deployments) stay: a
            // deployment replaced months later still reports `inactive`.
            "DELETE FROM github_status_reports
             WHERE sent_at < now() - interval '7 days' OR abandoned_at < now() - interval '30 days'",
        ] {
            sqlx::query(statement).execute(&self.db).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_well() {
        assert_eq!(minutes(Duration::from_secs(600)), "10 minutes");
        assert_eq!(minutes(Duration::from_secs(60)), "1 minute");
        assert_eq!(minutes(Duration::from_secs(30)), "0.5 minutes");
    }

    #[test]
    fn deliveries_are_remembered_longer_than_a_push_is_accepted() {
        let retention = chrono::Duration::days(i64::from(DELIVERY_RETENTION_DAYS));
        assert!(retention > crate::webhooks::push::MAX_PUSH_AGE);
    }

    #[test]
    fn deadlines_scale() {
        let settings = ReaperSettings {
            deadline_scale: 0.01,
            ..Default::default()
        };
        assert_eq!(
            settings.deadline(DeploymentState::Queued),
            Some(Duration::from_secs(18))
        );
        assert_eq!(settings.deadline(DeploymentState::Live), None);
    }
}
