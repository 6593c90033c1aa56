//! Building and pushing images. [`ImageBuilder`] is the seam; the
//! [`DockerBuilder`] speaks the Docker Engine API through bollard (Docker, or
//! Podman's Docker-compatible socket); the [`KanikoBuilder`] of the
//! Kubernetes driver builds in a Kaniko Pod.
//!
//! [`KanikoBuilder`]: crate::kaniko::KanikoBuilder

use crate::buildlog::BuildLog;
use crate::error::BuildError;
use async_trait::async_trait;
use berth_common::registry_auth::{Access, RegistryCredentials};
use berth_proto::AppRef;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::{BuildImageOptionsBuilder, PushImageOptionsBuilder};
use bollard::Docker;
use futures::StreamExt;
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::OnceCell;
use tokio_util::io::ReaderStream;
use uuid::Uuid;

/// One image to build and push.
#[derive(Debug, Clone)]
pub struct BuildJob {
    /// The build context, a tar file.
    pub context: PathBuf,
    /// The Dockerfile's path inside the context.
    pub dockerfile: String,
    /// The images the Dockerfile builds on (`FROM`, `COPY --from`), not
    /// counting its own stages: a sandboxed builder prepares them first.
    pub base_images: Vec<String>,
    /// Where it goes: `registry/tenant/app`.
    pub repository: String,
    /// The tag: the commit SHA.
    pub tag: String,
    pub labels: HashMap<String, String>,
    /// The app it is for (a Kaniko Pod runs in its tenant's namespace).
    pub app: AppRef,
    /// The deployment it is for: names the Kaniko Pod, so a redelivered
    /// build finds the Pod an earlier attempt left.
    pub deployment_id: Uuid,
}

impl BuildJob {
    pub fn image(&self) -> String {
        format!("{}:{}", self.repository, self.tag)
    }
}

/// What [`ImageBuilder::build`] left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Built {
    /// The image is in the engine's store: [`ImageBuilder::push`] sends it,
    /// then its digest is read from the registry.
    Local,
    /// The builder pushed the image as it built it (Kaniko) and knows the
    /// manifest digest (`sha256:...`) the registry stored.
    Pushed { digest: String },
}

#[async_trait]
pub trait ImageBuilder: Send + Sync + 'static {
    /// Builds the job's image, writing every output line to `log`.
    async fn build(&self, job: &BuildJob, log: &BuildLog) -> Result<Built, BuildError>;
    /// Pushes an image [`Built::Local`] to the registry.
    async fn push(&self, job: &BuildJob, log: &BuildLog) -> Result<(), BuildError>;
}

/// The worker picks its builder from its flags at start.
#[async_trait]
impl<T: ImageBuilder + ?Sized> ImageBuilder for Box<T> {
    async fn build(&self, job: &BuildJob, log: &BuildLog) -> Result<Built, BuildError> {
        (**self).build(job, log).await
    }
    async fn push(&self, job: &BuildJob, log: &BuildLog) -> Result<(), BuildError> {
        (**self).push(job, log).await
    }
}

/// Where images go, and the per-tenant grants a build pushes (and pulls
/// the tenant's own images) with: never one platform-wide user.
#[derive(Clone)]
pub struct RegistryAuth {
    pub registry: String,
    pub credentials: Arc<dyn RegistryCredentials>,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

impl RegistryAuth {
    /// `host[:port]` of the registry.
    pub fn host(&self) -> &str {
        self.registry.split('/').next().unwrap_or("")
    }

    /// The engine's credentials for a grant of `access` to `tenant`.
    pub fn credentials(&self, tenant: &str, access: Access) -> DockerCredentials {
        let grant = self.credentials.for_tenant(tenant, access);
        DockerCredentials {
            username: Some(grant.username),
            password: Some(grant.password),
            serveraddress: Some(self.host().to_owned()),
            ..Default::default()
        }
    }
}

/// [`ImageBuilder`] over the Docker Engine API.
pub struct DockerBuilder {
    host: String,
    docker: OnceCell<Docker>,
    auth: RegistryAuth,
}

impl DockerBuilder {
    /// `host` is `unix:///path/to.sock` (or a bare path), or `tcp://host:port`.
    /// Connects on first use, so the worker starts before the engine does.
    pub fn new(host: &str, auth: RegistryAuth) -> Self {
        Self {
            host: host.to_owned(),
            docker: OnceCell::new(),
            auth,
        }
    }

    fn engine_error(&self, error: impl std::fmt::Display) -> BuildError {
        BuildError::Engine {
            detail: format!("{}: {error}", self.host),
        }
    }

    /// The client, connected and with the API version negotiated.
    pub async fn docker(&self) -> Result<&Docker, BuildError> {
        self.docker
            .get_or_try_init(|| async {
                berth_common::engine::connect(&self.host)
                    .await
                    .map_err(|e| BuildError::Engine {
                        detail: e.to_string(),
                    })
            })
            .await
    }
}

#[async_trait]
impl ImageBuilder for DockerBuilder {
    async fn build(&self, job: &BuildJob, log: &BuildLog) -> Result<Built, BuildError> {
        let docker = self.docker().await?;
        let file = tokio::fs::File::open(&job.context)
            .await
            .map_err(|e| BuildError::Context(e.to_string()))?;
        let body = bollard::body_try_stream(ReaderStream::new(file));
        let image = job.image();
        // No `pull`: base images are used from the engine's store when there.
        let options = BuildImageOptionsBuilder::default()
            .dockerfile(&job.dockerfile)
            .t(&image)
            .rm(true)
            .forcerm(true)
            .labels(&job.labels)
            .build();
        // A pull grant: a build may start FROM its own tenant's images.
        let credentials = Some(HashMap::from([(
            self.auth.host().to_owned(),
            self.auth.credentials(&job.app.tenant, Access::Pull),
        )]));
        let mut stream = docker.build_image(options, credentials, Some(body));
        let mut output = BuildOutput::default();
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(text) = info.stream.as_deref().or(info.status.as_deref()) {
                        for line in output.push(text) {
                            log.line(line).await;
                        }
                    }
                }
                Err(error) => {
                    if let Some(line) = output.finish() {
                        log.line(line).await;
                    }
                    return Err(match error {
                        bollard::errors::Error::DockerStreamError { error } => {
                            log.line(error.clone()).await;
                            output.failure(&error)
                        }
                        bollard::errors::Error::DockerResponseServerError { message, .. } => {
                            log.line(message.clone()).await;
                            output.failure(&message)
                        }
                        other => self.engine_error(other),
                    });
                }
            }
        }
        if let Some(line) = output.finish() {
            log.line(line).await;
        }
        Ok(Built::Local)
    }

    async fn push(&self, job: &BuildJob, log: &BuildLog) -> Result<(), BuildError> {
        let docker = self.docker().await?;
        let options = PushImageOptionsBuilder::default().tag(&job.tag).build();
        let credentials = self.auth.credentials(&job.app.tenant, Access::Push);
        let mut stream = docker.push_image(&job.repository, Some(options), Some(credentials));
        let mut last_status = String::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    // Progress updates repeat the same status; show it once.
                    if let Some(status) = info.status {
                        let status = status.trim().to_owned();
                        if !status.is_empty() && status != last_status {
                            log.line(status.clone()).await;
                            last_status = status;
                        }
                    }
                }
                Err(error) => {
                    let detail = match error {
                        bollard::errors::Error::DockerStreamError { error } => error,
                        bollard::errors::Error::DockerResponseServerError { message, .. } => {
                            message
                        }
                        other => return Err(self.engine_error(other)),
                    };
                    log.line(detail.clone()).await;
                    return Err(BuildError::PushFailed {
                        registry: self.auth.registry.clone(),
                        detail: last_line(&detail),
                    });
                }
            }
        }
        Ok(())
    }
}

pub(crate) fn last_line(text: &str) -> String {
    text.lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or(text)
        .trim()
        .to_owned()
}

/// Turns the engine's output chunks into lines, and remembers the current
/// step and the last lines of output for the failure reason.
#[derive(Debug, Default)]
pub struct BuildOutput {
    partial: String,
    step: Option<String>,
    recent: VecDeque<String>,
}

/// Lines of output a failure reason quotes.
const RECENT: usize = 3;
const MAX_QUOTE: usize = 240;

impl BuildOutput {
    /// Feeds a chunk; returns the complete lines in it.
    pub fn push(&mut self, chunk: &str) -> Vec<String> {
        self.partial.push_str(chunk);
        let mut lines = Vec::new();
        while let Some(at) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=at).collect();
            let line = line.trim_end_matches(['\n', '\r']).to_owned();
            self.observe(&line);
            lines.push(line);
        }
        lines
    }

    /// The last, unterminated line, if any.
    pub fn finish(&mut self) -> Option<String> {
        let line = std::mem::take(&mut self.partial);
        let line = line.trim_end_matches(['\n', '\r']).to_owned();
        if line.is_empty() {
            return None;
        }
        self.observe(&line);
        Some(line)
    }

    fn observe(&mut self, line: &str) {
        let trimmed = line.trim();
        if let Some(step) = parse_step(trimmed) {
            self.step = Some(step);
            self.recent.clear();
            return;
        }
        let noise = trimmed.is_empty()
            || trimmed.starts_with("-->")
            || trimmed.starts_with("--->")
            || trimmed.starts_with("COMMIT ")
            || trimmed.starts_with("Successfully ");
        if !noise {
            if self.recent.len() == RECENT {
                self.recent.pop_front();
            }
            self.recent.push_back(truncate(trimmed, MAX_QUOTE));
        }
    }

    /// The current step, e.g. "step 3/5 (RUN pip install -r requirements.txt)".
    pub fn step(&self) -> Option<&str> {
        self.step.as_deref()
    }

    /// The failure reason for an engine error after this output.
    pub fn failure(&self, engine_error: &str) -> BuildError {
        let engine_error = truncate(&engine_cause(&last_line(engine_error)), MAX_QUOTE);
        let quoted: Vec<&str> = self
            .recent
            .iter()
            .map(String::as_str)
            .filter(|line| *line != engine_error)
            .collect();
        let detail = if quoted.is_empty() {
            engine_error
        } else {
            format!("{} ({engine_error})", quoted.join(" | "))
        };
        BuildError::BuildFailed {
            step: self
                .step
                .clone()
                .unwrap_or_else(|| "the start, before any step ran".to_owned()),
            detail,
        }
    }
}

/// `STEP 3/5: RUN x` (Podman) or `Step 3/5 : RUN x` (Docker) → `step 3 (RUN x)`.
/// The total is left out: engines count the labels they add as steps, so it
/// would not match the Dockerfile the user reads.
pub fn parse_step(line: &str) -> Option<String> {
    let rest = line
        .strip_prefix("STEP ")
        .or_else(|| line.strip_prefix("Step "))?;
    let (number, instruction) = rest.split_once(':')?;
    let number = number.trim().split('/').next().unwrap_or("");
    if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some(format!(
        "step {number} ({})",
        truncate(instruction.trim(), 80)
    ))
}

/// The engine's error without the step it repeats: Podman says
/// `building at STEP "RUN x": while running runtime: exit status 1`.
fn engine_cause(error: &str) -> String {
    let error = error.trim();
    // The podman CLI prefixes its own errors with `Error: `.
    let error = error.strip_prefix("Error: ").unwrap_or(error);
    let rest = error
        .strip_prefix("error building at STEP \"")
        .or_else(|| error.strip_prefix("building at STEP \""));
    let cause = match rest.and_then(|rest| rest.rsplit_once("\": ")) {
        Some((_, cause)) => cause,
        None => error,
    };
    cause
        .strip_prefix("while running runtime: ")
        .unwrap_or(cause)
        .to_owned()
}

pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let cut: String = text.chars().take(max).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_become_lines_even_when_split_mid_line() {
        let mut output = BuildOutput::default();
        assert_eq!(
            output.push("STEP 1/3: FROM py\nSTEP 2"),
            ["STEP 1/3: FROM py"]
        );
        assert_eq!(
            output.push("/3: RUN pip install x\r\n"),
            ["STEP 2/3: RUN pip install x"]
        );
        assert_eq!(output.push("Collecting x"), Vec::<String>::new());
        assert_eq!(output.finish(), Some("Collecting x".into()));
        assert_eq!(output.finish(), None);
        assert_eq!(output.step(), Some("step 2 (RUN pip install x)"));
    }

    #[test]
    fn a_failure_names_the_step_and_quotes_the_last_lines() {
        let mut output = BuildOutput::default();
        output.push("STEP 1/3: FROM localhost/berth/python:bookworm\nSTEP 2/3: RUN pip install -r requirements.txt\n");
        output.push("Collecting flaskk\n--> Using cache 1234\n");
        output.push("ERROR: No matching distribution found for flaskk\n");
        let error = output.failure(
            "building at STEP \"RUN pip install -r requirements.txt\": while running runtime: exit status 1",
        );
        assert_eq!(
            error.to_string(),
            "the build failed at step 2 (RUN pip install -r requirements.txt): Collecting flaskk | \
             ERROR: No matching distribution found for flaskk (exit status 1)"
        );
        let docker =
            output.failure("The command '/bin/sh -c pip install' returned a non-zero code: 1");
        assert!(docker
            .to_string()
            .ends_with("(The command '/bin/sh -c pip install' returned a non-zero code: 1)"));
    }

    #[test]
    fn docker_step_lines_and_failures_before_any_step() {
        assert_eq!(
            parse_step("Step 4/7 : COPY . ."),
            Some("step 4 (COPY . .)".into())
        );
        assert_eq!(
            parse_step("STEP 2/2: RUN false"),
            Some("step 2 (RUN false)".into())
        );
        assert_eq!(parse_step("Stepping: 1"), None);
        assert_eq!(parse_step("STEP x: y"), None);
        let error = BuildOutput::default()
            .failure("dockerfile parse error line 3: unknown instruction: RUNN");
        assert_eq!(
            error.to_string(),
            "the build failed at the start, before any step ran: dockerfile parse error line 3: unknown instruction: RUNN"
        );
    }

    #[test]
    fn only_the_last_few_lines_are_quoted_and_long_ones_are_cut() {
        let mut output = BuildOutput::default();
        output.push("STEP 1/1: RUN make\n");
        for i in 0..10 {
            output.push(&format!("line {i}\n"));
        }
        output.push(&format!("{}\n", "x".repeat(1000)));
        let BuildError::BuildFailed { detail, .. } = output.failure("exit status 2") else {
            panic!()
        };
        assert!(detail.starts_with("line 8 | line 9 | xxx"), "{detail}");
        assert!(detail.len() < 400, "{}", detail.len());
    }
}
