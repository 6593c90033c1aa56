//! Where a queued deployment stands: how many wait ahead of it for the same
//! kind of worker, and a guess of when it starts from how long recent builds
//! took. A dispatched build waits in the broker's queue, first in, first out
//! by deployment id (UUIDv7); one not dispatched yet comes after all of
//! those, in the fair order of [`super::dispatch`]. A rollback or a repair
//! skips the build and waits for a deploy worker instead.

use super::dispatch::{FAIR_KEY, FAIR_ORDER};
use crate::error::Result;
use serde::Serialize;
use sqlx::PgPool;
use std::collections::HashMap;
use utoipa::ToSchema;
use uuid::Uuid;

/// How many recent builds the estimate looks at.
const RECENT_BUILDS: i64 = 50;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QueuePlace {
    /// 1 when it is next.
    pub position: u32,
    /// Seconds until it is expected to start: the builds ahead, times the
    /// median time of the last builds, spread over the builds running now.
    /// Null until berth has seen a build.
    pub estimated_start_secs: Option<u64>,
}

/// The place of each of `ids` that is still `queued`.
pub async fn places(db: &PgPool, ids: &[Uuid]) -> Result<HashMap<Uuid, QueuePlace>> {
    let rows = sqlx::query_as::<_, (Uuid, i64)>(&format!(
        "WITH {FAIR_ORDER},
         in_broker AS (
            SELECT id FROM builds WHERE state = 'queued' AND dispatched_at IS NOT NULL),
         fair AS (SELECT id, row_number() OVER (ORDER BY {FAIR_KEY}) AS place FROM waiting)
         SELECT d.id,
            CASE
              WHEN d.trigger IN ('rollback', 'repair') THEN
                (SELECT count(*) FROM deployments q
                 WHERE q.state = 'queued' AND q.id <= d.id
                   AND q.trigger IN ('rollback', 'repair'))
              WHEN d.dispatched_at IS NOT NULL THEN
                (SELECT count(*) FROM in_broker b WHERE b.id <= d.id)
              ELSE (SELECT count(*) FROM in_broker)
                   + (SELECT place FROM fair WHERE fair.id = d.id)
            END
         FROM deployments d WHERE d.id = ANY($1) AND d.state = 'queued'"
    ))
    .bind(ids)
    .fetch_all(db)
    .await?;
    if rows.is_empty() {
        return Ok(HashMap::new());
    }
    let (median, running) = build_pace(db).await?;
    Ok(rows
        .into_iter()
        .map(|(id, position)| {
            let position = u32::try_from(position.max(1)).unwrap_or(u32::MAX);
            let estimated_start_secs = median.map(|median| {
                let rounds = f64::from(position) / running.max(1) as f64;
                (rounds * median).round() as u64
            });
            (
                id,
                QueuePlace {
                    position,
                    estimated_start_secs,
                },
            )
        })
        .collect())
}

/// The median seconds from `cloning` to `deploying` of the last builds, and
/// how many builds are running now.
async fn build_pace(db: &PgPool) -> Result<(Option<f64>, i64)> {
    let median: Option<f64> = sqlx::query_scalar(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY secs) FROM (
            SELECT extract(epoch FROM (d.at - c.at))::float8 AS secs
            FROM deployment_states c
            JOIN deployment_states d ON d.deployment_id = c.deployment_id AND d.state = 'deploying'
            WHERE c.state = 'cloning'
            ORDER BY c.at DESC LIMIT $1) recent",
    )
    .bind(RECENT_BUILDS)
    .fetch_one(db)
    .await?;
    let running: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM deployments WHERE state IN ('cloning', 'building', 'pushing')",
    )
    .fetch_one(db)
    .await?;
    Ok((median, running))
}
