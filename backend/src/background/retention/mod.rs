//! Retention: what rollback can no longer reach is pruned.
//!
//! * A release is kept while it is among its app's newest
//!   `BERTH_ROLLBACK_RELEASES`, is the app's current release, or a
//!   deployment in progress or live uses it. Every release of a deleted app
//!   goes. A pruned release's image is deleted from the registry unless a
//!   kept release uses the same image (a rebuild of a commit reuses it),
//!   and the release is marked `pruned_at`: rollback then refuses it.
//! * The log topics of apps deleted longer ago than the grace (the
//!   log-streamer may still ship their last lines) are deleted, when the
//!   broker deletes topics one at a time (`BERTH_LOG_TOPIC_DELETE`; tansu
//!   0.6 deletes every topic instead). Their records expire with the
//!   topic's `retention.ms` either way.
//!
//! One backend replica prunes at a time (an advisory lock).

pub mod registry;

use crate::error::Result;
use berth_common::log_topics::LogTopics;
use registry::ImageStore;
use sqlx::PgPool;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const RETENTION_LOCK: i64 = 0x6265_7274_685f_7265; // "berth_re"

pub struct Retention<I> {
    db: PgPool,
    images: I,
    topics: Option<LogTopics>,
    settings: RetentionSettings,
}

#[derive(Debug, Clone)]
pub struct RetentionSettings {
    /// Releases of an app rollback reaches besides the current one.
    pub rollback_releases: u32,
    /// How long a deleted app's log topic stays.
    pub topic_grace: Duration,
    pub interval: Duration,
}

/// What one pass pruned.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub releases: usize,
    pub images: usize,
    pub log_topics: usize,
}

impl<I: ImageStore> Retention<I> {
    /// `topics` is `None` when log topics are not to be deleted.
    pub fn new(
        db: PgPool,
        images: I,
        topics: Option<LogTopics>,
        settings: RetentionSettings,
    ) -> Self {
        Self {
            db,
            images,
            topics,
            settings,
        }
    }

    pub async fn run(self, shutdown: CancellationToken) {
        super::every(self.settings.interval, shutdown, || async {
            match self.prune().await {
                Ok(pruned) if pruned != Pruned::default() => tracing::info!(?pruned, "pruned"),
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "retention could not finish; next pass retries")
                }
            }
        })
        .await;
    }

    /// One pass; nothing when another replica holds the lock.
    pub async fn prune(&self) -> Result<Pruned> {
        let mut lock = self.db.begin().await?;
        if !crate::db::try_lead(&mut lock, RETENTION_LOCK).await? {
            return Ok(Pruned::default());
        }
        let mut pruned = self.prune_releases().await?;
        pruned.log_topics = self.prune_log_topics().await?;
        lock.commit().await?;
        Ok(pruned)
    }

    async fn prune_releases(&self) -> Result<Pruned> {
        let doomed: Vec<(Uuid, String)> = sqlx::query_as(
            "WITH ranked AS (
                 SELECT r.id, r.image, a.deleted_at IS NOT NULL AS app_deleted,
                        r.id IS NOT DISTINCT FROM a.current_release_id AS current,
                        row_number() OVER (PARTITION BY r.app_id
                                           ORDER BY r.created_at DESC, r.id DESC) AS rank
                 FROM releases r JOIN apps a ON a.id = r.app_id
                 WHERE r.pruned_at IS NULL)
             SELECT id, image FROM ranked x
             WHERE x.app_deleted
                OR (x.rank > $1 AND NOT x.current AND NOT EXISTS (
                        SELECT 1 FROM deployments d WHERE d.release_id = x.id
                        AND d.state IN ('queued', 'cloning', 'building', 'pushing',
                                        'deploying', 'live')))",
        )
        .bind(i64::from(self.settings.rollback_releases))
        .fetch_all(&self.db)
        .await?;
        if doomed.is_empty() {
            return Ok(Pruned::default());
        }
        let mut by_image: BTreeMap<String, Vec<Uuid>> = BTreeMap::new();
        for (id, image) in &doomed {
            by_image.entry(image.clone()).or_default().push(*id);
        }
        let ids: Vec<Uuid> = doomed.iter().map(|(id, _)| *id).collect();
        let images: Vec<String> = by_image.keys().cloned().collect();
        let still_used: BTreeSet<String> = sqlx::query_scalar(
            "SELECT DISTINCT image FROM releases
             WHERE pruned_at IS NULL AND image = ANY($1) AND NOT (id = ANY($2))",
        )
        .bind(&images)
        .bind(&ids)
        .fetch_all(&self.db)
        .await?
        .into_iter()
        .collect();
        let mut pruned = Pruned::default();
        for (image, releases) in by_image {
            if !still_used.contains(&image) {
                if let Err(error) = self.images.delete(&image).await {
                    tracing::warn!(%error, image, "could not delete a release image");
                    continue;
                }
                pruned.images += 1;
                metrics::counter!("berth_retention_pruned_total", "what" => "image").increment(1);
            }
            sqlx::query("UPDATE releases SET pruned_at = now() WHERE id = ANY($1)")
                .bind(&releases)
                .execute(&self.db)
                .await?;
            pruned.releases += releases.len();
            metrics::counter!("berth_retention_pruned_total", "what" => "release")
                .increment(releases.len() as u64);
        }
        Ok(pruned)
    }

    async fn prune_log_topics(&self) -> Result<usize> {
        let Some(topics) = &self.topics else {
            return Ok(0);
        };
        let deleted: BTreeSet<Uuid> = sqlx::query_scalar(
            "SELECT id FROM apps
             WHERE deleted_at < now() - make_interval(secs => $1)",
        )
        .bind(self.settings.topic_grace.as_secs_f64())
        .fetch_all(&self.db)
        .await?
        .into_iter()
        .collect();
        let unavailable = |e: berth_common::logs::LogError| {
            crate::error::Error::Unavailable(format!("the log broker: {e}"))
        };
        let existing = topics.apps().await.map_err(unavailable)?;
        let doomed: Vec<Uuid> = existing.intersection(&deleted).copied().collect();
        topics.delete(&doomed).await.map_err(unavailable)?;
        metrics::counter!("berth_retention_pruned_total", "what" => "log_topic")
            .increment(doomed.len() as u64);
        Ok(doomed.len())
    }
}
