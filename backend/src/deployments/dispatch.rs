//! Which waiting builds go to the build-workers next.
//!
//! A build waits in the database (`queued`, `dispatched_at` null) until the
//! relay dispatches it: its `build.requested` is published only then. The
//! relay dispatches at most `build_slots` builds at once in all, and at most
//! `tenant_build_slots` of one tenant, so one tenant's burst waits behind
//! its own builds and never in front of another tenant's.
//!
//! The order is round-robin by tenant: a waiting build's *level* is the
//! number of its tenant's builds running or ahead of it; lower levels go
//! first; within a level, the tenant served longest ago (or never), then
//! the oldest build. Ten pushes of one tenant and one of another: the
//! other's build is second, not eleventh.
//!
//! Rollbacks and repairs build nothing: they go out at once.

use crate::error::Result;
use sqlx::PgConnection;
use uuid::Uuid;

/// How many builds may be dispatched at once.
#[derive(Debug, Clone, Copy)]
pub struct BuildSlots {
    /// In all: the build-workers' `BERTH_BUILD_CONCURRENCY`, summed.
    pub total: u32,
    /// Of one tenant.
    pub per_tenant: u32,
}

impl Default for BuildSlots {
    fn default() -> Self {
        Self {
            total: 2,
            per_tenant: 1,
        }
    }
}

/// `builds`: every build in progress with its tenant; `waiting`: the ones
/// not dispatched yet with their `level` and when their tenant was last
/// served (see the module docs); order by [`FAIR_KEY`].
pub(crate) const FAIR_ORDER: &str = "
    builds AS (
        SELECT d.id, d.state, d.dispatched_at, a.owner_id AS tenant
        FROM deployments d JOIN apps a ON a.id = d.app_id
        WHERE d.state IN ('queued', 'cloning', 'building', 'pushing')
          AND d.trigger NOT IN ('rollback', 'repair')),
    running AS (
        SELECT tenant, count(*) AS n FROM builds
        WHERE dispatched_at IS NOT NULL GROUP BY tenant),
    served AS (
        SELECT a.owner_id AS tenant, max(d.dispatched_at) AS at
        FROM deployments d JOIN apps a ON a.id = d.app_id
        WHERE a.owner_id IN (SELECT tenant FROM builds WHERE dispatched_at IS NULL)
          AND d.trigger NOT IN ('rollback', 'repair')
        GROUP BY a.owner_id),
    waiting AS (
        SELECT b.id, s.at AS served_at,
               COALESCE(r.n, 0)
                 + row_number() OVER (PARTITION BY b.tenant ORDER BY b.id) AS level
        FROM builds b LEFT JOIN running r USING (tenant) LEFT JOIN served s USING (tenant)
        WHERE b.dispatched_at IS NULL)";

/// The order of `waiting`, first to go first.
pub(crate) const FAIR_KEY: &str = "level, served_at NULLS FIRST, id";

/// Dispatches the waiting builds that fit into free slots; returns them.
/// The caller holds the relay's lock (one dispatcher at a time) and
/// publishes their outbox rows in the same transaction.
pub async fn dispatch(conn: &mut PgConnection, slots: BuildSlots) -> Result<Vec<Uuid>> {
    let dispatched: Vec<Uuid> = sqlx::query_scalar(&format!(
        "WITH {FAIR_ORDER},
         chosen AS (
            SELECT id FROM waiting WHERE level <= $2
            ORDER BY {FAIR_KEY}
            LIMIT GREATEST($1 - (SELECT count(*) FROM builds WHERE dispatched_at IS NOT NULL), 0))
         UPDATE deployments d SET dispatched_at = now()
         FROM chosen WHERE d.id = chosen.id
         RETURNING d.id"
    ))
    .bind(i64::from(slots.total))
    .bind(i64::from(slots.per_tenant))
    .fetch_all(&mut *conn)
    .await?;
    if !dispatched.is_empty() {
        tracing::debug!(count = dispatched.len(), "builds dispatched");
        metrics::counter!("berth_builds_dispatched_total").increment(dispatched.len() as u64);
    }
    Ok(dispatched)
}
