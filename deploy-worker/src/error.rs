//! Everything that can go wrong with a deploy, worded for the user who reads
//! it as the deployment's failure reason.

use std::time::Duration;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("the release's env vars cannot be opened for this app: {0}; deploy again from berth (the deploy-worker's BERTH_SECRET_KEY must be the backend's)")]
    Secrets(#[source] berth_proto::SealedError),

    #[error("the image reference `{image}` is not valid: {reason}")]
    BadImage { image: String, reason: String },

    #[error("the image {image} cannot be pulled: {reason}")]
    ImageUnavailable { image: String, reason: String },

    #[error("the container engine refused the app's container: {0}")]
    Rejected(String),

    #[error("the app exited with code {code} before it listened on port {port}{}", last_lines(.logs))]
    Exited {
        code: i64,
        port: u16,
        logs: Vec<String>,
    },

    #[error("the app was killed for using more memory than its limit before it listened on port {port}; raise the app's memory or lower its use{}", last_lines(.logs))]
    OutOfMemory { port: u16, logs: Vec<String> },

    #[error("the app did not accept connections on port {port} within {}s — does it listen on $PORT?{}", .waited.as_secs(), last_lines(.logs))]
    NeverListened {
        port: u16,
        waited: Duration,
        logs: Vec<String>,
    },

    #[error("the app never passed its health check within {}s: GET {path} {reason}; the previous release keeps serving{}", .waited.as_secs(), last_lines(.logs))]
    Unhealthy {
        path: String,
        reason: String,
        waited: Duration,
        logs: Vec<String>,
    },

    #[error("a newer deployment ({newer}) is already running")]
    Superseded { newer: Uuid },

    #[error("the deployment was cancelled during its rollout; the previous release keeps serving")]
    Cancelled,

    #[error("the container engine is unavailable: {0}")]
    Engine(String),

    #[error("the edge router could not be changed: {0}")]
    Router(String),

    #[error("the app's pods did not start: {0}")]
    PodsNotStarted(String),

    #[error("the Kubernetes API refused the deploy: {0}")]
    ClusterRefused(String),

    #[error("the Kubernetes API is unavailable: {0}")]
    Cluster(String),
}

fn last_lines(logs: &[String]) -> String {
    if logs.is_empty() {
        String::new()
    } else {
        format!("; last lines: {}", logs.join("\n"))
    }
}

impl DeployError {
    /// A passing failure: trying the same message again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Engine(_) | Self::Router(_) | Self::Cluster(_))
    }
}

impl From<kube::Error> for DeployError {
    /// API errors: a 4xx other than not found, conflict, timeout or too many
    /// requests means the request itself is wrong (permanent); anything else
    /// (5xx, a connection that failed) may pass.
    fn from(error: kube::Error) -> Self {
        match error {
            kube::Error::Api(status)
                if (400..500).contains(&status.code)
                    && !matches!(status.code, 404 | 408 | 409 | 429) =>
            {
                Self::ClusterRefused(status.message.clone())
            }
            kube::Error::Api(status) => {
                Self::Cluster(format!("{} ({})", status.message, status.code))
            }
            other => Self::Cluster(other.to_string()),
        }
    }
}

impl From<berth_common::kubernetes::ApplyError> for DeployError {
    fn from(error: berth_common::kubernetes::ApplyError) -> Self {
        use berth_common::kubernetes::ApplyError;
        match error {
            ApplyError::Api { kind, name, source } => match Self::from(source) {
                Self::ClusterRefused(reason) => {
                    Self::ClusterRefused(format!("applying {kind} `{name}`: {reason}"))
                }
                other => other,
            },
            incomplete @ ApplyError::Incomplete(_) => Self::ClusterRefused(incomplete.to_string()),
        }
    }
}

impl From<bollard::errors::Error> for DeployError {
    /// Engine errors: a 4xx other than conflict/timeout means the request
    /// itself is wrong (permanent); anything else may pass.
    fn from(error: bollard::errors::Error) -> Self {
        use bollard::errors::Error;
        match error {
            Error::DockerResponseServerError {
                status_code,
                message,
            } if (400..500).contains(&status_code)
                && !matches!(status_code, 404 | 408 | 409 | 429) =>
            {
                Self::Rejected(message)
            }
            other => Self::Engine(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_as_the_user_needs_them() {
        let exited = DeployError::Exited {
            code: 1,
            port: 8000,
            logs: vec!["boom".into(), "bye".into()],
        };
        assert_eq!(
            exited.to_string(),
            "the app exited with code 1 before it listened on port 8000; last lines: boom\nbye"
        );
        let silent = DeployError::NeverListened {
            port: 8000,
            waited: Duration::from_secs(60),
            logs: vec![],
        };
        assert_eq!(
            silent.to_string(),
            "the app did not accept connections on port 8000 within 60s — does it listen on $PORT?"
        );
        assert!(!exited.is_transient());
        assert!(DeployError::Engine("socket closed".into()).is_transient());
    }

    #[test]
    fn engine_errors_are_classified_by_status() {
        let bad = bollard::errors::Error::DockerResponseServerError {
            status_code: 400,
            message: "invalid memory".into(),
        };
        assert!(matches!(DeployError::from(bad), DeployError::Rejected(_)));
        let conflict = bollard::errors::Error::DockerResponseServerError {
            status_code: 409,
            message: "name in use".into(),
        };
        assert!(DeployError::from(conflict).is_transient());
        let down = bollard::errors::Error::DockerResponseServerError {
            status_code: 500,
            message: "oops".into(),
        };
        assert!(DeployError::from(down).is_transient());
    }

    fn api_error(code: u16, message: &str) -> kube::Error {
        let status: kube::core::Status = serde_json::from_value(serde_json::json!({
            "status": "Failure", "code": code, "message": message, "reason": "x"
        }))
        .unwrap();
        kube::Error::Api(Box::new(status))
    }

    #[test]
    fn kubernetes_errors_are_classified_by_status() {
        let invalid = DeployError::from(api_error(422, "spec.selector: field is immutable"));
        assert_eq!(
            invalid.to_string(),
            "the Kubernetes API refused the deploy: spec.selector: field is immutable"
        );
        assert!(!invalid.is_transient());
        assert!(DeployError::from(api_error(403, "forbidden"))
            .to_string()
            .contains("forbidden"));
        for passing in [409, 429, 500, 503] {
            assert!(
                DeployError::from(api_error(passing, "busy")).is_transient(),
                "{passing}"
            );
        }
    }
}
