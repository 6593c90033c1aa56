//! Deployments reported back to GitHub (a Deployment, its statuses and the
//! commit status), against a local server speaking GitHub's REST API: the
//! calls in order with the owner's token, retries on server errors and
//! rate limits, a GitHub that is down, and apps that are not reported.

mod common;

use axum::http::StatusCode;
use berth_backend::background::reaper::{Reaper, ReaperSettings};
use berth_proto::{DeploymentProgress, DeploymentState};
use common::fake_github::FakeGitHub;
use common::fake_github_status::{Failure, StatusCall};
use common::github_status_setup::*;
use serde_json::json;
use std::time::Duration;
use uuid::Uuid;

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
async fn failures_timeouts_and_cancellations_are_reported_generically_with_the_log_link() {
    let (github, repo_url) = on_github().await;
    let setup = setup(&github.url, &repo_url, true).await;
    let failed = setup.deploy(json!({"commit": SHA})).await;
    setup
        .report(failed, DeploymentProgress::new(DeploymentState::Building))
        .await;
    // The reason quotes build output; statuses are public on public repositories.
    let reason = "the build failed at step 3 (RUN ./configure): TOKEN=ghp_leaked | make: Error 1";
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
    assert_eq!(calls[5].body["description"], "Build failed at step 3");
    assert_eq!(calls[6].body["description"], "Build failed at step 3");
    for call in &calls {
        assert!(
            !call.body.to_string().contains("ghp_leaked"),
            "{}",
            call.body
        );
    }
    assert_eq!(calls[5].body["log_url"], setup.log_url(failed).as_str());
    assert!(calls[5].body.get("environment_url").is_none());
    assert_eq!(calls[6].body["target_url"], setup.log_url(failed).as_str());

    // The reaper's timeouts are reported as errors.
    let stuck = setup.deploy(json!({"commit": SHA2})).await;
    sqlx::query(
        "UPDATE deployments SET state_changed_at = now() - interval '31 minutes',
                                dispatched_at = now() - interval '31 minutes' WHERE id = $1",
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
    assert_eq!(calls[10].body["description"], "Timed out while queued");

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
    assert_eq!(calls[15].body["description"], "Cancelled");
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
    let github = FakeGitHub::start(TOKEN).await;
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
