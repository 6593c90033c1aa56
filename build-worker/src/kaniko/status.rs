//! What a build Pod's status says, as pure functions: still starting, running,
//! unable to start, or finished and how.

use super::output::KanikoOutput;
use super::pod::CONTAINER;
use crate::docker::truncate;
use crate::error::BuildError;
use crate::registry::is_digest;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use std::time::Duration;

/// Waiting reasons of a container whose image cannot be pulled.
const PULL_FAILURES: [&str; 4] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
];
/// Waiting reasons of a container that cannot be created or started.
const START_FAILURES: [&str; 3] = [
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodState {
    /// Not running yet (scheduling, pulling the image): wait.
    Starting,
    /// The build container runs: it waits for its context on stdin.
    Running,
    /// It will never run; why, in words.
    CannotStart(String),
    Finished(Finish),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// The container exited; `message` is its termination message (the
    /// digest, when Kaniko pushed).
    Exited {
        code: i32,
        reason: Option<String>,
        message: Option<String>,
    },
    /// Kubernetes stopped it at the Pod's activeDeadlineSeconds.
    DeadlineExceeded,
    /// The Pod failed without an exit of the container (evicted, node lost).
    Lost(String),
}

/// Reads the Pod's status; `image` is the Kaniko image, for messages.
pub fn pod_state(pod: &Pod, image: &str) -> PodState {
    let Some(status) = &pod.status else {
        return PodState::Starting;
    };
    let phase = status.phase.as_deref().unwrap_or("Pending");
    // The deadline first: the container may still look alive in a status
    // written before the kill.
    if status.reason.as_deref() == Some("DeadlineExceeded") {
        return PodState::Finished(Finish::DeadlineExceeded);
    }
    let container = status
        .container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == CONTAINER);
    if let Some(state) = container.and_then(|c| c.state.as_ref()) {
        if let Some(terminated) = &state.terminated {
            return PodState::Finished(Finish::Exited {
                code: terminated.exit_code,
                reason: terminated.reason.clone(),
                message: terminated.message.clone(),
            });
        }
        if state.running.is_some() {
            return PodState::Running;
        }
        if let Some(waiting) = &state.waiting {
            let reason = waiting.reason.as_deref().unwrap_or("");
            let detail = waiting_detail(reason, waiting.message.as_deref());
            if PULL_FAILURES.contains(&reason) {
                return PodState::CannotStart(format!(
                    "the Kaniko image `{image}` could not be pulled: {detail}"
                ));
            }
            if START_FAILURES.contains(&reason) {
                return PodState::CannotStart(format!(
                    "the build container could not be created: {detail}"
                ));
            }
        }
    }
    match phase {
        "Failed" => PodState::Finished(Finish::Lost(pod_problem(
            status.reason.as_deref(),
            status.message.as_deref(),
        ))),
        "Succeeded" => PodState::Finished(Finish::Exited {
            code: 0,
            reason: None,
            message: container.and_then(last_message),
        }),
        _ => PodState::Starting,
    }
}

fn last_message(container: &ContainerStatus) -> Option<String> {
    container
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .and_then(|t| t.message.clone())
}

fn waiting_detail(reason: &str, message: Option<&str>) -> String {
    match message.map(str::trim).filter(|m| !m.is_empty()) {
        Some(message) => format!("{reason} ({})", truncate(message, 240)),
        None => reason.to_owned(),
    }
}

fn pod_problem(reason: Option<&str>, message: Option<&str>) -> String {
    match (reason, message.map(str::trim).filter(|m| !m.is_empty())) {
        (Some(reason), Some(message)) => format!("{reason}: {}", truncate(message, 240)),
        (Some(reason), None) => reason.to_owned(),
        (None, Some(message)) => truncate(message, 240),
        (None, None) => "the build pod failed".to_owned(),
    }
}

/// The digest Kaniko pushed, or why there is none.
pub fn outcome(
    finish: Finish,
    output: &KanikoOutput,
    deadline: Duration,
    memory: &str,
) -> Result<String, BuildError> {
    match finish {
        Finish::Exited {
            code: 0, message, ..
        } => {
            let message = message.unwrap_or_default();
            let digest = message.trim();
            if is_digest(digest) {
                Ok(digest.to_owned())
            } else {
                Err(BuildError::Internal(format!(
                    "Kaniko finished without writing the image digest (termination message: {:?})",
                    truncate(digest, 120)
                )))
            }
        }
        Finish::Exited { reason, .. } if reason.as_deref() == Some("OOMKilled") => Err(output
            .failed_with(format!(
                "the build ran out of memory (the limit is {memory})"
            ))),
        Finish::Exited { code, .. } => Err(output.failure(code)),
        Finish::DeadlineExceeded => Err(BuildError::DeadlineExceeded {
            limit: deadline,
            phase: "building",
        }),
        Finish::Lost(problem) => {
            Err(output.failed_with(format!("the build pod stopped: {problem}")))
        }
    }
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
