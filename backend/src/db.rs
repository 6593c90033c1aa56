//! The PostgreSQL pool and the embedded migrations.

use crate::error::Result;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use std::time::Duration;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool> {
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await?)
}

/// Applies the migrations not applied yet. Safe to run concurrently: sqlx
/// takes an advisory lock.
pub async fn migrate(db: &PgPool) -> Result<()> {
    MIGRATOR.run(db).await?;
    Ok(())
}

/// Takes the transaction-scoped advisory lock `lock` if no other
/// transaction holds it: whether this backend replica leads the loop the
/// lock names (it is released when the transaction ends).
pub async fn try_lead(tx: &mut sqlx::PgConnection, lock: i64) -> Result<bool> {
    Ok(sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(lock)
        .fetch_one(tx)
        .await?)
}

/// Whether the database answers.
pub async fn ping(db: &PgPool) -> bool {
    sqlx::query("SELECT 1").execute(db).await.is_ok()
}
