//! Caddy as the edge router, driven through its admin API on a unix socket.
//!
//! berth owns one HTTP server in Caddy's configuration, `berth`: a route
//! per app (`@id` `berth-app-<app id>`, matched by host), then the
//! console's route, then a 404 for every other host. Every change is a
//! read-modify-write of `/config/apps` guarded by Caddy's ETag
//! (`If-Match`), so deploy-workers and the reconciler changing routes at
//! the same moment never undo each other's change; a write that lost the
//! race reads again and retries.

use async_trait::async_trait;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;
use uuid::Uuid;

use super::{AppRoute, Router, RouterConfig, Target};
use crate::error::DeployError;

const SERVER: &str = "berth";
const APP_ROUTE: &str = "berth-app-";
/// How often a write that lost the race to another writer is tried again
/// (each time after a random pause that grows, so that writers spread out).
const ATTEMPTS: u32 = 30;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

pub struct CaddyRouter {
    socket: PathBuf,
    listen: String,
    console: Option<(String, String)>,
}

/// The app routes of berth's server, by app, as Caddy holds them.
type AppRoutes = BTreeMap<Uuid, Value>;

impl CaddyRouter {
    pub fn new(socket: PathBuf, config: &RouterConfig) -> Self {
        let console = match (&config.console_host, &config.console_upstream) {
            (Some(host), Some(upstream)) if !host.is_empty() && !upstream.is_empty() => {
                Some((host.clone(), upstream.clone()))
            }
            _ => None,
        };
        Self {
            socket,
            listen: config.router_listen.clone(),
            console,
        }
    }

    /// Reads berth's server, lets `change` edit its app routes, and writes
    /// the server back when anything differs; returns the apps whose route
    /// changed.
    async fn modify(&self, change: impl Fn(&mut AppRoutes)) -> Result<BTreeSet<Uuid>, DeployError> {
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                let jitter = u64::from(Uuid::new_v4().as_bytes()[0] % 20);
                tokio::time::sleep(Duration::from_millis(
                    (5 + jitter) * u64::from(attempt.min(10)),
                ))
                .await;
            }
            let (apps, etag) = self.get("/config/apps").await?;
            let current = apps
                .pointer(&format!("/http/servers/{SERVER}"))
                .cloned()
                .unwrap_or(Value::Null);
            let before = app_routes(&current);
            let mut after = before.clone();
            change(&mut after);
            let wanted = self.server(&after);
            if wanted == current {
                return Ok(BTreeSet::new());
            }
            let (path, body) = write_at(&apps, wanted);
            match self.post(&path, &body, etag.as_deref()).await? {
                Written::Yes => return Ok(changed(&before, &after)),
                Written::Raced => continue,
            }
        }
        Err(DeployError::Router(format!(
            "the router's configuration kept changing under {ATTEMPTS} attempts to write it"
        )))
    }

    /// berth's whole server with these app routes.
    fn server(&self, apps: &AppRoutes) -> Value {
        let mut routes: Vec<Value> = apps.values().cloned().collect();
        if let Some((host, upstream)) = &self.console {
            routes.push(json!({
                "@id": "berth-console",
                "match": [{"host": [host]}],
                "handle": [proxy(std::slice::from_ref(upstream), None)],
                "terminal": true,
            }));
        }
        routes.push(json!({
            "@id": "berth-unknown-host",
            "handle": [page(404, "No app answers at this address.")],
        }));
        json!({
            "listen": [self.listen],
            // Plain HTTP until berth manages certificates: Caddy would
            // otherwise try to get one for every host it routes.
            "automatic_https": {"disable": true},
            "routes": routes,
        })
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

/// Where to write berth's server: at the deepest part of
/// `apps.http.servers.berth` that exists, wrapped in what does not, so
/// that the other apps and servers in Caddy's configuration stay.
fn write_at(apps: &Value, server: Value) -> (String, Value) {
    let mut path = vec!["apps"];
    let mut node = apps;
    let mut rest: Vec<&str> = vec!["http", "servers", SERVER];
    if !node.is_object() {
        return ("/config/apps".into(), wrap(&rest, server));
    }
    while rest.len() > 1 {
        match node.get(rest[0]) {
            Some(child) if child.is_object() => {
                path.push(rest[0]);
                node = child;
                rest.remove(0);
            }
            _ => break,
        }
    }
    path.push(rest[0]);
    let value = wrap(&rest[1..], server);
    (format!("/config/{}", path.join("/")), value)
}

fn wrap(keys: &[&str], value: Value) -> Value {
    keys.iter().rev().fold(value, |inner, key| {
        let mut map = Map::new();
        map.insert((*key).to_owned(), inner);
        Value::Object(map)
    })
}

/// The app routes in a server's configuration, by app id.
fn app_routes(server: &Value) -> AppRoutes {
    let Some(routes) = server.get("routes").and_then(Value::as_array) else {
        return AppRoutes::new();
    };
    routes
        .iter()
        .filter_map(|route| {
            let id = route.get("@id")?.as_str()?.strip_prefix(APP_ROUTE)?;
            Some((id.parse().ok()?, route.clone()))
        })
        .collect()
}

fn changed(before: &AppRoutes, after: &AppRoutes) -> BTreeSet<Uuid> {
    before
        .keys()
        .chain(after.keys())
        .filter(|id| before.get(id) != after.get(id))
        .copied()
        .collect()
}

/// One app's route as Caddy takes it.
pub fn app_route(route: &AppRoute) -> Value {
    let handle = match &route.target {
        Target::Instances(upstreams) if !upstreams.is_empty() => {
            proxy(upstreams, route.health_check_path.as_deref())
        }
        Target::Instances(_) => page(503, super::Unavailable::NotRunning.page()),
        Target::Unavailable(why) => page(503, why.page()),
    };
    json!({
        "@id": format!("{APP_ROUTE}{}", route.app_id),
        "match": [{"host": [route.host]}],
        "handle": [handle],
        "terminal": true,
    })
}

/// A reverse proxy to these upstreams. Caddy adds `X-Forwarded-For`,
/// `-Proto` and `-Host` itself, and passes WebSockets through. Requests go
/// round the instances; one that cannot be reached is tried on another
/// for up to 5 s, and with several instances, one that failed a request
/// gets none for 10 s. With a health check path, Caddy checks every
/// instance each second and sends nothing to one that did not answer 2xx
/// within 2 s on its last check, until it does again.
fn proxy(upstreams: &[String], health_check_path: Option<&str>) -> Value {
    let list: Vec<Value> = upstreams.iter().map(|dial| json!({"dial": dial})).collect();
    let mut handler = json!({
        "handler": "reverse_proxy",
        "upstreams": list,
        "load_balancing": {
            "selection_policy": {"policy": "round_robin"},
            "try_duration": "5s",
            "try_interval": "250ms",
        },
    });
    if upstreams.len() > 1 {
        handler["health_checks"] = json!({"passive": {"fail_duration": "10s", "max_fails": 1}});
    }
    if let Some(path) = health_check_path {
        handler["health_checks"]["active"] = json!({
            "uri": path,
            "interval": "1s",
            "timeout": format!("{}s", super::HEALTH_CHECK_TIMEOUT.as_secs()),
        });
    }
    handler
}

fn page(status: u16, text: &str) -> Value {
    json!({
        "handler": "static_response",
        "status_code": status,
        "headers": {"Content-Type": ["text/plain; charset=utf-8"], "Cache-Control": ["no-store"]},
        "body": format!("{text}\n"),
    })
}

#[async_trait]
impl Router for CaddyRouter {
    async fn set(&self, route: &AppRoute) -> Result<(), DeployError> {
        let value = app_route(route);
        self.modify(|routes| {
            routes.insert(route.app_id, value.clone());
        })
        .await?;
        Ok(())
    }

    async fn remove(&self, app_id: Uuid) -> Result<bool, DeployError> {
        let changed = self
            .modify(|routes| {
                routes.remove(&app_id);
            })
            .await?;
        Ok(changed.contains(&app_id))
    }

    async fn converge(
        &self,
        routes: &[AppRoute],
        keep: &(dyn Fn(Uuid) -> bool + Send + Sync),
    ) -> Result<BTreeSet<Uuid>, DeployError> {
        let wanted: AppRoutes = routes
            .iter()
            .map(|route| (route.app_id, app_route(route)))
            .collect();
        self.modify(|current| {
            current.retain(|id, _| keep(*id) && !wanted.contains_key(id));
            current.extend(wanted.iter().map(|(id, route)| (*id, route.clone())));
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_is_written_where_caddys_configuration_ends() {
        let server = json!({"listen": [":80"]});
        assert_eq!(
            write_at(&Value::Null, server.clone()),
            (
                "/config/apps".into(),
                json!({"http": {"servers": {"berth": {"listen": [":80"]}}}})
            )
        );
        assert_eq!(
            write_at(&json!({"tls": {}}), server.clone()),
            (
                "/config/apps/http".into(),
                json!({"servers": {"berth": {"listen": [":80"]}}})
            )
        );
        assert_eq!(
            write_at(&json!({"http": {"servers": {"other": {}}}}), server.clone()),
            ("/config/apps/http/servers/berth".into(), server.clone())
        );
        assert_eq!(
            write_at(
                &json!({"http": {"servers": {"berth": {"listen": []}}}}),
                server.clone()
            ),
            ("/config/apps/http/servers/berth".into(), server)
        );
    }

    #[test]
    fn only_berths_app_routes_are_read_back_as_apps() {
        let app = Uuid::now_v7();
        let server = json!({"routes": [
            {"@id": format!("berth-app-{app}"), "handle": []},
            {"@id": "berth-app-not-a-uuid"},
            {"@id": "berth-console"},
            {"handle": []},
        ]});
        let routes = app_routes(&server);
        assert_eq!(routes.keys().copied().collect::<Vec<_>>(), vec![app]);
    }

    #[test]
    fn an_app_without_instances_gets_a_503_page() {
        let route = AppRoute {
            app_id: Uuid::nil(),
            host: "shop.acme.localhost".into(),
            target: Target::Instances(vec![]),
            health_check_path: None,
        };
        let value = app_route(&route);
        assert_eq!(value["handle"][0]["status_code"], 503);
        assert_eq!(value["match"][0]["host"][0], "shop.acme.localhost");
        let routed = app_route(&AppRoute {
            target: Target::Instances(vec!["127.0.0.1:4000".into()]),
            ..route
        });
        assert_eq!(
            routed["handle"][0]["upstreams"][0]["dial"],
            "127.0.0.1:4000"
        );
    }
}
