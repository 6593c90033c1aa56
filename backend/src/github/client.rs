//! The OAuth and read-only parts of `ReqwestGitHub` (the hooks part is in
//! `webhooks::github`).

use super::link;
use super::types::{Branch, GitHubUser, OAuthToken};
use crate::webhooks::github::{check, unreachable, GitHubError, ReqwestGitHub};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// Most pages followed for one listing (100 items each).
pub const MAX_PAGES: usize = 10;

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    #[serde(default)]
    scope: String,
    error: Option<String>,
}

#[derive(Deserialize)]
struct Email {
    email: String,
    primary: bool,
    verified: bool,
}

/// A branch in GitHub's shape.
#[derive(Deserialize)]
pub(crate) struct RawBranch {
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
    pub(crate) async fn oauth_exchange(
        &self,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
    ) -> Result<OAuthToken, GitHubError> {
        let app = self.oauth.as_ref().ok_or(GitHubError::NotConfigured)?;
        let response = self
            .http
            .post(format!("{}/login/oauth/access_token", app.web_url))
            .header("Accept", "application/json")
            .form(&[
                ("client_id", app.client_id.as_str()),
                ("client_secret", app.client_secret.as_str()),
                ("code", code),
                ("code_verifier", verifier),
                ("redirect_uri", redirect_uri),
            ])
            .send()
            .await
            .map_err(unreachable)?;
        // GitHub answers 200 with an `error` when it refuses the code.
        let answer: TokenAnswer = check(response).await?.json().await.map_err(unreachable)?;
        match (answer.access_token, answer.error) {
            (Some(access_token), None) if !access_token.is_empty() => Ok(OAuthToken {
                access_token,
                scope: answer.scope,
            }),
            (_, error) => Err(GitHubError::Refused(
                error.unwrap_or_else(|| "no access token".into()),
            )),
        }
    }

    pub(crate) async fn get_user(&self, token: &str) -> Result<GitHubUser, GitHubError> {
        let response = self
            .request(Method::GET, "/user", token)
            .send()
            .await
            .map_err(unreachable)?;
        let mut user: GitHubUser = check(response).await?.json().await.map_err(unreachable)?;
        if user.email.is_none() {
            let emails: Vec<Email> = self
                .get_all::<Email, Email>("/user/emails?per_page=100", token)
                .await?;
            user.email = emails
                .into_iter()
                .find(|e| e.primary && e.verified)
                .map(|e| e.email);
        }
        Ok(user)
    }

    /// Every item of a listing, following `Link: rel="next"` up to
    /// `MAX_PAGES`. Only URLs under the API are followed: the token goes
    /// nowhere else.
    pub(crate) async fn get_all<T: DeserializeOwned, U: From<T>>(
        &self,
        path: &str,
        token: &str,
    ) -> Result<Vec<U>, GitHubError> {
        let mut items = Vec::new();
        let mut url = format!("{}{path}", self.api);
        for _ in 0..MAX_PAGES {
            let response = self
                .http
                .get(&url)
                .bearer_auth(token)
                .header("Accept", "application/vnd.github+json")
                .header("X-GitHub-Api-Version", "2022-11-28")
                .send()
                .await
                .map_err(unreachable)?;
            let next = response
                .headers()
                .get("link")
                .and_then(|v| v.to_str().ok())
                .and_then(link::next)
                .map(str::to_owned);
            let page: Vec<T> = check(response).await?.json().await.map_err(unreachable)?;
            items.extend(page.into_iter().map(U::from));
            match next {
                Some(next) if next.starts_with(&format!("{}/", self.api)) => url = next,
                _ => break,
            }
        }
        Ok(items)
    }
}
