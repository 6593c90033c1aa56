//! A build worker on the local stack's real services: RabbitMQ (a fresh
//! vhost per test), tansu (Kafka) and Podman's socket, plus a registry of
//! the test's own with token authentication, its realm served in-process
//! by berth's token service (`berth_common::testing::registry`). Tests
//! publish `build.requested` and watch what comes out on `berth.inform`,
//! `berth.deploys` and the app's log topic.

#![allow(dead_code)]

use async_trait::async_trait;
use berth_build_worker::registry::build_grants;
use berth_build_worker::{
    BuildService, GitFetcher, HttpRegistry, ImageRepo, LogSettings, Registry, RegistryAuth,
    SandboxBuilder, SandboxConfig, Settings, StackImages,
};
use berth_common::registry_auth::{Grants, RegistryCredentials};
use berth_common::testing::registry::TestRegistry;
use berth_common::testing::{local_repo_root, stack_env, TestVhost};
use berth_common::{Broker, DeliveryInfo, Handler, LogProducer, MessagePublisher, Outcome};
use berth_proto::names::{BUILDS_QUEUE, DEPLOYS_QUEUE, INFORM_QUEUE};
use berth_proto::{
    AppRef, Binding, BuildRequested, DeployRequested, DeploymentProgress, DeploymentState,
    Envelope, LogRecord, Message, ReleaseConfig, SecretKey, Source,
};
use clap::Parser;
use git2::{IndexAddOption, Repository, RepositoryInitOptions, Signature};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{ClientConfig, Message as _, Offset, TopicPartitionList};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Mutex};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[derive(Parser)]
struct SandboxFlags {
    #[command(flatten)]
    sandbox: SandboxConfig,
}

/// The tenant every test app belongs to.
pub const TENANT: &str = "buildtest";

pub fn stack() -> HashMap<String, String> {
    stack_env()
}

/// The settings a worker on the stack gets; its registry is the test's own
/// once [`Harness::start`] has it.
pub fn settings(allow_local: bool) -> Settings {
    let env = stack();
    let get = |key: &str| {
        env.get(key)
            .cloned()
            .unwrap_or_else(|| panic!("{key} is not in the stack's env file"))
    };
    let work_dir = env
        .get("BERTH_WORK_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join("builds");
    std::fs::create_dir_all(&work_dir).unwrap();
    Settings {
        registry: String::new(),
        images: StackImages {
            python: get("BERTH_BASE_IMAGE_PYTHON"),
            node: get("BERTH_BASE_IMAGE_NODE"),
            go: get("BERTH_BASE_IMAGE_GO"),
            rust: get("BERTH_BASE_IMAGE_RUST"),
            static_site: get("BERTH_BASE_IMAGE_STATIC"),
        },
        extra_ca: env
            .get("BERTH_BUILD_CA_BUNDLE")
            .map(|path| std::fs::read(path).expect("the CA bundle is readable")),
        allow_local_repos: allow_local,
        local_repo_root: Some(local_repo_root()),
        github_url: url::Url::parse("https://github.com").unwrap(),
        work_dir,
        deadline: Duration::from_secs(600),
        log: LogSettings::default(),
    }
}

/// What a worker said about one deployment.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    pub progress: Vec<DeploymentProgress>,
    pub deploy: Option<DeployRequested>,
}

impl Seen {
    pub fn states(&self) -> Vec<DeploymentState> {
        self.progress.iter().map(|p| p.state).collect()
    }

    pub fn reason(&self) -> String {
        self.progress
            .iter()
            .find_map(|p| p.reason.clone())
            .unwrap_or_default()
    }

    fn finished(&self) -> bool {
        self.deploy.is_some() || self.states().contains(&DeploymentState::Failed)
    }
}

type Board = Arc<Mutex<HashMap<Uuid, Seen>>>;

/// Records inform and deploy messages by deployment.
struct Recorder {
    board: Board,
    wake: mpsc::UnboundedSender<()>,
}

#[async_trait]
impl Handler for Recorder {
    async fn handle(
        &self,
        envelope: Envelope,
        message: Message,
        _delivery: DeliveryInfo,
    ) -> Outcome {
        let Some(deployment) = envelope.deployment_id else {
            return Outcome::Reject("no deployment id".into());
        };
        let mut board = self.board.lock().await;
        let seen = board.entry(deployment).or_default();
        match message {
            Message::DeploymentProgress(progress) => seen.progress.push(progress),
            Message::DeployRequested(deploy) => seen.deploy = Some(deploy),
            other => return Outcome::Reject(format!("unexpected {other:?}")),
        }
        let _ = self.wake.send(());
        Outcome::Done
    }
}

pub struct Harness {
    pub broker: Broker,
    pub key: SecretKey,
    /// The test's registry, whose token service takes grants of `key`.
    pub registry: TestRegistry,
    /// Grants of `key`, as the worker mints them.
    pub grants: Arc<dyn RegistryCredentials>,
    board: Board,
    wake: Mutex<mpsc::UnboundedReceiver<()>>,
    shutdown: CancellationToken,
    /// Deleted when the harness is dropped.
    vhost: TestVhost,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Harness {
    /// A worker with the stack's settings on a fresh vhost, pushing to a
    /// registry of its own.
    pub async fn start(mut settings: Settings) -> Self {
        if std::env::var_os("RUST_LOG").is_some() {
            berth_common::ops::init_tracing();
        }
        let env = stack();
        let vhost = TestVhost::new();
        let url = vhost.url.clone();
        let broker = Broker::new(url, "build-worker-test");
        broker.ensure_topology().await.unwrap();
        let secret_key = SecretKey::generate_base64();
        let key = SecretKey::from_base64(&secret_key).unwrap();
        let registry = TestRegistry::start(&secret_key).await;
        settings.registry = registry.address.clone();
        let grants: Arc<dyn RegistryCredentials> = Arc::new(build_grants(
            Grants::from_secret_key(&secret_key).unwrap(),
            settings.deadline,
        ));
        let logs = Arc::new(LogProducer::new(&env["BERTH_KAFKA_BROKERS"], 24).unwrap());
        let auth = RegistryAuth {
            registry: settings.registry.clone(),
            credentials: grants.clone(),
        };
        // The builder the platform runs on a single host.
        let builder =
            SandboxBuilder::start(&SandboxFlags::parse_from(["test"]).sandbox, auth, true)
                .await
                .expect(
                    "the build sandbox starts (as root, on the stack infra/local/stack.sh made)",
                );
        let registry_client = HttpRegistry::new(&settings.registry, None, grants.clone()).unwrap();
        let shutdown = CancellationToken::new();
        let service = BuildService::new(
            settings,
            key.clone(),
            builder,
            GitFetcher,
            registry_client,
            logs,
            broker.clone(),
        )
        .with_shutdown(shutdown.clone());
        let board = Board::default();
        let (wake_tx, wake) = mpsc::unbounded_channel();
        let worker = Arc::new(service);
        {
            let (broker, shutdown) = (broker.clone(), shutdown.clone());
            tokio::spawn(async move { broker.consume(BUILDS_QUEUE, 2, worker, shutdown).await });
        }
        for queue in [INFORM_QUEUE, DEPLOYS_QUEUE] {
            let recorder = Arc::new(Recorder {
                board: board.clone(),
                wake: wake_tx.clone(),
            });
            let (broker, shutdown) = (broker.clone(), shutdown.clone());
            tokio::spawn(async move { broker.consume(queue, 4, recorder, shutdown).await });
        }
        Self {
            broker,
            key,
            registry,
            grants,
            board,
            wake: Mutex::new(wake),
            shutdown,
            vhost,
        }
    }

    /// Where `app`'s images go in the test's registry.
    pub fn image_repo(&self, app: &AppRef) -> ImageRepo {
        ImageRepo::new(&self.registry.address, &app.tenant, &app.name)
    }

    /// Digest lookups in the test's registry, with the worker's grants.
    pub fn registry_client(&self) -> HttpRegistry {
        HttpRegistry::new(&self.registry.address, None, self.grants.clone()).unwrap()
    }

    /// Tags the local image `source` as `repo:tag` and pushes it with a
    /// grant of `access` to the repository's tenant, as anyone holding such
    /// a grant could; returns the digest the registry then serves.
    pub async fn push_as(
        &self,
        source: &str,
        repo: &ImageRepo,
        tag: &str,
        access: berth_common::registry_auth::Access,
    ) -> String {
        use bollard::query_parameters::{PushImageOptionsBuilder, TagImageOptionsBuilder};
        use futures::StreamExt;
        let docker = berth_common::engine::connect(&stack()["BERTH_DOCKER_HOST"])
            .await
            .unwrap();
        // A layer of its own, so the image differs from anything built.
        let marker = format!("{}:{tag}-foreign", repo.name());
        docker
            .tag_image(
                source,
                Some(
                    TagImageOptionsBuilder::default()
                        .repo(&repo.name())
                        .tag(tag)
                        .build(),
                ),
            )
            .await
            .unwrap_or_else(|e| panic!("tagging {source} as {marker}: {e}"));
        let grant = self.grants.for_tenant(&repo.tenant, access);
        let credentials = bollard::auth::DockerCredentials {
            username: Some(grant.username),
            password: Some(grant.password),
            serveraddress: Some(self.registry.address.clone()),
            ..Default::default()
        };
        let mut push = docker.push_image(
            &repo.name(),
            Some(PushImageOptionsBuilder::default().tag(tag).build()),
            Some(credentials),
        );
        while let Some(item) = push.next().await {
            item.unwrap_or_else(|e| panic!("pushing {}:{tag}: {e}", repo.name()));
        }
        self.registry_client()
            .digest(repo, tag)
            .await
            .unwrap()
            .expect("the pushed tag is in the registry")
    }

    /// A build request for `app` from `source`.
    pub fn request(&self, app: &AppRef, source: Source) -> BuildRequested {
        BuildRequested {
            app: app.clone(),
            release_id: Uuid::now_v7(),
            source,
            config: ReleaseConfig {
                port: 8080,
                env: self.key.seal_json(
                    &Binding::app_env(&app.tenant, app.id),
                    &serde_json::json!({"GREETING": "hi"}),
                ),
                env_version: 1,
                replicas: 1,
                resources: Default::default(),
                health_check_path: None,
            },
            known_images: Vec::new(),
        }
    }

    /// Publishes the request for a new deployment; returns its id.
    pub async fn submit(&self, request: &BuildRequested) -> Uuid {
        let deployment = Uuid::now_v7();
        self.broker
            .send(Some(deployment), 1, request)
            .await
            .expect("the broker takes the build request");
        deployment
    }

    /// Stops the worker and the recorders, as SIGTERM does in `main`.
    pub fn stop(&self) {
        self.shutdown.cancel();
    }

    pub fn vhost(&self) -> &str {
        &self.vhost.name
    }

    /// Waits until the deployment reported `state`.
    pub async fn wait_for(&self, deployment: Uuid, state: DeploymentState, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut wake = self.wake.lock().await;
        loop {
            let reached = self
                .board
                .lock()
                .await
                .get(&deployment)
                .is_some_and(|seen| seen.states().contains(&state));
            if reached {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if tokio::time::timeout(left, wake.recv()).await.is_err() {
                panic!("deployment {deployment} did not reach {state} in {timeout:?}");
            }
        }
    }

    /// Waits until the deployment was handed to the deploy-worker or failed.
    pub async fn outcome(&self, deployment: Uuid, timeout: Duration) -> Seen {
        let deadline = Instant::now() + timeout;
        let mut wake = self.wake.lock().await;
        loop {
            let finished = self
                .board
                .lock()
                .await
                .get(&deployment)
                .is_some_and(Seen::finished);
            if finished {
                // Let a straggling report arrive.
                tokio::time::sleep(Duration::from_millis(300)).await;
                return self.board.lock().await[&deployment].clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if tokio::time::timeout(left, wake.recv()).await.is_err() {
                panic!(
                    "deployment {deployment} did not finish in {timeout:?}; seen: {:?}",
                    self.board.lock().await.get(&deployment)
                );
            }
        }
    }
}

pub fn new_app(prefix: &str) -> AppRef {
    let id = Uuid::now_v7();
    AppRef {
        id,
        name: format!("{prefix}-{}", &Uuid::new_v4().simple().to_string()[..8]),
        tenant: TENANT.into(),
    }
}

pub fn source(url: &str, git_ref: &str) -> Source {
    Source {
        repo_url: url.into(),
        git_ref: git_ref.into(),
        commit: None,
        subdirectory: None,
        token: None,
    }
}

/// A git repository on disk whose `main` gets one commit per call to `commit`.
pub struct TestRepo {
    pub dir: tempfile::TempDir,
    repo: Repository,
}

impl TestRepo {
    /// In the stack's local repository root, where the worker accepts it.
    pub fn new() -> Self {
        let dir = tempfile::tempdir_in(local_repo_root()).unwrap();
        let repo = Repository::init_opts(
            dir.path(),
            RepositoryInitOptions::new().initial_head("main"),
        )
        .unwrap();
        Self { dir, repo }
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.dir.path().display())
    }

    /// Writes `files` (path, contents) and commits everything; returns the SHA.
    pub fn commit(&self, message: &str, files: &[(&str, &str)]) -> String {
        for (path, contents) in files {
            let path = self.dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, contents).unwrap();
        }
        let mut index = self.repo.index().unwrap();
        index.add_all(["*"], IndexAddOption::DEFAULT, None).unwrap();
        // Files removed from the folder leave the commit too.
        index.update_all(["*"], None).unwrap();
        index.write().unwrap();
        let tree = self.repo.find_tree(index.write_tree().unwrap()).unwrap();
        let signature = Signature::now("berth test", "test@berth.invalid").unwrap();
        let parents: Vec<git2::Commit> = self
            .repo
            .head()
            .ok()
            .and_then(|head| head.peel_to_commit().ok())
            .into_iter()
            .collect();
        let parents: Vec<&git2::Commit> = parents.iter().collect();
        self.repo
            .commit(
                Some("HEAD"),
                &signature,
                &signature,
                message,
                &tree,
                &parents,
            )
            .unwrap()
            .to_string()
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn git(&self) -> &Repository {
        &self.repo
    }

    /// Tags HEAD with an annotated tag.
    pub fn tag(&self, name: &str) {
        let head = self
            .repo
            .head()
            .unwrap()
            .peel(git2::ObjectType::Commit)
            .unwrap();
        let signature = Signature::now("berth test", "test@berth.invalid").unwrap();
        self.repo
            .tag(name, &head, &signature, "a release", false)
            .unwrap();
    }
}

/// Every record of the app's log topic for `deployment`, waiting until
/// one has `until` in it.
pub async fn log_lines(app: Uuid, deployment: Uuid, until: &str) -> Vec<LogRecord> {
    try_log_lines(app, deployment, until, Duration::from_secs(30))
        .await
        .unwrap_or_else(|lines| {
            let lines: Vec<&String> = lines.iter().map(|r| &r.line).collect();
            panic!("no log line with {until:?} for {deployment}; got: {lines:#?}")
        })
}

/// Like [`log_lines`]; `Err` with what was there when `until` never came.
pub async fn try_log_lines(
    app: Uuid,
    deployment: Uuid,
    until: &str,
    wait: Duration,
) -> Result<Vec<LogRecord>, Vec<LogRecord>> {
    let env = stack();
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &env["BERTH_KAFKA_BROKERS"])
        .set("group.id", format!("build-worker-test-{}", Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
        .unwrap();
    let mut partitions = TopicPartitionList::new();
    partitions
        .add_partition_offset(&berth_proto::names::log_topic(app), 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&partitions).unwrap();
    let key = deployment.to_string();
    let mut lines = Vec::new();
    let deadline = Instant::now() + wait;
    while !lines.iter().any(|r: &LogRecord| r.line.contains(until)) {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = match tokio::time::timeout(left, consumer.recv()).await {
            Ok(message) => message.unwrap(),
            Err(_) => return Err(lines),
        };
        if message.key() != Some(key.as_bytes()) {
            continue;
        }
        let record: LogRecord = serde_json::from_slice(message.payload().unwrap()).unwrap();
        lines.push(record);
    }
    Ok(lines)
}

/// Runs `image` (a local tag) as the deploy-worker would, with `PORT`
/// published on 127.0.0.1, and returns what `GET /` answers.
pub async fn serve_and_fetch(harness: &Harness, image: &str, port: u16) -> String {
    let mut answers = serve_and_get(harness, image, port, &["/"]).await;
    let (status, body) = answers.remove(0);
    assert_eq!(status, 200, "GET / on {image}: {body}");
    body
}

/// Like [`serve_and_fetch`], for several paths: (status, body) of each.
pub async fn serve_and_get(
    harness: &Harness,
    image: &str,
    port: u16,
    paths: &[&str],
) -> Vec<(u16, String)> {
    use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};
    use bollard::query_parameters::RemoveContainerOptionsBuilder;
    let env = stack();
    let docker = bollard::Docker::connect_with_socket(
        &env["BERTH_DOCKER_HOST"],
        120,
        bollard::API_DEFAULT_VERSION,
    )
    .unwrap()
    .negotiate_version()
    .await
    .unwrap();
    // Pulled from the registry, as the deploy-worker does: builds happen in
    // the sandbox's own store, not the engine's.
    let tenant = image.split('/').nth(1).expect("<registry>/<tenant>/<app>");
    let grant = harness
        .grants
        .for_tenant(tenant, berth_common::registry_auth::Access::Pull);
    let credentials = Some(bollard::auth::DockerCredentials {
        username: Some(grant.username),
        password: Some(grant.password),
        serveraddress: Some(harness.registry.address.clone()),
        ..Default::default()
    });
    let pull = bollard::query_parameters::CreateImageOptionsBuilder::default()
        .from_image(image)
        .build();
    let mut pulling = docker.create_image(Some(pull), None, credentials);
    while let Some(progress) = futures::StreamExt::next(&mut pulling).await {
        progress.unwrap_or_else(|e| panic!("pulling {image}: {e}"));
    }
    let host_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let exposed = format!("{port}/tcp");
    let body = ContainerCreateBody {
        image: Some(image.to_owned()),
        exposed_ports: Some(vec![exposed.clone()]),
        host_config: Some(HostConfig {
            port_bindings: Some(HashMap::from([(
                exposed,
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some(host_port.to_string()),
                }]),
            )])),
            ..Default::default()
        }),
        ..Default::default()
    };
    let id = docker.create_container(None, body).await.unwrap().id;
    docker.start_container(&id, None).await.unwrap();
    let base = format!("http://127.0.0.1:{host_port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut answer = Ok(Vec::new());
    for path in paths {
        let url = format!("{base}{path}");
        let got = loop {
            match reqwest::get(&url).await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    break Ok((status, response.text().await.unwrap()));
                }
                Err(error) if Instant::now() > deadline => break Err(format!("{url}: {error}")),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        match (got, &mut answer) {
            (Ok(got), Ok(answers)) => answers.push(got),
            (Err(error), _) => {
                answer = Err(error);
                break;
            }
            _ => {}
        }
    }
    let _ = docker
        .remove_container(
            &id,
            Some(RemoveContainerOptionsBuilder::default().force(true).build()),
        )
        .await;
    answer.unwrap_or_else(|error| panic!("{image} did not answer: {error}"))
}
