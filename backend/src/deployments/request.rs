//! Requesting a deployment: the deployment row and the message that carries
//! it to a worker, written in the caller's transaction (the outbox). Every
//! way of deploying (the API, a push webhook, a rollback) goes through here,
//! so here the tenant's quota of queued deployments is checked and every
//! release gets the app's effective resources.

use super::releases::{self, ReleaseRow};
use super::{store, transitions};
use crate::apps_store::AppRow;
use crate::error::{Error, Result};
use crate::quota::{self, Quotas};
use crate::{github_status, outbox};
use berth_proto::{BuildRequested, DeployRequested, ReleaseConfig, SecretKey, Source};
use sqlx::PgConnection;
use uuid::Uuid;

/// What started a deployment; stored as `deployments.trigger`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A user asked through the API.
    User,
    /// A user rolled back to an earlier release.
    Rollback,
    /// A GitHub push webhook.
    Push,
    /// berth itself, putting back the live release after something ran
    /// that should not have (see `deployments::repair`).
    Repair,
    /// berth itself, rolling back from a release that crash-looped soon
    /// after it went live (see `deployments::auto_rollback`).
    AutoRollback,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Rollback => "rollback",
            Self::Push => "push",
            Self::Repair => "repair",
            Self::AutoRollback => "auto_rollback",
        }
    }
}

/// A build of the app's repository at `git_ref` (or exactly `commit`).
/// The caller has validated the ref and the commit.
pub struct BuildIntent<'a> {
    pub trigger: Trigger,
    pub git_ref: &'a str,
    /// Lowercase hex; wins over the ref.
    pub commit: Option<&'a str>,
    /// The berth user who asked, if a user did.
    pub created_by: Option<Uuid>,
    /// The GitHub login whose push this deploys.
    pub pushed_by: Option<&'a str>,
    /// The commit's message's first line, when the trigger knows it.
    pub commit_message: Option<&'a str>,
    /// GitHub's host (`github.com`): a repository there clones with the
    /// owner's linked GitHub token, if they have one.
    pub github_host: &'a str,
    /// Opens the owner's stored token and seals it for this app's build.
    pub key: &'a SecretKey,
    /// The operator's quotas and per-app defaults.
    pub quotas: &'a Quotas,
}

/// Queues a build of `app` (locked by the caller): a `queued` deployment and
/// its `build.requested`. Returns the deployment id. The caller commits and
/// then wakes the relay. A `429` `quota-exceeded` when the tenant already
/// has its quota of deployments waiting.
pub async fn request_build(
    conn: &mut PgConnection,
    app: &AppRow,
    intent: BuildIntent<'_>,
) -> Result<Uuid> {
    quota::check_queue(conn, app.owner_id, intent.quotas).await?;
    let id = Uuid::now_v7();
    let release_id = Uuid::now_v7();
    store::insert(
        conn,
        store::NewDeployment {
            id,
            app_id: app.id,
            trigger: intent.trigger.as_str(),
            git_ref: Some(intent.git_ref),
            commit: intent.commit,
            release_id,
            image: None,
            created_by: intent.created_by,
            pushed_by: intent.pushed_by,
            commit_message: intent.commit_message,
            waits_for_dispatch: true,
        },
    )
    .await?;
    // Only digests berth recorded make a build skippable, never a tag.
    let known_images = releases::known_images(conn, app.id, intent.commit).await?;
    // Sealed: the token is never in the queue, the outbox or a log in clear.
    let token = crate::github::clone_token(conn, intent.key, app, intent.github_host).await?;
    let payload = BuildRequested {
        app: app.app_ref(),
        release_id,
        source: Source {
            repo_url: app.repo_url.clone(),
            git_ref: intent.git_ref.to_owned(),
            commit: intent.commit.map(str::to_owned),
            subdirectory: app.subdirectory.clone(),
            token,
        },
        config: ReleaseConfig {
            port: u16::try_from(app.port)
                .map_err(|_| Error::internal("stored port out of range"))?,
            env: app.env_sealed.0.clone(),
            env_version: app.env_version,
            replicas: app.replica_count(),
            resources: intent.quotas.app.effective(app.stored_resources()).into(),
            health_check_path: app.health_check_path.clone(),
        },
        known_images,
    };
    outbox::enqueue(conn, Some(id), &payload).await?;
    github_status::track(conn, id, app, intent.github_host).await?;
    // Ten pushes in a row need one build, of the newest.
    transitions::supersede_queued(conn, app.id, id).await?;
    Ok(id)
}

/// Queues a rollback of `app` (locked by the caller) to `release`: a
/// deployment of that release's image and env, without a build, at the
/// app's scale and resources of today (they are what the quota counts).
/// Returns its id.
pub async fn request_rollback(
    conn: &mut PgConnection,
    app: &AppRow,
    release: &ReleaseRow,
    created_by: Uuid,
    github_host: &str,
    quotas: &Quotas,
) -> Result<Uuid> {
    quota::check_queue(conn, app.owner_id, quotas).await?;
    // The resources are the app's of today, like its scale.
    let resources = quotas.app.effective(app.stored_resources()).into();
    let id = deploy_release(
        conn,
        app,
        release,
        Trigger::Rollback,
        Some(created_by),
        Some(resources),
    )
    .await?;
    github_status::track(conn, id, app, github_host).await?;
    transitions::supersede_queued(conn, app.id, id).await?;
    Ok(id)
}

/// Queues berth's own rollback of `app` (locked by the caller) to
/// `release`, away from a live release that crash-loops: like a user's
/// rollback, without a quota check (it replaces what runs). Returns its id.
pub async fn request_auto_rollback(
    conn: &mut PgConnection,
    app: &AppRow,
    release: &ReleaseRow,
    github_host: &str,
) -> Result<Uuid> {
    let id = deploy_release(conn, app, release, Trigger::AutoRollback, None, None).await?;
    github_status::track(conn, id, app, github_host).await?;
    transitions::supersede_queued(conn, app.id, id).await?;
    Ok(id)
}

/// Queues a deployment of `release` (the app's live one) that berth makes by
/// itself to put it back in place, with the release's recorded resources.
/// No quota: it replaces what runs. Returns its id.
pub async fn request_repair(
    conn: &mut PgConnection,
    app: &AppRow,
    release: &ReleaseRow,
) -> Result<Uuid> {
    deploy_release(conn, app, release, Trigger::Repair, None, None).await
}

/// A `queued` deployment of an existing release and its `deploy.requested`,
/// at the app's scale of today (the scale is the app's, not the release's),
/// and with `resources` when given.
async fn deploy_release(
    conn: &mut PgConnection,
    app: &AppRow,
    release: &ReleaseRow,
    trigger: Trigger,
    created_by: Option<Uuid>,
    resources: Option<berth_proto::Resources>,
) -> Result<Uuid> {
    let id = Uuid::now_v7();
    store::insert(
        conn,
        store::NewDeployment {
            id,
            app_id: app.id,
            trigger: trigger.as_str(),
            git_ref: None,
            commit: Some(&release.commit_sha),
            release_id: release.id,
            image: Some(&release.image),
            created_by,
            pushed_by: None,
            commit_message: None,
            waits_for_dispatch: false,
        },
    )
    .await?;
    let mut release = release.to_release(app.app_ref());
    release.config.replicas = app.replica_count();
    if let Some(resources) = resources {
        release.config.resources = resources;
    }
    outbox::enqueue(conn, Some(id), &DeployRequested { release }).await?;
    Ok(id)
}
