//! Sends the deploy-workers what should run: every app that exists, its live
//! deployment and release, its scale, and whether a deployment of it is on
//! its way. A deploy-worker compares it with what the runtime runs and
//! repairs the difference (`deploy-worker/src/reconcile.rs`), so drift is
//! repaired rather than remembered. Sent straight to the broker, not through
//! the outbox: a lost snapshot is replaced by the next one.

use crate::error::Result;
use berth_common::MessagePublisher;
use berth_proto::{AppRef, DesiredApp, DesiredState, LiveRelease, Release, ReleaseConfig};
use chrono::Utc;
use sqlx::types::Json as SqlJson;
use sqlx::PgPool;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub struct Converger<P> {
    db: PgPool,
    publisher: P,
    interval: Duration,
    /// Sends at once when notified (a domain was verified or removed).
    wake: Option<std::sync::Arc<tokio::sync::Notify>>,
}

#[derive(sqlx::FromRow)]
struct AppState {
    id: Uuid,
    name: String,
    tenant: String,
    replicas: i32,
    live_id: Option<Uuid>,
    /// The live release, when there is one.
    #[sqlx(flatten)]
    release: LiveReleaseRow,
    busy: bool,
    domains: Vec<String>,
}

#[derive(sqlx::FromRow)]
struct LiveReleaseRow {
    release_id: Option<Uuid>,
    commit_sha: Option<String>,
    image: Option<String>,
    config: Option<SqlJson<ReleaseConfig>>,
}

impl<P: MessagePublisher> Converger<P> {
    pub fn new(db: PgPool, publisher: P, interval: Duration) -> Self {
        Self {
            db,
            publisher,
            interval,
            wake: None,
        }
    }

    /// Also sends a snapshot right after `wake` is notified.
    pub fn with_wake(mut self, wake: std::sync::Arc<tokio::sync::Notify>) -> Self {
        self.wake = Some(wake);
        self
    }

    pub async fn run(self, shutdown: CancellationToken) {
        super::every_or_when(self.interval, self.wake.clone(), shutdown, || async {
            match self.send().await {
                Ok(apps) => tracing::debug!(apps, "desired state sent"),
                Err(error) => tracing::warn!(%error, "could not send the desired state"),
            }
        })
        .await;
    }

    /// Reads and sends one snapshot; returns how many apps it names.
    pub async fn send(&self) -> Result<usize> {
        let desired = snapshot(&self.db).await?;
        let apps = desired.apps.len();
        self.publisher.send(None, 1, &desired).await?;
        metrics::counter!("berth_desired_state_sent_total").increment(1);
        Ok(apps)
    }
}

/// What the database says should run, now.
pub async fn snapshot(db: &PgPool) -> Result<DesiredState> {
    let at = Utc::now();
    let rows = sqlx::query_as::<_, AppState>(
        "SELECT a.id, a.name, u.username AS tenant, a.replicas, live.id AS live_id,
                r.id AS release_id, r.commit_sha, r.image, r.config,
                EXISTS (SELECT 1 FROM deployments p WHERE p.app_id = a.id
                        AND p.state IN ('queued', 'cloning', 'building', 'pushing', 'deploying'))
                    AS busy,
                ARRAY(SELECT hostname FROM domains dm WHERE dm.app_id = a.id
                      AND dm.verified_at IS NOT NULL ORDER BY hostname) AS domains
         FROM apps a JOIN users u ON u.id = a.owner_id
         LEFT JOIN LATERAL (SELECT id, release_id FROM deployments d
                            WHERE d.app_id = a.id AND d.state = 'live'
                            ORDER BY d.id DESC LIMIT 1) live ON true
         LEFT JOIN releases r ON r.id = live.release_id AND r.app_id = a.id
         WHERE a.deleted_at IS NULL ORDER BY a.id",
    )
    .fetch_all(db)
    .await?;
    let apps = rows
        .into_iter()
        .map(|row| {
            let app = AppRef {
                id: row.id,
                name: row.name,
                tenant: row.tenant,
            };
            let r = row.release;
            let live = match (row.live_id, r.release_id, r.commit_sha, r.image, r.config) {
                (Some(deployment_id), Some(id), Some(commit), Some(image), Some(config)) => {
                    Some(LiveRelease {
                        deployment_id,
                        release: Release {
                            id,
                            app: app.clone(),
                            commit,
                            image,
                            config: config.0,
                        },
                    })
                }
                _ => None,
            };
            DesiredApp {
                app,
                live,
                replicas: u32::try_from(row.replicas).unwrap_or(0),
                busy: row.busy,
                domains: row.domains,
            }
        })
        .collect();
    Ok(DesiredState { at, apps })
}
