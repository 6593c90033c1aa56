//! Test support for GitHub status reporting: berth with an app on a (fake)
//! GitHub, its owner's account linked or not, a running status reporter,
//! and helpers that move deployments and read what GitHub was told.

use super::broker::eventually;
use super::fake_github::FakeGitHub;
use super::fake_github_status::StatusCall;
use super::fake_logs::FakeLogs;
use super::{id_of, TestApp};
use axum::http::StatusCode;
use berth_backend::background::github_status::{ReporterSettings, StatusReporter};
use berth_backend::background::inform::{Applied, InformHandler};
use berth_backend::github::store::{upsert_account, Account};
use berth_backend::github_api::ReqwestGitHub;
use berth_backend::state::ApiSettings;
use berth_proto::{AppRef, Binding, DeploymentProgress, DeploymentState, Release, ReleaseConfig};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const TOKEN: &str = "gho_16C7e42F292c6912E7710c838347Ae178B4a";
pub const PUBLIC_URL: &str = "https://berth.example.com";
pub const SHA: &str = "7638417db6d59f3c431d3e1f261cc637155684cd";
pub const SHA2: &str = "a10867b14bb761a232cd80139fbd4c0d33264240";
pub const ENDPOINT: &str = "http://hello.alice.apps.example.com";
pub const WAIT: Duration = Duration::from_secs(10);

pub struct Setup {
    pub app: TestApp,
    pub token: String,
    pub app_id: Uuid,
    pub handler: InformHandler,
    pub stop: CancellationToken,
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub fn settings() -> ReporterSettings {
    ReporterSettings {
        poll: Duration::from_millis(20),
        min_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(80),
        max_attempts: 3,
        public_url: Some(PUBLIC_URL.into()),
        ..ReporterSettings::default()
    }
}

/// berth whose GitHub API is `api_url`, alice (linked to GitHub when
/// `linked`) with an app `hello` on `repo_url`, and a running reporter.
pub async fn setup(api_url: &str, repo_url: &str, linked: bool) -> Setup {
    let api = ApiSettings {
        public_url: Some(PUBLIC_URL.into()),
        // The fake GitHub (and so the repository) is on 127.0.0.1: a
        // development setup, where internal hosts are allowed.
        allow_local_repos: true,
        ..ApiSettings::default()
    };
    let app = TestApp::with(api, Arc::new(FakeLogs::default()))
        .await
        .with_github(Arc::new(ReqwestGitHub::new(api_url).unwrap()));
    let token = app.token("alice").await;
    if linked {
        let user_id: Uuid = sqlx::query_scalar("SELECT id FROM users WHERE username = 'alice'")
            .fetch_one(app.pool())
            .await
            .unwrap();
        let sealed = app
            .state
            .key
            .seal(&Binding::github_token(user_id), TOKEN.as_bytes());
        let mut conn = app.pool().acquire().await.unwrap();
        let account = Account {
            user_id,
            github_id: 583231,
            login: "Codertocat",
            token: &sealed,
            scopes: "repo,read:user,user:email",
        };
        upsert_account(&mut conn, account).await.unwrap();
    }
    let app_id = id_of(
        &app.create_app(&token, json!({"name": "hello", "repo_url": repo_url}))
            .await,
    );
    let stop = CancellationToken::new();
    let reporter = StatusReporter::new(
        app.pool().clone(),
        app.state.key.clone(),
        ReqwestGitHub::new(api_url).unwrap(),
        app.state.github_status.clone(),
        settings(),
    );
    tokio::spawn(reporter.run(stop.clone()));
    let handler = InformHandler::new(app.pool().clone())
        .with_status_reporter(app.state.github_status.clone());
    Setup {
        app,
        token,
        app_id,
        handler,
        stop,
    }
}

impl Setup {
    pub async fn deploy(&self, body: Value) -> Uuid {
        let uri = format!("/api/v1/apps/{}/deployments", self.app_id);
        let response = self.app.post(&uri, &self.token, body).await;
        assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.body);
        id_of(&response.body)
    }

    /// Applies a report as the inform consumer does; it must move the
    /// deployment, whatever GitHub is doing.
    pub async fn report(&self, id: Uuid, progress: DeploymentProgress) {
        let to = progress.state;
        let applied =
            tokio::time::timeout(Duration::from_secs(2), self.handler.apply(id, &progress))
                .await
                .expect("a transition never waits on GitHub")
                .unwrap();
        assert!(
            matches!(applied, Applied::Transitioned { to: moved, .. } if moved == to),
            "{applied:?}"
        );
    }

    /// Queued to live, the commit known from the start or from `building`.
    pub async fn go_live(&self, id: Uuid, commit: &str) {
        self.report(id, DeploymentProgress::new(DeploymentState::Cloning))
            .await;
        self.report(
            id,
            DeploymentProgress::new(DeploymentState::Building).with_commit(commit),
        )
        .await;
        self.report(id, DeploymentProgress::new(DeploymentState::Deploying))
            .await;
        self.report(
            id,
            DeploymentProgress::new(DeploymentState::Live).with_endpoint(ENDPOINT),
        )
        .await;
    }

    pub async fn state(&self, id: Uuid) -> String {
        sqlx::query_scalar("SELECT state FROM deployments WHERE id = $1")
            .bind(id)
            .fetch_one(self.app.pool())
            .await
            .unwrap()
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(self.app.pool())
            .await
            .unwrap()
    }

    /// Waits until `n` reports exist and none is left to send.
    pub async fn settled(&self, n: i64) {
        let done = eventually(WAIT, || async {
            let total = self
                .count("SELECT count(*) FROM github_status_reports")
                .await;
            let pending = self
                .count(
                    "SELECT count(*) FROM github_status_reports
                     WHERE sent_at IS NULL AND abandoned_at IS NULL",
                )
                .await;
            (total == n && pending == 0).then_some(())
        })
        .await;
        assert!(
            done.is_some(),
            "the {n} reports were not all handled in time"
        );
    }

    /// (kind, state, attempts, sent, last_error) of every report, in order.
    pub async fn reports(&self) -> Vec<(String, String, i32, bool, Option<String>)> {
        sqlx::query_as(
            "SELECT kind, COALESCE(state, ''), attempts, sent_at IS NOT NULL, last_error
             FROM github_status_reports ORDER BY id",
        )
        .fetch_all(self.app.pool())
        .await
        .unwrap()
    }

    pub fn log_url(&self, deployment: Uuid) -> String {
        format!("{PUBLIC_URL}/apps/{}/deployments/{deployment}", self.app_id)
    }
}

pub const REPO: &str = "/repos/Codertocat/Hello-World";

/// (path, state) of each call.
pub fn steps(calls: &[StatusCall]) -> Vec<(String, String)> {
    calls
        .iter()
        .map(|c| {
            let state = c.body["state"].as_str().unwrap_or("-").to_owned();
            (c.path.trim_start_matches(REPO).to_owned(), state)
        })
        .collect()
}

pub fn step(path: &str, state: &str) -> (String, String) {
    (path.to_owned(), state.to_owned())
}

pub async fn on_github() -> (FakeGitHub, String) {
    let github = FakeGitHub::start(TOKEN).await;
    let repo_url = format!("{}/Codertocat/Hello-World.git", github.url);
    (github, repo_url)
}

/// The release a deployment of `commit` builds, as the build-worker reports it.
pub async fn release_of(setup: &Setup, deployment: Uuid, commit: &str) -> Release {
    let release_id: Uuid = sqlx::query_scalar("SELECT release_id FROM deployments WHERE id = $1")
        .bind(deployment)
        .fetch_one(setup.app.pool())
        .await
        .unwrap();
    Release {
        id: release_id,
        app: AppRef {
            id: setup.app_id,
            name: "hello".into(),
            tenant: "alice".into(),
        },
        commit: commit.into(),
        image: format!("127.0.0.1:5000/alice/hello@sha256:{commit}"),
        config: ReleaseConfig {
            port: 8000,
            env: setup
                .app
                .state
                .key
                .seal_json(&Binding::app_env("alice", setup.app_id), &json!({})),
            env_version: 1,
            replicas: 1,
            resources: Default::default(),
            health_check_path: None,
        },
    }
}

/// Builds and deploys `commit` (the release recorded on the way).
pub async fn ship(setup: &Setup, commit: &str) -> (Uuid, Uuid) {
    let id = setup.deploy(json!({"commit": commit})).await;
    let release = release_of(setup, id, commit).await;
    let release_id = release.id;
    setup
        .report(
            id,
            DeploymentProgress::new(DeploymentState::Building).with_commit(commit),
        )
        .await;
    setup
        .report(
            id,
            DeploymentProgress::new(DeploymentState::Deploying).with_release(release),
        )
        .await;
    setup
        .report(
            id,
            DeploymentProgress::new(DeploymentState::Live).with_endpoint(ENDPOINT),
        )
        .await;
    (id, release_id)
}
