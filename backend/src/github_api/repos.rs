//! The user's repositories and a repository's branches, every page.

use super::types::{Branch, Repo};
use super::{GitHubError, ReqwestGitHub};
use serde::Deserialize;

/// A branch in GitHub's shape.
#[derive(Deserialize)]
struct RawBranch {
    name: String,
    commit: RawCommit,
}

#[derive(Deserialize)]
struct RawCommit {
    sha: String,
}

impl From<RawBranch> for Branch {
    fn from(raw: RawBranch) -> Self {
        Self {
            name: raw.name,
            sha: raw.commit.sha,
        }
    }
}

impl ReqwestGitHub {
    pub(super) async fn list_repos(&self, token: &str) -> Result<Vec<Repo>, GitHubError> {
        self.get_all::<Repo, Repo>("/user/repos?per_page=100&sort=pushed", token)
            .await
    }

    pub(super) async fn list_branches(
        &self,
        owner: &str,
        repo: &str,
        token: &str,
    ) -> Result<Vec<Branch>, GitHubError> {
        self.get_all::<RawBranch, Branch>(
            &format!("/repos/{owner}/{repo}/branches?per_page=100"),
            token,
        )
        .await
    }
}
