//! Compensation for reports that contradict the desired state. A worker that
//! did not hear a cancellation (it was down, or the work was already past
//! the point of checking) may still put a deployment live after berth ended
//! it, or after its app was deleted. The report is ignored, and in the same
//! transaction berth queues what puts the runtime back where the database
//! says it should be.

use super::request::request_repair;
use super::transitions::Locked;
use super::{releases, store};
use crate::apps_store;
use crate::error::Result;
use crate::outbox;
use berth_proto::{AppRemovalRequested, AppScaleRequested, DeploymentState};
use sqlx::PgConnection;
use uuid::Uuid;

/// A `live` report for deployment `id`, ignored because it is `current`.
/// Returns whether a repair was queued (the caller wakes the relay).
pub async fn late_live(
    conn: &mut PgConnection,
    id: Uuid,
    locked: &Locked,
    current: DeploymentState,
) -> Result<bool> {
    if !locked.app_deleted && !ended_before_live(conn, id, current).await? {
        // A repeated report of a deployment that did go live.
        return Ok(false);
    }
    let app = locked.app.clone();
    if locked.app_deleted {
        tracing::warn!(deployment_id = %id, app_id = %app.id,
            "a deleted app's deployment went live; removing it again");
        metrics::counter!("berth_repairs_total", "kind" => "removal").increment(1);
        outbox::enqueue(conn, None, &AppRemovalRequested { app }).await?;
        return Ok(true);
    }
    if newer_in_progress(conn, app.id, id).await? {
        // A newer deployment is on its way: it retires this one when it
        // goes live, and a repair now would displace it.
        tracing::info!(deployment_id = %id, app_id = %app.id,
            "an ended deployment went live; the newer one in progress will replace it");
        return Ok(false);
    }
    let live = store::live(conn, app.id).await?;
    let row = apps_store::get_any_owner(conn, app.id).await?;
    let release = match (&live, &row) {
        (Some((_, release_id)), Some(_)) => releases::get(conn, app.id, *release_id).await?,
        _ => None,
    };
    match (row, release) {
        (Some(row), Some(release)) => {
            // A deployment newer than both retires them both.
            let repair = request_repair(conn, &row, &release).await?;
            tracing::warn!(deployment_id = %id, app_id = %app.id, %repair, release_id = %release.id,
                "an ended deployment went live; putting the live release back");
            metrics::counter!("berth_repairs_total", "kind" => "redeploy").increment(1);
            Ok(true)
        }
        _ => {
            tracing::warn!(deployment_id = %id, app_id = %app.id,
                "an ended deployment went live and nothing should run; stopping it");
            metrics::counter!("berth_repairs_total", "kind" => "stop").increment(1);
            let stop = AppScaleRequested {
                app,
                replicas: 0,
                live_deployment_id: None,
            };
            outbox::enqueue(conn, None, &stop).await?;
            Ok(true)
        }
    }
}

/// Whether the deployment ended without having gone live: it was cancelled,
/// timed out, failed or superseded while waiting.
async fn ended_before_live(
    conn: &mut PgConnection,
    id: Uuid,
    current: DeploymentState,
) -> Result<bool> {
    Ok(match current {
        DeploymentState::Failed | DeploymentState::Cancelled | DeploymentState::TimedOut => true,
        DeploymentState::Superseded => {
            !sqlx::query_scalar::<_, bool>(
                "SELECT EXISTS (SELECT 1 FROM deployment_states
                            WHERE deployment_id = $1 AND state = 'live')",
            )
            .bind(id)
            .fetch_one(&mut *conn)
            .await?
        }
        _ => false,
    })
}

pub(super) async fn newer_in_progress(
    conn: &mut PgConnection,
    app_id: Uuid,
    id: Uuid,
) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM deployments WHERE app_id = $1 AND id > $2 AND state = ANY($3))",
    )
    .bind(app_id)
    .bind(id)
    .bind(&super::store::IN_PROGRESS[..])
    .fetch_one(&mut *conn)
    .await?)
}
