//! Apps in PostgreSQL. Every query is scoped to the owner: another user's
//! app is simply not found.
//!
//! Not inside `apps`: deployments, webhooks, logs and GitHub all read app
//! rows, and `apps` itself stands above `deployments` (deleting an app
//! cancels its deployments), so the rows sit below both.

use crate::error::{conflict_on, Result};
use crate::quota::StoredResources;
use berth_proto::{AppRef, Sealed};
use chrono::{DateTime, Utc};
use sqlx::types::Json as SqlJson;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// An app as stored, with its owner's tenant slug and its latest state.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AppRow {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub name: String,
    pub tenant: String,
    pub repo_url: String,
    pub branch: String,
    pub subdirectory: Option<String>,
    pub port: i32,
    pub health_check_path: Option<String>,
    pub replicas: i32,
    /// NULL follows the operator's default.
    pub memory_mb: Option<i32>,
    pub cpu_millis: Option<i32>,
    pub env_sealed: SqlJson<Sealed>,
    pub env_version: i64,
    pub current_release_id: Option<Uuid>,
    pub latest_deployment_id: Option<Uuid>,
    pub state: Option<String>,
    #[sqlx(flatten)]
    pub latest: LatestDeployment,
    pub url: Option<String>,
    #[sqlx(flatten)]
    pub runtime: RuntimeColumns,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What the reconciler last found the app running.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RuntimeColumns {
    pub runtime_status: Option<String>,
    pub runtime_reason: Option<String>,
    pub runtime_checked_at: Option<DateTime<Utc>>,
    pub runtime_instances: SqlJson<Vec<berth_proto::InstanceHealth>>,
}

/// What the app's latest deployment was: how it was triggered, of which
/// commit, by whom, when.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LatestDeployment {
    pub latest_trigger: Option<String>,
    pub latest_commit: Option<String>,
    pub latest_pushed_by: Option<String>,
    pub latest_created_at: Option<DateTime<Utc>>,
}

impl AppRow {
    pub fn app_ref(&self) -> AppRef {
        AppRef {
            id: self.id,
            name: self.name.clone(),
            tenant: self.tenant.clone(),
        }
    }

    /// The app's own resource choices (`None`: the default).
    pub fn stored_resources(&self) -> StoredResources {
        StoredResources::from_columns(self.memory_mb, self.cpu_millis)
    }

    pub fn replica_count(&self) -> u32 {
        u32::try_from(self.replicas).unwrap_or(1)
    }
}

const SELECT_APP: &str = "
    SELECT a.id, a.owner_id, a.name, u.username AS tenant, a.repo_url, a.branch,
           a.subdirectory, a.port, a.health_check_path, a.replicas, a.memory_mb, a.cpu_millis, a.env_sealed, a.env_version,
           a.current_release_id, latest.id AS latest_deployment_id, latest.state,
           latest.trigger AS latest_trigger, latest.commit_sha AS latest_commit,
           latest.pushed_by AS latest_pushed_by, latest.created_at AS latest_created_at,
           live.endpoint AS url, a.runtime_status, a.runtime_reason, a.runtime_checked_at,
           a.runtime_instances,
           a.created_at, a.updated_at
    FROM apps a
    JOIN users u ON u.id = a.owner_id
    LEFT JOIN LATERAL (
        SELECT d.id, d.state, d.trigger, d.commit_sha, d.pushed_by, d.created_at
        FROM deployments d WHERE d.app_id = a.id ORDER BY d.id DESC LIMIT 1
    ) latest ON true
    LEFT JOIN LATERAL (
        SELECT d.endpoint FROM deployments d
        WHERE d.app_id = a.id AND d.state = 'live' ORDER BY d.id DESC LIMIT 1
    ) live ON true
    WHERE a.deleted_at IS NULL AND a.owner_id = $1";

pub async fn list(db: &PgPool, owner: Uuid) -> Result<Vec<AppRow>> {
    Ok(
        sqlx::query_as::<_, AppRow>(&format!("{SELECT_APP} ORDER BY a.name"))
            .bind(owner)
            .fetch_all(db)
            .await?,
    )
}

pub async fn get(conn: &mut PgConnection, owner: Uuid, id: Uuid) -> Result<Option<AppRow>> {
    Ok(
        sqlx::query_as::<_, AppRow>(&format!("{SELECT_APP} AND a.id = $2"))
            .bind(owner)
            .bind(id)
            .fetch_optional(conn)
            .await?,
    )
}

/// App `id`, whoever owns it: for berth's own work on an app a report
/// named (a repair, an automatic rollback), never for a user's request.
pub async fn get_any_owner(conn: &mut PgConnection, id: Uuid) -> Result<Option<AppRow>> {
    let owner: Option<Uuid> = sqlx::query_scalar("SELECT owner_id FROM apps WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    match owner {
        Some(owner) => get(conn, owner, id).await,
        None => Ok(None),
    }
}

/// Locks every live app of the owner (in id order) and loads them.
pub async fn lock_all_owned(conn: &mut PgConnection, owner: Uuid) -> Result<Vec<AppRow>> {
    sqlx::query(
        "SELECT id FROM apps WHERE owner_id = $1 AND deleted_at IS NULL ORDER BY id FOR UPDATE",
    )
    .bind(owner)
    .execute(&mut *conn)
    .await?;
    Ok(
        sqlx::query_as::<_, AppRow>(&format!("{SELECT_APP} ORDER BY a.id"))
            .bind(owner)
            .fetch_all(conn)
            .await?,
    )
}

/// Locks the app row for the rest of the transaction; false if it is not
/// the owner's (or deleted).
pub async fn lock(conn: &mut PgConnection, owner: Uuid, id: Uuid) -> Result<bool> {
    Ok(sqlx::query_scalar::<_, Uuid>(
        "SELECT id FROM apps WHERE id = $1 AND owner_id = $2 AND deleted_at IS NULL FOR UPDATE",
    )
    .bind(id)
    .bind(owner)
    .fetch_optional(conn)
    .await?
    .is_some())
}

/// Locks the owner's app for the rest of the transaction and loads it; a
/// missing, deleted or someone else's app is not found.
pub async fn lock_owned(conn: &mut PgConnection, owner: Uuid, id: Uuid) -> Result<AppRow> {
    if !lock(conn, owner, id).await? {
        return Err(crate::error::Error::NotFound("app"));
    }
    get(conn, owner, id)
        .await?
        .ok_or(crate::error::Error::NotFound("app"))
}

pub struct NewApp<'a> {
    /// Chosen by the caller: the env is sealed for it before the insert.
    pub id: Uuid,
    pub owner: Uuid,
    pub name: &'a str,
    pub repo_url: &'a str,
    pub branch: &'a str,
    pub subdirectory: Option<&'a str>,
    pub port: u16,
    pub health_check_path: Option<&'a str>,
    pub env: Sealed,
    pub resources: StoredResources,
}

pub async fn insert(conn: &mut PgConnection, app: NewApp<'_>) -> Result<()> {
    sqlx::query(
        "INSERT INTO apps (id, owner_id, name, repo_url, branch, subdirectory, port, env_sealed,
                           memory_mb, cpu_millis, health_check_path)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(app.id)
    .bind(app.owner)
    .bind(app.name)
    .bind(app.repo_url)
    .bind(app.branch)
    .bind(app.subdirectory)
    .bind(i32::from(app.port))
    .bind(SqlJson(&app.env))
    .bind(app.resources.memory_column())
    .bind(app.resources.cpu_column())
    .bind(app.health_check_path)
    .execute(conn)
    .await
    .map_err(conflict_on(
        "apps_owner_name",
        "name",
        "you already have an app with this name",
    ))?;
    Ok(())
}

/// The owner's tenant slug (their username), which names their apps' namespaces
/// and images and is part of what their apps' env is sealed for.
pub async fn tenant_of(conn: &mut PgConnection, owner: Uuid) -> Result<String> {
    Ok(
        sqlx::query_scalar("SELECT username FROM users WHERE id = $1")
            .bind(owner)
            .fetch_one(conn)
            .await?,
    )
}

/// The fields a PATCH may change; `None` leaves a field as it is.
#[derive(Default)]
pub struct AppChanges {
    pub repo_url: Option<String>,
    pub branch: Option<String>,
    pub subdirectory: Option<Option<String>>,
    pub port: Option<u16>,
    pub health_check_path: Option<Option<String>>,
    /// A new env set; bumps `env_version`.
    pub env: Option<Sealed>,
    /// New resource choices (both columns).
    pub resources: Option<StoredResources>,
}

pub async fn update(conn: &mut PgConnection, id: Uuid, changes: AppChanges) -> Result<()> {
    sqlx::query(
        "UPDATE apps SET
            repo_url = COALESCE($2, repo_url),
            branch = COALESCE($3, branch),
            subdirectory = CASE WHEN $4 THEN $5 ELSE subdirectory END,
            port = COALESCE($6, port),
            env_sealed = COALESCE($7, env_sealed),
            env_version = env_version + CASE WHEN $7 IS NULL THEN 0 ELSE 1 END,
            memory_mb = CASE WHEN $8 THEN $9 ELSE memory_mb END,
            cpu_millis = CASE WHEN $8 THEN $10 ELSE cpu_millis END,
            health_check_path = CASE WHEN $11 THEN $12 ELSE health_check_path END,
            updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(changes.repo_url)
    .bind(changes.branch)
    .bind(changes.subdirectory.is_some())
    .bind(changes.subdirectory.flatten())
    .bind(changes.port.map(i32::from))
    .bind(changes.env.map(SqlJson))
    .bind(changes.resources.is_some())
    .bind(changes.resources.and_then(StoredResources::memory_column))
    .bind(changes.resources.and_then(StoredResources::cpu_column))
    .bind(changes.health_check_path.is_some())
    .bind(changes.health_check_path.flatten())
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn set_replicas(conn: &mut PgConnection, id: Uuid, replicas: u32) -> Result<()> {
    sqlx::query("UPDATE apps SET replicas = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(i32::try_from(replicas).unwrap_or(i32::MAX))
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn mark_deleted(conn: &mut PgConnection, id: Uuid) -> Result<()> {
    sqlx::query("UPDATE apps SET deleted_at = now(), updated_at = now() WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records what a reconciler pass found; a pass older than the one already
/// recorded for an app (reports may arrive out of order) changes nothing.
/// Returns how many apps changed.
pub async fn record_runtime(db: &PgPool, status: &berth_proto::RuntimeStatus) -> Result<u64> {
    let ids: Vec<Uuid> = status.apps.iter().map(|app| app.app_id).collect();
    let states: Vec<&str> = status.apps.iter().map(|app| app.status.as_str()).collect();
    let reasons: Vec<Option<&str>> = status
        .apps
        .iter()
        .map(|app| app.reason.as_deref())
        .collect();
    let instances: Vec<SqlJson<&[berth_proto::InstanceHealth]>> = status
        .apps
        .iter()
        .map(|app| SqlJson(app.instances.as_slice()))
        .collect();
    let updated = sqlx::query(
        "UPDATE apps a SET runtime_status = s.status, runtime_reason = s.reason,
                           runtime_checked_at = $4, runtime_instances = s.instances
         FROM UNNEST($1::uuid[], $2::text[], $3::text[], $5::jsonb[])
              AS s(id, status, reason, instances)
         WHERE a.id = s.id AND a.deleted_at IS NULL
           AND (a.runtime_checked_at IS NULL OR a.runtime_checked_at <= $4)",
    )
    .bind(&ids)
    .bind(&states)
    .bind(&reasons)
    .bind(status.at)
    .bind(&instances)
    .execute(db)
    .await?;
    Ok(updated.rows_affected())
}
