//! The sandboxed builder on this host, for real: rootless podman as the
//! build user, a network namespace and a control group per build. These
//! tests attack it the way a tenant's Dockerfile would.

mod isolation;
mod limits;

use async_trait::async_trait;
use berth_build_worker::context::write_context;
use berth_build_worker::{BuildError, BuildJob, BuildLog, Built, ImageBuilder, LogSettings};
use berth_build_worker::{RegistryAuth, SandboxBuilder, SandboxConfig};
use berth_common::logs::LogError;
use berth_common::testing::stack_env;
use berth_common::LogSink;
use berth_proto::{AppRef, LogRecord};
use clap::Parser;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    sandbox: SandboxConfig,
}

/// A sandboxed builder on the stack's registry, with `flags` on top of the
/// defaults (e.g. `--build-memory-mb=256`).
pub async fn builder(flags: &[&str]) -> SandboxBuilder {
    let env = stack_env();
    let mut args = vec!["test"];
    args.extend_from_slice(flags);
    let config = Flags::parse_from(args).sandbox;
    // These builds neither push nor pull from berth's registry: grants of a
    // key of their own will do.
    let grants = berth_common::registry_auth::Grants::from_secret_key(
        &berth_proto::SecretKey::generate_base64(),
    )
    .unwrap();
    let auth = RegistryAuth {
        registry: env["BERTH_REGISTRY"].clone(),
        credentials: Arc::new(grants),
    };
    SandboxBuilder::start(&config, auth, true)
        .await
        .expect("the sandbox starts (run as root on a stack made by infra/local/stack.sh)")
}

/// The build log in memory, shared with the test while the build runs.
#[derive(Default, Clone)]
pub struct Lines(Arc<Mutex<Vec<String>>>);

#[async_trait]
impl LogSink for Lines {
    async fn append(&self, _app: Uuid, _key: &str, record: &LogRecord) -> Result<i64, LogError> {
        let mut lines = self.0.lock().unwrap();
        lines.push(record.line.clone());
        Ok(lines.len() as i64 - 1)
    }
}

impl Lines {
    pub fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    pub fn text(&self) -> String {
        self.all().join("\n")
    }

    /// Waits until a line is `line` exactly: the output of a step, not the
    /// `STEP` line that quotes the command.
    pub async fn wait_for_line(&self, line: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.all().iter().any(|l| l.trim() == line) {
            assert!(
                Instant::now() < deadline,
                "no log line {line:?} in {timeout:?}; log:\n{}",
                self.text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// An app folder with `files`, and a build job for it in `tenant`.
pub struct App {
    pub job: BuildJob,
    pub lines: Lines,
    _dir: tempfile::TempDir,
}

impl App {
    pub fn new(tenant: &str, files: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let app_dir = dir.path().join("app");
        std::fs::create_dir(&app_dir).unwrap();
        for (name, contents) in files {
            std::fs::write(app_dir.join(name), contents).unwrap();
        }
        let context = dir.path().join("context.tar");
        write_context(&app_dir, &app_dir, "", &[], &context).unwrap();
        let env = stack_env();
        let app = AppRef {
            id: Uuid::now_v7(),
            name: format!("sbx-{}", &Uuid::new_v4().simple().to_string()[..8]),
            tenant: tenant.to_owned(),
        };
        let dockerfile = files
            .iter()
            .find(|(name, _)| *name == "Dockerfile")
            .map(|(_, text)| *text)
            .unwrap_or("");
        let base_images = berth_build_worker::dockerfile::check(dockerfile)
            .map(|checked| checked.base_images)
            .unwrap_or_default();
        let job = BuildJob {
            context,
            dockerfile: "Dockerfile".into(),
            base_images,
            repository: format!("{}/{}/{}", env["BERTH_REGISTRY"], tenant, app.name),
            tag: "0000000000000000000000000000000000000001".into(),
            labels: HashMap::new(),
            app,
            deployment_id: Uuid::now_v7(),
        };
        Self {
            job,
            lines: Lines::default(),
            _dir: dir,
        }
    }

    /// Builds in `builder`, the log kept in [`App::lines`].
    pub async fn build(&self, builder: &SandboxBuilder) -> Result<Built, BuildError> {
        let log = BuildLog::start(
            Arc::new(self.lines.clone()),
            self.job.app.id,
            self.job.deployment_id,
            &LogSettings::default(),
        );
        let result = builder.build(&self.job, &log).await;
        log.finish().await;
        if std::env::var_os("BERTH_SHOW_BUILD_LOG").is_some() {
            eprintln!(
                "--- build log of {}:\n{}",
                self.job.app.name,
                self.lines.text()
            );
        }
        result
    }
}

/// A tenant name no other test uses.
pub fn tenant(prefix: &str) -> String {
    format!("{prefix}-{}", &Uuid::new_v4().simple().to_string()[..8])
}

pub const PYTHON: &str = "localhost/berth/python:bookworm";
pub const STATIC: &str = "localhost/berth/static:latest";

#[tokio::test]
async fn an_ordinary_build_works_and_stays_in_its_tenants_store() {
    let builder = builder(&[]).await;
    let (a, b) = (tenant("sbxa"), tenant("sbxb"));
    let marker = Uuid::new_v4().to_string();
    let app = App::new(
        &a,
        &[(
            "Dockerfile",
            &format!("FROM {STATIC}\nRUN echo built-{marker} > /site/index.html\n"),
        )],
    );
    assert_eq!(app.build(&builder).await.unwrap(), Built::Local);
    assert!(
        app.lines.text().contains("STEP 2/2"),
        "{}",
        app.lines.text()
    );
    // The image is in tenant a's store and nowhere tenant b's builds can read.
    assert!(builder.has_image(&a, &app.job.image()).await);
    assert!(!builder.has_image(&b, &app.job.image()).await);
}
