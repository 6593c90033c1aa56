//! Registering an app's push hook on its repository.

use super::{check, unreachable, GitHubError, ReqwestGitHub};
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

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

impl ReqwestGitHub {
    /// Creates the hook delivering to `url`, or updates the one that
    /// already does (so a rotated secret replaces the old one).
    pub(super) async fn put_hook(
        &self,
        owner: &str,
        repo: &str,
        url: &str,
        secret: &str,
        token: &str,
    ) -> Result<u64, GitHubError> {
        let hooks = format!("/repos/{owner}/{repo}/hooks");
        let listed = self
            .request(Method::GET, &format!("{hooks}?per_page=100"), token)
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
                .request(Method::PATCH, &format!("{hooks}/{}", hook.id), token)
                .json(&json!({"active": true, "events": ["push"], "config": config})),
            None => self.request(Method::POST, &hooks, token).json(
                &json!({"name": "web", "active": true, "events": ["push"], "config": config}),
            ),
        };
        let response = request.send().await.map_err(unreachable)?;
        let hook: Hook = check(response).await?.json().await.map_err(unreachable)?;
        Ok(hook.id)
    }
}
