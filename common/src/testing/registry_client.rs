//! A registry client for tests: follows the token flow (401 with a Bearer
//! challenge, a token for the grant, the request again with the token) as
//! Docker, Podman and Kaniko do, and pushes tiny images.

use super::registry::TestRegistry;
use crate::registry_auth::Credentials;
use reqwest::{Method, StatusCode};
use sha2::{Digest, Sha256};

pub const MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// A registry client that follows the token flow with one grant.
pub struct RegistryClient {
    http: reqwest::Client,
    base: String,
    credentials: Credentials,
}

/// Where a push stopped, and what the registry answered.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused {
    pub step: &'static str,
    pub status: StatusCode,
}

fn challenge_params(header: &str) -> Vec<(String, String)> {
    header
        .trim_start_matches("Bearer ")
        .split("\",")
        .filter_map(|part| {
            let (key, value) = part.split_once('=')?;
            Some((key.trim().to_owned(), value.trim_matches('"').to_owned()))
        })
        .collect()
}

impl RegistryClient {
    pub fn new(registry: &TestRegistry, credentials: Credentials) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: format!("http://{}", registry.address),
            credentials,
        }
    }

    async fn token(&self, challenge: &str) -> Option<String> {
        let params = challenge_params(challenge);
        let realm = params.iter().find(|(k, _)| k == "realm")?.1.clone();
        let query: Vec<&(String, String)> = params
            .iter()
            .filter(|(k, _)| k == "service" || k == "scope")
            .collect();
        let response = self
            .http
            .get(realm)
            .query(&query)
            .basic_auth(&self.credentials.username, Some(&self.credentials.password))
            .send()
            .await
            .unwrap();
        if !response.status().is_success() {
            return None;
        }
        let body: serde_json::Value = response.json().await.unwrap();
        body["token"].as_str().map(str::to_owned)
    }

    /// The request, again with a token when the registry asks for one.
    async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<(&'static str, Vec<u8>)>,
    ) -> reqwest::Response {
        let request = |token: Option<&str>| {
            let mut request = self
                .http
                .request(method.clone(), url)
                .header("accept", MANIFEST);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            if let Some((content_type, bytes)) = &body {
                request = request
                    .header("content-type", *content_type)
                    .body(bytes.clone());
            }
            request
        };
        let response = request(None).send().await.unwrap();
        if response.status() != StatusCode::UNAUTHORIZED {
            return response;
        }
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        match self.token(&challenge).await {
            Some(token) => request(Some(&token)).send().await.unwrap(),
            None => response,
        }
    }

    /// Pushes a one-config, no-layer image to `name:tag`; its digest.
    pub async fn push(&self, name: &str, tag: &str) -> Result<String, Refused> {
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},"config":{{"Labels":{{"pushed-as":"{name}:{tag}"}}}}}}"#
        )
        .into_bytes();
        let config_digest = format!("sha256:{}", hex::encode(Sha256::digest(&config)));
        let started = self
            .send(
                Method::POST,
                &format!("{}/v2/{name}/blobs/uploads/", self.base),
                None,
            )
            .await;
        if started.status() != StatusCode::ACCEPTED {
            return Err(Refused {
                step: "upload",
                status: started.status(),
            });
        }
        let location = started.headers()["location"].to_str().unwrap().to_owned();
        let location = if location.starts_with("http") {
            location
        } else {
            format!("{}{location}", self.base)
        };
        let separator = if location.contains('?') { '&' } else { '?' };
        let uploaded = self
            .send(
                Method::PUT,
                &format!("{location}{separator}digest={config_digest}"),
                Some(("application/octet-stream", config.clone())),
            )
            .await;
        if uploaded.status() != StatusCode::CREATED {
            return Err(Refused {
                step: "blob",
                status: uploaded.status(),
            });
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": config.len(),
                "digest": config_digest,
            },
            "layers": [],
        })
        .to_string()
        .into_bytes();
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&manifest)));
        let put = self
            .send(
                Method::PUT,
                &format!("{}/v2/{name}/manifests/{tag}", self.base),
                Some((MANIFEST, manifest)),
            )
            .await;
        if put.status() != StatusCode::CREATED {
            return Err(Refused {
                step: "manifest",
                status: put.status(),
            });
        }
        Ok(digest)
    }

    /// What `HEAD /v2/<name>/manifests/<reference>` answers.
    pub async fn head(&self, name: &str, reference: &str) -> StatusCode {
        self.send(
            Method::HEAD,
            &format!("{}/v2/{name}/manifests/{reference}", self.base),
            None,
        )
        .await
        .status()
    }
}
