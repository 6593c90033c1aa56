//! Deployments and their state history in PostgreSQL.

use crate::error::Result;
use berth_proto::DeploymentState;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use std::collections::HashMap;
use uuid::Uuid;

/// The in-progress states, as stored.
pub const IN_PROGRESS: [&str; 5] = ["queued", "cloning", "building", "pushing", "deploying"];

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeploymentRow {
    pub id: Uuid,
    pub app_id: Uuid,
    pub state: String,
    pub trigger: String,
    pub git_ref: Option<String>,
    pub commit_sha: Option<String>,
    pub commit_message: Option<String>,
    pub release_id: Uuid,
    /// When retention removed the release's image.
    pub release_pruned_at: Option<DateTime<Utc>>,
    /// Why its work waits for another attempt, and when that is.
    pub waiting_reason: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub image: Option<String>,
    pub endpoint: Option<String>,
    pub reason: Option<String>,
    pub created_by: Option<Uuid>,
    pub pushed_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "d.id, d.app_id, d.state, d.trigger, d.git_ref, d.commit_sha,
    d.commit_message, d.release_id,
    (SELECT r.pruned_at FROM releases r WHERE r.id = d.release_id) AS release_pruned_at,
    d.waiting_reason, d.next_attempt_at,
    d.image, d.endpoint, d.reason, d.created_by, d.pushed_by, d.created_at, d.updated_at";

pub struct NewDeployment<'a> {
    pub id: Uuid,
    pub app_id: Uuid,
    pub trigger: &'a str,
    pub git_ref: Option<&'a str>,
    pub commit: Option<&'a str>,
    pub release_id: Uuid,
    pub image: Option<&'a str>,
    pub created_by: Option<Uuid>,
    /// The GitHub login whose push this deploys.
    pub pushed_by: Option<&'a str>,
    /// The commit's message's first line, when the trigger knows it.
    pub commit_message: Option<&'a str>,
    /// A build waits for the relay to dispatch it (see `dispatch`); a
    /// deployment of an existing release goes out at once.
    pub waits_for_dispatch: bool,
}

/// Inserts a `queued` deployment and its first history entry. Without a
/// message, one an earlier deployment of the same commit learned is used
/// (a rollback, a redeploy).
pub async fn insert(conn: &mut PgConnection, new: NewDeployment<'_>) -> Result<()> {
    sqlx::query(
        "INSERT INTO deployments (id, app_id, state, trigger, git_ref, commit_sha, release_id,
                                  image, created_by, pushed_by, commit_message, dispatched_at)
         VALUES ($1, $2, 'queued', $3, $4, $5, $6, $7, $8, $9,
                 COALESCE($10, (SELECT commit_message FROM deployments
                                WHERE app_id = $2 AND commit_sha = $5
                                  AND commit_message IS NOT NULL
                                ORDER BY id DESC LIMIT 1)),
                 CASE WHEN $11 THEN NULL ELSE now() END)",
    )
    .bind(new.id)
    .bind(new.app_id)
    .bind(new.trigger)
    .bind(new.git_ref)
    .bind(new.commit)
    .bind(new.release_id)
    .bind(new.image)
    .bind(new.created_by)
    .bind(new.pushed_by)
    .bind(new.commit_message)
    .bind(new.waits_for_dispatch)
    .execute(&mut *conn)
    .await?;
    record_state(conn, new.id, DeploymentState::Queued, Utc::now()).await
}

/// Remembers when a deployment reached `state` (first time only).
pub async fn record_state(
    conn: &mut PgConnection,
    id: Uuid,
    state: DeploymentState,
    at: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO deployment_states (deployment_id, state, at) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(state.as_str())
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// A deployment of one of `owner`'s apps.
pub async fn get_owned(db: &PgPool, owner: Uuid, id: Uuid) -> Result<Option<DeploymentRow>> {
    Ok(sqlx::query_as::<_, DeploymentRow>(&format!(
        "SELECT {COLUMNS} FROM deployments d JOIN apps a ON a.id = d.app_id
         WHERE d.id = $1 AND a.owner_id = $2 AND a.deleted_at IS NULL"
    ))
    .bind(id)
    .bind(owner)
    .fetch_optional(db)
    .await?)
}

/// Newest first; `before` pages (ids are UUIDv7, so they order by creation).
pub async fn list_for_app(
    db: &PgPool,
    app_id: Uuid,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<DeploymentRow>> {
    Ok(sqlx::query_as::<_, DeploymentRow>(&format!(
        "SELECT {COLUMNS} FROM deployments d
         WHERE d.app_id = $1 AND ($2::uuid IS NULL OR d.id < $2)
         ORDER BY d.id DESC LIMIT $3"
    ))
    .bind(app_id)
    .bind(before)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// The state history of each of `ids`, oldest first.
pub async fn histories(
    db: &PgPool,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<(String, DateTime<Utc>)>>> {
    let rows = sqlx::query_as::<_, (Uuid, String, DateTime<Utc>)>(
        "SELECT deployment_id, state, at FROM deployment_states
         WHERE deployment_id = ANY($1) ORDER BY at, state",
    )
    .bind(ids)
    .fetch_all(db)
    .await?;
    let mut map: HashMap<Uuid, Vec<_>> = HashMap::new();
    for (id, state, at) in rows {
        map.entry(id).or_default().push((state, at));
    }
    Ok(map)
}

/// Records that the deployment's work waits for another attempt; ignored
/// once the deployment ended, or when a later attempt already reported.
/// Returns whether it was recorded.
pub async fn record_waiting(
    db: &PgPool,
    id: Uuid,
    reason: &str,
    next_attempt_at: DateTime<Utc>,
) -> Result<bool> {
    let updated = sqlx::query(
        "UPDATE deployments SET waiting_reason = $2, next_attempt_at = $3
         WHERE id = $1 AND state = ANY($4)
           AND (next_attempt_at IS NULL OR next_attempt_at <= $3)",
    )
    .bind(id)
    .bind(reason)
    .bind(next_attempt_at)
    .bind(&IN_PROGRESS[..])
    .execute(db)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// Keeps what a report that came too late to move the deployment still
/// knows: its commit and the commit's message (a `building` applied after
/// `pushing`), where the deployment has none yet.
pub async fn record_late_facts(
    conn: &mut PgConnection,
    id: Uuid,
    commit: Option<&str>,
    commit_message: Option<&str>,
) -> Result<()> {
    if commit.is_none() && commit_message.is_none() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE deployments SET commit_sha = COALESCE(commit_sha, $2),
                                commit_message = COALESCE(commit_message, $3)
         WHERE id = $1",
    )
    .bind(id)
    .bind(commit)
    .bind(commit_message)
    .execute(conn)
    .await?;
    Ok(())
}

/// The app's live deployment and its release, if any.
pub async fn live(conn: &mut PgConnection, app_id: Uuid) -> Result<Option<(Uuid, Uuid)>> {
    Ok(sqlx::query_as(
        "SELECT id, release_id FROM deployments WHERE app_id = $1 AND state = 'live'
         ORDER BY id DESC LIMIT 1",
    )
    .bind(app_id)
    .fetch_optional(conn)
    .await?)
}
