//! Deployments reported back to GitHub (a Deployment, its statuses and the
//! commit status), against a local server speaking GitHub's REST API: the
//! calls in order with the owner's token, retries on server errors and
//! rate limits, a GitHub that is down, and apps that are not reported.

mod common;

use axum::http::StatusCode;
use berth_backend::github::store::{upsert_account, Account};
use berth_backend::github_status::reporter::{ReporterSettings, StatusReporter};
use berth_backend::inform::{Applied, InformHandler};
use berth_backend::reaper::{Reaper, ReaperSettings};
use berth_backend::state::ApiSettings;
use berth_backend::webhooks::github::ReqwestGitHub;
use berth_proto::{AppRef, DeploymentProgress, DeploymentState, Release, ReleaseConfig};
use common::broker::eventually;
use common::fake_github::FakeGitHub;
use common::fake_github_status::{Failure, StatusCall};
use common::fake_logs::FakeLogs;
use common::{id_of, TestApp};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const TOKEN: &str = "gho_16C7e42F292c6912E7710c838347Ae178B4a";
const PUBLIC_URL: &str = "https://berth.example.com";
const SHA: &str = "7638417db6d59f3c431d3e1f261cc637155684cd";
const SHA2: &str = "a10867b14bb761a232cd80139fbd4c0d33264240";
const ENDPOINT: &str = "http://hello.alice.apps.example.com";
const WAIT: Duration = Duration::from_secs(10);

struct Setup {
    app: TestApp,
    token: String,
    app_id: Uuid,
    handler: InformHandler,
    stop: CancellationToken,
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn settings() -> ReporterSettings {
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
async fn setup(api_url: &str, repo_url: &str, linked: bool) -> Setup {
    let api = ApiSettings {
        public_url: Some(PUBLIC_URL.into()),
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
        let sealed = app.state.key.seal(TOKEN.as_bytes());
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
    async fn deploy(&self, body: Value) -> Uuid {
        let uri = format!("/api/v1/apps/{}/deployments", self.app_id);
        let response = self.app.post(&uri, &self.token, body).await;
        assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.body);
        id_of(&response.body)
    }

    /// Applies a report as the inform consumer does; it must move the
    /// deployment, whatever GitHub is doing.
    async fn report(&self, id: Uuid, progress: DeploymentProgress) {
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
    async fn go_live(&self, id: Uuid, commit: &str) {
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

    async fn state(&self, id: Uuid) -> String {
        sqlx::query_scalar("SELECT state FROM deployments WHERE id = $1")
            .bind(id)
            .fetch_one(self.app.pool())
            .await
            .unwrap()
    }

    async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(self.app.pool())
            .await
            .unwrap()
    }

    /// Waits until `n` reports exist and none is left to send.
    async fn settled(&self, n: i64) {
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
    async fn reports(&self) -> Vec<(String, String, i32, bool, Option<String>)> {
        sqlx::query_as(
            "SELECT kind, COALESCE(state, ''), attempts, sent_at IS NOT NULL, last_error
             FROM github_status_reports ORDER BY id",
        )
        .fetch_all(self.app.pool())
        .await
        .unwrap()
    }

    fn log_url(&self, deployment: Uuid) -> String {
        format!("{PUBLIC_URL}/apps/{}/deployments/{deployment}", self.app_id)
    }
}

const REPO: &str = "/repos/Codertocat/Hello-World";

/// (path, state) of each call.
fn steps(calls: &[StatusCall]) -> Vec<(String, String)> {
    calls
        .iter()
        .map(|c| {
            let state = c.body["state"].as_str().unwrap_or("-").to_owned();
            (c.path.trim_start_matches(REPO).to_owned(), state)
        })
        .collect()
}

fn step(path: &str, state: &str) -> (String, String) {
    (path.to_owned(), state.to_owned())
}

async fn on_github() -> (FakeGitHub, String) {
    let github = FakeGitHub::start("Codertocat", "Hello-World", TOKEN).await;
    let repo_url = format!("{}/Codertocat/Hello-World.git", github.url);
    (github, repo_url)
}

#[tokio::test]
async fn a_deployment_is_reported_in_order_with_the_owners_token() {
    let (github, repo_url) = on_github().await;
    let setup = setup(&github.url, &repo_url, true).await;
    let first = setup.deploy(json!({"commit": SHA})).await;
    setup.go_live(first, SHA).await;
    setup.settled(7).await;

    let calls = github.status_calls();
    let status = format!("/statuses/{SHA}");
    assert_eq!(
        steps(&calls),
        [
            step("/deployments", "-"),
            step("/deployments/1/statuses", "queued"),
            step(&status, "pending"),
            step("/deployments/1/statuses", "in_progress"),
            step(&status, "pending"),
            step("/deployments/1/statuses", "success"),
            step(&status, "success"),
        ]
    );
    for call in &calls {
        assert_eq!(
            call.authorization.as_deref(),
            Some(&*format!("Bearer {TOKEN}"))
        );
        assert_eq!(call.answered, 201, "{call:?}");
    }
    let created = &calls[0].body;
    assert_eq!(created["ref"], SHA);
    assert_eq!(created["environment"], "hello");
    assert_eq!(created["auto_merge"], false);
    assert_eq!(created["required_contexts"], json!([]));
    assert_eq!(created["transient_environment"], false);
    assert!(created["description"].as_str().unwrap().contains(&SHA[..7]));
    let log_url = setup.log_url(first);
    for call in calls
        .iter()
        .filter(|c| c.path.contains("/deployments/1/statuses"))
    {
        assert_eq!(call.body["log_url"], log_url.as_str());
    }
    assert_eq!(calls[5].body["environment_url"], ENDPOINT);
    assert!(calls[1].body.get("environment_url").is_none());
    for call in calls.iter().filter(|c| c.path == format!("{REPO}{status}")) {
        assert_eq!(call.body["context"], "berth/hello");
        assert_eq!(call.body["target_url"], log_url.as_str());
    }
    assert_eq!(calls[6].body["description"], "Live");

    // A deploy of the branch: its commit is known once it is building, and
    // reporting starts then. Going live replaces the first deployment,
    // which GitHub hears as `inactive`.
    let second = setup.deploy(json!({})).await;
    setup.go_live(second, SHA2).await;
    setup.settled(13).await;
    assert_eq!(setup.state(first).await, "superseded");
    let later = github.status_calls()[7..].to_vec();
    let (of_first, of_second): (Vec<_>, Vec<_>) = later
        .into_iter()
        .partition(|c| c.path.contains("/deployments/1/"));
    let status2 = format!("/statuses/{SHA2}");
    assert_eq!(
        steps(&of_first),
        [step("/deployments/1/statuses", "inactive")]
    );
    assert_eq!(
        steps(&of_second),
        [
            step("/deployments", "-"),
            step("/deployments/2/statuses", "in_progress"),
            step(&status2, "pending"),
            step("/deployments/2/statuses", "success"),
            step(&status2, "success"),
        ]
    );
    assert_eq!(of_second[0].body["ref"], SHA2);
    assert_eq!(of_second[3].body["log_url"], setup.log_url(second).as_str());
}

/// The release a deployment of `commit` builds, as the build-worker reports it.
async fn release_of(setup: &Setup, deployment: Uuid, commit: &str) -> Release {
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
            env: setup.app.state.key.seal_json(&json!({})),
            env_version: 1,
            replicas: 1,
            resources: Default::default(),
        },
    }
}

/// Builds and deploys `commit` (the release recorded on the way).
async fn ship(setup: &Setup, commit: &str) -> (Uuid, Uuid) {
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

#[tokio::test]
async fn a_rollback_is_reported_and_what_it_replaces_goes_inactive() {
    let (github, repo_url) = on_github().await;
    let setup = setup(&github.url, &repo_url, true).await;
    let (_, first_release) = ship(&setup, SHA).await;
    let (second, _) = ship(&setup, SHA2).await;
    let rollback = setup.deploy(json!({"release_id": first_release})).await;
    setup
        .report(
            rollback,
            DeploymentProgress::new(DeploymentState::Deploying),
        )
        .await;
    setup
        .report(
            rollback,
            DeploymentProgress::new(DeploymentState::Live).with_endpoint(ENDPOINT),
        )
        .await;
    assert_eq!(setup.state(second).await, "rolled_back");
    setup.settled(23).await;

    let calls = github.status_calls();
    let of = |n: &str| -> Vec<StatusCall> {
        let prefix = format!("{REPO}/deployments/{n}/");
        calls
            .iter()
            .filter(|c| c.path.starts_with(&prefix))
            .cloned()
            .collect()
    };
    let first = of("1");
    assert_eq!(first.last().unwrap().body["state"], "inactive");
    assert_eq!(
        first.last().unwrap().body["description"],
        "Replaced by a newer deployment"
    );
    let second = of("2");
    assert_eq!(
        steps(&second[second.len() - 1..]),
        [step("/deployments/2/statuses", "inactive")]
    );
    assert_eq!(second.last().unwrap().body["description"], "Rolled back");
    // The rollback is a Deployment of the old commit.
    let created: Vec<&StatusCall> = calls
        .iter()
        .filter(|c| c.path == format!("{REPO}/deployments"))
        .collect();
    assert_eq!(created.len(), 3);
    assert_eq!(created[2].body["ref"], SHA);
    assert_eq!(
        steps(&of("3")),
        [
            step("/deployments/3/statuses", "queued"),
            step("/deployments/3/statuses", "in_progress"),
            step("/deployments/3/statuses", "success"),
        ]
    );
    assert_eq!(of("3")[2].body["log_url"], setup.log_url(rollback).as_str());
}

#[tokio::test]
async fn failures_timeouts_and_cancellations_are_reported_with_the_reason_and_the_log_link() {
    let (github, repo_url) = on_github().await;
    let setup = setup(&github.url, &repo_url, true).await;
    let failed = setup.deploy(json!({"commit": SHA})).await;
    setup
        .report(failed, DeploymentProgress::new(DeploymentState::Building))
        .await;
    let reason = "the build failed: no Dockerfile and no supported language found";
    setup
        .report(failed, DeploymentProgress::failed(reason))
        .await;
    setup.settled(7).await;
    let calls = github.status_calls();
    let status = format!("/statuses/{SHA}");
    assert_eq!(
        steps(&calls[5..]),
        [
            step("/deployments/1/statuses", "failure"),
            step(&status, "failure"),
        ]
    );
    assert_eq!(calls[5].body["description"], format!("Failed: {reason}"));
    assert_eq!(calls[5].body["log_url"], setup.log_url(failed).as_str());
    assert!(calls[5].body.get("environment_url").is_none());
    assert_eq!(calls[6].body["target_url"], setup.log_url(failed).as_str());

    // The reaper's timeouts are reported as errors.
    let stuck = setup.deploy(json!({"commit": SHA2})).await;
    sqlx::query(
        "UPDATE deployments SET state_changed_at = now() - interval '31 minutes' WHERE id = $1",
    )
    .bind(stuck)
    .execute(setup.app.pool())
    .await
    .unwrap();
    let reaper = Reaper::new(setup.app.pool().clone(), ReaperSettings::default());
    assert_eq!(reaper.reap().await.unwrap(), [stuck]);
    setup.settled(12).await;
    let calls = github.status_calls();
    let status2 = format!("/statuses/{SHA2}");
    assert_eq!(
        steps(&calls[7..]),
        [
            step("/deployments", "-"),
            step("/deployments/2/statuses", "queued"),
            step(&status2, "pending"),
            step("/deployments/2/statuses", "error"),
            step(&status2, "error"),
        ]
    );
    assert_eq!(
        calls[10].body["description"],
        "Timed out: no progress while queued for 30 minutes"
    );

    // Reports sent a week ago are forgotten; the GitHub Deployment ids stay.
    sqlx::query(
        "UPDATE github_status_reports SET sent_at = now() - interval '8 days'
         WHERE deployment_id = $1",
    )
    .bind(failed)
    .execute(setup.app.pool())
    .await
    .unwrap();
    reaper.reap().await.unwrap();
    let left: Vec<Uuid> =
        sqlx::query_scalar("SELECT DISTINCT deployment_id FROM github_status_reports")
            .fetch_all(setup.app.pool())
            .await
            .unwrap();
    assert_eq!(left, [stuck]);
    assert_eq!(
        setup
            .count("SELECT count(*) FROM github_deployments WHERE github_id IS NOT NULL")
            .await,
        2
    );

    // Deleting the app cancels what is in progress: GitHub hears `error`.
    let cancelled = setup.deploy(json!({"commit": SHA})).await;
    let uri = format!("/api/v1/apps/{}", setup.app_id);
    let deleted = setup
        .app
        .call(axum::http::Method::DELETE, &uri, Some(&setup.token), None)
        .await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED, "{}", deleted.body);
    assert_eq!(setup.state(cancelled).await, "cancelled");
    setup.settled(10).await;
    let calls = github.status_calls();
    assert_eq!(
        steps(&calls[12..]),
        [
            step("/deployments", "-"),
            step("/deployments/3/statuses", "queued"),
            step(&status, "pending"),
            step("/deployments/3/statuses", "error"),
            step(&status, "error"),
        ]
    );
    assert_eq!(
        calls[15].body["description"],
        "Cancelled: the app was deleted"
    );
}

#[tokio::test]
async fn server_errors_and_rate_limits_are_retried_in_order() {
    let (github, repo_url) = on_github().await;
    github.fail_next([
        Failure {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            retry_after: None,
        },
        Failure {
            status: StatusCode::TOO_MANY_REQUESTS,
            retry_after: Some(1),
        },
    ]);
    let setup = setup(&github.url, &repo_url, true).await;
    let id = setup.deploy(json!({"commit": SHA})).await;
    setup.go_live(id, SHA).await;
    // The pipeline went on while GitHub failed.
    assert_eq!(setup.state(id).await, "live");
    setup.settled(7).await;

    let calls = github.status_calls();
    let status = format!("/statuses/{SHA}");
    assert_eq!(
        steps(&calls),
        [
            step("/deployments", "-"),
            step("/deployments", "-"),
            step("/deployments", "-"),
            step("/deployments/1/statuses", "queued"),
            step(&status, "pending"),
            step("/deployments/1/statuses", "in_progress"),
            step(&status, "pending"),
            step("/deployments/1/statuses", "success"),
            step(&status, "success"),
        ]
    );
    assert_eq!(
        calls.iter().map(|c| c.answered).collect::<Vec<_>>()[..4],
        [500, 429, 201, 201]
    );
    // GitHub's Retry-After is honoured (the backoff alone is under 80ms).
    assert!(calls[2].at - calls[1].at >= Duration::from_secs(1));
    let reports = setup.reports().await;
    assert_eq!(reports[0].2, 3, "three attempts: {reports:?}");
    assert!(reports.iter().all(|r| r.3 && r.4.is_none()), "{reports:?}");
}

#[tokio::test]
async fn a_github_that_is_down_never_holds_up_a_deployment() {
    // A port nobody listens on: connections are refused.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let repo_url = format!("{api_url}/Codertocat/Hello-World.git");
    let setup = setup(&api_url, &repo_url, true).await;
    let id = setup.deploy(json!({"commit": SHA})).await;
    setup.go_live(id, SHA).await;
    assert_eq!(setup.state(id).await, "live");
    setup.settled(7).await;

    let reports = setup.reports().await;
    assert!(
        reports.iter().all(|r| !r.3),
        "nothing was sent: {reports:?}"
    );
    for (kind, _, attempts, _, error) in &reports {
        let error = error.as_deref().unwrap_or_default();
        if kind == "deployment_status" {
            // Without the Deployment there is nothing to add a status to.
            assert_eq!(*attempts, 1);
            assert_eq!(error, "the GitHub deployment was never created");
        } else {
            assert_eq!(*attempts, 3, "{kind}");
            assert!(
                error.starts_with("gave up after 3 attempts: GitHub cannot be reached"),
                "{error}"
            );
        }
    }
    assert_eq!(
        setup
            .count("SELECT count(*) FROM github_status_reports WHERE abandoned_at IS NULL")
            .await,
        0
    );
}

#[tokio::test]
async fn refusals_are_abandoned_at_once() {
    let github = FakeGitHub::start("Codertocat", "Hello-World", TOKEN).await;
    // A repository the fake does not have (deleted, or out of the token's reach).
    let repo_url = format!("{}/Codertocat/Gone.git", github.url);
    let setup = setup(&github.url, &repo_url, true).await;
    let id = setup.deploy(json!({"commit": SHA})).await;
    setup
        .report(id, DeploymentProgress::failed("the clone failed"))
        .await;
    setup.settled(5).await;
    let calls = github.status_calls();
    assert_eq!(
        calls.iter().map(|c| c.answered).collect::<Vec<_>>(),
        [404, 404, 404],
        "the Deployment and the two commit statuses, once each"
    );
    let reports = setup.reports().await;
    assert!(reports.iter().all(|r| r.2 == 1 && !r.3), "{reports:?}");
    assert!(reports[0]
        .4
        .as_deref()
        .unwrap()
        .contains("the repository is gone"));
}

#[tokio::test]
async fn apps_off_github_or_without_a_linked_account_are_not_reported() {
    let (github, repo_url) = on_github().await;
    // On GitHub, but alice never linked her GitHub account.
    let unlinked = setup(&github.url, &repo_url, false).await;
    let id = unlinked.deploy(json!({"commit": SHA})).await;
    unlinked.go_live(id, SHA).await;
    // Linked, but the repository is elsewhere.
    let elsewhere = setup(
        &github.url,
        "https://gitlab.com/Codertocat/Hello-World.git",
        true,
    )
    .await;
    let other = elsewhere.deploy(json!({"commit": SHA})).await;
    elsewhere.go_live(other, SHA).await;
    for setup in [&unlinked, &elsewhere] {
        assert_eq!(
            setup.count("SELECT count(*) FROM github_deployments").await
                + setup
                    .count("SELECT count(*) FROM github_status_reports")
                    .await,
            0
        );
    }
    assert_eq!(unlinked.state(id).await, "live");
    assert_eq!(elsewhere.state(other).await, "live");
    // The reporters ran (they poll every 20ms) and called nobody.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(github.status_calls().is_empty());
}
