//! Image names and the registry's HTTP API. The digest of a pushed image is
//! read from the registry itself (`HEAD /v2/<name>/manifests/<tag>`, the
//! `Docker-Content-Digest` header), which is what a later pull by digest
//! will find, whatever the engine reported while pushing.
//!
//! The registry uses token authentication: a request answered 401 with a
//! `Bearer realm=…` challenge gets a token from the realm for a pull grant
//! of the repository's tenant, and is sent again with it.

use crate::error::BuildError;
use async_trait::async_trait;
use berth_common::registry_auth::{Access, Grants, RegistryCredentials};
use reqwest::header::{HeaderMap, ACCEPT, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

/// How much longer than its deadline a build's grants live: the push (and
/// the digest read after it) may end just at the deadline.
pub const GRANT_MARGIN: Duration = Duration::from_secs(60);

/// The grants a build uses, pushes and pulls alike: they live as long as
/// the build may ([`GRANT_MARGIN`] past `deadline`), and no longer.
pub fn build_grants(grants: Grants, deadline: Duration) -> Grants {
    grants
        .push_for(deadline + GRANT_MARGIN)
        .pull_for(deadline + GRANT_MARGIN)
}

/// Manifest types a registry may store an image as.
pub const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// `<registry>/<tenant>/<app>`: where an app's images live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRepo {
    /// `host[:port][/prefix]`, as configured.
    pub registry: String,
    /// The tenant whose grants reach it.
    pub tenant: String,
    /// `tenant/app`.
    pub path: String,
}

impl ImageRepo {
    pub fn new(registry: &str, tenant: &str, app: &str) -> Self {
        Self {
            registry: registry.trim_end_matches('/').to_owned(),
            tenant: tenant.to_owned(),
            path: format!("{tenant}/{app}"),
        }
    }

    /// `registry/tenant/app` (no tag).
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.path)
    }

    pub fn tagged(&self, tag: &str) -> String {
        format!("{}:{tag}", self.name())
    }

    pub fn by_digest(&self, digest: &str) -> String {
        format!("{}@{digest}", self.name())
    }
}

/// The registry seam: digest lookups (pushes go through the builder).
#[async_trait]
pub trait Registry: Send + Sync + 'static {
    /// The manifest digest (`sha256:...`) of `repo:tag`; `None` if there is
    /// no such tag.
    async fn digest(&self, repo: &ImageRepo, tag: &str) -> Result<Option<String>, BuildError>;
}

/// The Distribution v2 HTTP API, with tokens for per-tenant pull grants.
#[derive(Clone)]
pub struct HttpRegistry {
    client: reqwest::Client,
    /// `http(s)://host[:port]`
    base: String,
    /// Path before `tenant/app` in repository names (from `host/prefix`).
    prefix: String,
    display: String,
    credentials: Arc<dyn RegistryCredentials>,
}

impl std::fmt::Debug for HttpRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpRegistry")
            .field("base", &self.base)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

pub use berth_common::registry_auth::default_insecure;

impl HttpRegistry {
    pub fn new(
        registry: &str,
        insecure: Option<bool>,
        credentials: Arc<dyn RegistryCredentials>,
    ) -> Result<Self, BuildError> {
        let registry = registry.trim_end_matches('/');
        let (host, prefix) = registry.split_once('/').unwrap_or((registry, ""));
        let scheme = if insecure.unwrap_or_else(|| default_insecure(registry)) {
            "http"
        } else {
            "https"
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| BuildError::Internal(format!("http client: {e}")))?;
        Ok(Self {
            client,
            base: format!("{scheme}://{host}"),
            prefix: prefix.to_owned(),
            display: registry.to_owned(),
            credentials,
        })
    }

    fn problem(&self, problem: impl Into<String>) -> BuildError {
        BuildError::Registry {
            registry: self.display.clone(),
            problem: problem.into(),
        }
    }

    /// The registry cannot be reached or failed on its side: may pass.
    fn unavailable(&self, problem: impl Into<String>) -> BuildError {
        BuildError::RegistryUnavailable {
            registry: self.display.clone(),
            problem: problem.into(),
        }
    }

    /// A status the registry answered that berth did not expect: a 5xx
    /// may pass, anything else is a configuration to fix.
    fn answered(&self, status: StatusCode, problem: String) -> BuildError {
        if status.is_server_error() {
            self.unavailable(problem)
        } else {
            self.problem(problem)
        }
    }

    fn api_name(&self, repo: &ImageRepo) -> String {
        if self.prefix.is_empty() {
            repo.path.clone()
        } else {
            format!("{}/{}", self.prefix, repo.path)
        }
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        bearer: Option<&str>,
    ) -> Result<reqwest::Response, BuildError> {
        let mut request = self
            .client
            .request(method, url)
            .header(ACCEPT, MANIFEST_TYPES);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        request
            .send()
            .await
            .map_err(|e| self.unavailable(format!("cannot be reached: {}", without_url(&e))))
    }

    /// The token flow: the challenge's realm gives a token for a pull grant
    /// of the repository's tenant.
    async fn bearer_token(
        &self,
        repo: &ImageRepo,
        headers: &HeaderMap,
    ) -> Result<Option<String>, BuildError> {
        let Some(challenge) = headers
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return Ok(None);
        };
        let params = parse_challenge(challenge);
        let Some(realm) = params.iter().find(|(k, _)| k == "realm").map(|(_, v)| v) else {
            return Ok(None);
        };
        let query: Vec<(&str, &str)> = params
            .iter()
            .filter(|(k, _)| k == "service" || k == "scope")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let grant = self.credentials.for_tenant(&repo.tenant, Access::Pull);
        let request = self
            .client
            .get(realm)
            .query(&query)
            .basic_auth(&grant.username, Some(&grant.password));
        let response = request.send().await.map_err(|e| {
            self.unavailable(format!(
                "token service cannot be reached: {}",
                without_url(&e)
            ))
        })?;
        if !response.status().is_success() {
            return Err(self.problem(format!(
                "its token service ({realm}) refused berth's pull grant for tenant `{}` with {}: \
                 it must be berth's /api/v1/registry/token, with the same BERTH_SECRET_KEY",
                repo.tenant,
                response.status()
            )));
        }
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|e| self.problem(format!("token service answered nonsense: {e}")))?;
        Ok(body
            .get("token")
            .or_else(|| body.get("access_token"))
            .and_then(|t| t.as_str())
            .map(str::to_owned))
    }
}

#[async_trait]
impl Registry for HttpRegistry {
    async fn digest(&self, repo: &ImageRepo, tag: &str) -> Result<Option<String>, BuildError> {
        let url = format!("{}/v2/{}/manifests/{tag}", self.base, self.api_name(repo));
        let mut response = self.send(Method::HEAD, &url, None).await?;
        let mut token = None;
        if response.status() == StatusCode::UNAUTHORIZED {
            token = self.bearer_token(repo, response.headers()).await?;
            if let Some(token) = &token {
                response = self.send(Method::HEAD, &url, Some(token)).await?;
            }
        }
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(self.problem(format!(
                "refused the token for tenant `{}`'s pull grant: does the registry's \
                 auth.token (service, issuer, rootcertbundle) match berth's token service?",
                repo.tenant
            ))),
            status if status.is_success() => {
                let header = response
                    .headers()
                    .get("docker-content-digest")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                match header {
                    Some(digest) if is_digest(&digest) => Ok(Some(digest)),
                    // No header: hash the manifest ourselves.
                    _ => {
                        let response = self.send(Method::GET, &url, token.as_deref()).await?;
                        let status = response.status();
                        if !status.is_success() {
                            return Err(self.answered(
                                status,
                                format!(
                                    "answered {status} for the manifest of {}:{tag}",
                                    repo.path
                                ),
                            ));
                        }
                        let body = response.bytes().await.map_err(|e| {
                            self.unavailable(format!(
                                "manifest download failed: {}",
                                without_url(&e)
                            ))
                        })?;
                        Ok(Some(format!(
                            "sha256:{}",
                            hex::encode(Sha256::digest(&body))
                        )))
                    }
                }
            }
            status => Err(self.answered(
                status,
                format!("answered {status} for the manifest of {}:{tag}", repo.path),
            )),
        }
    }
}

fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(&format!(" for url ({url})"), "");
    }
    text
}

/// `sha256:` and 64 hex digits.
pub fn is_digest(text: &str) -> bool {
    text.strip_prefix("sha256:")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `realm="https://a/token",service="reg",scope="repository:x:pull"`.
fn parse_challenge(challenge: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    let mut rest = challenge.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key.trim().trim_start_matches(',').trim().to_owned();
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.split_once('"') {
                Some((value, next)) => (value.to_owned(), next),
                None => (quoted.to_owned(), ""),
            }
        } else {
            match after.split_once(',') {
                Some((value, next)) => (value.trim().to_owned(), next),
                None => (after.trim().to_owned(), ""),
            }
        };
        params.push((key, value));
        rest = next.trim_start().trim_start_matches(',');
    }
    params
}

#[cfg(test)]
mod tests {
    use super::*;
    fn grants() -> Arc<dyn RegistryCredentials> {
        Arc::new(Grants::from_secret_key(&berth_proto::SecretKey::generate_base64()).unwrap())
    }

    #[test]
    fn image_names() {
        let repo = ImageRepo::new("127.0.0.1:5000/", "acme", "web");
        assert_eq!(repo.tagged("abc"), "127.0.0.1:5000/acme/web:abc");
        assert_eq!(
            repo.by_digest("sha256:00"),
            "127.0.0.1:5000/acme/web@sha256:00"
        );
    }

    #[test]
    fn plain_http_only_for_this_machine_unless_told() {
        assert!(default_insecure("127.0.0.1:5000"));
        assert!(default_insecure("localhost:5000/prefix"));
        assert!(default_insecure("localhost"));
        assert!(!default_insecure("registry.example.com"));
        assert!(!default_insecure("ghcr.io/acme"));
        let registry = HttpRegistry::new("ghcr.io/acme", None, grants()).unwrap();
        assert_eq!(registry.base, "https://ghcr.io");
        assert_eq!(
            registry.api_name(&ImageRepo::new("ghcr.io/acme", "t", "a")),
            "acme/t/a"
        );
        let registry = HttpRegistry::new("10.0.0.5:5000", Some(true), grants()).unwrap();
        assert_eq!(registry.base, "http://10.0.0.5:5000");
    }

    #[test]
    fn digests_are_checked() {
        assert!(is_digest(&format!("sha256:{}", "a".repeat(64))));
        assert!(!is_digest("sha256:abc"));
        assert!(!is_digest(&format!("md5:{}", "a".repeat(64))));
    }

    #[test]
    fn bearer_challenges_are_parsed() {
        let params = parse_challenge(
            "realm=\"https://auth.example.com/token\",service=\"registry.example.com\",scope=\"repository:a/b:pull\"",
        );
        assert_eq!(
            params,
            [
                (
                    "realm".to_owned(),
                    "https://auth.example.com/token".to_owned()
                ),
                ("service".to_owned(), "registry.example.com".to_owned()),
                ("scope".to_owned(), "repository:a/b:pull".to_owned()),
            ]
        );
    }
}
