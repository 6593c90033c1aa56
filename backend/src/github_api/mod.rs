//! berth's one GitHub client: GitHub's REST API (`BERTH_GITHUB_API_URL`;
//! GitHub Enterprise works with its `/api/v3` URL) and web site
//! (`BERTH_GITHUB_URL`, for OAuth), over reqwest.
//!
//! This module holds the client, its errors and the one place a failed
//! answer is read ([`classify`]); the calls are grouped by what they are
//! for: registering push hooks (`hooks`), signing in (`oauth`), the user's
//! repositories and branches (`repos`, paged by `pages`), reporting
//! deployments (`statuses`). What repository a URL names is `repo_url`.
//! Nothing here knows berth's database or HTTP API: callers turn
//! [`GitHubError`] into the problem their users see.

pub mod hooks;
pub mod oauth;
pub mod pages;
pub mod repo_url;
pub mod repos;
pub mod statuses;
pub mod types;

pub use types::{Branch, GitHubUser, OAuthApp, OAuthToken, Repo};

use async_trait::async_trait;
use chrono::Utc;
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde::Deserialize;
use std::time::Duration;

pub const DEFAULT_API_URL: &str = "https://api.github.com";

/// The longest wait a rate limit's headers may ask for.
pub const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(3600);

/// What went wrong with a call, for the hooks, sign-in and repository
/// calls (the status reports have [`statuses::StatusError`]).
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

    /// A call to `path` under the API, with `token`.
    pub(crate) fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
    ) -> reqwest::RequestBuilder {
        self.to_url(method, &format!("{}{path}", self.api), token)
    }

    /// A call to a whole `url` (a next page GitHub named), with `token`.
    fn to_url(&self, method: reqwest::Method, url: &str, token: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, url)
            .bearer_auth(token)
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
    }
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
        self.put_hook(owner, repo, url, secret, token).await
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
        self.list_repos(token).await
    }

    async fn branches(
        &self,
        owner: &str,
        repo: &str,
        token: &str,
    ) -> Result<Vec<Branch>, GitHubError> {
        self.list_branches(owner, repo, token).await
    }
}

/// A call that did not succeed: what GitHub answered, or that it could not
/// be reached. [`GitHubError`] and [`statuses::StatusError`] are two
/// readings of this, for users and for the status reporter's retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No answer (connection, timeout, an unreadable body); the reason.
    Unreachable(String),
    /// An answer other than 2xx.
    Answered {
        status: StatusCode,
        /// GitHub's `message`, or empty.
        message: String,
        /// How long GitHub's headers say to wait, if they do.
        wait: Option<Duration>,
    },
}

#[derive(Deserialize)]
struct GitHubMessage {
    message: Option<String>,
}

/// The response when it succeeded; otherwise what it said.
pub(crate) async fn classify(response: reqwest::Response) -> Result<reqwest::Response, Failure> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let wait = rate_limit_wait(response.headers());
    let message = response
        .json::<GitHubMessage>()
        .await
        .ok()
        .and_then(|body| body.message)
        .unwrap_or_default();
    Err(Failure::Answered {
        status,
        message,
        wait,
    })
}

/// A call that got no usable answer.
pub(crate) fn unreachable(error: reqwest::Error) -> Failure {
    Failure::Unreachable(error.without_url().to_string())
}

/// The response, or what GitHub's status means for the user.
pub(crate) async fn check(response: reqwest::Response) -> Result<reqwest::Response, GitHubError> {
    classify(response).await.map_err(GitHubError::from)
}

impl From<Failure> for GitHubError {
    fn from(failure: Failure) -> Self {
        let (status, message) = match failure {
            Failure::Unreachable(reason) => return Self::Unavailable(reason),
            Failure::Answered {
                status, message, ..
            } => (status, message),
        };
        match status {
            StatusCode::UNAUTHORIZED => Self::BadToken,
            StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => Self::NoAccess,
            StatusCode::UNPROCESSABLE_ENTITY => Self::Refused(message),
            status => Self::Unavailable(format!("GitHub answered {status}")),
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// How long GitHub's headers say to wait: `Retry-After` (seconds), or
/// until `x-ratelimit-reset` when no requests remain.
pub fn rate_limit_wait(headers: &HeaderMap) -> Option<Duration> {
    if let Some(seconds) = header(headers, "retry-after").and_then(|v| v.parse::<u64>().ok()) {
        return Some(Duration::from_secs(seconds).min(MAX_RATE_LIMIT_WAIT));
    }
    if header(headers, "x-ratelimit-remaining") == Some("0") {
        let reset = header(headers, "x-ratelimit-reset")?.parse::<i64>().ok()?;
        let seconds = (reset - Utc::now().timestamp()).max(1) as u64;
        return Some(Duration::from_secs(seconds).min(MAX_RATE_LIMIT_WAIT));
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    /// An answer as GitHub would give it, with `{"message": message}`.
    pub(crate) fn response(
        status: u16,
        headers: &[(&str, &str)],
        message: &str,
    ) -> reqwest::Response {
        let mut builder = axum::http::Response::builder().status(status);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let body = serde_json::json!({"message": message}).to_string();
        reqwest::Response::from(builder.body(body).unwrap())
    }

    async fn checked(status: u16, message: &str) -> String {
        match check(response(status, &[], message)).await {
            Ok(_) => "ok".into(),
            Err(error) => format!("{error:?}"),
        }
    }

    #[tokio::test]
    async fn answers_mean_the_same_to_users_as_before() {
        assert_eq!(checked(201, "").await, "ok");
        assert_eq!(checked(401, "Bad credentials").await, "BadToken");
        assert_eq!(checked(403, "rate limit").await, "NoAccess");
        assert_eq!(checked(404, "Not Found").await, "NoAccess");
        assert_eq!(
            checked(422, "Hook already exists").await,
            r#"Refused("Hook already exists")"#
        );
        assert_eq!(
            checked(502, "").await,
            r#"Unavailable("GitHub answered 502 Bad Gateway")"#
        );
        assert_eq!(
            checked(429, "").await,
            r#"Unavailable("GitHub answered 429 Too Many Requests")"#
        );
    }

    #[test]
    fn retry_after_wins_then_the_reset_time_when_nothing_remains() {
        let mut headers = HeaderMap::new();
        assert_eq!(rate_limit_wait(&headers), None);
        let reset = Utc::now().timestamp() + 30;
        headers.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        headers.insert("x-ratelimit-reset", reset.to_string().parse().unwrap());
        let wait = rate_limit_wait(&headers).unwrap();
        assert!(wait <= Duration::from_secs(30) && wait >= Duration::from_secs(28));
        headers.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(rate_limit_wait(&headers), Some(Duration::from_secs(7)));
        headers.insert("retry-after", HeaderValue::from_static("999999"));
        assert_eq!(rate_limit_wait(&headers), Some(MAX_RATE_LIMIT_WAIT));
    }

    #[test]
    fn remaining_requests_mean_no_wait() {
        let mut headers = HeaderMap::new();
        headers.insert("x-ratelimit-remaining", HeaderValue::from_static("12"));
        headers.insert("x-ratelimit-reset", HeaderValue::from_static("1"));
        assert_eq!(rate_limit_wait(&headers), None);
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
