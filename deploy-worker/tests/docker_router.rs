//! The edge router (issue 13): apps answer on a stable hostname through a
//! real Caddy, deploys move traffic without failing a request, and the
//! routes are rebuilt from what runs when the router lost them.

mod support;

use berth_common::testing::router::TestRouter;
use berth_deploy_worker::router::{AppRoute, Router, Target, Unavailable};
use berth_deploy_worker::{RouteWant, Runtime};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::routing::*;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

/// Requests through the router until `stop`, over new connections and a
/// kept-alive one in turn; counts those that did not answer 200 `page`s.
struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<Vec<String>>,
}

impl Load {
    fn start(port: u16, host: String, pages: &'static [&'static str]) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let (stop, sent, failed) = (stop.clone(), sent.clone(), failed.clone());
            async move {
                let kept = reqwest::Client::new();
                let mut failures = Vec::new();
                let mut n = 0usize;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let client = if n.is_multiple_of(2) {
                        kept.clone()
                    } else {
                        reqwest::Client::builder()
                            .pool_max_idle_per_host(0)
                            .build()
                            .unwrap()
                    };
                    let answer = client
                        .get(format!("http://127.0.0.1:{port}/"))
                        .header(reqwest::header::HOST, &host)
                        .timeout(Duration::from_secs(10))
                        .send()
                        .await;
                    sent.fetch_add(1, Ordering::SeqCst);
                    let ok = match answer {
                        Ok(response) if response.status() == 200 => {
                            let body = response.text().await.unwrap_or_default();
                            pages.contains(&body.trim())
                        }
                        Ok(response) => {
                            failures.push(format!("status {}", response.status()));
                            false
                        }
                        Err(error) => {
                            failures.push(error.to_string());
                            false
                        }
                    };
                    if !ok {
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                failures
            }
        });
        Self {
            stop,
            sent,
            failed,
            task,
        }
    }

    async fn finish(self) -> (usize, usize, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        let failures = self.task.await.unwrap();
        (
            self.sent.load(Ordering::SeqCst),
            self.failed.load(Ordering::SeqCst),
            failures,
        )
    }
}

#[tokio::test]
async fn an_app_keeps_its_url_through_a_redeploy_that_fails_no_request() {
    let images = images().await;
    let router = TestRouter::start().await;
    let runtime = routed_runtime(&router, 2).await;
    let app = new_app();
    let first = new_deployment(&app, &images.v1);
    let url = runtime.deploy(&first).await.expect("v1 serves");
    assert_eq!(url, format!("http://{}:{}", host(&app), router.port));
    assert_eq!(
        router.get(&host(&app), "/").await.unwrap(),
        (200, "v1\n".into())
    );
    let (status, _) = router.get("nobody.test.localhost", "/").await.unwrap();
    assert_eq!(status, 404, "an unknown host");

    let load = Load::start(router.port, host(&app), &["v1", "v2"]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = new_deployment(&app, &images.v2);
    let again = runtime.deploy(&second).await.expect("v2 serves");
    assert_eq!(again, url, "the same URL after a redeploy");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (sent, failed, failures) = load.finish().await;
    assert!(sent > 50, "the load ran: {sent} requests");
    assert_eq!(
        failed, 0,
        "failed requests during the redeploy: {failures:?}"
    );
    assert_eq!(
        router.get(&host(&app), "/").await.unwrap(),
        (200, "v2\n".into())
    );

    // Scaled to 0, the host answers with a 503 page; scaled up, again.
    let live = Some(second.deployment_id);
    runtime.scale(&app, 0, live).await.unwrap();
    let (status, page) = router.get(&host(&app), "/").await.unwrap();
    assert_eq!(status, 503);
    assert!(page.contains("stopped"), "{page}");
    runtime.scale(&app, 1, live).await.unwrap();
    assert_eq!(
        router.get(&host(&app), "/").await.unwrap(),
        (200, "v2\n".into())
    );

    runtime.remove_app(&app).await.unwrap();
    assert_eq!(
        router.get(&host(&app), "/").await.unwrap().0,
        404,
        "a removed app's host"
    );
}

#[tokio::test]
async fn routes_the_router_lost_are_rebuilt_from_what_runs() {
    let images = images().await;
    let mut router = TestRouter::start().await;
    let runtime = routed_runtime(&router, 0).await;
    let (app, stopped) = (new_app(), new_app());
    let deployment = new_deployment(&app, &images.v1);
    runtime.deploy(&deployment).await.expect("serves");
    let other = new_deployment(&stopped, &images.v2);
    runtime.deploy(&other).await.expect("serves");
    runtime
        .scale(&stopped, 0, Some(other.deployment_id))
        .await
        .unwrap();

    router.restart_empty().await;
    assert!(
        router.get(&host(&app), "/").await.is_err(),
        "nothing listens: the router lost its server"
    );

    let wants = [
        RouteWant {
            app: app.clone(),
            live: Some(deployment.deployment_id),
            serving: true,
            domains: vec![],
        },
        RouteWant {
            app: stopped.clone(),
            live: Some(other.deployment_id),
            serving: false,
            domains: vec![],
        },
    ];
    let changed = runtime.converge_routes(&wants, &|_| false).await.unwrap();
    assert_eq!(changed.len(), 2);
    assert_eq!(
        router.get(&host(&app), "/").await.unwrap(),
        (200, "v1\n".into())
    );
    assert_eq!(router.get(&host(&stopped), "/").await.unwrap().0, 503);
    let again = runtime.converge_routes(&wants, &|_| false).await.unwrap();
    assert!(again.is_empty(), "nothing to repair the second time");

    // An app the wants no longer name (deleted) loses its route, unless kept.
    let changed = runtime
        .converge_routes(&wants[..1], &|id| id == stopped.id)
        .await
        .unwrap();
    assert!(changed.is_empty(), "kept: {changed:?}");
    let changed = runtime
        .converge_routes(&wants[..1], &|_| false)
        .await
        .unwrap();
    assert_eq!(changed.into_iter().collect::<Vec<_>>(), vec![stopped.id]);
    assert_eq!(router.get(&host(&stopped), "/").await.unwrap().0, 404);

    for gone in [&app, &stopped] {
        runtime.remove_app(gone).await.unwrap();
    }
}

/// One request's head, as an upstream of the router received it.
async fn upstream() -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (heads, received) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let heads = heads.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = heads.send(String::from_utf8_lossy(&head).to_lowercase());
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    (port, received)
}

#[tokio::test]
async fn apps_learn_the_clients_address_and_the_host_it_asked_for() {
    let router = TestRouter::start().await;
    let caddy = caddy(&router);
    let (port, mut heads) = upstream().await;
    let app = Uuid::now_v7();
    let route = |domains: Option<Vec<String>>| AppRoute {
        app_id: app,
        host: "shop.acme.localhost".into(),
        target: Target::Instances(vec![format!("127.0.0.1:{port}")]),
        health_check_path: None,
        domains,
    };
    caddy
        .set(&route(Some(vec!["shop.example.org".into()])))
        .await
        .unwrap();
    // A verified custom domain answers too (plain HTTP: no TLS listener).
    assert_eq!(
        router.get("shop.example.org", "/").await.unwrap(),
        (200, "ok".into())
    );
    heads.recv().await.unwrap();
    // A deploy moving the traffic says nothing of domains: they stay.
    caddy.set(&route(None)).await.unwrap();
    assert_eq!(
        router.get("shop.acme.localhost", "/cart").await.unwrap(),
        (200, "ok".into())
    );
    let head = heads.recv().await.unwrap();
    assert!(head.starts_with("get /cart "), "{head}");
    for header in [
        "x-forwarded-for: 127.0.0.1",
        "x-forwarded-proto: http",
        "x-forwarded-host: shop.acme.localhost",
    ] {
        assert!(head.contains(header), "{header} in {head}");
    }
    assert!(caddy.remove(app).await.unwrap());
    assert!(!caddy.remove(app).await.unwrap(), "already gone");
    assert_eq!(router.get("shop.acme.localhost", "/").await.unwrap().0, 404);
    assert_eq!(router.get("shop.example.org", "/").await.unwrap().0, 404);
}

#[tokio::test]
async fn routes_written_at_once_by_several_workers_are_all_kept() {
    let router = TestRouter::start().await;
    let routes: Vec<AppRoute> = (0..12)
        .map(|n| AppRoute {
            app_id: Uuid::now_v7(),
            host: format!("app{n}.acme.localhost"),
            target: Target::Unavailable(Unavailable::NotRunning),
            health_check_path: None,
            domains: None,
        })
        .collect();
    let writers = routes.iter().cloned().map(|route| {
        let caddy = caddy(&router);
        tokio::spawn(async move { caddy.set(&route).await })
    });
    for written in futures::future::join_all(writers).await {
        written.unwrap().unwrap();
    }
    for route in &routes {
        let (status, page) = router.get(&route.host, "/").await.unwrap();
        assert_eq!(status, 503, "{}: {page}", route.host);
    }
    // The console's route and the 404 for unknown hosts stay around them.
    let (status, _) = router.get("elsewhere.localhost", "/").await.unwrap();
    assert_eq!(status, 404);
    let (status, _) = router.get("berth.localhost", "/").await.unwrap();
    assert_eq!(
        status, 502,
        "the console's route leads to its (absent) backend"
    );
}

async fn running_of(app: &berth_proto::AppRef) -> usize {
    containers_of(app)
        .await
        .iter()
        .filter(|(_, _, state)| state == "running")
        .count()
}

#[tokio::test]
async fn an_app_runs_as_many_instances_as_its_scale_behind_the_router() {
    let images = images().await;
    let router = TestRouter::start().await;
    let runtime = routed_runtime(&router, 0).await;
    let app = new_app();
    let mut deployment = new_deployment(&app, &images.v1);
    deployment.release.config.replicas = 2;
    runtime.deploy(&deployment).await.expect("serves");
    assert_eq!(running_of(&app).await, 2);
    assert_eq!(instances_answering(&router, &host(&app), 10).await.len(), 2);

    let live = Some(deployment.deployment_id);
    assert_eq!(runtime.scale(&app, 3, live).await.unwrap(), 1, "one more");
    assert_eq!(running_of(&app).await, 3);
    assert_eq!(instances_answering(&router, &host(&app), 12).await.len(), 3);

    // An instance that dies gets no request that fails.
    let victim = containers_of(&app).await[0]
        .0
        .trim_start_matches('/')
        .to_owned();
    docker()
        .await
        .kill_container(
            &victim,
            None::<bollard::query_parameters::KillContainerOptions>,
        )
        .await
        .unwrap();
    let answered = instances_answering(&router, &host(&app), 12).await;
    assert!(answered.len() >= 2, "{answered:?}");

    assert!(runtime.scale(&app, 1, live).await.unwrap() >= 1);
    assert_eq!(running_of(&app).await, 1);
    assert_eq!(instances_answering(&router, &host(&app), 5).await.len(), 1);
    // A scale back up starts the stopped instances again.
    runtime.scale(&app, 3, live).await.unwrap();
    assert_eq!(running_of(&app).await, 3);
    assert_eq!(instances_answering(&router, &host(&app), 12).await.len(), 3);

    // A redeploy runs the new release at the release's scale and retires
    // every instance of the old one.
    let mut next = new_deployment(&app, &images.v2);
    next.release.config.replicas = 2;
    runtime.deploy(&next).await.expect("v2 serves");
    assert_eq!(running_of(&app).await, 2);
    assert_eq!(
        router.get(&host(&app), "/").await.unwrap(),
        (200, "v2\n".into())
    );
    runtime.remove_app(&app).await.unwrap();
}

/// The access log the log-streamer ships into each app's log: a line per
/// request to one of the app's names, under the app's logger; nothing for
/// hosts no app has.
#[tokio::test]
async fn requests_to_an_app_are_logged_under_its_logger() {
    let router = TestRouter::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("access.log");
    let mut config = router_config(&router, 0);
    config.router_access_log = Some(file.clone());
    let caddy =
        berth_deploy_worker::router::caddy::CaddyRouter::new(router.socket.clone(), &config)
            .unwrap();
    let (port, _heads) = upstream().await;
    let app = Uuid::now_v7();
    let route = AppRoute {
        app_id: app,
        host: "shop.acme.localhost".into(),
        target: Target::Instances(vec![format!("127.0.0.1:{port}")]),
        health_check_path: None,
        domains: Some(vec!["shop.example.org".into()]),
    };
    caddy.converge(&[route], &|_| false).await.unwrap();
    assert_eq!(
        router
            .get("shop.acme.localhost", "/cart?x=1")
            .await
            .unwrap()
            .0,
        200
    );
    assert_eq!(router.get("shop.example.org", "/").await.unwrap().0, 200);
    assert_eq!(router.get("nobody.localhost", "/").await.unwrap().0, 404);
    let logger = format!("\"logger\":\"http.log.access.app-{app}\"");
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            if text.lines().count() >= 2 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the router wrote its access log");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lines: Vec<String> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), 2, "no line for an unknown host: {lines:?}");
    assert!(lines.iter().all(|l| l.contains(&logger)), "{lines:?}");
    assert!(lines[0].contains("\"uri\":\"/cart?x=1\""), "{}", lines[0]);
    // Written once: a second pass changes nothing in Caddy's logging.
    caddy.converge(&[], &|_| true).await.unwrap();
}
