//! What the apps API reads and answers.

use crate::apps_store::AppRow;
use crate::error::Result;
use crate::quota::{AppBounds, AppResources, ResourcesRequest};
use crate::validate::{self, Checks};
use berth_common::repo_policy::RepoPolicy;
use berth_proto::{Binding, SecretKey};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;
use uuid::Uuid;

pub const DEFAULT_BRANCH: &str = "main";
pub const DEFAULT_PORT: u16 = 8000;

pub type EnvVars = BTreeMap<String, String>;

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateApp {
    /// A DNS-1123 label, unique among your apps.
    #[schema(example = "hello-web")]
    pub name: String,
    /// https:// URL of a Git repository.
    #[schema(example = "https://github.com/berth-dev/hello-flask.git")]
    pub repo_url: String,
    /// Branch deployed by default (`main` when absent).
    pub branch: Option<String>,
    /// Folder of the repository that holds the app.
    pub subdirectory: Option<String>,
    /// The port the app listens on, given to it as PORT (8000 when absent).
    pub port: Option<u16>,
    /// A path each instance answers 2xx on while it is healthy, e.g.
    /// `/healthz`; without one, accepting connections on the port is healthy.
    #[schema(example = "/healthz")]
    pub health_check_path: Option<String>,
    /// Environment variables; names match `[A-Za-z_][A-Za-z0-9_]*`, PORT excepted.
    pub env: Option<EnvVars>,
    /// Memory and CPU of each instance; the operator's defaults when absent.
    pub resources: Option<ResourcesRequest>,
}

/// Absent leaves a field unchanged; `"subdirectory": null` clears it;
/// `env` replaces the whole set; in `resources`, `null` returns a value to
/// the operator's default.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateApp {
    pub repo_url: Option<String>,
    pub branch: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub subdirectory: Option<Option<String>>,
    pub port: Option<u16>,
    /// `null` returns to checking that the port accepts connections.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub health_check_path: Option<Option<String>>,
    pub env: Option<EnvVars>,
    pub resources: Option<ResourcesRequest>,
}

/// `Some(None)` for an explicit null, `None` (via `default`) when absent.
fn present<'de, D, T>(deserializer: D) -> std::result::Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

impl CreateApp {
    pub fn validate(&self, policy: &RepoPolicy, bounds: &AppBounds) -> Result<()> {
        let mut checks = Checks::default();
        checks.check(
            "name",
            validate::app_name(&self.name, validate::MAX_APP_NAME_LEN),
        );
        checks.check("repo_url", validate::repo_url(&self.repo_url, policy));
        if let Some(branch) = &self.branch {
            checks.check("branch", validate::git_ref(branch));
        }
        if let Some(subdirectory) = &self.subdirectory {
            checks.check("subdirectory", validate::subdirectory(subdirectory));
        }
        if let Some(port) = self.port {
            checks.check("port", validate::port(port));
        }
        if let Some(path) = &self.health_check_path {
            checks.check("health_check_path", validate::health_check_path(path));
        }
        if let Some(env) = &self.env {
            checks.env(env);
        }
        if let Some(resources) = &self.resources {
            checks.errors(bounds.check(resources));
        }
        checks.finish()
    }
}

/// How many instances of the app's live release run; `0` stops the app.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScaleApp {
    #[schema(example = 2)]
    pub replicas: u32,
}

impl ScaleApp {
    pub fn validate(&self) -> Result<()> {
        let mut checks = Checks::default();
        checks.check("replicas", validate::replicas(self.replicas));
        checks.finish()
    }
}

impl UpdateApp {
    pub fn validate(&self, policy: &RepoPolicy, bounds: &AppBounds) -> Result<()> {
        let mut checks = Checks::default();
        if let Some(repo_url) = &self.repo_url {
            checks.check("repo_url", validate::repo_url(repo_url, policy));
        }
        if let Some(branch) = &self.branch {
            checks.check("branch", validate::git_ref(branch));
        }
        if let Some(Some(subdirectory)) = &self.subdirectory {
            checks.check("subdirectory", validate::subdirectory(subdirectory));
        }
        if let Some(port) = self.port {
            checks.check("port", validate::port(port));
        }
        if let Some(Some(path)) = &self.health_check_path {
            checks.check("health_check_path", validate::health_check_path(path));
        }
        if let Some(env) = &self.env {
            checks.env(env);
        }
        if let Some(resources) = &self.resources {
            checks.errors(bounds.check(resources));
        }
        checks.finish()
    }
}

/// An app as the API shows it: env var names, never their values.
#[derive(Debug, Serialize, ToSchema)]
pub struct App {
    pub id: Uuid,
    pub name: String,
    /// The owner's tenant slug.
    pub tenant: String,
    pub repo_url: String,
    pub branch: String,
    pub subdirectory: Option<String>,
    pub port: u16,
    /// Where each instance answers 2xx while healthy; null: accepting
    /// connections on the port is healthy. Applies from the next deployment.
    pub health_check_path: Option<String>,
    /// How many instances run; `0` when stopped. Deploys keep it.
    pub replicas: u32,
    /// Memory and CPU of each instance (the operator's defaults filled in);
    /// changes apply from the next deployment.
    pub resources: AppResources,
    /// Names of the app's env vars; values come from GET /apps/{id}/env.
    pub env_names: Vec<String>,
    /// Grows each time the env var set changes.
    pub env_version: i64,
    /// State of the latest deployment; null before the first one.
    pub state: Option<String>,
    pub latest_deployment_id: Option<Uuid>,
    /// The latest deployment at a glance; null before the first one.
    pub last_deploy: Option<LastDeploy>,
    /// Where the live deployment answers.
    pub url: Option<String>,
    pub current_release_id: Option<Uuid>,
    /// What berth last found running, checked about once a minute; null
    /// until it has looked (nothing live yet, or a deployment on its way).
    pub runtime: Option<Runtime>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Runtime {
    /// `running`, `degraded` (it should run but does not, and berth could
    /// not repair it) or `stopped` (scaled to 0).
    pub status: String,
    /// Why it is degraded.
    pub reason: Option<String>,
    pub checked_at: DateTime<Utc>,
    /// The live deployment's instances as that check found them.
    pub instances: Vec<Instance>,
}

/// One instance (a container, or a pod) of the live deployment.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Instance {
    pub name: String,
    pub running: bool,
    /// Whether it passed its health check (the health check path, else
    /// accepting connections); `null` when not running.
    pub healthy: Option<bool>,
    /// What a failing check got, e.g. `answered 500`.
    pub said: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LastDeploy {
    /// `user`, `rollback`, `push`, or berth's own `repair` and
    /// `auto_rollback`.
    pub trigger: String,
    /// Known once cloned (at once for a push or a commit).
    pub commit: Option<String>,
    /// The GitHub login that pushed, for `push`.
    pub pushed_by: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl App {
    pub fn from_row(row: AppRow, key: &SecretKey, bounds: &AppBounds) -> Result<Self> {
        let env: EnvVars =
            key.open_json(&Binding::app_env(&row.tenant, row.id), &row.env_sealed)?;
        let resources = bounds.effective(row.stored_resources());
        Ok(Self {
            id: row.id,
            name: row.name,
            tenant: row.tenant,
            repo_url: row.repo_url,
            branch: row.branch,
            subdirectory: row.subdirectory,
            port: u16::try_from(row.port).unwrap_or(DEFAULT_PORT),
            health_check_path: row.health_check_path,
            replicas: u32::try_from(row.replicas).unwrap_or(1),
            resources,
            env_names: env.into_keys().collect(),
            env_version: row.env_version,
            state: row.state,
            latest_deployment_id: row.latest_deployment_id,
            last_deploy: match (row.latest.latest_trigger, row.latest.latest_created_at) {
                (Some(trigger), Some(created_at)) => Some(LastDeploy {
                    trigger,
                    commit: row.latest.latest_commit,
                    pushed_by: row.latest.latest_pushed_by,
                    created_at,
                }),
                _ => None,
            },
            url: row.url,
            current_release_id: row.current_release_id,
            runtime: match (row.runtime.runtime_status, row.runtime.runtime_checked_at) {
                (Some(status), Some(checked_at)) => Some(Runtime {
                    status,
                    reason: row.runtime.runtime_reason,
                    checked_at,
                    instances: row
                        .runtime
                        .runtime_instances
                        .0
                        .into_iter()
                        .map(|i| Instance {
                            name: i.name,
                            running: i.running,
                            healthy: i.healthy,
                            said: i.said,
                        })
                        .collect(),
                }),
                _ => None,
            },
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// An app's env vars, in clear, for its owner.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppEnv {
    pub env: EnvVars,
    pub env_version: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn patch_tells_absent_from_null() {
        let absent: UpdateApp = serde_json::from_str("{}").unwrap();
        assert_eq!(absent.subdirectory, None);
        let null: UpdateApp = serde_json::from_str(r#"{"subdirectory": null}"#).unwrap();
        assert_eq!(null.subdirectory, Some(None));
        let set: UpdateApp = serde_json::from_str(r#"{"subdirectory": "api"}"#).unwrap();
        assert_eq!(set.subdirectory, Some(Some("api".into())));
        assert!(serde_json::from_str::<UpdateApp>(r#"{"name": "x"}"#).is_err());
    }

    #[test]
    fn create_reports_every_invalid_field() {
        let request = CreateApp {
            name: "Bad_Name".into(),
            repo_url: "ftp://x".into(),
            branch: None,
            subdirectory: None,
            port: Some(0),
            health_check_path: Some("healthz".into()),
            env: Some([("1X".to_owned(), "v".to_owned())].into()),
            resources: Some(ResourcesRequest {
                memory_mb: Some(Some(1)),
                cpu_millis: None,
            }),
        };
        match request.validate(&RepoPolicy::default(), &crate::quota::Quotas::default().app) {
            Err(Error::Validation(errors)) => {
                let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
                assert_eq!(
                    fields,
                    [
                        "name",
                        "repo_url",
                        "port",
                        "health_check_path",
                        "env.1X",
                        "resources.memory_mb"
                    ]
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
