//! Deleting release images from berth's registry (Distribution v2): the
//! manifest goes by digest, which also removes the tags that point at it.
//! The blobs go when the registry's garbage collection runs, which
//! Distribution only does offline (`infra/local/stack.sh` runs it before
//! the registry starts).

use crate::error::{Error, Result};
use async_trait::async_trait;
use berth_common::registry_auth::{default_insecure, unix_now, TokenIssuer};
use reqwest::StatusCode;
use std::sync::Arc;
use std::time::Duration;

/// Where release images are deleted; the seam the retention is tested
/// through.
#[async_trait]
pub trait ImageStore: Send + Sync + 'static {
    /// Deletes the image `image` names (`host[:port]/name@sha256:…`); one
    /// that is already gone is success.
    async fn delete(&self, image: &str) -> Result<()>;
}

/// berth's registry, with tokens the backend signs for itself.
pub struct RegistryImages {
    http: reqwest::Client,
    /// `http://host:port` or `https://host`.
    base: String,
    /// `host:port`: only images there are deleted.
    host: String,
    issuer: Arc<TokenIssuer>,
}

impl RegistryImages {
    /// For `BERTH_REGISTRY` (`host[:port][/prefix]`): plain http only for a
    /// registry on this machine, as the workers do.
    pub fn new(registry: &str, issuer: Arc<TokenIssuer>) -> Result<Self> {
        let host = registry.trim().split('/').next().unwrap_or("").to_owned();
        let scheme = if default_insecure(registry) {
            "http"
        } else {
            "https"
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| Error::internal(format!("registry client: {e}")))?;
        Ok(Self {
            http,
            base: format!("{scheme}://{host}"),
            host,
            issuer,
        })
    }
}

/// `(repository, digest)` of an image in `host`'s registry, by digest.
pub(crate) fn parse_image<'a>(host: &str, image: &'a str) -> Option<(&'a str, &'a str)> {
    let rest = image.strip_prefix(host)?.strip_prefix('/')?;
    let (name, digest) = rest.split_once('@')?;
    let valid = !name.is_empty()
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/".contains(&b));
    (valid && digest.starts_with("sha256:") && digest.len() == 71).then_some((name, digest))
}

#[async_trait]
impl ImageStore for RegistryImages {
    async fn delete(&self, image: &str) -> Result<()> {
        let Some((name, digest)) = parse_image(&self.host, image) else {
            tracing::warn!(
                image,
                "not an image of berth's registry by digest; left alone"
            );
            return Ok(());
        };
        let token = self
            .issuer
            .for_pruning(name, unix_now())
            .map_err(|e| Error::internal(format!("registry token: {e}")))?;
        let response = self
            .http
            .delete(format!("{}/v2/{name}/manifests/{digest}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| Error::Unavailable(format!("the registry: {}", e.without_url())))?;
        match response.status() {
            StatusCode::ACCEPTED | StatusCode::OK | StatusCode::NOT_FOUND => Ok(()),
            StatusCode::METHOD_NOT_ALLOWED => Err(Error::Unavailable(
                "the registry refuses deletes: set storage.delete.enabled in its config".into(),
            )),
            status => Err(Error::Unavailable(format!(
                "the registry answered {status} to deleting {name}@{digest}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_images_of_this_registry_by_digest_are_deleted() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let host = "127.0.0.1:5000";
        assert_eq!(
            parse_image(host, &format!("{host}/acme/web@{digest}")),
            Some(("acme/web", digest.as_str()))
        );
        assert_eq!(
            parse_image(host, &format!("{host}/berth/acme/web@{digest}")),
            Some(("berth/acme/web", digest.as_str()))
        );
        for other in [
            format!("docker.io/acme/web@{digest}"),
            format!("{host}/acme/web:latest"),
            format!("{host}/acme/../web@{digest}"),
            format!("{host}/acme/web@sha256:short"),
            format!("{host}:5001/acme/web@{digest}"),
        ] {
            assert_eq!(parse_image(host, &other), None, "{other}");
        }
    }
}
