//! Waiting for a Deployment to roll out, and saying why it did not.
//!
//! Polls the Deployment (and, while it is not done, its new pods) every
//! `BERTH_K8S_ROLLOUT_POLL_MILLIS`: a fixed number of predictable requests,
//! unlike a watch that may be cut and resumed. A failure no waiting mends
//! (the image cannot be pulled, the app crashes) ends the wait at once; the
//! deadline explains what was still missing.

use berth_proto::labels;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams};
use std::time::Duration;
use tokio::time::Instant;
use uuid::Uuid;

use super::status::{self, PodProblem, CONTAINER};
use super::RolloutSettings;
use crate::error::DeployError;

/// How many of a failed app's last log lines go into the reason.
pub const LOG_LINES: i64 = 20;

/// One rollout to wait for: the Deployment `name`, now carrying
/// `deployment_id`, whose pods listen on `port`.
pub struct Rollout<'a> {
    pub deployments: Api<Deployment>,
    pub pods: Api<Pod>,
    pub name: &'a str,
    pub app_id: Uuid,
    pub deployment_id: Uuid,
    pub port: u16,
    pub settings: &'a RolloutSettings,
}

impl Rollout<'_> {
    /// Waits until the rollout is complete. Fails with the reason a user
    /// needs, with [`DeployError::Superseded`] when a newer deploy took the
    /// Deployment over meanwhile, or with a passing error when the API
    /// server did not answer (then nothing is known about the rollout).
    pub async fn wait(&self) -> Result<(), DeployError> {
        let timeout = self.settings.timeout();
        let deadline = Instant::now() + timeout;
        loop {
            let Some(deployment) = self.deployments.get_opt(self.name).await? else {
                return Err(DeployError::PodsNotStarted(
                    "the app's Deployment was removed during the rollout".into(),
                ));
            };
            match status::deployment_id_of(&deployment) {
                Some(id) if id == self.deployment_id => {}
                Some(newer) if newer > self.deployment_id => {
                    return Err(DeployError::Superseded { newer })
                }
                other => {
                    return Err(DeployError::Cluster(format!(
                    "the Deployment `{}` was changed to deployment {other:?} during the rollout",
                    self.name
                )))
                }
            }
            if status::rollout_complete(&deployment) {
                return Ok(());
            }
            if let Some(message) = status::replica_failure(&deployment) {
                return Err(DeployError::PodsNotStarted(message));
            }
            let pods = self.new_pods().await?;
            if let Some(problem) = status::definite_failure(&pods) {
                return Err(self.explain(problem, timeout).await);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(match status::failure_at_deadline(&pods) {
                    Some(problem) => self.explain(problem, timeout).await,
                    None => DeployError::NeverListened {
                        port: self.port,
                        waited: timeout,
                        logs: Vec::new(),
                    },
                });
            }
            tokio::time::sleep(self.settings.poll().min(deadline - now)).await;
        }
    }

    /// The pods of this deployment (not those of the release it replaces).
    async fn new_pods(&self) -> Result<Vec<Pod>, DeployError> {
        let selector = format!(
            "{}={},{}={}",
            labels::APP,
            self.app_id,
            labels::DEPLOYMENT,
            self.deployment_id
        );
        let list = self
            .pods
            .list(&ListParams::default().labels(&selector))
            .await?;
        Ok(list.items)
    }

    async fn explain(&self, problem: PodProblem, waited: Duration) -> DeployError {
        let port = self.port;
        match problem {
            PodProblem::ImagePull { image, message } => DeployError::ImageUnavailable {
                image,
                reason: message,
            },
            PodProblem::BadImage { image, message } => DeployError::BadImage {
                image,
                reason: message,
            },
            PodProblem::Exited {
                pod,
                code,
                out_of_memory,
                previous,
            } => {
                let logs = self.last_lines(&pod, previous).await;
                if out_of_memory {
                    DeployError::OutOfMemory { port, logs }
                } else {
                    DeployError::Exited {
                        code: i64::from(code),
                        port,
                        logs,
                    }
                }
            }
            PodProblem::NotStarted(reason) => DeployError::PodsNotStarted(reason),
            PodProblem::NotReady { pod } => DeployError::NeverListened {
                port,
                waited,
                logs: self.last_lines(&pod, false).await,
            },
        }
    }

    /// The app container's last log lines; none when they cannot be read
    /// (the reason is still worth reporting without them).
    async fn last_lines(&self, pod: &str, previous: bool) -> Vec<String> {
        let params = LogParams {
            container: Some(CONTAINER.to_owned()),
            previous,
            tail_lines: Some(LOG_LINES),
            ..Default::default()
        };
        match self.pods.logs(pod, &params).await {
            Ok(text) => text.lines().map(str::to_owned).collect(),
            Err(error) => {
                tracing::warn!(pod, %error, "could not read the failed app's log");
                Vec::new()
            }
        }
    }
}
