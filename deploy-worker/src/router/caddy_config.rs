//! berth's part of Caddy's configuration, rendered from the app routes and
//! read back from what Caddy holds.
//!
//! The plain HTTP server `berth` has, per app, `berth-app-<id>` for the
//! app's own hostname and `berth-domains-<id>` for its custom domains,
//! then the console's route, then a 404 for every other host. With HTTPS
//! on, the server `berth-tls` has `berth-tls-<id>` per app (its custom
//! domains, and its own hostname when the apps domain has certificates),
//! and the plain routes of those names redirect to HTTPS; Caddy answers
//! ACME's HTTP challenges on the plain server before any route.

use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use uuid::Uuid;

use super::tls::Tls;
use super::{listen_port, AppRoute, Target, Unavailable};

pub const SERVER: &str = "berth";
pub const TLS_SERVER: &str = "berth-tls";
const APP_ROUTE: &str = "berth-app-";
const DOMAINS_ROUTE: &str = "berth-domains-";
const TLS_ROUTE: &str = "berth-tls-";

/// One app as the router holds it: its own hostname, what answers
/// (a proxy to its instances, or a page), and its custom domains.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub host: String,
    pub handle: Value,
    pub domains: Vec<String>,
}

pub type Entries = BTreeMap<Uuid, Entry>;

/// How berth's servers are laid out.
#[derive(Debug, Clone)]
pub struct Layout {
    pub listen: String,
    pub console: Option<(String, String)>,
    pub tls: Option<Tls>,
    /// Apps' own hostnames and the console are served over HTTPS too.
    pub apps_tls: bool,
    /// The access log file: each app's hostnames log under its logger.
    pub access_log: Option<std::path::PathBuf>,
}

/// The logger of an app's requests: `http.log.access.app-<id>` in the file.
pub fn access_logger(id: &Uuid) -> String {
    format!("app-{id}")
}

/// `logs` of a server: each host of the entries to its app's logger;
/// requests for other hosts are not logged. Caddy matches the `Host`
/// header as sent, so on a port other than the scheme's `default_port`
/// each name is also mapped with `:<port>`.
fn server_logs(entries: &Entries, own_hosts: bool, port: Option<u16>) -> Value {
    let mut names = Map::new();
    let mut map = |host: &str, logger: &Value| {
        names.insert(host.to_owned(), logger.clone());
        if let Some(port) = port {
            names.insert(format!("{host}:{port}"), logger.clone());
        }
    };
    for (id, entry) in entries {
        let logger = json!(access_logger(id));
        if own_hosts {
            map(&entry.host, &logger);
        }
        for domain in &entry.domains {
            map(domain, &logger);
        }
    }
    json!({"logger_names": names, "skip_unmapped_hosts": true})
}

/// Caddy's `logging` with berth's access log file added, and access logs
/// kept out of Caddy's own log; the rest as it was.
pub fn logging(current: &Value, file: &std::path::Path) -> Value {
    let mut logging = match current {
        Value::Object(_) => current.clone(),
        _ => Value::Object(Map::new()),
    };
    let logs = ensure(&mut logging, "logs");
    logs["berth-access"] = json!({
        "writer": {"output": "file", "filename": file, "roll_size_mb": 100, "roll_keep": 3},
        "encoder": {"format": "json"},
        "include": ["http.log.access"],
    });
    ensure(logs, "default")["exclude"] = json!(["http.log.access"]);
    logging
}

impl Entry {
    /// The entry for `route`; its domains, when the route leaves them
    /// unsaid, are those of `current`.
    pub fn of(route: &AppRoute, current: Option<&Entry>) -> Self {
        let domains = match &route.domains {
            Some(domains) => domains.clone(),
            None => current.map(|c| c.domains.clone()).unwrap_or_default(),
        };
        Self {
            host: route.host.clone(),
            handle: handler(route),
            domains,
        }
    }

    /// Whether traffic goes elsewhere than in `other` (a domain added or
    /// removed is not a change of where traffic goes).
    pub fn routes_differently(&self, other: &Entry) -> bool {
        self.host != other.host || self.handle != other.handle
    }
}

/// The app entries in Caddy's `apps` configuration.
pub fn entries(apps: &Value) -> Entries {
    let routes = |server: &str| -> Vec<Value> {
        apps.pointer(&format!("/http/servers/{server}/routes"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let by_prefix = |routes: &[Value], prefix: &str| -> BTreeMap<Uuid, Value> {
        routes
            .iter()
            .filter_map(|route| {
                let id = route.get("@id")?.as_str()?.strip_prefix(prefix)?;
                Some((id.parse().ok()?, route.clone()))
            })
            .collect()
    };
    let plain = routes(SERVER);
    let secure = routes(TLS_SERVER);
    let domain_routes = by_prefix(&plain, DOMAINS_ROUTE);
    let tls_routes = by_prefix(&secure, TLS_ROUTE);
    by_prefix(&plain, APP_ROUTE)
        .into_iter()
        .filter_map(|(id, route)| {
            let host = hosts(&route).into_iter().next()?;
            let mut handle = route.pointer("/handle/0").cloned()?;
            if is_redirect(&handle) {
                handle = tls_routes.get(&id)?.pointer("/handle/0").cloned()?;
            }
            let domains = match (domain_routes.get(&id), tls_routes.get(&id)) {
                (Some(route), _) => hosts(route),
                (None, Some(route)) => hosts(route).into_iter().filter(|h| *h != host).collect(),
                (None, None) => Vec::new(),
            };
            Some((
                id,
                Entry {
                    host,
                    handle,
                    domains,
                },
            ))
        })
        .collect()
}

/// `apps` with berth's servers (and, with HTTPS, the ports and the
/// certificate policy) made from `entries`; the rest stays as it was.
pub fn render(layout: &Layout, entries: &Entries, apps: &Value) -> Value {
    let mut apps = match apps {
        Value::Object(_) => apps.clone(),
        _ => Value::Object(Map::new()),
    };
    let servers = ensure(ensure(&mut apps, "http"), "servers");
    servers[SERVER] = plain_server(layout, entries);
    let servers = servers.as_object_mut().expect("an object");
    match &layout.tls {
        Some(tls) => {
            servers.insert(TLS_SERVER.into(), tls_server(layout, tls, entries));
            let http = ensure(&mut apps, "http");
            http["http_port"] = json!(tls.http_port);
            http["https_port"] = json!(tls.https_port);
            ensure(&mut apps, "tls")["automation"] = tls.automation();
        }
        None => {
            servers.remove(TLS_SERVER);
        }
    }
    apps
}

fn plain_server(layout: &Layout, entries: &Entries) -> Value {
    let redirect = layout.tls.as_ref().map(redirect);
    let app_handle = |entry: &Entry| match (&redirect, layout.apps_tls) {
        (Some(redirect), true) => redirect.clone(),
        _ => entry.handle.clone(),
    };
    let mut routes = Vec::new();
    for (id, entry) in entries {
        routes.push(route(
            &format!("{APP_ROUTE}{id}"),
            std::slice::from_ref(&entry.host),
            app_handle(entry),
        ));
        if !entry.domains.is_empty() {
            let handle = redirect.clone().unwrap_or_else(|| entry.handle.clone());
            routes.push(route(
                &format!("{DOMAINS_ROUTE}{id}"),
                &entry.domains,
                handle,
            ));
        }
    }
    if let Some((host, upstream)) = &layout.console {
        let handle = match (&redirect, layout.apps_tls) {
            (Some(redirect), true) => redirect.clone(),
            _ => proxy(std::slice::from_ref(upstream), None),
        };
        routes.push(console_route(host, handle));
    }
    routes.push(unknown_host());
    let mut server = json!({
        "listen": [layout.listen],
        // Certificates are berth's to ask for (see the TLS server): Caddy
        // would otherwise try to get one for every host it routes.
        "automatic_https": {"disable": true},
        "routes": routes,
    });
    if layout.access_log.is_some() {
        let port = listen_port(&layout.listen).filter(|port| *port != 80);
        server["logs"] = server_logs(entries, true, port);
    }
    server
}

fn tls_server(layout: &Layout, tls: &Tls, entries: &Entries) -> Value {
    let mut routes = Vec::new();
    for (id, entry) in entries {
        let mut hosts = Vec::new();
        if layout.apps_tls {
            hosts.push(entry.host.clone());
        }
        hosts.extend(entry.domains.iter().cloned());
        if !hosts.is_empty() {
            routes.push(route(
                &format!("{TLS_ROUTE}{id}"),
                &hosts,
                entry.handle.clone(),
            ));
        }
    }
    if let (Some((host, upstream)), true) = (&layout.console, layout.apps_tls) {
        routes.push(console_route(
            host,
            proxy(std::slice::from_ref(upstream), None),
        ));
    }
    routes.push(unknown_host());
    let mut server = json!({
        "listen": [tls.listen],
        "automatic_https": {"disable": true},
        "tls_connection_policies": [{}],
        "routes": routes,
    });
    if layout.access_log.is_some() {
        let port = Some(tls.https_port).filter(|port| *port != 443);
        server["logs"] = server_logs(entries, layout.apps_tls, port);
    }
    server
}

fn ensure<'a>(parent: &'a mut Value, key: &str) -> &'a mut Value {
    if !parent.get(key).is_some_and(Value::is_object) {
        parent[key] = Value::Object(Map::new());
    }
    &mut parent[key]
}

fn route(id: &str, hosts: &[String], handle: Value) -> Value {
    json!({"@id": id, "match": [{"host": hosts}], "handle": [handle], "terminal": true})
}

/// berth's own UI and API; `/internal/` (the router's own questions to
/// the backend) is not reachable from outside.
fn console_route(host: &str, handle: Value) -> Value {
    json!({
        "@id": "berth-console",
        "match": [{"host": [host], "not": [{"path": ["/internal/*"]}]}],
        "handle": [handle],
        "terminal": true,
    })
}

fn unknown_host() -> Value {
    json!({"@id": "berth-unknown-host", "handle": [page(404, "No app answers at this address.")]})
}

fn hosts(route: &Value) -> Vec<String> {
    route
        .pointer("/match/0/host")
        .and_then(Value::as_array)
        .map(|hosts| {
            hosts
                .iter()
                .filter_map(|h| h.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn redirect(tls: &Tls) -> Value {
    json!({
        "handler": "static_response",
        "status_code": 308,
        "headers": {"Location": [tls.redirect_location()]},
    })
}

fn is_redirect(handle: &Value) -> bool {
    handle.get("handler") == Some(&json!("static_response"))
        && handle.get("status_code") == Some(&json!(308))
}

/// What answers an app's requests.
fn handler(route: &AppRoute) -> Value {
    match &route.target {
        Target::Instances(upstreams) if !upstreams.is_empty() => {
            proxy(upstreams, route.health_check_path.as_deref())
        }
        Target::Instances(_) => page(503, Unavailable::NotRunning.page()),
        Target::Unavailable(why) => page(503, why.page()),
    }
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

#[cfg(test)]
#[path = "caddy_config_tests.rs"]
mod tests;
