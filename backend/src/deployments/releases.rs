//! Releases: immutable (commit, image by digest, config) triples. They are
//! recorded from the workers' reports and deployed again on rollback.

use crate::error::Result;
use berth_proto::{AppRef, Binding, KnownImage, Release, ReleaseConfig, Resources, SecretKey};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json as SqlJson;
use sqlx::{PgConnection, PgPool};
use std::collections::BTreeMap;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReleaseRow {
    pub id: Uuid,
    pub app_id: Uuid,
    pub deployment_id: Option<Uuid>,
    pub commit_sha: String,
    pub image: String,
    pub config: SqlJson<ReleaseConfig>,
    pub created_at: DateTime<Utc>,
    /// Set when retention deleted its image: rollback refuses it.
    pub pruned_at: Option<DateTime<Utc>>,
}

impl ReleaseRow {
    /// The release as the workers know it.
    pub fn to_release(&self, app: AppRef) -> Release {
        Release {
            id: self.id,
            app,
            commit: self.commit_sha.clone(),
            image: self.image.clone(),
            config: self.config.0.clone(),
        }
    }
}

const COLUMNS: &str = "id, app_id, deployment_id, commit_sha, image, config, created_at, pruned_at";

pub async fn get(conn: &mut PgConnection, app_id: Uuid, id: Uuid) -> Result<Option<ReleaseRow>> {
    Ok(sqlx::query_as::<_, ReleaseRow>(&format!(
        "SELECT {COLUMNS} FROM releases WHERE id = $1 AND app_id = $2"
    ))
    .bind(id)
    .bind(app_id)
    .fetch_optional(conn)
    .await?)
}

pub async fn list_for_app(db: &PgPool, app_id: Uuid) -> Result<Vec<ReleaseRow>> {
    Ok(sqlx::query_as::<_, ReleaseRow>(&format!(
        "SELECT {COLUMNS} FROM releases WHERE app_id = $1 ORDER BY created_at DESC, id DESC"
    ))
    .bind(app_id)
    .fetch_all(db)
    .await?)
}

/// How many of an app's most recent commits a build request names images
/// for: enough for redeploys of recent branch heads, small in a message.
pub const KNOWN_IMAGES: i64 = 20;

/// The images berth recorded for the app's most recently released commits,
/// newest first, one per commit (its newest release's); only those of
/// commits starting with `commit` when one is given (an abbreviated SHA
/// names every commit it prefixes). What a build may skip to.
pub async fn known_images(
    conn: &mut PgConnection,
    app_id: Uuid,
    commit: Option<&str>,
) -> Result<Vec<KnownImage>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT commit_sha, image FROM (
             SELECT DISTINCT ON (commit_sha) commit_sha, image, created_at, id FROM releases
             WHERE app_id = $1 AND pruned_at IS NULL
               AND ($2::text IS NULL OR starts_with(commit_sha, $2))
             ORDER BY commit_sha, created_at DESC, id DESC
         ) newest ORDER BY created_at DESC, id DESC LIMIT $3",
    )
    .bind(app_id)
    .bind(commit)
    .bind(KNOWN_IMAGES)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(commit, image)| {
            let (_, digest) = image.rsplit_once('@')?;
            is_digest(digest).then(|| KnownImage {
                commit,
                digest: digest.to_owned(),
            })
        })
        .collect())
}

/// `sha256:` and 64 lowercase hex digits.
fn is_digest(text: &str) -> bool {
    text.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Records a release reported by a worker; a repeated report changes nothing.
pub async fn insert(conn: &mut PgConnection, release: &Release, deployment_id: Uuid) -> Result<()> {
    sqlx::query(
        "INSERT INTO releases (id, app_id, deployment_id, commit_sha, image, config)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
    )
    .bind(release.id)
    .bind(release.app.id)
    .bind(deployment_id)
    .bind(&release.commit)
    .bind(&release.image)
    .bind(SqlJson(&release.config))
    .execute(conn)
    .await?;
    Ok(())
}

/// A release's config without secret values.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReleaseConfigView {
    pub port: u16,
    pub env_version: i64,
    /// Names of the env vars the release runs with.
    pub env_names: Vec<String>,
    pub replicas: u32,
    pub cpu_millis: Option<u32>,
    pub memory_mb: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReleaseView {
    pub id: Uuid,
    pub deployment_id: Option<Uuid>,
    pub commit: String,
    /// The image, by digest.
    pub image: String,
    pub config: ReleaseConfigView,
    /// Whether the app runs this release now.
    pub current: bool,
    pub created_at: DateTime<Utc>,
    /// When retention deleted its image (it was beyond the releases
    /// rollback reaches); such a release cannot be rolled back to.
    pub pruned_at: Option<DateTime<Utc>>,
}

impl ReleaseView {
    /// `tenant` is the app's: the release's env is sealed for the app.
    pub fn from_row(row: ReleaseRow, current: Option<Uuid>, key: &SecretKey, tenant: &str) -> Self {
        let config = row.config.0;
        // A release sealed with an older key still lists, without names.
        let env_names = key
            .open_json::<BTreeMap<String, String>>(
                &Binding::app_env(tenant, row.app_id),
                &config.env,
            )
            .map(|env| env.into_keys().collect())
            .unwrap_or_default();
        let Resources {
            cpu_millis,
            memory_mb,
        } = config.resources;
        Self {
            id: row.id,
            deployment_id: row.deployment_id,
            commit: row.commit_sha,
            image: row.image,
            config: ReleaseConfigView {
                port: config.port,
                env_version: config.env_version,
                env_names,
                replicas: config.replicas,
                cpu_millis,
                memory_mb,
            },
            current: current == Some(row.id),
            created_at: row.created_at,
            pruned_at: row.pruned_at,
        }
    }
}
