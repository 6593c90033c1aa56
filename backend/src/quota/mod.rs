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

pub mod slots;

use crate::error::{Error, FieldError, Result};
use serde::{Deserialize, Deserializer, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

/// Below this an app is unlikely to start at all.
pub const MIN_MEMORY_MB: u32 = 64;
/// A twentieth of a core.
pub const MIN_CPU_MILLIS: u32 = 50;

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

/// What one app gets by default and may ask for at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppBounds {
    pub default_memory_mb: u32,
    pub default_cpu_millis: u32,
    pub max_memory_mb: u32,
    pub max_cpu_millis: u32,
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

/// The memory and CPU an app's instances each run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct AppResources {
    /// Memory limit of each instance, in MB.
    #[schema(example = 512)]
    pub memory_mb: u32,
    /// CPU limit of each instance, in millicores (1000 = one core).
    #[schema(example = 1000)]
    pub cpu_millis: u32,
}

impl AppResources {
    /// What these resources times `replicas` take of the tenant's quota.
    fn times(self, replicas: u32) -> Footprint {
        Footprint {
            memory_mb: u64::from(self.memory_mb) * u64::from(replicas),
            cpu_millis: u64::from(self.cpu_millis) * u64::from(replicas),
        }
    }
}

impl From<AppResources> for berth_proto::Resources {
    fn from(resources: AppResources) -> Self {
        Self {
            cpu_millis: Some(resources.cpu_millis),
            memory_mb: Some(resources.memory_mb),
        }
    }
}

/// A change of an app's resources: absent leaves a value as it is, `null`
/// returns it to the operator's default.
#[derive(Debug, Default, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourcesRequest {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>, example = 256)]
    pub memory_mb: Option<Option<u32>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>, example = 500)]
    pub cpu_millis: Option<Option<u32>>,
}

/// `Some(None)` for an explicit null, `None` (via `default`) when absent.
fn present<'de, D, T>(deserializer: D) -> std::result::Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// An app's stored choice: `None` follows the operator's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoredResources {
    pub memory_mb: Option<u32>,
    pub cpu_millis: Option<u32>,
}

impl StoredResources {
    /// From the `apps` columns (NULL, or a positive integer).
    pub fn from_columns(memory_mb: Option<i32>, cpu_millis: Option<i32>) -> Self {
        Self {
            memory_mb: memory_mb.and_then(|v| u32::try_from(v).ok()),
            cpu_millis: cpu_millis.and_then(|v| u32::try_from(v).ok()),
        }
    }

    /// This choice with `request` applied.
    pub fn apply(self, request: &ResourcesRequest) -> Self {
        Self {
            memory_mb: request.memory_mb.unwrap_or(self.memory_mb),
            cpu_millis: request.cpu_millis.unwrap_or(self.cpu_millis),
        }
    }

    pub fn memory_column(self) -> Option<i32> {
        self.memory_mb.and_then(|v| i32::try_from(v).ok())
    }

    pub fn cpu_column(self) -> Option<i32> {
        self.cpu_millis.and_then(|v| i32::try_from(v).ok())
    }
}

impl AppBounds {
    /// The values an app with `stored` runs with.
    pub fn effective(&self, stored: StoredResources) -> AppResources {
        AppResources {
            memory_mb: stored.memory_mb.unwrap_or(self.default_memory_mb),
            cpu_millis: stored.cpu_millis.unwrap_or(self.default_cpu_millis),
        }
    }

    /// Field errors (`resources.memory_mb`, `resources.cpu_millis`) for
    /// values out of the per-app bounds.
    pub fn check(&self, request: &ResourcesRequest) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if let Some(Some(memory)) = request.memory_mb {
            if !(MIN_MEMORY_MB..=self.max_memory_mb).contains(&memory) {
                errors.push(FieldError::new(
                    "resources.memory_mb",
                    format!(
                        "must be between {MIN_MEMORY_MB} and {} (MB)",
                        self.max_memory_mb
                    ),
                ));
            }
        }
        if let Some(Some(cpu)) = request.cpu_millis {
            if !(MIN_CPU_MILLIS..=self.max_cpu_millis).contains(&cpu) {
                errors.push(FieldError::new(
                    "resources.cpu_millis",
                    format!(
                        "must be between {MIN_CPU_MILLIS} and {} (millicores)",
                        self.max_cpu_millis
                    ),
                ));
            }
        }
        errors
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

/// One quota and how much of it is used.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct Quota {
    pub used: u64,
    pub limit: u64,
}

/// The caller's quotas and use (`GET /me/quota`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QuotaView {
    /// Live apps.
    pub apps: Quota,
    /// Deployments waiting to start.
    pub queued_deployments: Quota,
    /// Log sockets and event streams open now (every backend process).
    pub streams: Quota,
    /// REST log reads in progress now.
    pub log_reads: Quota,
    /// Memory of every app times its replicas, in MB.
    pub memory_mb: Quota,
    /// CPU of every app times its replicas, in millicores.
    pub cpu_millis: Quota,
    /// What an app gets when it asks for nothing.
    pub app_default: AppResources,
    /// The most one app may ask for.
    pub app_max: AppResources,
}

impl QuotaView {
    pub fn new(quotas: &Quotas, usage: Usage, streams: u32, log_reads: u32) -> Self {
        let quota = |used: u64, limit: u64| Quota { used, limit };
        Self {
            apps: quota(usage.apps.into(), quotas.apps.into()),
            queued_deployments: quota(
                usage.queued_deployments.into(),
                quotas.queued_deployments.into(),
            ),
            streams: quota(streams.into(), quotas.streams.into()),
            log_reads: quota(log_reads.into(), quotas.log_reads.into()),
            memory_mb: quota(usage.footprint.memory_mb, quotas.memory_mb),
            cpu_millis: quota(usage.footprint.cpu_millis, quotas.cpu_millis),
            app_default: quotas.app.effective(StoredResources::default()),
            app_max: AppResources {
                memory_mb: quotas.app.max_memory_mb,
                cpu_millis: quotas.app.max_cpu_millis,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_nulls_follow_the_defaults_and_requests_apply_field_by_field() {
        let bounds = Quotas::default().app;
        let stored = StoredResources::from_columns(Some(256), None);
        assert_eq!(
            bounds.effective(stored),
            AppResources {
                memory_mb: 256,
                cpu_millis: 1000
            }
        );
        let request: ResourcesRequest =
            serde_json::from_str(r#"{"memory_mb": null, "cpu_millis": 250}"#).unwrap();
        let changed = stored.apply(&request);
        assert_eq!(changed, StoredResources::from_columns(None, Some(250)));
        let absent: ResourcesRequest = serde_json::from_str("{}").unwrap();
        assert_eq!(stored.apply(&absent), stored);
        assert!(serde_json::from_str::<ResourcesRequest>(r#"{"disk_mb": 1}"#).is_err());
    }

    #[test]
    fn per_app_bounds_name_the_field() {
        let bounds = Quotas::default().app;
        let request = ResourcesRequest {
            memory_mb: Some(Some(8192)),
            cpu_millis: Some(Some(10)),
        };
        let fields: Vec<_> = bounds
            .check(&request)
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["resources.memory_mb", "resources.cpu_millis"]);
        let fine = ResourcesRequest {
            memory_mb: Some(Some(4096)),
            cpu_millis: Some(None),
        };
        assert!(bounds.check(&fine).is_empty());
    }

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
