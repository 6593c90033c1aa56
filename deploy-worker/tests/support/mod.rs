//! Test support: tiny app images built on the real engine and pushed to a
//! registry of the test binary's own (token authentication, its realm
//! served in-process by berth's token service), an in-process deploy-worker
//! on a fresh RabbitMQ vhost, and a reader of the reports it publishes on
//! `berth.inform`.
#![allow(dead_code)]

use berth_common::engine::connect;
use berth_common::registry_auth::{Access, Grants, RegistryCredentials};
use berth_common::testing::registry::TestRegistry;
use berth_common::testing::{setting, TestVhost};
use berth_common::{Broker, MessagePublisher};
use berth_deploy_worker::docker::DockerRuntime;
use berth_deploy_worker::registry::{RegistryPull, ENGINE_PULL_GRANT};
use berth_deploy_worker::{AppLimits, DeployService, DockerConfig};
use berth_proto::names::{DEPLOYS_QUEUE, INFORM_QUEUE};
use berth_proto::{
    AppRef, AppRemovalRequested, Binding, DeployRequested, DeploymentProgress, DeploymentState,
    Envelope, Release, ReleaseConfig, Resources, SecretKey,
};
use bollard::auth::DockerCredentials;
use bollard::query_parameters::{
    BuildImageOptionsBuilder, ListContainersOptionsBuilder, PushImageOptionsBuilder,
    RemoveImageOptionsBuilder,
};
use bollard::Docker;
use clap::Parser;
use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions};
use lapin::types::FieldTable;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub mod routing;

pub const BASE: &str = "localhost/berth/static:latest";

pub async fn docker() -> Docker {
    connect(&setting("BERTH_DOCKER_HOST"))
        .await
        .expect("the stack's engine answers")
}

/// The tenant of every test app: images go to `<registry>/test/<repo>`.
pub const TENANT: &str = "test";

/// This test binary's registry; its token service takes grants of the
/// stack's BERTH_SECRET_KEY, the key the worker under test has.
pub async fn registry() -> &'static TestRegistry {
    static REGISTRY: tokio::sync::OnceCell<TestRegistry> = tokio::sync::OnceCell::const_new();
    REGISTRY
        .get_or_init(|| async { TestRegistry::start(&setting("BERTH_SECRET_KEY")).await })
        .await
}

/// Grants of the stack's key, as berth's processes mint them.
pub fn grants() -> Grants {
    Grants::from_secret_key(&setting("BERTH_SECRET_KEY")).unwrap()
}

/// A push grant of `tenant`, as a build of that tenant has.
async fn credentials(tenant: &str) -> DockerCredentials {
    let grant = grants().for_tenant(tenant, Access::Push);
    DockerCredentials {
        username: Some(grant.username),
        password: Some(grant.password),
        serveraddress: Some(registry().await.address.clone()),
        ..Default::default()
    }
}

/// Builds `dockerfile` (plus `files`) into `<registry>/test/<repo>`,
/// pushes it and returns it by digest, as the build-worker would.
pub async fn build_and_push(repo: &str, dockerfile: &str) -> String {
    let docker = docker().await;
    let mut archive = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(dockerfile.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    archive
        .append_data(&mut header, "Dockerfile", dockerfile.as_bytes())
        .unwrap();
    let context = archive.into_inner().unwrap();
    let registry = &registry().await.address;
    let name = format!("{registry}/{TENANT}/{repo}");
    let tag = "test";
    let options = BuildImageOptionsBuilder::default()
        .dockerfile("Dockerfile")
        .t(&format!("{name}:{tag}"))
        .rm(true)
        .build();
    let mut build = docker.build_image(options, None, Some(bollard::body_full(context.into())));
    while let Some(step) = build.next().await {
        let step = step.expect("the build runs");
        if let Some(error) = step.error_detail {
            panic!("building {name}: {error:?}");
        }
    }
    let options = PushImageOptionsBuilder::default().tag(tag).build();
    let mut push = docker.push_image(&name, Some(options), Some(credentials(TENANT).await));
    let mut digest = None;
    while let Some(step) = push.next().await {
        let status = step.expect("the push runs").status.unwrap_or_default();
        // Podman: "test: digest: sha256:... size: 579"
        if let Some(rest) = status.split("digest: ").nth(1) {
            digest = rest.split_whitespace().next().map(str::to_owned);
        }
    }
    let digest = digest.expect("the push reports the manifest digest");
    format!("{name}@{digest}")
}

/// A web app: busybox httpd on $PORT serving `page`, `GREETING` at
/// /env.txt and its container's host name (which instance) at /who.txt.
pub fn web_dockerfile(page: &str) -> String {
    format!(
        "FROM {BASE}\nRUN mkdir -p /site && echo '{page}' > /site/index.html\n\
         CMD [\"sh\", \"-c\", \"echo \\\"$GREETING\\\" > /site/env.txt; busybox hostname > /site/who.txt; echo serving on $PORT; exec busybox httpd -f -p $PORT -h /site\"]\n"
    )
}

pub fn crash_dockerfile() -> String {
    format!(
        "FROM {BASE}\nCMD [\"sh\", \"-c\", \"echo starting; echo 'fatal: DATABASE_URL is not set' >&2; exit 1\"]\n"
    )
}

pub fn silent_dockerfile() -> String {
    format!(
        "FROM {BASE}\nCMD [\"sh\", \"-c\", \"echo listening on 9999 instead; exec sleep 3600\"]\n"
    )
}

/// Serves `page` like [`web_dockerfile`], but only 4 s after it starts.
pub fn slow_dockerfile(page: &str) -> String {
    format!(
        "FROM {BASE}\nRUN mkdir -p /site && echo '{page}' > /site/index.html\n\
         CMD [\"sh\", \"-c\", \"sleep 4; exec busybox httpd -f -p $PORT -h /site\"]\n"
    )
}

/// A web app with a health check at `/cgi-bin/health` (busybox httpd CGI)
/// that each instance can be told to fail: `/cgi-bin/break` makes this
/// instance answer 500 there from then on, and `/cgi-bin/hit` (its page,
/// answering the instance's host name) counts the requests it gets 5 s or
/// more after it broke, which `/cgi-bin/late` reports. With `START_BROKEN`
/// set, the instance fails its health check from the start.
pub fn health_dockerfile() -> String {
    let script = |body: &str| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(format!("#!/bin/sh\n{body}"))
    };
    let scripts = [
        (
            "health",
            script(
                "if [ -f /tmp/broken ]; then printf 'Status: 500 Broken\\r\\n\\r\\nbroken\\n'; \
                 else printf 'Content-Type: text/plain\\r\\n\\r\\nok\\n'; fi\n",
            ),
        ),
        (
            "break",
            script("date +%s > /tmp/broken\nprintf 'Content-Type: text/plain\\r\\n\\r\\nbroken\\n'\n"),
        ),
        (
            "hit",
            script(
                "if [ -f /tmp/broken ] && [ $(( $(date +%s) - $(cat /tmp/broken) )) -ge 5 ]; then \
                 echo x >> /tmp/late; fi\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'; busybox hostname\n",
            ),
        ),
        (
            "late",
            script("printf 'Content-Type: text/plain\\r\\n\\r\\n'; cat /tmp/late 2>/dev/null | wc -l\n"),
        ),
    ];
    let installs: Vec<String> = scripts
        .iter()
        .map(|(name, encoded)| {
            format!("echo {encoded} | base64 -d > /site/cgi-bin/{name} && chmod +x /site/cgi-bin/{name}")
        })
        .collect();
    format!(
        "FROM {BASE}\nRUN mkdir -p /site/cgi-bin && {}\n\
         CMD [\"sh\", \"-c\", \"if [ -n \\\"$START_BROKEN\\\" ]; then echo 0 > /tmp/broken; fi; exec busybox httpd -f -p $PORT -h /site\"]\n",
        installs.join(" && ")
    )
}

/// Serves `page` for 3 s after each start, then exits 1 (a crash).
pub fn flaky_dockerfile(page: &str) -> String {
    format!(
        "FROM {BASE}\nRUN mkdir -p /site && echo '{page}' > /site/index.html\n\
         CMD [\"sh\", \"-c\", \"busybox httpd -p $PORT -h /site; sleep 3; echo 'fatal: lost the database'; exit 1\"]\n"
    )
}

/// The test images, built once per test binary.
pub struct Images {
    pub v1: String,
    pub v2: String,
    pub crash: String,
    pub silent: String,
    pub slow: String,
}

pub async fn images() -> &'static Images {
    static IMAGES: tokio::sync::OnceCell<Images> = tokio::sync::OnceCell::const_new();
    IMAGES
        .get_or_init(|| async {
            Images {
                v1: build_and_push("web", &web_dockerfile("v1")).await,
                v2: build_and_push("web2", &web_dockerfile("v2")).await,
                crash: build_and_push("crash", &crash_dockerfile()).await,
                silent: build_and_push("silent", &silent_dockerfile()).await,
                slow: build_and_push("slow", &slow_dockerfile("slow")).await,
            }
        })
        .await
}

pub fn key() -> SecretKey {
    SecretKey::from_base64(&setting("BERTH_SECRET_KEY")).unwrap()
}

pub fn new_app() -> AppRef {
    let id = Uuid::now_v7();
    AppRef {
        id,
        name: format!("t{}", &id.simple().to_string()[20..]),
        tenant: TENANT.into(),
    }
}

pub fn release(app: &AppRef, image: &str, env: &[(&str, &str)]) -> Release {
    let env: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Release {
        id: Uuid::now_v7(),
        app: app.clone(),
        commit: "0123456789abcdef".into(),
        image: image.to_owned(),
        config: ReleaseConfig {
            port: 8000,
            env: key().seal_json(&Binding::app_env(&app.tenant, app.id), &env),
            env_version: 1,
            replicas: 1,
            resources: Resources {
                cpu_millis: Some(500),
                memory_mb: Some(64),
            },
            health_check_path: None,
        },
    }
}

pub fn docker_config(ready_timeout_secs: u64) -> DockerConfig {
    DockerConfig {
        docker_host: setting("BERTH_DOCKER_HOST"),
        installation: "deploy-worker-tests".into(),
        publish_addr: "127.0.0.1".into(),
        public_host: "127.0.0.1".into(),
        ready_timeout_secs,
        stop_timeout_secs: 2,
        retired_keep_secs: 0,
        restart_policy: "on-failure:5".parse().unwrap(),
        limits: AppLimitFlags::parse_from(["test"]).limits,
    }
}

#[derive(clap::Parser)]
struct AppLimitFlags {
    #[command(flatten)]
    limits: AppLimits,
}

/// The docker driver as the worker runs it: pull grants for the test's
/// registry, the app fence installed.
pub async fn docker_runtime(ready_timeout_secs: u64) -> DockerRuntime {
    docker_runtime_with(docker_config(ready_timeout_secs)).await
}

/// [`docker_runtime`] with settings of the test's own.
pub async fn docker_runtime_with(config: DockerConfig) -> DockerRuntime {
    berth_deploy_worker::docker::network::fence(&config.limits)
        .await
        .expect("the app fence installs (as root)");
    let pull = RegistryPull::new(
        &registry().await.address,
        Arc::new(grants().pull_for(ENGINE_PULL_GRANT)),
    );
    DockerRuntime::new(docker().await, config, Some(pull))
}

/// An in-process deploy-worker on its own vhost, and what it reported.
pub struct Worker {
    pub broker: Broker,
    /// Deleted after the containers, when the worker is dropped.
    vhost: Option<TestVhost>,
    /// Apps whose containers are removed when the worker is dropped, even
    /// when the test failed.
    apps: Mutex<Vec<Uuid>>,
    pub reports: Arc<Mutex<Vec<(Uuid, DeploymentProgress)>>>,
    pub runtime: DockerRuntime,
    shutdown: CancellationToken,
    consumer: tokio::task::JoinHandle<()>,
}

impl Worker {
    pub async fn start(ready_timeout_secs: u64) -> Self {
        berth_common::ops::init_tracing();
        let vhost = TestVhost::new();
        let url = vhost.url.clone();
        let broker = Broker::new(url.clone(), "deploy-worker-test");
        broker.ensure_topology().await.expect("topology");
        let runtime = docker_runtime(ready_timeout_secs).await;
        let service = DeployService::new(runtime, broker.clone(), key());
        let shutdown = CancellationToken::new();
        let consumer = tokio::spawn({
            let (broker, shutdown) = (broker.clone(), shutdown.clone());
            async move {
                broker
                    .consume(DEPLOYS_QUEUE, 4, Arc::new(service), shutdown)
                    .await
            }
        });
        let reports = Arc::new(Mutex::new(Vec::new()));
        let connection = lapin::Connection::connect(&url, Default::default())
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        let mut inform = channel
            .basic_consume(
                INFORM_QUEUE.into(),
                "test-inform".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        tokio::spawn({
            let reports = reports.clone();
            async move {
                let _keep = connection;
                while let Some(Ok(delivery)) = inform.next().await {
                    let envelope = Envelope::from_bytes(&delivery.data).unwrap();
                    let progress: DeploymentProgress = envelope.payload().unwrap();
                    reports
                        .lock()
                        .unwrap()
                        .push((envelope.deployment_id.unwrap(), progress));
                    delivery
                        .acker
                        .ack(BasicAckOptions::default())
                        .await
                        .unwrap();
                }
            }
        });
        Self {
            broker,
            vhost: Some(vhost),
            apps: Mutex::new(Vec::new()),
            reports,
            runtime: docker_runtime(ready_timeout_secs).await,
            shutdown,
            consumer,
        }
    }

    pub async fn deploy(&self, deployment_id: Uuid, release: &Release) -> Envelope {
        self.apps.lock().unwrap().push(release.app.id);
        let envelope = Envelope::new(
            Some(deployment_id),
            1,
            &DeployRequested {
                release: release.clone(),
            },
        );
        self.broker.publish(DEPLOYS_QUEUE, &envelope).await.unwrap();
        envelope
    }

    /// Deploys `image` as a new deployment of `app` and waits until it is
    /// live; returns the deployment and where it answers.
    pub async fn live(&self, app: &AppRef, image: &str) -> (Uuid, String) {
        let deployment = Uuid::now_v7();
        self.deploy(deployment, &release(app, image, &[])).await;
        let live = self.outcome(deployment, 1).await;
        let endpoint = live
            .endpoint
            .clone()
            .unwrap_or_else(|| panic!("not live: {live:?}"));
        (deployment, endpoint)
    }

    pub async fn remove(&self, app: &AppRef) {
        self.broker
            .send(None, 1, &AppRemovalRequested { app: app.clone() })
            .await
            .unwrap();
    }

    /// The reports on one deployment, so far.
    pub fn reports_of(&self, deployment_id: Uuid) -> Vec<DeploymentProgress> {
        self.reports
            .lock()
            .unwrap()
            .iter()
            .filter(|(id, _)| *id == deployment_id)
            .map(|(_, progress)| progress.clone())
            .collect()
    }

    /// Waits for the `n`th report on the deployment that ends its deploy
    /// (live, failed or cancelled).
    pub async fn outcome(&self, deployment_id: Uuid, n: usize) -> DeploymentProgress {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let ends: Vec<_> = self
                .reports_of(deployment_id)
                .into_iter()
                .filter(|p| {
                    matches!(
                        p.state,
                        DeploymentState::Live
                            | DeploymentState::Failed
                            | DeploymentState::Cancelled
                    )
                })
                .collect();
            if ends.len() >= n {
                return ends[n - 1].clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no outcome #{n} for {deployment_id}: {:?}",
                self.reports_of(deployment_id)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the worker; dropping it cleans up.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        let _ = (&mut self.consumer).await;
    }
}

impl Drop for Worker {
    /// Removes the test's containers and deletes its vhost (every vhost
    /// holds file handles of the broker; leftovers exhaust them).
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.consumer.abort();
        let apps = std::mem::take(&mut *self.apps.lock().unwrap());
        let vhost = self.vhost.take();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                for app in apps {
                    remove_containers_of(app).await;
                }
            });
            drop(vhost);
        })
        .join()
        .ok();
    }
}

async fn remove_containers_of(app_id: Uuid) {
    let docker = docker().await;
    let filters = HashMap::from([("label", vec![format!("berth.dev/app={app_id}")])]);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    for container in docker
        .list_containers(Some(options))
        .await
        .unwrap_or_default()
    {
        let remove = bollard::query_parameters::RemoveContainerOptionsBuilder::default()
            .force(true)
            .build();
        let _ = docker
            .remove_container(&container.id.unwrap_or_default(), Some(remove))
            .await;
    }
}

impl Worker {}

/// The app's containers: (name, deployment label, state).
pub async fn containers_of(app: &AppRef) -> Vec<(String, String, String)> {
    let filters = HashMap::from([("label", vec![format!("berth.dev/app={}", app.id)])]);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    docker()
        .await
        .list_containers(Some(options))
        .await
        .unwrap()
        .into_iter()
        .map(|c| {
            let labels = c.labels.unwrap_or_default();
            (
                c.names.unwrap_or_default().join(","),
                labels
                    .get("berth.dev/deployment")
                    .cloned()
                    .unwrap_or_default(),
                c.state.map(|s| s.to_string()).unwrap_or_default(),
            )
        })
        .collect()
}

/// `GET path` on an endpoint like `http://127.0.0.1:41234`; the body.
pub async fn http_get(endpoint: &str, path: &str) -> std::io::Result<String> {
    let address = endpoint.trim_start_matches("http://");
    let mut stream = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect(address),
    )
    .await??;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").as_bytes())
        .await?;
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut response)).await??;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(format!(
            "unexpected response: {head}"
        )));
    }
    Ok(body.trim().to_owned())
}

/// Removes an image from the engine (tag and digest reference), so the
/// next deploy of it has to pull it from the registry.
pub async fn forget_image(image_by_digest: &str) {
    let docker = docker().await;
    let (name, _) = image_by_digest.split_once('@').unwrap();
    let options = RemoveImageOptionsBuilder::default().force(true).build();
    for reference in [format!("{name}:test"), image_by_digest.to_owned()] {
        let _ = docker
            .remove_image(&reference, Some(options.clone()), None)
            .await;
    }
    assert!(
        docker.inspect_image(image_by_digest).await.is_err(),
        "{image_by_digest} is still on the engine"
    );
}

/// A new deployment of `image` for `app`, not cancelled, without env vars.
pub fn new_deployment(app: &AppRef, image: &str) -> berth_deploy_worker::DeploySpec {
    berth_deploy_worker::DeploySpec {
        deployment_id: Uuid::now_v7(),
        release: release(app, image, &[]),
        env: Default::default(),
        cancelled: Default::default(),
    }
}

/// Waits until the engine has `count` containers of `app` (a rollout under
/// way has made its new one).
pub async fn until_containers(app: &AppRef, count: usize) {
    while containers_of(app).await.len() < count {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
