//! The one place a deployment changes state. Workers' reports (the inform
//! consumer), the reaper, a user's cancel, a newer deployment superseding a
//! queued one and an app's deletion all come through [`transition`], which
//! does, in the caller's transaction:
//!
//! * the guarded update: the app's row, then the deployment's, are locked
//!   (the order deleting an app takes), and only a move the state machine
//!   allows from the state found is made;
//! * the history row and the GitHub status reports;
//! * going live: the release becomes the app's current one and the app's
//!   other live deployment ends; an older deployment's `live` that arrives
//!   after a newer one's is recorded as live and superseded at once, so it
//!   never displaces the newer release; a repeated `live` only moves the
//!   address;
//! * telling the workers: when the backend itself ends work in progress
//!   (cancel, time out, supersede), a [`Cancellation`] goes out through the
//!   outbox so the work stops where it is.

use super::store;
use crate::error::{Error, Result};
use crate::{github_status, outbox};
use berth_proto::{AppRef, AppScaleRequested, Cancellation, DeploymentState};
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// What comes with a state change; all optional.
#[derive(Debug, Default, Clone)]
pub struct Change<'a> {
    pub reason: Option<&'a str>,
    pub commit: Option<&'a str>,
    pub commit_message: Option<&'a str>,
    pub endpoint: Option<&'a str>,
    pub image: Option<&'a str>,
    /// The release the deployment runs, when a report names one.
    pub release_id: Option<Uuid>,
    /// When it happened; now when unset.
    pub at: Option<DateTime<Utc>>,
    /// The backend ends work a worker may hold: tell the workers.
    pub stop_work: bool,
}

impl<'a> Change<'a> {
    /// The backend ends a deployment for `reason`, stopping its work.
    pub fn ended_by_berth(reason: &'a str) -> Self {
        Self {
            reason: Some(reason),
            stop_work: true,
            ..Self::default()
        }
    }
}

/// What a transition did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Transitioned {
        from: DeploymentState,
        to: DeploymentState,
    },
    /// Not a move the state machine allows from the current state.
    Ignored {
        current: DeploymentState,
        /// The app is deleted (its row kept for history).
        app_deleted: bool,
    },
    UnknownDeployment,
}

/// The locked deployment, as a transition sees it.
pub struct Locked {
    pub app: AppRef,
    pub app_deleted: bool,
    pub state: DeploymentState,
    pub trigger: String,
    pub release_id: Uuid,
}

/// Locks the deployment's app and then the deployment.
pub async fn lock(conn: &mut PgConnection, id: Uuid) -> Result<Option<Locked>> {
    let app = sqlx::query_as::<_, (Uuid, String, String, bool)>(
        "SELECT a.id, a.name, u.username, a.deleted_at IS NOT NULL
         FROM apps a JOIN users u ON u.id = a.owner_id JOIN deployments d ON d.app_id = a.id
         WHERE d.id = $1 FOR UPDATE OF a",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((app_id, name, tenant, app_deleted)) = app else {
        return Ok(None);
    };
    let (state, trigger, release_id) = sqlx::query_as::<_, (String, String, Uuid)>(
        "SELECT state, trigger, release_id FROM deployments WHERE id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    let state = state
        .parse()
        .map_err(|e| Error::internal(format!("stored state: {e}")))?;
    Ok(Some(Locked {
        app: AppRef {
            id: app_id,
            name,
            tenant,
        },
        app_deleted,
        state,
        trigger,
        release_id,
    }))
}

/// Moves deployment `id` to `to`, if the state machine allows it.
pub async fn transition(
    conn: &mut PgConnection,
    id: Uuid,
    to: DeploymentState,
    change: Change<'_>,
) -> Result<Applied> {
    let Some(locked) = lock(conn, id).await? else {
        return Ok(Applied::UnknownDeployment);
    };
    transition_locked(conn, id, &locked, to, change).await
}

/// [`transition`] for a deployment the caller already locked with [`lock`].
pub async fn transition_locked(
    conn: &mut PgConnection,
    id: Uuid,
    locked: &Locked,
    to: DeploymentState,
    change: Change<'_>,
) -> Result<Applied> {
    let from = locked.state;
    if from == DeploymentState::Live && to == DeploymentState::Live {
        // The live deployment started again (the reconciler after a
        // reboot): it answers at its new address.
        if let Some(endpoint) = change.endpoint {
            sqlx::query(
                "UPDATE deployments SET endpoint = $2, updated_at = now()
                 WHERE id = $1 AND endpoint IS DISTINCT FROM $2",
            )
            .bind(id)
            .bind(endpoint)
            .execute(&mut *conn)
            .await?;
        }
    }
    if !from.can_transition_to(to) {
        return Ok(Applied::Ignored {
            current: from,
            app_deleted: locked.app_deleted,
        });
    }
    let at = change.at.unwrap_or_else(Utc::now);
    let release_id = change.release_id.unwrap_or(locked.release_id);
    let newer_live = if to == DeploymentState::Live {
        newer_live(conn, locked.app.id, id).await?
    } else {
        None
    };
    // An older deployment's `live` after a newer one's: it did run, and was
    // replaced at once (the runtime retires older deployments).
    let stored = if newer_live.is_some() {
        DeploymentState::Superseded
    } else {
        to
    };
    sqlx::query(
        "UPDATE deployments SET state = $2, state_changed_at = now(), updated_at = now(),
            waiting_reason = NULL, next_attempt_at = NULL,
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
    .bind(id)
    .bind(stored.as_str())
    .bind(change.reason)
    .bind(change.commit)
    .bind(change.endpoint)
    .bind(change.image)
    .bind(release_id)
    .bind(change.commit_message)
    .execute(&mut *conn)
    .await?;
    store::record_state(conn, id, to, at).await?;
    github_status::on_state(conn, id, to).await?;
    if let Some(newer) = newer_live {
        store::record_state(conn, id, DeploymentState::Superseded, at).await?;
        github_status::on_state(conn, id, DeploymentState::Superseded).await?;
        tracing::info!(deployment_id = %id, %newer, "a late `live` of an older deployment: superseded");
    } else if to == DeploymentState::Live {
        // A rollback returns to an earlier release: what ran before it was
        // rolled back; otherwise it was superseded.
        let previous = if matches!(locked.trigger.as_str(), "rollback" | "auto_rollback") {
            DeploymentState::RolledBack
        } else {
            DeploymentState::Superseded
        };
        go_live(conn, &locked.app, id, release_id, previous).await?;
    }
    if change.stop_work && from.is_in_progress() && !to.is_in_progress() {
        let cancellation = Cancellation {
            app: locked.app.clone(),
            deployment_id: Some(id),
            reason: change.reason.unwrap_or(to.as_str()).to_owned(),
            state: to,
        };
        outbox::enqueue(conn, Some(id), &cancellation).await?;
    }
    Ok(Applied::Transitioned { from, to: stored })
}

/// A live deployment of the app newer than `id` (ids are UUIDv7).
async fn newer_live(conn: &mut PgConnection, app_id: Uuid, id: Uuid) -> Result<Option<Uuid>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM deployments WHERE app_id = $1 AND state = 'live' AND id > $2
         ORDER BY id DESC LIMIT 1",
    )
    .bind(app_id)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?)
}

/// Makes the release current and ends the app's other live deployments.
/// A scale made while the deployment was on its way wins over the one the
/// release was requested with.
async fn go_live(
    conn: &mut PgConnection,
    app: &AppRef,
    deployment_id: Uuid,
    release_id: Uuid,
    previous: DeploymentState,
) -> Result<()> {
    let app_id = app.id;
    let scales = sqlx::query_as::<_, (i32, Option<i64>)>(
        "SELECT a.replicas, (r.config->>'replicas')::bigint
         FROM apps a LEFT JOIN releases r ON r.id = $2 WHERE a.id = $1",
    )
    .bind(app_id)
    .bind(release_id)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some((wanted, Some(deployed))) = scales {
        if i64::from(wanted) != deployed {
            let replicas = u32::try_from(wanted).unwrap_or(0);
            tracing::info!(%app_id, wanted, deployed, "the app was scaled meanwhile; scaling again");
            outbox::enqueue(
                conn,
                None,
                &AppScaleRequested {
                    app: app.clone(),
                    replicas,
                    live_deployment_id: Some(deployment_id),
                },
            )
            .await?;
        }
    }
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

/// Ends every in-progress deployment of an app in `to`, stopping their
/// work; returns how many ended.
pub async fn end_in_progress(
    conn: &mut PgConnection,
    app_id: Uuid,
    to: DeploymentState,
    reason: &str,
) -> Result<u64> {
    let ids = sqlx::query_scalar::<_, Uuid>(
        "SELECT id FROM deployments WHERE app_id = $1 AND state = ANY($2) ORDER BY id",
    )
    .bind(app_id)
    .bind(&store::IN_PROGRESS[..])
    .fetch_all(&mut *conn)
    .await?;
    let mut ended = 0;
    for id in ids {
        let applied = transition(conn, id, to, Change::ended_by_berth(reason)).await?;
        if matches!(applied, Applied::Transitioned { .. }) {
            ended += 1;
        }
    }
    Ok(ended)
}

/// Ends the app's deployments that have not started (`queued`) and are
/// older than `newer`, as `superseded`: only the newest matters.
pub async fn supersede_queued(conn: &mut PgConnection, app_id: Uuid, newer: Uuid) -> Result<u64> {
    let ids = sqlx::query_scalar::<_, Uuid>(
        "SELECT id FROM deployments WHERE app_id = $1 AND state = 'queued' AND id < $2
         ORDER BY id",
    )
    .bind(app_id)
    .bind(newer)
    .fetch_all(&mut *conn)
    .await?;
    let reason = format!("replaced by the newer deployment {newer}");
    let mut ended = 0;
    for id in ids {
        let applied = transition(
            conn,
            id,
            DeploymentState::Superseded,
            Change::ended_by_berth(&reason),
        )
        .await?;
        if matches!(applied, Applied::Transitioned { .. }) {
            ended += 1;
        }
    }
    Ok(ended)
}
