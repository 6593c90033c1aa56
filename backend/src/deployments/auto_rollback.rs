//! Automatic rollback (issue 13): a release that crash-loops soon after it
//! went live is taken back by berth itself. The deploy-worker notices the
//! crash loop ([`ReleaseFailing`]); here, in one transaction holding the
//! app's lock, berth checks that the deployment is still the live one and
//! went live within the rollback window, marks its release failed (it is
//! never rolled back onto), and queues a deployment of the newest earlier
//! release that went live and did not fail. The new deployment takes the
//! usual path (ordering, reconciler, GitHub status); when it goes live, the
//! failing one ends `rolled_back` with the reason written here. With no
//! such release, the app is stopped instead, with that reason.

use super::request::request_auto_rollback;
use super::{releases, repair, transitions};
use crate::apps_store;
use crate::error::Result;
use crate::outbox;
use berth_proto::{AppScaleRequested, DeploymentState, ReleaseFailing};
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use std::time::Duration;
use uuid::Uuid;

/// What berth did about a failing release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Deployment `deployment` of an earlier release was queued.
    RolledBack { deployment: Uuid, release: Uuid },
    /// No earlier release to go back to: the app was scaled to 0.
    Stopped,
    /// Nothing to do, and why.
    Ignored(&'static str),
}

/// Acts on `failing`, a report about deployment `id`; see the module docs.
pub async fn release_failing(
    db: &PgPool,
    id: Uuid,
    failing: &ReleaseFailing,
    window: Duration,
    github_host: &str,
) -> Result<Decision> {
    let mut tx = db.begin().await?;
    let decision = decide(&mut tx, id, failing, window, github_host).await?;
    tx.commit().await?;
    Ok(decision)
}

async fn decide(
    conn: &mut PgConnection,
    id: Uuid,
    failing: &ReleaseFailing,
    window: Duration,
    github_host: &str,
) -> Result<Decision> {
    let Some(locked) = transitions::lock(conn, id).await? else {
        return Ok(Decision::Ignored("no such deployment"));
    };
    if locked.app_deleted || locked.app.id != failing.app.id {
        return Ok(Decision::Ignored("the app is gone"));
    }
    if locked.state != DeploymentState::Live {
        return Ok(Decision::Ignored("the deployment is not live"));
    }
    let went_live: Option<DateTime<Utc>> = sqlx::query_scalar(
        "SELECT at FROM deployment_states WHERE deployment_id = $1 AND state = 'live'",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let window_start = Utc::now() - chrono::Duration::from_std(window).unwrap_or_default();
    if went_live.is_none_or(|at| at < window_start) {
        return Ok(Decision::Ignored(
            "the deployment went live before the rollback window",
        ));
    }
    if repair::newer_in_progress(conn, locked.app.id, id).await? {
        return Ok(Decision::Ignored("a newer deployment is on its way"));
    }
    sqlx::query(
        "UPDATE releases SET failed_at = now(), failed_reason = $2
         WHERE id = $1 AND failed_at IS NULL",
    )
    .bind(locked.release_id)
    .bind(&failing.reason)
    .execute(&mut *conn)
    .await?;
    let Some(app) = apps_store::get_any_owner(conn, locked.app.id).await? else {
        return Ok(Decision::Ignored("the app is gone"));
    };
    let minutes = window.as_secs().div_ceil(60);
    let earlier = earlier_good_release(conn, app.id, id, locked.release_id).await?;
    let (reason, decision) = match earlier {
        Some(release_id) => {
            let release = releases::get(conn, app.id, release_id)
                .await?
                .ok_or_else(|| crate::error::Error::internal("a release vanished"))?;
            let deployment = request_auto_rollback(conn, &app, &release, github_host).await?;
            let commit = release.commit_sha.chars().take(7).collect::<String>();
            (
                format!(
                    "rolled back by berth: {} within {minutes} minutes of going live; \
                     back to the release of commit {commit}",
                    failing.reason
                ),
                Decision::RolledBack {
                    deployment,
                    release: release_id,
                },
            )
        }
        None => {
            apps_store::set_replicas(conn, app.id, 0).await?;
            let stop = AppScaleRequested {
                app: app.app_ref(),
                replicas: 0,
                live_deployment_id: Some(id),
            };
            outbox::enqueue(conn, Some(id), &stop).await?;
            (
                format!(
                    "stopped by berth: {} within {minutes} minutes of going live, \
                     and no earlier release ran without failing; fix it and deploy again",
                    failing.reason
                ),
                Decision::Stopped,
            )
        }
    };
    sqlx::query("UPDATE deployments SET reason = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(&reason)
        .execute(&mut *conn)
        .await?;
    Ok(decision)
}

/// The newest release of the app, other than `failing_release`, that a
/// deployment older than `before` put live, that did not fail and whose
/// image retention has not deleted.
async fn earlier_good_release(
    conn: &mut PgConnection,
    app_id: Uuid,
    before: Uuid,
    failing_release: Uuid,
) -> Result<Option<Uuid>> {
    Ok(sqlx::query_scalar(
        "SELECT r.id FROM deployments d JOIN releases r ON r.id = d.release_id
         WHERE d.app_id = $1 AND d.id < $2 AND r.id <> $3
           AND r.failed_at IS NULL AND r.pruned_at IS NULL
           AND EXISTS (SELECT 1 FROM deployment_states s
                       WHERE s.deployment_id = d.id AND s.state = 'live')
         ORDER BY d.id DESC LIMIT 1",
    )
    .bind(app_id)
    .bind(before)
    .bind(failing_release)
    .fetch_optional(&mut *conn)
    .await?)
}
