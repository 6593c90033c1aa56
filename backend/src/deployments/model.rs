//! What the deployments API reads and answers.

use super::queue::QueuePlace;
use super::store::DeploymentRow;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

pub const DEFAULT_PAGE: i64 = 20;
pub const MAX_PAGE: i64 = 100;

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct CreateDeployment {
    /// Branch or tag to build; the app's branch when absent.
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    /// An exact commit (hex SHA, 7 to 40 characters); wins over `ref`.
    pub commit: Option<String>,
    /// Roll back: deploy this earlier release of the app again, without rebuilding.
    pub release_id: Option<Uuid>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListDeployments {
    /// Page size, 1 to 100 (20 when absent).
    pub limit: Option<i64>,
    /// Only deployments older than this one (the last id of the previous page).
    pub before: Option<Uuid>,
}

/// When a deployment reached a state.
#[derive(Debug, Serialize, ToSchema)]
pub struct StateEntry {
    pub state: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Deployment {
    pub id: Uuid,
    pub app_id: Uuid,
    /// queued, cloning, building, pushing, deploying, live, failed,
    /// cancelled, timed_out, superseded or rolled_back.
    pub state: String,
    /// Every state reached, oldest first.
    pub states: Vec<StateEntry>,
    /// Why it failed or timed out.
    pub reason: Option<String>,
    /// `user` (through the API), `rollback`, `push` (a GitHub push webhook)
    /// or `repair` (berth putting the live release back).
    pub trigger: String,
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    pub commit: Option<String>,
    /// The first line of the commit's message, once known.
    pub commit_message: Option<String>,
    /// The image by digest, once pushed.
    pub image: Option<String>,
    /// Where it answers, once live.
    pub endpoint: Option<String>,
    pub release_id: Uuid,
    /// When retention removed the release's image: it can no longer be
    /// rolled back to.
    pub release_pruned_at: Option<DateTime<Utc>>,
    /// The berth user who asked; null for a push.
    pub created_by: Option<Uuid>,
    /// For a push: the GitHub login that pushed.
    pub pushed_by: Option<String>,
    /// While `queued`: its place in line and when it should start.
    pub queue: Option<QueuePlace>,
    /// While in progress, when its work hit a passing failure (the engine
    /// or the registry away) and waits for another attempt: why, and when.
    pub waiting: Option<Waiting>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Waiting {
    /// What failed, e.g. "the container engine is unavailable: …".
    pub reason: String,
    pub next_attempt_at: DateTime<Utc>,
}

impl Deployment {
    pub fn from_row(
        row: DeploymentRow,
        history: Vec<(String, DateTime<Utc>)>,
        queue: Option<QueuePlace>,
    ) -> Self {
        Self {
            id: row.id,
            app_id: row.app_id,
            state: row.state,
            states: history
                .into_iter()
                .map(|(state, at)| StateEntry { state, at })
                .collect(),
            reason: row.reason,
            trigger: row.trigger,
            git_ref: row.git_ref,
            commit: row.commit_sha,
            commit_message: row.commit_message,
            image: row.image,
            endpoint: row.endpoint,
            release_id: row.release_id,
            release_pruned_at: row.release_pruned_at,
            created_by: row.created_by,
            pushed_by: row.pushed_by,
            waiting: match (row.waiting_reason, row.next_attempt_at) {
                (Some(reason), Some(next_attempt_at)) => Some(Waiting {
                    reason,
                    next_attempt_at,
                }),
                _ => None,
            },
            queue,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// A commit message's first line, at most 200 characters: what a history
/// shows.
pub fn commit_summary(message: &str) -> String {
    let line = message.lines().next().unwrap_or_default().trim();
    line.chars().take(200).collect()
}
