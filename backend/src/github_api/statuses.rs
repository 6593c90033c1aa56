//! The three GitHub calls that report a deployment (create a Deployment, add
//! a deployment status, set a commit status), behind a small trait so the
//! reporter (`github_status`) can be tested against any server speaking
//! GitHub's REST API. Failures are read as "try again (maybe after a given
//! time)" or "GitHub will never accept this": that decides retry or abandon.

use super::{classify, unreachable, Failure, ReqwestGitHub};
use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// GitHub asks for at least a minute after a secondary rate limit that
/// names no time.
const SECONDARY_LIMIT_WAIT: Duration = Duration::from_secs(60);

/// `owner/repo` on GitHub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoName {
    pub owner: String,
    pub repo: String,
}

/// `POST /repos/{owner}/{repo}/deployments`.
#[derive(Debug, Clone, Serialize)]
pub struct NewDeployment {
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub environment: String,
    pub description: String,
    /// berth deploys the commit it built: never merge the default branch in.
    pub auto_merge: bool,
    /// berth decides what to deploy; it does not wait for checks.
    pub required_contexts: Vec<String>,
    pub transient_environment: bool,
}

/// `POST /repos/{owner}/{repo}/deployments/{id}/statuses`.
#[derive(Debug, Clone, Serialize)]
pub struct NewDeploymentStatus {
    pub state: String,
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_url: Option<String>,
}

/// `POST /repos/{owner}/{repo}/statuses/{sha}`.
#[derive(Debug, Clone, Serialize)]
pub struct NewCommitStatus {
    pub state: String,
    pub description: String,
    pub context: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusError {
    /// Worth another try: GitHub was unreachable, failed, or rate limited.
    #[error("{reason}")]
    Retry {
        reason: String,
        /// When GitHub said when to come back.
        after: Option<Duration>,
    },
    /// GitHub refused; the same call would be refused again.
    #[error("{0}")]
    Refused(String),
}

/// The calls that report deployments to GitHub.
#[async_trait]
pub trait DeploymentStatusApi: Send + Sync {
    /// Creates a Deployment; returns GitHub's id of it.
    async fn create_deployment(
        &self,
        repo: &RepoName,
        deployment: &NewDeployment,
        token: &str,
    ) -> Result<u64, StatusError>;

    async fn create_deployment_status(
        &self,
        repo: &RepoName,
        github_id: u64,
        status: &NewDeploymentStatus,
        token: &str,
    ) -> Result<(), StatusError>;

    async fn create_commit_status(
        &self,
        repo: &RepoName,
        sha: &str,
        status: &NewCommitStatus,
        token: &str,
    ) -> Result<(), StatusError>;
}

#[derive(Deserialize)]
struct Created {
    id: u64,
}

impl From<Failure> for StatusError {
    fn from(failure: Failure) -> Self {
        let (status, message, wait) = match failure {
            Failure::Unreachable(reason) => {
                return Self::Retry {
                    reason: format!("GitHub cannot be reached: {reason}"),
                    after: None,
                }
            }
            Failure::Answered {
                status,
                message,
                wait,
            } => (status, message, wait),
        };
        let said = |what: &str| {
            if message.is_empty() {
                format!("GitHub answered {status}: {what}")
            } else {
                format!("GitHub answered {status}: {message}")
            }
        };
        let rate_limited = status == StatusCode::TOO_MANY_REQUESTS
            || (status == StatusCode::FORBIDDEN
                && (wait.is_some() || message.to_ascii_lowercase().contains("rate limit")));
        if rate_limited {
            return Self::Retry {
                reason: said("rate limited"),
                after: Some(wait.unwrap_or(SECONDARY_LIMIT_WAIT)),
            };
        }
        if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
            return Self::Retry {
                reason: said("server error"),
                after: wait,
            };
        }
        Self::Refused(match status {
            StatusCode::UNAUTHORIZED => {
                "GitHub refused the owner's token (revoked or expired); sign in with GitHub again"
                    .into()
            }
            StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => format!(
                "GitHub answered {status}: the repository is gone or the owner's token may not \
                 report deployments on it (it needs repo_deployment and repo:status, or repo)"
            ),
            _ => said("refused"),
        })
    }
}

impl ReqwestGitHub {
    async fn post_json<B: Serialize + Sync>(
        &self,
        path: &str,
        body: &B,
        token: &str,
    ) -> Result<reqwest::Response, StatusError> {
        let response = self
            .request(Method::POST, path, token)
            .json(body)
            .send()
            .await
            .map_err(unreachable)?;
        Ok(classify(response).await?)
    }
}

#[async_trait]
impl DeploymentStatusApi for ReqwestGitHub {
    async fn create_deployment(
        &self,
        repo: &RepoName,
        deployment: &NewDeployment,
        token: &str,
    ) -> Result<u64, StatusError> {
        let path = format!("/repos/{}/{}/deployments", repo.owner, repo.repo);
        let response = self.post_json(&path, deployment, token).await?;
        // 202 means GitHub merged instead of deploying, which auto_merge
        // false rules out; an answer without an id is not a Deployment.
        let created: Created = response
            .json()
            .await
            .map_err(|_| StatusError::Refused("GitHub answered without a deployment id".into()))?;
        Ok(created.id)
    }

    async fn create_deployment_status(
        &self,
        repo: &RepoName,
        github_id: u64,
        status: &NewDeploymentStatus,
        token: &str,
    ) -> Result<(), StatusError> {
        let path = format!(
            "/repos/{}/{}/deployments/{github_id}/statuses",
            repo.owner, repo.repo
        );
        self.post_json(&path, status, token).await.map(drop)
    }

    async fn create_commit_status(
        &self,
        repo: &RepoName,
        sha: &str,
        status: &NewCommitStatus,
        token: &str,
    ) -> Result<(), StatusError> {
        let path = format!("/repos/{}/{}/statuses/{sha}", repo.owner, repo.repo);
        self.post_json(&path, status, token).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::github_api::tests::response;

    async fn outcome(status: u16, headers: &[(&str, &str)], message: &str) -> StatusError {
        classify(response(status, headers, message))
            .await
            .map_err(StatusError::from)
            .unwrap_err()
    }

    #[tokio::test]
    async fn rate_limits_and_server_errors_are_retried_refusals_are_not() {
        let retry_after = outcome(403, &[("retry-after", "30")], "secondary rate limit").await;
        assert!(
            matches!(retry_after, StatusError::Retry { after: Some(d), .. } if d == Duration::from_secs(30))
        );
        let worded = outcome(403, &[], "You have exceeded a secondary rate limit.").await;
        assert!(
            matches!(worded, StatusError::Retry { after: Some(d), .. } if d == SECONDARY_LIMIT_WAIT)
        );
        let exhausted = outcome(429, &[("x-ratelimit-remaining", "0")], "").await;
        assert!(matches!(
            exhausted,
            StatusError::Retry { after: Some(_), .. }
        ));
        let unavailable = outcome(503, &[], "").await;
        assert!(matches!(
            unavailable,
            StatusError::Retry { after: None, .. }
        ));

        let forbidden = outcome(403, &[], "Resource not accessible by integration").await;
        assert!(matches!(forbidden, StatusError::Refused(ref r) if r.contains("repo_deployment")));
        assert!(matches!(outcome(401, &[], "Bad credentials").await,
            StatusError::Refused(ref r) if r.contains("sign in with GitHub again")));
        assert_eq!(
            outcome(422, &[], "No commit found for SHA: abc").await,
            StatusError::Refused(
                "GitHub answered 422 Unprocessable Entity: No commit found for SHA: abc".into()
            )
        );
    }

    #[test]
    fn no_answer_is_worth_another_try() {
        assert_eq!(
            StatusError::from(Failure::Unreachable("timed out".into())),
            StatusError::Retry {
                reason: "GitHub cannot be reached: timed out".into(),
                after: None
            }
        );
    }
}
