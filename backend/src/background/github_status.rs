//! The status reporter: sends the queued GitHub reports, each deployment's
//! in order (a report goes only after every earlier one of its deployment
//! was sent or abandoned), with the owner's token. Network errors, 5xx and
//! rate limits are retried with exponential backoff and jitter (GitHub's
//! `Retry-After` / `x-ratelimit-reset` win when longer); after a bounded
//! number of attempts or age, or when GitHub refuses (401/403/404/422), a
//! report is abandoned with the reason. Nothing here fails a deployment.

use crate::error::{Error, Result};
use crate::github_api::statuses::{
    DeploymentStatusApi, NewCommitStatus, NewDeployment, NewDeploymentStatus, RepoName, StatusError,
};
use crate::github_status::Kind;
use berth_proto::{Binding, Sealed, SecretKey};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use rand::Rng;
use sqlx::types::Json as SqlJson;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct ReporterSettings {
    /// Polling interval when nobody wakes the reporter.
    pub poll: Duration,
    /// The wait after the first failure; it doubles up to `max_backoff`.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// A report is abandoned after this many failed attempts...
    pub max_attempts: i32,
    /// ...or when it fails and is older than this.
    pub max_age: Duration,
    /// How long a taken report is left to this reporter (another backend
    /// process skips it meanwhile); longer than one call can take.
    pub lease: Duration,
    pub batch_size: i64,
    /// Deployments reported at once.
    pub concurrency: usize,
    /// BERTH_PUBLIC_URL without a trailing `/`: the base of the log links.
    /// Without it, reports carry no link.
    pub public_url: Option<String>,
}

impl Default for ReporterSettings {
    fn default() -> Self {
        Self {
            poll: Duration::from_secs(2),
            min_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(10 * 60),
            max_attempts: 8,
            max_age: Duration::from_secs(3600),
            lease: Duration::from_secs(120),
            batch_size: 50,
            concurrency: 8,
            public_url: None,
        }
    }
}

impl ReporterSettings {
    /// The wait before attempt `attempts + 1`: exponential, capped, with
    /// jitter (half to all of it) so that retries do not come in waves.
    pub fn backoff(&self, attempts: i32) -> Duration {
        let exponent = attempts.saturating_sub(1).clamp(0, 30) as u32;
        let base = self
            .min_backoff
            .saturating_mul(2u32.saturating_pow(exponent))
            .min(self.max_backoff);
        base.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
    }
}

/// The web UI's page of a deployment (its logs).
pub fn log_url(public_url: &str, app_id: Uuid, deployment_id: Uuid) -> String {
    format!("{public_url}/apps/{app_id}/deployments/{deployment_id}")
}

pub struct StatusReporter<A> {
    db: PgPool,
    key: SecretKey,
    api: A,
    wake: Arc<Notify>,
    settings: ReporterSettings,
}

#[derive(sqlx::FromRow)]
struct Due {
    id: i64,
    deployment_id: Uuid,
    kind: String,
    state: Option<String>,
    description: String,
    environment_url: Option<String>,
    attempts: i32,
    created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct Target {
    owner: String,
    repo: String,
    environment: String,
    commit_sha: Option<String>,
    github_id: Option<i64>,
    app_id: Uuid,
    owner_id: Uuid,
    token_sealed: Option<SqlJson<Sealed>>,
}

/// Why a report was not sent.
enum Failure {
    Retry(String, Option<Duration>),
    Abandon(String),
}

impl From<StatusError> for Failure {
    fn from(error: StatusError) -> Self {
        match error {
            StatusError::Retry { reason, after } => Self::Retry(reason, after),
            StatusError::Refused(reason) => Self::Abandon(reason),
        }
    }
}

impl<A: DeploymentStatusApi> StatusReporter<A> {
    pub fn new(
        db: PgPool,
        key: SecretKey,
        api: A,
        wake: Arc<Notify>,
        settings: ReporterSettings,
    ) -> Self {
        Self {
            db,
            key,
            api,
            wake,
            settings,
        }
    }

    /// Reports until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!("GitHub status reporter started");
        while !shutdown.is_cancelled() {
            match self.send_due().await {
                // The next reports of these deployments may be due now.
                Ok(handled) if handled > 0 => continue,
                Ok(_) => self.record_backlog().await,
                Err(error) => tracing::warn!(%error, "the GitHub status reporter cannot run"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.settings.poll) => {}
            }
        }
        tracing::info!("GitHub status reporter stopped");
    }

    async fn record_backlog(&self) {
        let pending = sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM github_status_reports WHERE sent_at IS NULL AND abandoned_at IS NULL",
        )
        .fetch_one(&self.db)
        .await;
        match pending {
            Ok(count) => metrics::gauge!("berth_github_status_backlog").set(count as f64),
            Err(error) => tracing::debug!(%error, "cannot count the GitHub reports waiting"),
        }
    }

    /// Takes the first unsent report of each deployment that is due and
    /// tries it; returns how many were tried.
    pub async fn send_due(&self) -> Result<usize> {
        let due = sqlx::query_as::<_, Due>(
            "UPDATE github_status_reports
             SET next_attempt_at = now() + make_interval(secs => $1)
             WHERE id IN (
                 SELECT id FROM (
                     SELECT DISTINCT ON (deployment_id) id, next_attempt_at
                     FROM github_status_reports
                     WHERE sent_at IS NULL AND abandoned_at IS NULL
                     ORDER BY deployment_id, id
                 ) head
                 WHERE next_attempt_at <= now() ORDER BY next_attempt_at LIMIT $2
             ) AND next_attempt_at <= now() AND sent_at IS NULL AND abandoned_at IS NULL
             RETURNING id, deployment_id, kind, state, description, environment_url, attempts,
                       created_at",
        )
        .bind(self.settings.lease.as_secs_f64())
        .bind(self.settings.batch_size)
        .fetch_all(&self.db)
        .await?;
        let count = due.len();
        futures::stream::iter(due)
            .for_each_concurrent(self.settings.concurrency.max(1), |report| async move {
                let id = report.id;
                if let Err(error) = self.attempt(report).await {
                    // The lease runs out and the report is tried again.
                    tracing::warn!(report_id = id, %error, "cannot record a GitHub report");
                }
            })
            .await;
        Ok(count)
    }

    async fn attempt(&self, report: Due) -> Result<()> {
        let outcome = self.send(&report).await;
        let attempts = report.attempts + 1;
        let (id, deployment_id) = (report.id, report.deployment_id);
        let failure = match outcome {
            Ok(()) => {
                sqlx::query(
                    "UPDATE github_status_reports SET sent_at = now(), attempts = $2,
                         last_error = NULL WHERE id = $1",
                )
                .bind(id)
                .bind(attempts)
                .execute(&self.db)
                .await?;
                metrics::counter!("berth_github_status_reports_total", "outcome" => "sent")
                    .increment(1);
                tracing::debug!(report_id = id, %deployment_id, kind = %report.kind, "reported to GitHub");
                return Ok(());
            }
            Err(failure) => failure,
        };
        let old = Utc::now() - report.created_at
            > chrono::Duration::from_std(self.settings.max_age)
                .unwrap_or(chrono::Duration::weeks(52));
        let reason = match failure {
            Failure::Retry(reason, after) if attempts < self.settings.max_attempts && !old => {
                let wait = self
                    .settings
                    .backoff(attempts)
                    .max(after.unwrap_or_default());
                sqlx::query(
                    "UPDATE github_status_reports SET attempts = $2, last_error = $3,
                         next_attempt_at = now() + make_interval(secs => $4) WHERE id = $1",
                )
                .bind(id)
                .bind(attempts)
                .bind(&reason)
                .bind(wait.as_secs_f64())
                .execute(&self.db)
                .await?;
                metrics::counter!("berth_github_status_reports_total", "outcome" => "retried")
                    .increment(1);
                tracing::info!(report_id = id, %deployment_id, %reason, ?wait,
                    "GitHub report failed; retrying");
                return Ok(());
            }
            Failure::Retry(reason, _) => format!("gave up after {attempts} attempts: {reason}"),
            Failure::Abandon(reason) => reason,
        };
        sqlx::query(
            "UPDATE github_status_reports SET attempts = $2, last_error = $3, abandoned_at = now()
             WHERE id = $1",
        )
        .bind(id)
        .bind(attempts)
        .bind(&reason)
        .execute(&self.db)
        .await?;
        metrics::counter!("berth_github_status_reports_total", "outcome" => "abandoned")
            .increment(1);
        tracing::warn!(report_id = id, %deployment_id, kind = %report.kind, %reason,
            "GitHub report abandoned");
        Ok(())
    }

    /// One GitHub call for `report`.
    async fn send(&self, report: &Due) -> std::result::Result<(), Failure> {
        let target = sqlx::query_as::<_, Target>(
            "SELECT g.owner, g.repo, g.environment, g.commit_sha, g.github_id, d.app_id,
                    a.owner_id, gh.token_sealed
             FROM github_deployments g JOIN deployments d ON d.id = g.deployment_id
             JOIN apps a ON a.id = d.app_id
             LEFT JOIN github_accounts gh ON gh.user_id = a.owner_id
             WHERE g.deployment_id = $1",
        )
        .bind(report.deployment_id)
        .fetch_one(&self.db)
        .await
        .map_err(|e| Failure::Retry(Error::from(e).to_string(), None))?;
        let Some(sealed) = target.token_sealed else {
            return Err(Failure::Abandon(
                "the app's owner no longer has a linked GitHub account".into(),
            ));
        };
        let token = self
            .key
            .open(&Binding::github_token(target.owner_id), &sealed.0)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| Failure::Abandon("the stored GitHub token cannot be opened".into()))?;
        let Some(sha) = target.commit_sha else {
            return Err(Failure::Abandon("no commit to report".into()));
        };
        let repo = RepoName {
            owner: target.owner,
            repo: target.repo,
        };
        let log_url = self
            .settings
            .public_url
            .as_deref()
            .map(|public| log_url(public, target.app_id, report.deployment_id));
        let state = report.state.clone().unwrap_or_default();
        match Kind::parse(&report.kind) {
            Some(Kind::Deployment) => {
                let deployment = NewDeployment {
                    git_ref: sha,
                    environment: target.environment,
                    description: report.description.clone(),
                    auto_merge: false,
                    required_contexts: Vec::new(),
                    transient_environment: false,
                };
                let github_id = self
                    .api
                    .create_deployment(&repo, &deployment, &token)
                    .await?;
                sqlx::query(
                    "UPDATE github_deployments SET github_id = $2 WHERE deployment_id = $1",
                )
                .bind(report.deployment_id)
                .bind(i64::try_from(github_id).unwrap_or(i64::MAX))
                .execute(&self.db)
                .await
                .map_err(|e| Failure::Retry(Error::from(e).to_string(), None))?;
                Ok(())
            }
            Some(Kind::DeploymentStatus) => {
                let Some(github_id) = target.github_id else {
                    return Err(Failure::Abandon(
                        "the GitHub deployment was never created".into(),
                    ));
                };
                let status = NewDeploymentStatus {
                    state,
                    description: report.description.clone(),
                    environment_url: report.environment_url.clone(),
                    log_url,
                };
                let github_id = u64::try_from(github_id).unwrap_or_default();
                Ok(self
                    .api
                    .create_deployment_status(&repo, github_id, &status, &token)
                    .await?)
            }
            Some(Kind::CommitStatus) => {
                let status = NewCommitStatus {
                    state,
                    description: report.description.clone(),
                    context: format!("berth/{}", target.environment),
                    target_url: log_url,
                };
                Ok(self
                    .api
                    .create_commit_status(&repo, &sha, &status, &token)
                    .await?)
            }
            None => Err(Failure::Abandon(format!(
                "unknown report kind `{}`",
                report.kind
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let settings = ReporterSettings {
            min_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(60),
            ..Default::default()
        };
        for (attempts, full) in [(1, 2), (2, 4), (3, 8), (5, 32), (6, 60), (40, 60)] {
            let wait = settings.backoff(attempts);
            let full = Duration::from_secs(full);
            assert!(wait <= full && wait >= full / 2, "{attempts}: {wait:?}");
        }
    }

    #[test]
    fn log_links_go_to_the_deployments_page() {
        let (app, deployment) = (Uuid::nil(), Uuid::max());
        assert_eq!(
            log_url("https://berth.example.com", app, deployment),
            format!("https://berth.example.com/apps/{app}/deployments/{deployment}")
        );
    }
}
