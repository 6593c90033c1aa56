//! Automatic rollback end to end (issue 13): a release that goes live and
//! then crash-loops is replaced by the previous one without anyone asking.
//! Checked against the engine and through the router, not only berth's
//! records.

use anyhow::{Context, Result};
use berth_tests::api::fetch_body;
use berth_tests::flow::{deploy_live, endpoint, signed_in};
use berth_tests::{engine, AppRepo, Platform};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread")]
async fn a_release_that_crash_loops_after_going_live_is_rolled_back_by_berth() -> Result<()> {
    let platform = Platform::start().await?;
    let client = signed_in(&platform, "rollbacks").await?;
    let repo = AppRepo::python("v1")?;
    let app = client
        .create_app(json!({"name": "bouncer", "repo_url": repo.url(), "port": 8000}))
        .await?;
    let app_id = app["id"].as_str().context("app id")?.to_owned();
    let first = deploy_live(&client, &platform, &app_id).await?;
    let url = endpoint(&first)?;
    assert_eq!(fetch_body(&url).await?, "hello v1");

    // v2 listens at once, so it goes live, then exits 1 every 4 s.
    repo.write("app.py", &AppRepo::crashing_app_py(4))?;
    repo.write("version.txt", "v2")?;
    repo.commit("v2: loses its database after 4 s")?;
    let second = deploy_live(&client, &platform, &app_id).await?;
    let went_live = Instant::now();
    let second_id = second["id"].as_str().context("id")?.to_owned();

    let deadline = went_live + Duration::from_secs(120);
    let rollback = loop {
        let deployments = client.get(&format!("/apps/{app_id}/deployments")).await?;
        let rollback = deployments
            .as_array()
            .into_iter()
            .flatten()
            .find(|d| d["trigger"] == "auto_rollback" && d["state"] == "live")
            .cloned();
        if let Some(rollback) = rollback {
            break rollback;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no automatic rollback went live within 120 s: {deployments}\n{}",
            platform.all_output()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    println!(
        "from going live to the automatic rollback serving: {:.1} s",
        went_live.elapsed().as_secs_f64()
    );
    assert_eq!(rollback["release_id"], first["release_id"]);

    let second = client.deployment(&second_id).await?;
    assert_eq!(second["state"], "rolled_back", "{second}");
    let reason = second["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("rolled back by berth: its instances crashed 3 times"),
        "{reason}"
    );
    // What runs is the earlier release, at the same URL.
    assert_eq!(fetch_body(&url).await?, "hello v1");
    let docker = engine::connect(&platform.env["BERTH_DOCKER_HOST"]).await?;
    let running = engine::running_deployments(&docker, berth_proto::labels::APP, &app_id).await?;
    let rollback_id = rollback["id"].as_str().context("id")?.to_owned();
    assert_eq!(running, std::slice::from_ref(&rollback_id));

    // Its users read what happened in the app's log.
    let said = |entries: &[Value]| {
        entries.iter().any(|entry| {
            entry["source"] == "event"
                && entry["line"].as_str().is_some_and(|line| {
                    line.contains("this release is failing: its instances crashed")
                })
        })
    };
    let entries = client
        .log_socket(&app_id, 0, Duration::from_secs(30), said)
        .await?;
    anyhow::ensure!(
        said(&entries),
        "no crash loop event in the log: {entries:?}"
    );

    // The benchmark's other figure: from the crash loop noticed (the
    // event's time) to the rollback live (its recorded state).
    let noticed = entries
        .iter()
        .filter(|entry| said(std::slice::from_ref(entry)))
        .find_map(|entry| entry["ts"].as_str())
        .and_then(|ts| chrono::DateTime::parse_from_rfc3339(ts).ok())
        .context("the event's time")?;
    let rollback = client.deployment(&rollback_id).await?;
    let live_at = rollback["states"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["state"] == "live")
        .and_then(|s| s["at"].as_str())
        .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
        .context("when the rollback went live")?;
    println!(
        "from the crash loop noticed to the rollback live: {:.1} s",
        (live_at - noticed).num_milliseconds() as f64 / 1000.0
    );
    Ok(())
}
