//! The `domains` table.

use crate::error::{Error, FieldError, Result};
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

pub const PRODUCTION: &str = "production";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DomainRow {
    pub id: Uuid,
    pub app_id: Uuid,
    pub environment: String,
    pub hostname: String,
    pub verification_token: String,
    pub verified_at: Option<DateTime<Utc>>,
    pub checked_at: Option<DateTime<Utc>>,
    pub check_error: Option<String>,
    pub certificate_issuer: Option<String>,
    pub certificate_expires_at: Option<DateTime<Utc>>,
    pub certificate_checked_at: Option<DateTime<Utc>>,
    pub certificate_error: Option<String>,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, app_id, environment, hostname, verification_token, verified_at, \
    checked_at, check_error, certificate_issuer, certificate_expires_at, certificate_checked_at, \
    certificate_error, created_at";

pub async fn list(conn: &mut PgConnection, app_id: Uuid) -> Result<Vec<DomainRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM domains WHERE app_id = $1 ORDER BY hostname, environment"
    ))
    .bind(app_id)
    .fetch_all(conn)
    .await?)
}

pub async fn get(
    conn: &mut PgConnection,
    app_id: Uuid,
    hostname: &str,
) -> Result<Option<DomainRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM domains WHERE app_id = $1 AND hostname = $2 \
         ORDER BY environment LIMIT 1"
    ))
    .bind(app_id)
    .bind(hostname)
    .fetch_optional(conn)
    .await?)
}

pub async fn count(conn: &mut PgConnection, app_id: Uuid) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM domains WHERE app_id = $1")
            .bind(app_id)
            .fetch_one(conn)
            .await?,
    )
}

/// Whether another app has verified `hostname`.
pub async fn verified_by_another(
    conn: &mut PgConnection,
    hostname: &str,
    app_id: Uuid,
) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM domains WHERE hostname = $1 AND app_id <> $2 \
         AND verified_at IS NOT NULL)",
    )
    .bind(hostname)
    .bind(app_id)
    .fetch_one(conn)
    .await?)
}

pub async fn insert(
    conn: &mut PgConnection,
    app_id: Uuid,
    environment: &str,
    hostname: &str,
    token: &str,
) -> Result<DomainRow> {
    let inserted = sqlx::query_as(&format!(
        "INSERT INTO domains (id, app_id, environment, hostname, verification_token) \
         VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(app_id)
    .bind(environment)
    .bind(hostname)
    .bind(token)
    .fetch_one(conn)
    .await;
    match inserted {
        Ok(row) => Ok(row),
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => Err(Error::Taken(
            FieldError::new("hostname", "this app already has this domain"),
        )),
        Err(error) => Err(error.into()),
    }
}

pub async fn delete(conn: &mut PgConnection, app_id: Uuid, hostname: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM domains WHERE app_id = $1 AND hostname = $2")
        .bind(app_id)
        .bind(hostname)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Frees a deleted app's domains, so others may claim them.
pub async fn delete_for_app(conn: &mut PgConnection, app_id: Uuid) -> Result<u64> {
    let done = sqlx::query("DELETE FROM domains WHERE app_id = $1")
        .bind(app_id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

/// What a DNS check found: `Ok` verifies the domain, unless another app
/// verified the name first (then `Err` with why); `Err` is kept as the
/// reason the domain is not verified yet. Returns whether the domain is
/// now verified (for the first time: `true` once).
pub async fn record_check(db: &PgPool, id: Uuid, found: Result<(), String>) -> Result<bool> {
    match found {
        Ok(()) => {
            let verified = sqlx::query(
                "UPDATE domains SET verified_at = now(), checked_at = now(), check_error = NULL \
                 WHERE id = $1 AND verified_at IS NULL",
            )
            .bind(id)
            .execute(db)
            .await;
            match verified {
                Ok(done) => Ok(done.rows_affected() > 0),
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    let why = "the TXT record is right, but another app already uses this domain; \
                               it must be removed there first";
                    Box::pin(record_check(db, id, Err(why.into()))).await
                }
                Err(error) => Err(error.into()),
            }
        }
        Err(why) => {
            sqlx::query("UPDATE domains SET checked_at = now(), check_error = $2 WHERE id = $1")
                .bind(id)
                .bind(why)
                .execute(db)
                .await?;
            Ok(false)
        }
    }
}

/// Unverified domains of apps that exist, not checked since `before`.
pub async fn due_checks(db: &PgPool, before: DateTime<Utc>, limit: i64) -> Result<Vec<DomainRow>> {
    Ok(sqlx::query_as(
        "SELECT d.* FROM domains d JOIN apps a ON a.id = d.app_id \
         WHERE a.deleted_at IS NULL AND d.verified_at IS NULL \
           AND (d.checked_at IS NULL OR d.checked_at < $1) \
         ORDER BY d.checked_at NULLS FIRST LIMIT $2",
    )
    .bind(before)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// Verified domains whose certificate berth has not seen, or last looked
/// at before `before`.
pub async fn due_certificates(
    db: &PgPool,
    before: DateTime<Utc>,
    retry_before: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<DomainRow>> {
    Ok(sqlx::query_as(
        "SELECT d.* FROM domains d JOIN apps a ON a.id = d.app_id \
         WHERE a.deleted_at IS NULL AND d.verified_at IS NOT NULL \
           AND (d.certificate_checked_at IS NULL \
                OR (d.certificate_expires_at IS NULL AND d.certificate_checked_at < $2) \
                OR d.certificate_checked_at < $1) \
         ORDER BY d.certificate_checked_at NULLS FIRST LIMIT $3",
    )
    .bind(before)
    .bind(retry_before)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

pub async fn record_certificate(
    db: &PgPool,
    id: Uuid,
    seen: &Result<super::certificate::Served, String>,
) -> Result<()> {
    let query = match seen {
        Ok(served) => sqlx::query(
            "UPDATE domains SET certificate_issuer = $2, certificate_expires_at = $3, \
             certificate_checked_at = now(), certificate_error = NULL WHERE id = $1",
        )
        .bind(id)
        .bind(&served.issuer)
        .bind(served.expires_at),
        Err(why) => sqlx::query(
            "UPDATE domains SET certificate_checked_at = now(), certificate_error = $2 \
             WHERE id = $1",
        )
        .bind(id)
        .bind(why),
    };
    query.execute(db).await?;
    Ok(())
}

/// Whether the router may get a certificate for `hostname`: a verified
/// domain of an app that exists.
pub async fn verified_exists(db: &PgPool, hostname: &str) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM domains d JOIN apps a ON a.id = d.app_id \
         WHERE d.hostname = $1 AND d.verified_at IS NOT NULL AND a.deleted_at IS NULL)",
    )
    .bind(hostname)
    .fetch_one(db)
    .await?)
}

/// Whether `name`.`tenant` is an app that exists (its own hostname).
pub async fn app_exists(db: &PgPool, name: &str, tenant: &str) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM apps a JOIN users u ON u.id = a.owner_id \
         WHERE a.name = $1 AND u.username = $2 AND a.deleted_at IS NULL)",
    )
    .bind(name)
    .bind(tenant)
    .fetch_one(db)
    .await?)
}
