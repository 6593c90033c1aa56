//! Signing in with GitHub: the code-for-token exchange (with the PKCE
//! verifier) on GitHub's web site, and the token's user.

use super::types::{GitHubUser, OAuthToken};
use super::{check, unreachable, GitHubError, ReqwestGitHub};
use reqwest::Method;
use serde::Deserialize;

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

impl ReqwestGitHub {
    pub(super) async fn oauth_exchange(
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

    /// The token's user, with their verified primary address when the
    /// profile hides it.
    pub(super) async fn get_user(&self, token: &str) -> Result<GitHubUser, GitHubError> {
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
}
