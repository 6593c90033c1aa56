//! The one error type of the crate. Its `Display` text is the `reason` of a
//! `failed` deployment, so every message says what went wrong in words the
//! app's owner can act on, and never contains a secret.

use berth_common::BrokerError;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("the repository URL `{url}` is not allowed: {reason}")]
    UrlRefused { url: String, reason: String },

    #[error("the repository token cannot be opened for this app (it was sealed for another app, or with another BERTH_SECRET_KEY); deploy again from berth")]
    TokenUnreadable,

    #[error(
        "repository {url} was not found, or it is private: check the URL, or give berth a token \
         that can read it"
    )]
    RepositoryNotFound { url: String },

    #[error(
        "authentication to {url} failed: check that the token is valid and can read the repository"
    )]
    AuthenticationFailed { url: String },

    #[error("branch or tag `{git_ref}` was not found in {url}")]
    RefNotFound { git_ref: String, url: String },

    #[error("commit `{commit}` was not found in {url}")]
    CommitNotFound { commit: String, url: String },

    #[error("cloning {url} failed: {message}")]
    Clone { url: String, message: String },

    #[error("the subdirectory `{path}` {problem} in the repository")]
    Subdirectory { path: String, problem: &'static str },

    #[error("{0}")]
    Detect(#[from] crate::detect::DetectError),

    /// The Dockerfile asks for something berth's builders do not allow.
    #[error("the Dockerfile is refused at {0}")]
    DockerfileRefused(#[from] crate::dockerfile::Refusal),

    /// The repository tries to reach outside itself through a link.
    #[error("the repository's {0}")]
    UnsafeRepository(String),

    #[error("the build context cannot be prepared: {0}")]
    Context(String),

    #[error("the build failed at {step}: {detail}")]
    BuildFailed { step: String, detail: String },

    /// The build's processes used more memory than a build may.
    #[error(
        "the build ran out of memory at {step}: it needed more than the {limit_mb} MiB a build \
         may use (make the step use less, e.g. fewer parallel jobs)"
    )]
    OutOfMemory { step: String, limit_mb: u64 },

    /// The build tried to run more processes at once than a build may.
    #[error("the build hit its limit of {limit} processes at {step}")]
    TooManyProcesses { step: String, limit: u64 },

    /// The sandbox builds run in could not be made: berth's problem.
    #[error("the build sandbox could not be set up ({0}); try again later")]
    Sandbox(String),

    #[error("the image could not be pushed to {registry}: {detail}")]
    PushFailed { registry: String, detail: String },

    #[error("the image registry {registry} {problem}")]
    Registry { registry: String, problem: String },

    /// The registry could not be reached or failed on its side (5xx).
    #[error("the image registry {registry} {problem}; try again later")]
    RegistryUnavailable { registry: String, problem: String },

    #[error("the container engine is unavailable ({detail}); try again later")]
    Engine { detail: String },

    /// The Kubernetes API server refused or failed a request.
    #[error("the Kubernetes API failed ({detail}); try again later")]
    Kubernetes { detail: String },

    /// The build Pod never ran: its image could not be pulled, its
    /// configuration is broken, it was evicted.
    #[error("the build could not start: {0}")]
    BuildStart(String),

    #[error("the deadline of {} was exceeded while {phase}", human(*.limit))]
    DeadlineExceeded {
        limit: Duration,
        phase: &'static str,
    },

    /// The message broker failed us: the delivery is retried, the user
    /// never sees this text.
    #[error("the message broker failed: {0}")]
    Publish(#[from] BrokerError),

    /// The broker did not confirm in time: retried like [`Self::Publish`].
    #[error("the message broker did not confirm a message within {}", human(*.0))]
    PublishTimeout(Duration),

    #[error("internal error in the build worker: {0}")]
    Internal(String),

    /// Another attempt of the same build owns its Pod and is alive: this
    /// one (a duplicate delivery) steps aside and reports nothing.
    #[error("another attempt of this build is running in pod {0}")]
    AttemptInProgress(String),
}

impl BuildError {
    /// Failures of berth's own plumbing that may pass (the broker, the
    /// engine, the registry, the Kubernetes API, the sandbox), not of the
    /// user's code or settings: the message is tried again later, with a
    /// growing delay, rather than the deployment failed; when the retry
    /// budget is spent it fails with this reason. A push goes to berth's
    /// own registry with a token from berth's own backend, after the
    /// user's build succeeded: when it fails, berth's plumbing failed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Publish(_)
                | Self::PublishTimeout(_)
                | Self::Engine { .. }
                | Self::Sandbox(_)
                | Self::Kubernetes { .. }
                | Self::RegistryUnavailable { .. }
                | Self::PushFailed { .. }
        )
    }

    /// Whether the app's users may read this reason in their build log:
    /// broker failures are berth's plumbing and say nothing useful to them.
    pub fn is_for_users(&self) -> bool {
        !matches!(self, Self::Publish(_) | Self::PublishTimeout(_))
    }
}

/// `1h`, `30m`, `90s`, `2m30s`.
pub fn human(duration: Duration) -> String {
    let secs = duration.as_secs();
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_person_wrote_them() {
        assert_eq!(human(Duration::from_secs(1800)), "30m");
        assert_eq!(human(Duration::from_secs(3600 + 90)), "1h1m30s");
        assert_eq!(human(Duration::from_secs(0)), "0s");
        let error = BuildError::DeadlineExceeded {
            limit: Duration::from_secs(1800),
            phase: "building",
        };
        assert_eq!(
            error.to_string(),
            "the deadline of 30m was exceeded while building"
        );
    }
}
