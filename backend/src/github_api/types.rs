//! What berth reads from GitHub, and the OAuth app it signs in with.

use serde::{Deserialize, Serialize};
use std::fmt;
use utoipa::ToSchema;

/// berth's OAuth app on GitHub (`BERTH_GITHUB_CLIENT_ID`/`_SECRET`).
#[derive(Clone)]
pub struct OAuthApp {
    /// GitHub's web site (`BERTH_GITHUB_URL`), without a trailing `/`.
    pub web_url: String,
    pub client_id: String,
    pub client_secret: String,
}

impl fmt::Debug for OAuthApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthApp")
            .field("web_url", &self.web_url)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// A user's GitHub token; never printed.
#[derive(Clone, Deserialize)]
pub struct OAuthToken {
    pub access_token: String,
    /// Comma-separated scopes GitHub granted.
    #[serde(default)]
    pub scope: String,
}

impl fmt::Debug for OAuthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OAuthToken(scope: {:?}, ..)", self.scope)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct GitHubUser {
    pub id: i64,
    pub login: String,
    /// The public email, or the verified primary one.
    pub email: Option<String>,
}

/// A repository the user can see.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Repo {
    #[schema(example = "octocat/Hello-World")]
    pub full_name: String,
    pub private: bool,
    #[serde(default)]
    pub default_branch: Option<String>,
    #[schema(example = "https://github.com/octocat/Hello-World.git")]
    pub clone_url: String,
    #[serde(default)]
    pub pushed_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Branch {
    pub name: String,
    /// The commit at the branch's head.
    pub sha: String,
}
