//! Apps behind a test's own Caddy: the router's settings, the docker
//! driver routed through it, and requests by app hostname.

use berth_common::testing::router::TestRouter;
use berth_deploy_worker::docker::DockerRuntime;
use berth_deploy_worker::router::caddy::CaddyRouter;
use berth_deploy_worker::router::{RouterConfig, Routing};
use std::sync::Arc;

use super::docker_runtime;

pub fn router_config(router: &TestRouter, drain_secs: u64) -> RouterConfig {
    RouterConfig {
        router_admin_socket: Some(router.socket.clone()),
        router_listen: router.listen(),
        apps_domain: "localhost".into(),
        console_host: Some("berth.localhost".into()),
        console_upstream: Some("127.0.0.1:9".into()),
        drain_secs,
        tls: Default::default(),
        router_access_log: None,
    }
}

pub fn caddy(router: &TestRouter) -> CaddyRouter {
    CaddyRouter::new(router.socket.clone(), &router_config(router, 0)).unwrap()
}

pub async fn routed_runtime(router: &TestRouter, drain_secs: u64) -> DockerRuntime {
    routed_runtime_waiting(router, drain_secs, 60).await
}

/// [`routed_runtime`] that gives up on an instance not ready within
/// `ready_timeout_secs`.
pub async fn routed_runtime_waiting(
    router: &TestRouter,
    drain_secs: u64,
    ready_timeout_secs: u64,
) -> DockerRuntime {
    let config = router_config(router, drain_secs);
    let caddy = CaddyRouter::new(router.socket.clone(), &config).unwrap();
    docker_runtime(ready_timeout_secs)
        .await
        .with_routing(Routing::new(Arc::new(caddy), &config))
}

pub fn host(app: &berth_proto::AppRef) -> String {
    format!("{}.{}.localhost", app.name, app.tenant)
}

/// Which instances answered `n` requests through the router.
pub async fn instances_answering(router: &TestRouter, host: &str, n: usize) -> Vec<String> {
    instances_answering_at(router, host, "/who.txt", n).await
}

/// Which instances answered `n` requests for `path` (which answers the
/// instance's host name) through the router; each must answer 200.
pub async fn instances_answering_at(
    router: &TestRouter,
    host: &str,
    path: &str,
    n: usize,
) -> Vec<String> {
    let mut seen = Vec::new();
    for _ in 0..n {
        let (status, who) = router.get(host, path).await.unwrap();
        assert_eq!(status, 200, "{who}");
        seen.push(who.trim().to_owned());
    }
    seen.sort();
    seen.dedup();
    seen
}
