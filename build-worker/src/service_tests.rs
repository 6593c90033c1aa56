//! The pipeline against fakes of every seam: what it builds and what it
//! trusts when the registry already has something for the commit.

use super::*;
use crate::buildlog::LogSettings;
use crate::detect::StackImages;
use crate::git::{CheckedOut, Resolved};
use async_trait::async_trait;
use berth_common::logs::LogError;
use berth_common::BrokerError;
use berth_proto::{AppRef, KnownImage, LogRecord, ReleaseConfig, SecretKey, Source};
use berth_proto::{Envelope, Message};
use std::collections::HashMap;
use std::path::Path;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const REGISTRY: &str = "registry.example.com";

fn digest(fill: char) -> String {
    format!("sha256:{}", fill.to_string().repeat(64))
}

/// The commit, resolved without a download; a checkout holds a Dockerfile.
struct Fetcher;

#[async_trait]
impl SourceFetcher for Fetcher {
    async fn resolve(&self, _spec: &RepoSpec) -> Result<Option<Resolved>, BuildError> {
        Ok(Some(Resolved {
            commit: COMMIT.into(),
            ref_name: Some("refs/heads/main".into()),
        }))
    }

    async fn checkout(
        &self,
        _spec: &RepoSpec,
        _resolved: Option<&Resolved>,
        dest: &Path,
        _cancel: CancelFlag,
    ) -> Result<CheckedOut, BuildError> {
        std::fs::write(dest.join("Dockerfile"), "FROM scratch\n").unwrap();
        Ok(CheckedOut {
            commit: COMMIT.into(),
            summary: None,
        })
    }
}

/// Builds "push" their image as Kaniko does, with digest `f…`.
#[derive(Default)]
struct Builder {
    builds: Mutex<Vec<String>>,
    /// Another attempt of the build owns its Kaniko Pod.
    duplicate: bool,
    /// The container engine is away.
    engine_down: bool,
    /// The push fails: the registry's token service (the backend) is down.
    push_refused: bool,
}

#[async_trait]
impl ImageBuilder for Arc<Builder> {
    async fn build(&self, job: &BuildJob, _log: &BuildLog) -> Result<Built, BuildError> {
        self.builds.lock().unwrap().push(job.image());
        if self.duplicate {
            return Err(BuildError::AttemptInProgress("build-x".into()));
        }
        if self.engine_down {
            return Err(BuildError::Engine {
                detail: "connection refused".into(),
            });
        }
        if self.push_refused {
            return Err(BuildError::PushFailed {
                registry: "127.0.0.1:5000".into(),
                detail: "Error: trying to reuse blob sha256:dfde at destination: Get \"http://127.0.0.1:8080/api/v1/registry/token\": dial tcp 127.0.0.1:8080: connect: connection refused".into(),
            });
        }
        Ok(Built::Pushed {
            digest: digest('f'),
        })
    }

    async fn push(&self, _job: &BuildJob, _log: &BuildLog) -> Result<(), BuildError> {
        Ok(())
    }
}

/// Manifests by `(tenant/app, tag or digest)`.
#[derive(Default)]
struct FakeRegistry(HashMap<(String, String), String>);

impl FakeRegistry {
    /// `path:tag` (and `path@digest`) name `digest`.
    fn with(mut self, path: &str, tag: &str, digest: &str) -> Self {
        self.0
            .insert((path.to_owned(), tag.to_owned()), digest.to_owned());
        self.0
            .insert((path.to_owned(), digest.to_owned()), digest.to_owned());
        self
    }
}

#[async_trait]
impl Registry for FakeRegistry {
    async fn digest(&self, repo: &ImageRepo, tag: &str) -> Result<Option<String>, BuildError> {
        Ok(self.0.get(&(repo.path.clone(), tag.to_owned())).cloned())
    }
}

#[derive(Default)]
struct Logs(Mutex<Vec<String>>);

#[async_trait]
impl LogSink for Logs {
    async fn append(&self, _app: Uuid, _key: &str, record: &LogRecord) -> Result<i64, LogError> {
        let mut lines = self.0.lock().unwrap();
        lines.push(record.line.clone());
        Ok(lines.len() as i64)
    }
}

#[derive(Default, Clone)]
struct Published(Arc<Mutex<Vec<Envelope>>>);

#[async_trait]
impl MessagePublisher for Published {
    async fn publish(&self, _routing_key: &str, envelope: &Envelope) -> Result<(), BrokerError> {
        self.0.lock().unwrap().push(envelope.clone());
        Ok(())
    }
}

struct Seen {
    outcome: berth_common::Outcome,
    release: Option<Release>,
    built: Vec<String>,
    lines: Vec<String>,
    reported: Vec<DeploymentState>,
}

fn settings(work: &Path) -> Settings {
    Settings {
        registry: REGISTRY.into(),
        images: StackImages {
            python: "p".into(),
            node: "n".into(),
            go: "g".into(),
            rust: "r".into(),
            static_site: "s".into(),
        },
        extra_ca: None,
        allow_local_repos: false,
        local_repo_root: None,
        github_url: "https://github.com".parse().unwrap(),
        work_dir: work.to_path_buf(),
        deadline: Duration::from_secs(60),
        log: LogSettings::default(),
    }
}

fn build_request(key: &SecretKey, known_images: Vec<KnownImage>) -> BuildRequested {
    let app = AppRef {
        id: Uuid::now_v7(),
        name: "web".into(),
        tenant: "victim".into(),
    };
    BuildRequested {
        app: app.clone(),
        release_id: Uuid::now_v7(),
        source: Source {
            repo_url: "https://git.example.com/victim/web.git".into(),
            git_ref: "main".into(),
            commit: None,
            subdirectory: None,
            token: None,
        },
        config: ReleaseConfig {
            port: 8000,
            env: key.seal_json(
                &berth_proto::Binding::app_env(&app.tenant, app.id),
                &serde_json::json!({"SECRET": "new value"}),
            ),
            env_version: 2,
            replicas: 1,
            resources: Default::default(),
            health_check_path: None,
        },
        known_images,
    }
}

async fn run(registry: FakeRegistry, known_images: Vec<KnownImage>) -> Seen {
    let seen = run_with(Builder::default(), registry, known_images).await;
    assert!(
        matches!(seen.outcome, berth_common::Outcome::Done),
        "{:?}",
        seen.outcome
    );
    seen
}

async fn run_with(builder: Builder, registry: FakeRegistry, known_images: Vec<KnownImage>) -> Seen {
    let work = tempfile::tempdir().unwrap();
    let key = SecretKey::from_base64(&SecretKey::generate_base64()).unwrap();
    let builder = Arc::new(builder);
    let logs = Arc::new(Logs::default());
    let published = Published::default();
    let service = BuildService::new(
        settings(work.path()),
        key.clone(),
        builder.clone(),
        Fetcher,
        registry,
        logs.clone(),
        published.clone(),
    );
    let request = build_request(&key, known_images);
    let outcome = service.build(Uuid::now_v7(), 1, request).await;
    let release = published
        .0
        .lock()
        .unwrap()
        .iter()
        .find(|e| e.kind == "deploy.requested")
        .map(|e| e.payload::<DeployRequested>().unwrap().release);
    let reported = published
        .0
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| e.payload::<DeploymentProgress>().ok())
        .map(|progress| progress.state)
        .collect();
    let built = builder.builds.lock().unwrap().clone();
    let lines = logs.0.lock().unwrap().clone();
    Seen {
        outcome,
        release,
        built,
        lines,
        reported,
    }
}

/// F26: the engine away is not the user's failure: the build is tried
/// again later, and the user's log says so.
#[tokio::test]
async fn a_build_the_engine_could_not_run_is_tried_again_not_failed() {
    let builder = Builder {
        engine_down: true,
        ..Default::default()
    };
    let seen = run_with(builder, FakeRegistry::default(), Vec::new()).await;
    assert!(
        matches!(seen.outcome, berth_common::Outcome::Retry(ref why) if why.contains("container engine is unavailable")),
        "{:?}",
        seen.outcome
    );
    assert!(!seen.reported.contains(&DeploymentState::Failed));
    assert!(
        seen.lines.iter().any(|line| line
            == "Build interrupted; berth tries again by itself: the container engine is unavailable (connection refused); try again later"),
        "{:?}",
        seen.lines
    );
}

/// Found by `make chaos`: a push that failed because berth's own registry
/// or its token service (a backend that was killed) did not answer is
/// berth's plumbing, not the user's build: tried again, not failed.
#[tokio::test]
async fn a_build_whose_push_failed_is_tried_again_not_failed() {
    let builder = Builder {
        push_refused: true,
        ..Default::default()
    };
    let seen = run_with(builder, FakeRegistry::default(), Vec::new()).await;
    assert!(
        matches!(seen.outcome, berth_common::Outcome::Retry(ref why) if why.contains("could not be pushed")),
        "{:?}",
        seen.outcome
    );
    assert!(!seen.reported.contains(&DeploymentState::Failed));
}

/// F12: a duplicate delivery whose build another attempt runs neither
/// fails the deployment nor asks for a deploy.
#[tokio::test]
async fn a_duplicate_attempt_steps_aside_without_a_report() {
    let builder = Builder {
        duplicate: true,
        ..Default::default()
    };
    let seen = run_with(builder, FakeRegistry::default(), Vec::new()).await;
    assert_eq!(seen.outcome, berth_common::Outcome::Done);
    assert_eq!(seen.built.len(), 1, "it got as far as the builder");
    assert!(seen.release.is_none());
    assert!(
        !seen.reported.contains(&DeploymentState::Failed),
        "{:?}",
        seen.reported
    );
}

#[path = "cancel_tests.rs"]
mod cancel;

#[tokio::test]
async fn a_tag_someone_else_pushed_is_not_trusted_and_the_commit_is_built() {
    // The attacker pushed their image under the victim's commit tag.
    let registry = FakeRegistry::default().with("victim/web", COMMIT, &digest('e'));
    let outcome = run(registry, Vec::new()).await;
    assert_eq!(
        outcome.built,
        [format!("{REGISTRY}/victim/web:{COMMIT}")],
        "{:#?}",
        outcome.lines
    );
    let release = outcome.release.expect("a deploy was requested");
    assert_eq!(
        release.image,
        format!("{REGISTRY}/victim/web@{}", digest('f'))
    );
    assert!(!release.image.contains(&digest('e')));
}

#[tokio::test]
async fn the_digest_berth_recorded_is_reused_whatever_the_tag_now_names() {
    // Berth built `a…` for the commit; the tag was moved to `e…` since.
    let registry = FakeRegistry::default()
        .with("victim/web", COMMIT, &digest('a'))
        .with("victim/web", COMMIT, &digest('e'));
    let known = vec![
        KnownImage {
            commit: "1111111111111111111111111111111111111111".into(),
            digest: digest('1'),
        },
        KnownImage {
            commit: COMMIT.into(),
            digest: digest('a'),
        },
    ];
    let outcome = run(registry, known).await;
    assert!(outcome.built.is_empty(), "{:?}", outcome.built);
    assert_eq!(
        outcome.release.unwrap().image,
        format!("{REGISTRY}/victim/web@{}", digest('a'))
    );
    assert!(outcome.lines.contains(&format!(
        "Image already built for {COMMIT}; skipping the build"
    )));
}

#[tokio::test]
async fn a_recorded_image_the_registry_lost_is_built_again() {
    let registry = FakeRegistry::default().with("victim/web", COMMIT, &digest('e'));
    let known = vec![KnownImage {
        commit: COMMIT.into(),
        digest: digest('a'),
    }];
    let outcome = run(registry, known).await;
    assert_eq!(outcome.built.len(), 1, "{:#?}", outcome.lines);
    assert_eq!(
        outcome.release.unwrap().image,
        format!("{REGISTRY}/victim/web@{}", digest('f'))
    );
    assert!(
        outcome
            .lines
            .iter()
            .any(|l| l.contains("is gone from the registry; building it again")),
        "{:#?}",
        outcome.lines
    );
}
