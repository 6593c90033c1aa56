//! Per-tenant quotas, set by the operator (`BERTH_QUOTA_*`), and the
//! resources each app runs with.
//!
//! Counts (apps, and the memory and CPU of every app times its replicas)
//! are checked where they grow, under a per-tenant advisory lock taken in
//! the caller's transaction, so two concurrent requests cannot both slip
//! under a limit. Over a count is a `422`; something that frees itself by
//! waiting (queued deployments, open streams, log reads in progress) is a
//! `429`. Both are `quota-exceeded` problems naming the limit.
//!
//! Nothing here knows the HTTP layer's state: handlers pass the settings in.

mod resources;
pub mod slots;
mod view;

pub use resources::{
    AppBounds, AppResources, ResourcesRequest, StoredResources, MIN_CPU_MILLIS, MIN_MEMORY_MB,
};
pub use view::{Quota, QuotaView};

use crate::error::{Error, Result};
use sqlx::PgConnection;
use uuid::Uuid;

/// The operator's limits for every tenant, and the resources an app gets
/// when it asks for none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quotas {
    /// Live apps per tenant.
    pub apps: u32,
    /// Deployments waiting to start (state `queued`) per tenant.
    pub queued_deployments: u32,
    /// Log sockets and event streams open at once per tenant.
    pub streams: u32,
    /// REST log reads in progress at once per tenant.
    pub log_reads: u32,
    /// Memory of all the tenant's apps times their replicas, in MB.
    pub memory_mb: u64,
    /// CPU of all the tenant's apps times their replicas, in millicores.
    pub cpu_millis: u64,
    pub app: AppBounds,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            apps: 20,
            queued_deployments: 10,
            streams: 20,
            log_reads: 4,
            memory_mb: 10_240,
            cpu_millis: 20_000,
            app: AppBounds {
                default_memory_mb: 512,
                default_cpu_millis: 1000,
                max_memory_mb: 4096,
                max_cpu_millis: 4000,
            },
        }
    }
}

/// Memory and CPU taken of a tenant's quota.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Footprint {
    pub memory_mb: u64,
    pub cpu_millis: u64,
}

impl std::ops::Add for Footprint {
    type Output = Self;
    fn add(self, other: Self) -> Self {
        Self {
            memory_mb: self.memory_mb + other.memory_mb,
            cpu_millis: self.cpu_millis + other.cpu_millis,
        }
    }
}

/// What a tenant uses of its quota.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub apps: u32,
    pub queued_deployments: u32,
    pub footprint: Footprint,
}

/// Serializes the quota checks of one tenant until the caller's
/// transaction ends.
pub async fn lock_tenant(conn: &mut PgConnection, owner: Uuid) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('berth.quota'), hashtext($1::text))")
        .bind(owner)
        .execute(conn)
        .await?;
    Ok(())
}

/// The tenant's live apps and what they take (all of them but `except`).
async fn apps_usage(
    conn: &mut PgConnection,
    owner: Uuid,
    bounds: &AppBounds,
    except: Option<Uuid>,
) -> Result<(u32, Footprint)> {
    let (apps, memory, cpu) = sqlx::query_as::<_, (i64, i64, i64)>(
        "SELECT count(*),
                COALESCE(sum(COALESCE(memory_mb, $2)::bigint * replicas), 0)::bigint,
                COALESCE(sum(COALESCE(cpu_millis, $3)::bigint * replicas), 0)::bigint
         FROM apps WHERE owner_id = $1 AND deleted_at IS NULL
           AND ($4::uuid IS NULL OR id <> $4)",
    )
    .bind(owner)
    .bind(i64::from(bounds.default_memory_mb))
    .bind(i64::from(bounds.default_cpu_millis))
    .bind(except)
    .fetch_one(conn)
    .await?;
    Ok((
        u32::try_from(apps).unwrap_or(u32::MAX),
        Footprint {
            memory_mb: u64::try_from(memory).unwrap_or(0),
            cpu_millis: u64::try_from(cpu).unwrap_or(0),
        },
    ))
}

async fn queued(conn: &mut PgConnection, owner: Uuid) -> Result<u32> {
    let count = sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM deployments d JOIN apps a ON a.id = d.app_id
         WHERE a.owner_id = $1 AND d.state = 'queued'",
    )
    .bind(owner)
    .fetch_one(conn)
    .await?;
    Ok(u32::try_from(count).unwrap_or(u32::MAX))
}

/// What the tenant uses now.
pub async fn usage(conn: &mut PgConnection, owner: Uuid, quotas: &Quotas) -> Result<Usage> {
    let (apps, footprint) = apps_usage(conn, owner, &quotas.app, None).await?;
    Ok(Usage {
        apps,
        queued_deployments: queued(conn, owner).await?,
        footprint,
    })
}

fn plural(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Refuses `wanted` when it is over the quota and more than `now` (going
/// down, or staying, is always allowed: an operator may lower a quota).
fn check_footprint(quotas: &Quotas, now: Footprint, wanted: Footprint) -> Result<()> {
    if wanted.memory_mb > quotas.memory_mb && wanted.memory_mb > now.memory_mb {
        return Err(Error::QuotaExceeded {
            limit: "memory_mb",
            detail: format!(
                "your apps would use {} MB of memory (each app's memory times its replicas; \
                 {} MB now), over {} MB, the limit of your account",
                wanted.memory_mb, now.memory_mb, quotas.memory_mb
            ),
            wait: false,
        });
    }
    if wanted.cpu_millis > quotas.cpu_millis && wanted.cpu_millis > now.cpu_millis {
        return Err(Error::QuotaExceeded {
            limit: "cpu_millis",
            detail: format!(
                "your apps would use {} millicores of CPU (each app's CPU times its replicas; \
                 {} now), over {}, the limit of your account",
                wanted.cpu_millis, now.cpu_millis, quotas.cpu_millis
            ),
            wait: false,
        });
    }
    Ok(())
}

/// Before creating an app with `resources` (one replica): the tenant's app
/// count and resources. Locks the tenant for the caller's transaction.
pub async fn check_new_app(
    conn: &mut PgConnection,
    owner: Uuid,
    quotas: &Quotas,
    resources: AppResources,
) -> Result<()> {
    lock_tenant(conn, owner).await?;
    let (apps, now) = apps_usage(conn, owner, &quotas.app, None).await?;
    if apps >= quotas.apps {
        return Err(Error::QuotaExceeded {
            limit: "apps",
            detail: format!(
                "you have {}, the limit of your account",
                plural(apps, "app", "apps")
            ),
            wait: false,
        });
    }
    check_footprint(quotas, now, now + resources.times(1))
}

/// Before app `app_id` runs `replicas` instances with `resources` (a scale
/// or a change of resources); `before` is what it takes now. Locks the
/// tenant for the caller's transaction.
pub async fn check_app_change(
    conn: &mut PgConnection,
    owner: Uuid,
    quotas: &Quotas,
    app_id: Uuid,
    before: (AppResources, u32),
    after: (AppResources, u32),
) -> Result<()> {
    lock_tenant(conn, owner).await?;
    let (_, others) = apps_usage(conn, owner, &quotas.app, Some(app_id)).await?;
    check_footprint(
        quotas,
        others + before.0.times(before.1),
        others + after.0.times(after.1),
    )
}

/// Before queueing one more deployment of the tenant's. Locks the tenant
/// for the caller's transaction.
pub async fn check_queue(conn: &mut PgConnection, owner: Uuid, quotas: &Quotas) -> Result<()> {
    lock_tenant(conn, owner).await?;
    let waiting = queued(conn, owner).await?;
    if waiting >= quotas.queued_deployments {
        return Err(Error::QuotaExceeded {
            limit: "queued_deployments",
            detail: format!(
                "you have {} waiting to start, the limit of your account; \
                 wait for one to start building, or cancel one",
                plural(waiting, "deployment", "deployments")
            ),
            wait: true,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growing_past_the_quota_is_refused_and_shrinking_never_is() {
        let quotas = Quotas {
            memory_mb: 1000,
            cpu_millis: 1000,
            ..Quotas::default()
        };
        let at = |memory_mb, cpu_millis| Footprint {
            memory_mb,
            cpu_millis,
        };
        assert!(check_footprint(&quotas, at(500, 500), at(1000, 1000)).is_ok());
        match check_footprint(&quotas, at(500, 500), at(1500, 500)) {
            Err(Error::QuotaExceeded { limit, detail, .. }) => {
                assert_eq!(limit, "memory_mb");
                assert!(
                    detail.contains("1000 MB, the limit of your account"),
                    "{detail}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            check_footprint(&quotas, at(0, 0), at(0, 1001)),
            Err(Error::QuotaExceeded {
                limit: "cpu_millis",
                ..
            })
        ));
        // Over already (the operator lowered the quota): going down is fine.
        assert!(check_footprint(&quotas, at(3000, 3000), at(2000, 2000)).is_ok());
    }
}
