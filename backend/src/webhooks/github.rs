//! berth's GitHub client: registering an app's hook on its repository, and
//! (in `crate::github`) OAuth sign-in, the user, their repositories and
//! branches. Through GitHub's REST API (`BERTH_GITHUB_API_URL`; GitHub
//! Enterprise works with its `/api/v3` URL) and web site (`BERTH_GITHUB_URL`).

use async_trait::async_trait;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;

pub const DEFAULT_API_URL: &str = "https://api.github.com";

#[derive(Debug, thiserror::Error)]
pub enum GitHubError {
    #[error("GitHub refused the token")]
    BadToken,
    #[error("the repository does not exist, or the token may not manage its hooks (it needs admin:repo_hook)")]
    NoAccess,
    #[error("GitHub refused the hook: {0}")]
    Refused(String),
    #[error("GitHub cannot be reached: {0}")]
    Unavailable(String),
    #[error("GitHub sign-in is not configured on this server")]
    NotConfigured,
}

pub use crate::github::types::{Branch, GitHubUser, OAuthApp, OAuthToken, Repo};

/// What berth needs from GitHub.
#[async_trait]
pub trait GitHubClient: Send + Sync {
    /// The host repositories are on (`github.com` for the public API).
    fn host(&self) -> &str;

    /// Makes `owner/repo` deliver push events to `url`, signed with
    /// `secret`: creates the hook, or updates the one already delivering to
    /// `url` (a rotated secret). Returns the hook's id.
    async fn create_hook(
        &self,
        owner: &str,
        repo: &str,
        url: &str,
        secret: &str,
        token: &str,
    ) -> Result<u64, GitHubError>;

    /// The OAuth app berth signs in with, when one is configured.
    fn oauth_app(&self) -> Option<&OAuthApp>;

    /// Exchanges an authorization code (and its PKCE verifier) for a token.
    async fn exchange_code(
        &self,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
    ) -> Result<OAuthToken, GitHubError>;

    /// The token's user; `email` is their verified primary address, also
    /// when their profile hides it.
    async fn user(&self, token: &str) -> Result<GitHubUser, GitHubError>;

    /// Every repository the token's user can see, most recently pushed first.
    async fn repos(&self, token: &str) -> Result<Vec<Repo>, GitHubError>;

    /// Every branch of `owner/repo`.
    async fn branches(
        &self,
        owner: &str,
        repo: &str,
        token: &str,
    ) -> Result<Vec<Branch>, GitHubError>;
}

/// `owner` and `repo` of a repository URL on `host`
/// (`https://github.com/o/r.git` → `("o", "r")`).
pub fn repository(repo_url: &str, host: &str) -> Option<(String, String)> {
    let url = url::Url::parse(repo_url.trim()).ok()?;
    if !url.host_str()?.eq_ignore_ascii_case(host) {
        return None;
    }
    let parts: Vec<&str> = url.path_segments()?.filter(|s| !s.is_empty()).collect();
    let [owner, repo] = parts.as_slice() else {
        return None;
    };
    let repo = repo.strip_suffix(".git").unwrap_or(repo);
    (!repo.is_empty()).then(|| ((*owner).to_owned(), repo.to_owned()))
}

/// GitHub's REST API over reqwest.
pub struct ReqwestGitHub {
    pub(crate) http: reqwest::Client,
    pub(crate) api: String,
    host: String,
    pub(crate) oauth: Option<OAuthApp>,
}

impl ReqwestGitHub {
    pub fn new(api_url: &str) -> anyhow::Result<Self> {
        let api = url::Url::parse(api_url)?;
        let host = match api.host_str() {
            Some("api.github.com") => "github.com".to_owned(),
            Some(host) => host.to_owned(),
            None => anyhow::bail!("the GitHub API URL has no host"),
        };
        let http = reqwest::Client::builder()
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(15))
            .build()?;
        Ok(Self {
            http,
            api: api.as_str().trim_end_matches('/').to_owned(),
            host,
            oauth: None,
        })
    }

    /// Signs users in with this OAuth app.
    pub fn with_oauth(mut self, oauth: Option<OAuthApp>) -> Self {
        self.oauth = oauth;
        self
    }

    pub(crate) fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.api))
            .bearer_auth(token)
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
    }
}

#[derive(Deserialize)]
struct Hook {
    id: u64,
    #[serde(default)]
    config: HookConfig,
}

#[derive(Default, Deserialize)]
struct HookConfig {
    url: Option<String>,
}

#[derive(Deserialize)]
struct GitHubMessage {
    message: Option<String>,
}

/// The response, or what GitHub's status means for the user.
pub(crate) async fn check(response: reqwest::Response) -> Result<reqwest::Response, GitHubError> {
    match response.status() {
        status if status.is_success() => Ok(response),
        StatusCode::UNAUTHORIZED => Err(GitHubError::BadToken),
        StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => Err(GitHubError::NoAccess),
        StatusCode::UNPROCESSABLE_ENTITY => {
            let body: Option<GitHubMessage> = response.json().await.ok();
            let message = body.and_then(|b| b.message).unwrap_or_default();
            Err(GitHubError::Refused(message))
        }
        status => Err(GitHubError::Unavailable(format!(
            "GitHub answered {status}"
        ))),
    }
}

pub(crate) fn unreachable(error: reqwest::Error) -> GitHubError {
    GitHubError::Unavailable(error.without_url().to_string())
}

#[async_trait]
impl GitHubClient for ReqwestGitHub {
    fn host(&self) -> &str {
        &self.host
    }

    async fn create_hook(
        &self,
        owner: &str,
        repo: &str,
        url: &str,
        secret: &str,
        token: &str,
    ) -> Result<u64, GitHubError> {
        let hooks = format!("/repos/{owner}/{repo}/hooks");
        let listed = self
            .request(
                reqwest::Method::GET,
                &format!("{hooks}?per_page=100"),
                token,
            )
            .send()
            .await
            .map_err(unreachable)?;
        let existing: Vec<Hook> = check(listed).await?.json().await.map_err(unreachable)?;
        let config =
            json!({"url": url, "content_type": "json", "secret": secret, "insecure_ssl": "0"});
        let request = match existing
            .iter()
            .find(|hook| hook.config.url.as_deref() == Some(url))
        {
            Some(hook) => self
                .request(
                    reqwest::Method::PATCH,
                    &format!("{hooks}/{}", hook.id),
                    token,
                )
                .json(&json!({"active": true, "events": ["push"], "config": config})),
            None => self.request(reqwest::Method::POST, &hooks, token).json(
                &json!({"name": "web", "active": true, "events": ["push"], "config": config}),
            ),
        };
        let response = request.send().await.map_err(unreachable)?;
        let hook: Hook = check(response).await?.json().await.map_err(unreachable)?;
        Ok(hook.id)
    }

    fn oauth_app(&self) -> Option<&OAuthApp> {
        self.oauth.as_ref()
    }

    async fn exchange_code(
        &self,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
    ) -> Result<OAuthToken, GitHubError> {
        self.oauth_exchange(code, verifier, redirect_uri).await
    }

    async fn user(&self, token: &str) -> Result<GitHubUser, GitHubError> {
        self.get_user(token).await
    }

    async fn repos(&self, token: &str) -> Result<Vec<Repo>, GitHubError> {
        self.get_all::<Repo, Repo>("/user/repos?per_page=100&sort=pushed", token)
            .await
    }

    async fn branches(
        &self,
        owner: &str,
        repo: &str,
        token: &str,
    ) -> Result<Vec<Branch>, GitHubError> {
        self.get_all::<crate::github::client::RawBranch, Branch>(
            &format!("/repos/{owner}/{repo}/branches?per_page=100"),
            token,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_on_the_host_are_recognised() {
        let repo = |url| repository(url, "github.com");
        let expected = Some(("Codertocat".to_owned(), "Hello-World".to_owned()));
        assert_eq!(
            repo("https://github.com/Codertocat/Hello-World.git"),
            expected
        );
        assert_eq!(repo("https://GitHub.com/Codertocat/Hello-World/"), expected);
        assert_eq!(repo("https://gitlab.com/Codertocat/Hello-World"), None);
        assert_eq!(repo("https://github.com/Codertocat"), None);
        assert_eq!(repo("https://github.com/o/r/tree/main"), None);
        assert_eq!(repo("file:///srv/repo"), None);
    }

    #[test]
    fn the_host_follows_the_api_url() {
        assert_eq!(
            ReqwestGitHub::new(DEFAULT_API_URL).unwrap().host(),
            "github.com"
        );
        let enterprise = ReqwestGitHub::new("https://git.example.com/api/v3/").unwrap();
        assert_eq!(enterprise.host(), "git.example.com");
        assert_eq!(enterprise.api, "https://git.example.com/api/v3");
    }
}
