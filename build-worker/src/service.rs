//! The build pipeline for one `build.requested`: resolve, skip if already
//! built, clone, detect, build, push, read the digest, hand over to the
//! deploy-worker. Each phase is reported on `berth.inform`; each step is a
//! line in the app's build log.

use crate::buildlog::BuildLog;
use crate::config::Settings;
use crate::context::{self, ContextError};
use crate::detect::{Plan, Recipe};
use crate::docker::{BuildJob, Built, ImageBuilder};
use crate::error::BuildError;
use crate::git::{CancelFlag, RepoSpec, SourceFetcher};
use crate::prepare::prepare;
use crate::registry::{is_digest, ImageRepo, Registry};
use crate::slots::BuildSlots;
use crate::work_dirs::WorkDir;
use berth_common::control::{Cancellations, Watched};
use berth_common::{LogSink, MessagePublisher, Outcome};
use berth_proto::{
    labels, BuildRequested, DeployRequested, DeploymentProgress, DeploymentState, Release,
};
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How long a publish may wait for the broker's confirm.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(30);

/// Builds apps. Generic over its I/O seams: the image builder, the source
/// fetcher, the registry, the log sink and the message publisher.
pub struct BuildService<B, F, R, L, P> {
    settings: Settings,
    key: berth_proto::SecretKey,
    builder: B,
    fetcher: F,
    registry: R,
    logs: Arc<L>,
    publisher: P,
    shutdown: CancellationToken,
    slots: Arc<BuildSlots>,
    cancellations: Cancellations,
}

/// Where a build is, for the deadline's message and the failure report.
#[derive(Default)]
struct Tracker {
    phase: Mutex<&'static str>,
    commit: Mutex<Option<String>>,
}

impl Tracker {
    fn phase(&self) -> &'static str {
        *self.phase.lock().expect("tracker lock")
    }
    fn set_phase(&self, phase: &'static str) {
        *self.phase.lock().expect("tracker lock") = phase;
    }
    fn commit(&self) -> Option<String> {
        self.commit.lock().expect("tracker lock").clone()
    }
    fn set_commit(&self, commit: &str) {
        *self.commit.lock().expect("tracker lock") = Some(commit.to_owned());
    }
}

impl<B, F, R, L, P> BuildService<B, F, R, L, P>
where
    B: ImageBuilder,
    F: SourceFetcher,
    R: Registry,
    L: LogSink,
    P: MessagePublisher,
{
    pub fn new(
        settings: Settings,
        key: berth_proto::SecretKey,
        builder: B,
        fetcher: F,
        registry: R,
        logs: Arc<L>,
        publisher: P,
    ) -> Self {
        Self {
            settings,
            key,
            builder,
            fetcher,
            registry,
            logs,
            publisher,
            shutdown: CancellationToken::new(),
            slots: Arc::new(BuildSlots::new(usize::MAX >> 3, usize::MAX >> 3)),
            cancellations: Cancellations::new(),
        }
    }

    /// Where this worker hears of builds the backend no longer wants: they
    /// are refused before they start and stopped where they are.
    pub fn with_cancellations(mut self, cancellations: Cancellations) -> Self {
        self.cancellations = cancellations;
        self
    }

    /// Bounds the builds run at once, and one tenant's share of them.
    pub fn with_slots(mut self, slots: BuildSlots) -> Self {
        self.slots = Arc::new(slots);
        self
    }

    /// Builds in progress stop when `shutdown` is cancelled; their messages
    /// are redelivered (to another worker, or to this one when it is back).
    pub fn with_shutdown(mut self, shutdown: CancellationToken) -> Self {
        self.shutdown = shutdown;
        self
    }

    async fn report(
        &self,
        deployment_id: Uuid,
        attempt: u32,
        progress: DeploymentProgress,
    ) -> Result<(), BuildError> {
        tracing::info!(state = %progress.state, reason = progress.reason.as_deref(), "reporting");
        self.send(deployment_id, attempt, &progress).await
    }

    /// Publishes with a bound on the wait for the broker's confirm, so a
    /// stuck broker turns into a redelivery rather than a stuck build slot.
    async fn send<M: berth_proto::Payload + Sync>(
        &self,
        deployment_id: Uuid,
        attempt: u32,
        payload: &M,
    ) -> Result<(), BuildError> {
        let sent = self.publisher.send(Some(deployment_id), attempt, payload);
        match tokio::time::timeout(PUBLISH_TIMEOUT, sent).await {
            Ok(result) => result.map_err(BuildError::Publish),
            Err(_) => Err(BuildError::PublishTimeout(PUBLISH_TIMEOUT)),
        }
    }

    /// Runs one build request to its end; the outcome settles the message.
    pub async fn build(
        &self,
        deployment_id: Uuid,
        attempt: u32,
        request: BuildRequested,
    ) -> Outcome {
        let watched = self
            .cancellations
            .watch(request.app.id, Some(deployment_id));
        self.build_watched(
            deployment_id,
            attempt,
            request,
            &watched,
            &CancellationToken::new(),
        )
        .await
    }

    async fn build_watched(
        &self,
        deployment_id: Uuid,
        attempt: u32,
        request: BuildRequested,
        watched: &Watched,
        lost: &CancellationToken,
    ) -> Outcome {
        if let Some(reason) = watched.reason() {
            tracing::info!(%reason, "build no longer wanted; not started");
            metrics::counter!("berth_builds_total", "outcome" => "cancelled").increment(1);
            return Outcome::Done;
        }
        let started = Instant::now();
        if let Err(error) = self
            .report(
                deployment_id,
                attempt,
                DeploymentProgress::new(DeploymentState::Cloning),
            )
            .await
        {
            return Outcome::Retry(error.to_string());
        }
        let sink: Arc<dyn LogSink> = self.logs.clone();
        let log = BuildLog::start(sink, request.app.id, deployment_id, &self.settings.log);
        let tracker = Tracker::default();
        tracker.set_phase("cloning");
        let cancel: CancelFlag = Arc::new(AtomicBool::new(false));
        let work = self.pipeline(
            deployment_id,
            attempt,
            &request,
            &log,
            &tracker,
            cancel.clone(),
        );
        let finished = tokio::select! {
            result = tokio::time::timeout(self.settings.deadline, work) => Some(match result {
                Ok(result) => result,
                Err(_) => Err(BuildError::DeadlineExceeded {
                    limit: self.settings.deadline,
                    phase: tracker.phase(),
                }),
            }),
            _ = self.shutdown.cancelled() => None,
            // The broker took the message back (the connection dropped) and
            // delivers it again: this attempt's result could not be settled.
            () = lost.cancelled() => None,
            // Dropping the pipeline stops the builder (the sandbox's cgroup
            // is killed, a Kaniko pod deleted); the backend has already
            // ended the deployment, so nothing is reported.
            () = watched.cancelled() => {
                cancel.store(true, std::sync::atomic::Ordering::Relaxed);
                let reason = watched.reason().unwrap_or_else(|| "cancelled".into());
                log.line(format!("Build stopped: {reason}")).await;
                log.finish().await;
                metrics::counter!("berth_builds_total", "outcome" => "cancelled").increment(1);
                tracing::info!(%reason, "build stopped");
                return Outcome::Done;
            }
        };
        let Some(result) = finished else {
            cancel.store(true, std::sync::atomic::Ordering::Relaxed);
            let why = if lost.is_cancelled() {
                "The build worker lost its broker connection"
            } else {
                "The build worker is shutting down"
            };
            log.line(format!("{why}; this build will start again"))
                .await;
            log.finish().await;
            return Outcome::Retry(why.to_lowercase());
        };
        // Stops a clone still running on its thread after a deadline.
        cancel.store(true, std::sync::atomic::Ordering::Relaxed);
        let seconds = started.elapsed().as_secs_f64();
        match result {
            Ok(release) => {
                log.finish().await;
                metrics::counter!("berth_builds_total", "outcome" => "done").increment(1);
                metrics::histogram!("berth_build_duration_seconds").record(seconds);
                tracing::info!(image = %release.image, seconds, "build done");
                match self
                    .send(deployment_id, attempt, &DeployRequested { release })
                    .await
                {
                    Ok(()) => Outcome::Done,
                    Err(error) => Outcome::Retry(error.to_string()),
                }
            }
            Err(error) if error.is_retryable() => {
                if error.is_for_users() {
                    log.line(format!(
                        "Build interrupted; berth tries again by itself: {error}"
                    ))
                    .await;
                }
                log.finish().await;
                metrics::counter!("berth_builds_total", "outcome" => "retry").increment(1);
                Outcome::Retry(error.to_string())
            }
            // A duplicate delivery: the attempt that owns the build reports
            // it; failing here would end a build that is going well (F12).
            Err(error @ BuildError::AttemptInProgress(_)) => {
                log.finish().await;
                metrics::counter!("berth_builds_total", "outcome" => "duplicate").increment(1);
                tracing::info!(%error, "a duplicate build request; left to the running attempt");
                Outcome::Done
            }
            Err(error) => {
                let reason = error.to_string();
                metrics::counter!("berth_builds_total", "outcome" => "failed").increment(1);
                tracing::info!(%reason, seconds, "build failed");
                log.line(format!("Build failed: {reason}")).await;
                log.finish().await;
                let mut progress = DeploymentProgress::failed(reason);
                progress.commit = tracker.commit();
                match self.report(deployment_id, attempt, progress).await {
                    Ok(()) => Outcome::Done,
                    Err(error) => Outcome::Retry(error.to_string()),
                }
            }
        }
    }

    async fn pipeline(
        &self,
        deployment_id: Uuid,
        attempt: u32,
        request: &BuildRequested,
        log: &BuildLog,
        tracker: &Tracker,
        cancel: CancelFlag,
    ) -> Result<Release, BuildError> {
        let source = &request.source;
        let policy = self.settings.source_policy();
        let spec = RepoSpec::new(source, &request.app, &self.key, &policy)?;
        log.line(format!(
            "Cloning {} at {}",
            spec.display_url(),
            spec.wanted()
        ))
        .await;
        let repo = ImageRepo::new(
            &self.settings.registry,
            &request.app.tenant,
            &request.app.name,
        );

        // A ref resolves without a download; if that commit is already
        // built, there is nothing to clone.
        let resolved = self.fetcher.resolve(&spec).await?;
        if let Some(resolved) = &resolved {
            tracker.set_commit(&resolved.commit);
            if spec.wanted() != resolved.commit {
                log.line(format!("Resolved {} to {}", spec.wanted(), resolved.commit))
                    .await;
            }
            if let Some(release) = self
                .already_built(request, &repo, &resolved.commit, log)
                .await?
            {
                return Ok(release);
            }
        }
        let work = WorkDir::create(&self.settings.work_dir, deployment_id)
            .map_err(|e| BuildError::Internal(format!("cannot make a work folder: {e}")))?;
        let root = work.path().to_path_buf();
        let checkout = root.join("source");
        std::fs::create_dir(&checkout)
            .map_err(|e| BuildError::Internal(format!("cannot make a work folder: {e}")))?;
        let checked_out = self
            .fetcher
            .checkout(&spec, resolved.as_ref(), &checkout, cancel)
            .await?;
        let commit = checked_out.commit;
        tracker.set_commit(&commit);
        if resolved.is_none() {
            log.line(format!("Resolved {} to {commit}", spec.wanted()))
                .await;
            if let Some(release) = self.already_built(request, &repo, &commit, log).await? {
                return Ok(release);
            }
        }

        let subdirectory = source.subdirectory.as_deref();
        let app_dir = context::app_dir(&checkout, subdirectory).map_err(|problem| {
            BuildError::Subdirectory {
                path: subdirectory.unwrap_or_default().to_owned(),
                problem,
            }
        })?;
        let recipe = Recipe {
            images: &self.settings.images,
            port: request.config.port,
            extra_ca: self.settings.extra_ca.is_some(),
        };
        let prepared = prepare(
            &checkout,
            &app_dir,
            &recipe,
            self.settings.extra_ca.as_deref(),
        )?;
        log.line(prepared.plan.log_line()).await;
        tracing::info!(plan = %prepared.plan.description(), %commit, "building");
        if let Plan::Generated { dockerfile, .. } = &prepared.plan {
            log.line("Generated Dockerfile:").await;
            for line in dockerfile.lines() {
                log.line(format!("  {line}")).await;
            }
        }
        let tar = root.join("context.tar");
        let (repo_root, dir, out) = (checkout.clone(), app_dir.clone(), tar.clone());
        let (prefix, extra) = (prepared.prefix, prepared.extra);
        let stats = tokio::task::spawn_blocking(move || {
            context::write_context(&repo_root, &dir, prefix, &extra, &out)
        })
        .await
        .map_err(|e| BuildError::Internal(e.to_string()))?
        .map_err(|error| match error {
            ContextError::Unsafe(problem) => BuildError::UnsafeRepository(problem),
            ContextError::Io(error) => BuildError::Context(error.to_string()),
        })?;
        log.line(format!(
            "Sending the build context: {} files, {:.1} MiB",
            stats.files,
            stats.bytes as f64 / (1024.0 * 1024.0)
        ))
        .await;

        tracker.set_phase("building");
        self.report(
            deployment_id,
            attempt,
            DeploymentProgress::new(DeploymentState::Building)
                .with_commit(&commit)
                .with_commit_message(checked_out.summary),
        )
        .await?;
        let job = BuildJob {
            context: tar,
            dockerfile: prepared.dockerfile,
            base_images: prepared.base_images,
            repository: repo.name(),
            tag: commit.clone(),
            labels: image_labels(request, &spec.display_url(), &commit),
            app: request.app.clone(),
            deployment_id,
        };
        let digest = match self.builder.build(&job, log).await? {
            // Kaniko pushes as it builds: there is no separate push to report.
            Built::Pushed { digest } => digest,
            Built::Local => {
                tracker.set_phase("pushing");
                self.report(
                    deployment_id,
                    attempt,
                    DeploymentProgress::new(DeploymentState::Pushing).with_commit(&commit),
                )
                .await?;
                log.line(format!("Pushing {}", job.image())).await;
                self.builder.push(&job, log).await?;
                self.registry
                    .digest(&repo, &commit)
                    .await?
                    .ok_or_else(|| BuildError::Registry {
                        registry: self.settings.registry.clone(),
                        problem: format!("does not show {} right after the push", job.image()),
                    })?
            }
        };
        let release = self.release(request, &repo, &commit, &digest);
        log.line(format!("Pushed {}", release.image)).await;
        drop(work);
        Ok(release)
    }

    /// The release of an image berth itself built for `commit`, when the
    /// request names one (by the digest the backend recorded) and the
    /// registry still has it. A tag is never trusted: whoever can push to
    /// the repository can move it.
    async fn already_built(
        &self,
        request: &BuildRequested,
        repo: &ImageRepo,
        commit: &str,
        log: &BuildLog,
    ) -> Result<Option<Release>, BuildError> {
        let Some(known) = request
            .known_images
            .iter()
            .find(|known| known.commit == commit && is_digest(&known.digest))
        else {
            return Ok(None);
        };
        if self.registry.digest(repo, &known.digest).await?.as_deref() != Some(&known.digest) {
            log.line(format!(
                "The image built earlier for {commit} ({}) is gone from the registry; building it again",
                known.digest
            ))
            .await;
            return Ok(None);
        }
        log.line(format!(
            "Image already built for {commit}; skipping the build"
        ))
        .await;
        let release = self.release(request, repo, commit, &known.digest);
        log.line(format!("Using {}", release.image)).await;
        Ok(Some(release))
    }

    fn release(
        &self,
        request: &BuildRequested,
        repo: &ImageRepo,
        commit: &str,
        digest: &str,
    ) -> Release {
        Release {
            id: request.release_id,
            app: request.app.clone(),
            commit: commit.to_owned(),
            image: repo.by_digest(digest),
            config: request.config.clone(),
        }
    }
}

fn image_labels(
    request: &BuildRequested,
    source_url: &str,
    commit: &str,
) -> HashMap<String, String> {
    HashMap::from([
        (labels::APP.to_owned(), request.app.id.to_string()),
        (labels::APP_NAME.to_owned(), request.app.name.clone()),
        (labels::TENANT.to_owned(), request.app.tenant.clone()),
        (
            labels::MANAGED_BY.to_owned(),
            labels::MANAGED_BY_VALUE.to_owned(),
        ),
        (
            "org.opencontainers.image.revision".to_owned(),
            commit.to_owned(),
        ),
        (
            "org.opencontainers.image.source".to_owned(),
            source_url.to_owned(),
        ),
    ])
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;

#[path = "service_handle.rs"]
mod handle;
