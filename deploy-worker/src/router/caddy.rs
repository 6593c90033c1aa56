//! Caddy as the edge router, driven through its admin API on a unix socket.
//!
//! What berth writes is in [`super::caddy_config`]. Every change is a
//! read-modify-write of `/config/apps` guarded by Caddy's ETag
//! (`If-Match`), so deploy-workers and the reconciler changing routes at
//! the same moment never undo each other's change; a write that lost the
//! race reads again and retries.

use async_trait::async_trait;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;
use uuid::Uuid;

use super::caddy_config::{self, Entries, Entry, Layout};
use super::{AppRoute, Router, RouterConfig};
use crate::error::DeployError;

/// How often a write that lost the race to another writer is tried again
/// (each time after a random pause that grows, so that writers spread out).
const ATTEMPTS: u32 = 30;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const APPS: &str = "/config/apps";
const LOGGING: &str = "/config/logging";

pub struct CaddyRouter {
    socket: PathBuf,
    layout: Layout,
}

impl CaddyRouter {
    /// An error when HTTPS is asked for but cannot work as configured.
    pub fn new(socket: PathBuf, config: &RouterConfig) -> Result<Self, DeployError> {
        let console = match (&config.console_host, &config.console_upstream) {
            (Some(host), Some(upstream)) if !host.is_empty() && !upstream.is_empty() => {
                Some((host.clone(), upstream.clone()))
            }
            _ => None,
        };
        let tls = config
            .tls
            .resolve(&config.router_listen, config.console_upstream.as_deref())
            .map_err(DeployError::Router)?;
        let apps_tls = tls.is_some() && config.apps_https_port().is_some();
        Ok(Self {
            socket,
            layout: Layout {
                listen: config.router_listen.clone(),
                console,
                tls,
                apps_tls,
                access_log: config.router_access_log.clone(),
            },
        })
    }

    /// Whether apps' own hostnames are served over HTTPS.
    pub fn apps_tls(&self) -> bool {
        self.layout.apps_tls
    }

    /// Puts berth's access log file into Caddy's `logging` when it is not
    /// there as berth wants it.
    async fn ensure_logging(&self, file: &std::path::Path) -> Result<(), DeployError> {
        for _ in 0..ATTEMPTS {
            let (current, etag) = self.get(LOGGING).await?;
            let wanted = caddy_config::logging(&current, file);
            if wanted == current {
                return Ok(());
            }
            if let Written::Yes = self.post(LOGGING, &wanted, etag.as_deref()).await? {
                tracing::info!(file = %file.display(), "the router writes its access log");
                return Ok(());
            }
        }
        Err(DeployError::Router(
            "the router's logging configuration kept changing under berth's writes".into(),
        ))
    }

    /// Reads berth's part of the configuration, lets `change` edit the app
    /// entries, and writes it back when anything differs; returns the apps
    /// whose traffic now goes elsewhere.
    async fn modify(&self, change: impl Fn(&mut Entries)) -> Result<BTreeSet<Uuid>, DeployError> {
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                let jitter = u64::from(Uuid::new_v4().as_bytes()[0] % 20);
                tokio::time::sleep(Duration::from_millis(
                    (5 + jitter) * u64::from(attempt.min(10)),
                ))
                .await;
            }
            let (apps, etag) = self.get(APPS).await?;
            let before = caddy_config::entries(&apps);
            let mut after = before.clone();
            change(&mut after);
            let wanted = caddy_config::render(&self.layout, &after, &apps);
            if wanted == apps {
                return Ok(BTreeSet::new());
            }
            match self.post(APPS, &wanted, etag.as_deref()).await? {
                Written::Yes => {
                    for (id, entry) in &after {
                        let had = before.get(id).map_or(&[][..], |b| b.domains.as_slice());
                        if had != entry.domains.as_slice() {
                            tracing::info!(app_id = %id, domains = ?entry.domains,
                                "the router answers for the app's custom domains");
                        }
                    }
                    return Ok(changed(&before, &after));
                }
                Written::Raced => continue,
            }
        }
        Err(DeployError::Router(format!(
            "the router's configuration kept changing under {ATTEMPTS} attempts to write it"
        )))
    }

    async fn get(&self, path: &str) -> Result<(Value, Option<String>), DeployError> {
        let (status, body, etag) = self.request(Method::GET, path, None, None).await?;
        if status != StatusCode::OK {
            return Err(refused(path, status, &body));
        }
        let value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body)
                .map_err(|e| DeployError::Router(format!("the router's {path} is not JSON: {e}")))?
        };
        Ok((value, etag))
    }

    async fn post(
        &self,
        path: &str,
        body: &Value,
        etag: Option<&str>,
    ) -> Result<Written, DeployError> {
        let body = serde_json::to_vec(body).expect("JSON values serialize");
        let (status, answer, _) = self.request(Method::POST, path, Some(body), etag).await?;
        match status {
            StatusCode::OK => Ok(Written::Yes),
            StatusCode::PRECONDITION_FAILED => Ok(Written::Raced),
            status => Err(refused(path, status, &answer)),
        }
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        if_match: Option<&str>,
    ) -> Result<(StatusCode, Bytes, Option<String>), DeployError> {
        let exchange = async {
            let stream = tokio::net::UnixStream::connect(&self.socket).await?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(connection);
            // Caddy's admin API on a unix socket takes only an empty Host.
            let mut request = Request::builder()
                .method(method)
                .uri(path)
                .header(hyper::header::HOST, "")
                .header(hyper::header::CONTENT_TYPE, "application/json");
            if let Some(etag) = if_match {
                request = request.header(hyper::header::IF_MATCH, etag);
            }
            let request = request
                .body(Full::new(Bytes::from(body.unwrap_or_default())))
                .map_err(std::io::Error::other)?;
            let response = sender.send_request(request).await?;
            let status = response.status();
            let header_etag = etag_of(response.headers());
            // Caddy sends the ETag of a read as a trailer.
            let collected = response.into_body().collect().await?;
            let etag = header_etag.or_else(|| collected.trailers().and_then(etag_of));
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((status, collected.to_bytes(), etag))
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(error)) => Err(DeployError::Router(format!(
                "the router's admin API at {} cannot be reached: {error}",
                self.socket.display()
            ))),
            Err(_) => Err(DeployError::Router(format!(
                "the router's admin API at {} did not answer within {}s",
                self.socket.display(),
                REQUEST_TIMEOUT.as_secs()
            ))),
        }
    }
}

enum Written {
    Yes,
    /// Someone else changed the configuration since it was read.
    Raced,
}

fn etag_of(headers: &hyper::HeaderMap) -> Option<String> {
    headers
        .get(hyper::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn refused(path: &str, status: StatusCode, body: &[u8]) -> DeployError {
    DeployError::Router(format!(
        "the router refused a change of {path} ({status}): {}",
        String::from_utf8_lossy(body).trim()
    ))
}

/// Apps whose traffic goes elsewhere after the change (or whose route
/// came or went).
fn changed(before: &Entries, after: &Entries) -> BTreeSet<Uuid> {
    before
        .keys()
        .chain(after.keys())
        .filter(|id| match (before.get(id), after.get(id)) {
            (Some(b), Some(a)) => b.routes_differently(a),
            _ => true,
        })
        .copied()
        .collect()
}

#[async_trait]
impl Router for CaddyRouter {
    async fn set(&self, route: &AppRoute) -> Result<(), DeployError> {
        self.modify(|entries| {
            let entry = Entry::of(route, entries.get(&route.app_id));
            entries.insert(route.app_id, entry);
        })
        .await?;
        Ok(())
    }

    async fn remove(&self, app_id: Uuid) -> Result<bool, DeployError> {
        let changed = self
            .modify(|entries| {
                entries.remove(&app_id);
            })
            .await?;
        Ok(changed.contains(&app_id))
    }

    async fn converge(
        &self,
        routes: &[AppRoute],
        keep: &(dyn Fn(Uuid) -> bool + Send + Sync),
    ) -> Result<BTreeSet<Uuid>, DeployError> {
        if let Some(file) = &self.layout.access_log {
            self.ensure_logging(file).await?;
        }
        self.modify(|current| {
            let wanted: Entries = routes
                .iter()
                .map(|route| (route.app_id, Entry::of(route, current.get(&route.app_id))))
                .collect();
            current.retain(|id, _| keep(*id) && !wanted.contains_key(id));
            current.extend(wanted);
        })
        .await
    }
}
