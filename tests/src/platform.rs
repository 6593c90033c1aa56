//! One running berth: backend, build-worker, deploy-worker, log-streamer,
//! and an image registry of its own whose token service (realm) is this
//! platform's backend, as on a real installation. (The stack's registry
//! answers to the backend on :8080, which tests do not run.)

use anyhow::{bail, Context, Result};
use berth_common::testing::registry::{SigningFiles, TestRegistry, ISSUER, SERVICE};
use berth_common::testing::router::TestRouter;
use berth_common::testing::{free_port, repo_root, stack_env, TestVhost};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tokio::process::{Child, Command};
use uuid::Uuid;

pub const BINARIES: [&str; 4] = [
    "berth-backend",
    "berth-build-worker",
    "berth-deploy-worker",
    "berth-log-streamer",
];

pub struct Platform {
    /// Where the backend answers, e.g. `http://127.0.0.1:40123`.
    pub base_url: String,
    /// The settings every process got.
    pub env: HashMap<String, String>,
    /// Scratch space: work dirs, state dirs and the processes' output.
    pub dir: TempDir,
    children: Vec<(String, Child)>,
    /// Every process this platform runs, by instance name ("berth-backend",
    /// "berth-backend-2"), with the settings only that instance gets.
    instances: Vec<(String, Vec<(String, String)>)>,
    /// Deleted (with the database) when the platform is dropped.
    vhost: TestVhost,
    database: String,
    /// Stopped (its images deleted) when the platform is dropped.
    pub registry: TestRegistry,
    /// The edge router apps answer behind, the platform's own.
    pub router: TestRouter,
}

pub fn binary_dir() -> PathBuf {
    std::env::var("BERTH_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join("target/debug"))
}

fn create_database(admin_url: &str, name: &str) -> Result<String> {
    let status = std::process::Command::new("psql")
        .arg(admin_url)
        .args(["-qc", &format!("CREATE DATABASE {name}")])
        .status()
        .context("psql runs")?;
    if !status.success() {
        bail!("could not create database {name}");
    }
    let (root, _) = admin_url.rsplit_once('/').context("admin URL has a path")?;
    Ok(format!("{root}/{name}"))
}

impl Platform {
    /// Starts the four binaries (built by `cargo build --bins`) and waits
    /// until the backend is ready.
    pub async fn start() -> Result<Self> {
        Self::start_with(&[]).await
    }

    /// Like [`start`](Self::start), with `extra` settings for every process
    /// on top of the stack's and the platform's own (they win).
    pub async fn start_with(extra: &[(&str, String)]) -> Result<Self> {
        Self::start_copies(extra, 1).await
    }

    /// Like [`start_with`](Self::start_with), with `copies` backends,
    /// build-workers and deploy-workers (one log-streamer), as replicas of a
    /// real installation would run: each backend on its own port, each
    /// build-worker with its own work folder. The first backend is
    /// [`base_url`](Self::base_url); [`backend_urls`](Self::backend_urls)
    /// has them all.
    pub async fn start_copies(extra: &[(&str, String)], copies: usize) -> Result<Self> {
        Self::start_inner(extra, copies, false).await
    }

    /// Like [`start_with`](Self::start_with), with the router's HTTPS
    /// listener on (`router.tls_port`); `extra` says where certificates
    /// come from (`BERTH_ACME_DIRECTORY`, ...).
    pub async fn start_with_https(extra: &[(&str, String)]) -> Result<Self> {
        Self::start_inner(extra, 1, true).await
    }

    async fn start_inner(extra: &[(&str, String)], copies: usize, https: bool) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("berth-e2e-").tempdir()?;
        let id = Uuid::new_v4().simple().to_string();
        let mut env = stack_env();
        let port = free_port();
        let base_url = format!("http://127.0.0.1:{port}");
        let database = format!("berth_e2e_{id}");
        let database_url = create_database(&env["BERTH_PG_ADMIN_URL"], &database)?;
        let vhost = TestVhost::new();
        let signing = SigningFiles::generate(dir.path());
        let registry =
            TestRegistry::start_with_realm(&format!("{base_url}/api/v1/registry/token"), &signing)
                .await;
        let router = TestRouter::start().await;
        // No platform-wide registry user: every push and pull is a grant.
        env.remove("BERTH_REGISTRY_USERNAME");
        env.remove("BERTH_REGISTRY_PASSWORD");
        let overrides = [
            ("BERTH_DATABASE_URL", database_url),
            ("BERTH_AMQP_URL", vhost.url.clone()),
            ("BERTH_LISTEN", format!("127.0.0.1:{port}")),
            ("BERTH_PUBLIC_URL", base_url.clone()),
            ("BERTH_INSTALLATION", format!("e2e-{}", &id[..12])),
            (
                "BERTH_WORK_DIR",
                dir.path().join("work").display().to_string(),
            ),
            (
                "BERTH_LOG_STREAMER_STATE_DIR",
                dir.path().join("log-streamer").display().to_string(),
            ),
            ("BERTH_ALLOW_LOCAL_REPOS", "true".into()),
            ("BERTH_REGISTRY", registry.address.clone()),
            (
                "BERTH_REGISTRY_TOKEN_KEY",
                signing.key.display().to_string(),
            ),
            (
                "BERTH_REGISTRY_TOKEN_CERT",
                signing.certificate.display().to_string(),
            ),
            ("BERTH_REGISTRY_SERVICE", SERVICE.into()),
            ("BERTH_REGISTRY_TOKEN_ISSUER", ISSUER.into()),
            (
                "BERTH_ROUTER_ADMIN_SOCKET",
                router.socket.display().to_string(),
            ),
            ("BERTH_ROUTER_LISTEN", router.listen()),
            ("BERTH_APPS_DOMAIN", "localhost".into()),
            ("BERTH_CONSOLE_HOST", "berth.localhost".into()),
            (
                "BERTH_ROUTER_ACCESS_LOG",
                dir.path().join("router-access.log").display().to_string(),
            ),
            ("BERTH_CONSOLE_UPSTREAM", format!("127.0.0.1:{port}")),
            // A shorter drain than an operator's default: the tests'
            // requests are short, and every redeploy waits for it.
            ("BERTH_DRAIN_SECS", "1".into()),
            ("RUST_LOG", "info,berth=debug".into()),
        ];
        env.extend(overrides.map(|(k, v)| (k.to_owned(), v)));
        // The operator's HTTPS settings are not the tests'.
        env.remove("BERTH_ROUTER_TLS_LISTEN");
        if https {
            env.insert("BERTH_ROUTER_TLS_LISTEN".into(), router.tls_listen());
        }
        env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        let mut instances = Vec::new();
        for binary in BINARIES {
            let copies = if binary == "berth-log-streamer" {
                1
            } else {
                copies.max(1)
            };
            for copy in 1..=copies {
                let name = match copy {
                    1 => binary.to_owned(),
                    n => format!("{binary}-{n}"),
                };
                let own = match binary {
                    "berth-backend" if copy > 1 => {
                        vec![(
                            "BERTH_LISTEN".to_owned(),
                            format!("127.0.0.1:{}", free_port()),
                        )]
                    }
                    "berth-build-worker" if copy > 1 => {
                        let work = dir.path().join(format!("work-{copy}"));
                        vec![("BERTH_WORK_DIR".to_owned(), work.display().to_string())]
                    }
                    _ => Vec::new(),
                };
                instances.push((name, own));
            }
        }
        let mut platform = Self {
            base_url,
            env,
            dir,
            children: Vec::new(),
            instances,
            vhost,
            database,
            registry,
            router,
        };
        for name in platform.instance_names() {
            platform.spawn(&name)?;
        }
        platform.wait_ready(Duration::from_secs(60)).await?;
        Ok(platform)
    }

    /// The RabbitMQ vhost the processes share.
    pub fn vhost_name(&self) -> &str {
        &self.vhost.name
    }

    /// The name of every process instance this platform runs.
    pub fn instance_names(&self) -> Vec<String> {
        self.instances
            .iter()
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Where each backend answers.
    pub fn backend_urls(&self) -> Vec<String> {
        self.instances
            .iter()
            .filter(|(name, _)| name.starts_with("berth-backend"))
            .map(|(_, own)| {
                own.iter()
                    .find(|(key, _)| key == "BERTH_LISTEN")
                    .map(|(_, listen)| format!("http://{listen}"))
                    .unwrap_or_else(|| self.base_url.clone())
            })
            .collect()
    }

    /// Starts (or restarts) one of the binaries, by instance name.
    pub fn spawn(&mut self, name: &str) -> Result<()> {
        let own = self
            .instances
            .iter()
            .find(|(instance, _)| instance == name)
            .map(|(_, own)| own.clone())
            .unwrap_or_default();
        let binary_name = BINARIES
            .into_iter()
            .find(|binary| name == *binary || name.starts_with(&format!("{binary}-")))
            .with_context(|| format!("no berth binary runs as {name}"))?;
        let binary = binary_dir().join(binary_name);
        if !binary.exists() {
            bail!(
                "{} is missing: build the binaries first (`cargo build --bins`, which `make test` does)",
                binary.display()
            );
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{name}.log")))?;
        let mut command = Command::new(&binary);
        command
            .envs(&self.env)
            // Each process logs in to the broker as its own user.
            .env("BERTH_AMQP_URL", self.vhost.url_for(binary_name))
            .env("BERTH_OPS_ADDR", format!("127.0.0.1:{}", free_port()))
            .envs(own)
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        let child = command
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        self.children.push((name.to_owned(), child));
        Ok(())
    }

    /// Kills one of the binaries, as a crash would.
    pub async fn kill(&mut self, name: &str) -> Result<()> {
        let index = self
            .children
            .iter()
            .position(|(n, _)| n == name)
            .with_context(|| format!("{name} is not running"))?;
        let (_, mut child) = self.children.remove(index);
        child.kill().await?;
        Ok(())
    }

    /// The instances that exited by themselves since the last call, with
    /// how: a supervisor (systemd, the kubelet, the fault suite) starts them
    /// again.
    pub fn exited(&mut self) -> Result<Vec<(String, std::process::ExitStatus)>> {
        let mut exited = Vec::new();
        let mut index = 0;
        while index < self.children.len() {
            if let Some(status) = self.children[index].1.try_wait()? {
                let (name, _) = self.children.remove(index);
                exited.push((name, status));
            } else {
                index += 1;
            }
        }
        Ok(exited)
    }

    /// Waits until the backend answers `/readyz`; fails early when one of
    /// the binaries exits.
    pub async fn wait_ready(&mut self, within: Duration) -> Result<()> {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + within;
        loop {
            let mut exited = None;
            for (name, child) in &mut self.children {
                if let Some(status) = child.try_wait()? {
                    exited = Some((name.clone(), status));
                }
            }
            if let Some((name, status)) = exited {
                bail!("{name} exited with {status}:\n{}", self.output(&name));
            }
            let ready = client
                .get(format!("{}/readyz", self.base_url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "the backend was not ready within {within:?}:\n{}",
                    self.output("berth-backend")
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// What a process printed so far (for failure messages).
    pub fn output(&self, name: &str) -> String {
        let text = std::fs::read_to_string(self.dir.path().join(format!("{name}.log")))
            .unwrap_or_default();
        // Backtrace frames ("  12: fn" and "at file:line") would push the
        // error itself out of the tail.
        let frame = |line: &&str| {
            let line = line.trim_start();
            line.starts_with("at ")
                || line
                    .split_once(": ")
                    .is_some_and(|(n, _)| n.bytes().all(|b| b.is_ascii_digit()))
        };
        let tail: Vec<&str> = text.lines().rev().filter(|l| !frame(l)).take(60).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// Every process's recent output, for a failing test's message.
    pub fn all_output(&self) -> String {
        self.instance_names()
            .iter()
            .map(|name| format!("===== {name}\n{}", self.output(name)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Platform {
    /// Removes the containers this platform's deploy-worker started. Runs on
    /// its own thread and runtime because it is called from `drop`.
    fn remove_containers(&self) {
        let host = self
            .env
            .get("BERTH_DOCKER_HOST")
            .cloned()
            .unwrap_or_default();
        let installation = self.env["BERTH_INSTALLATION"].clone();
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let docker = crate::engine::connect(&host).await?;
                crate::engine::remove_labelled(
                    &docker,
                    berth_proto::labels::INSTALLATION,
                    &installation,
                )
                .await
            })
        });
        if let Ok(Err(error)) = cleanup.join() {
            eprintln!("could not remove the test platform's containers: {error}");
        }
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.start_kill();
        }
        self.remove_containers();
        let _ = std::process::Command::new("psql")
            .arg(&self.env["BERTH_PG_ADMIN_URL"])
            .args([
                "-qc",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.database),
            ])
            .stdout(std::process::Stdio::null())
            .status();
        if std::thread::panicking() || std::env::var_os("BERTH_KEEP_E2E").is_some() {
            eprintln!("e2e output kept in {}", self.dir.path().display());
            self.dir.disable_cleanup(true);
        }
    }
}
