//! End to end on the docker driver: the real binaries, the real stack.
//! Run by `make test` (which builds the binaries and starts the stack).

use anyhow::{ensure, Context, Result};
use berth_tests::api::{fetch_body, state_names};
use berth_tests::flow::{deploy_live, endpoint, signed_in, SETTLE};
use berth_tests::{engine, AppRepo, Platform};
use serde_json::{json, Value};
use std::time::Duration;

fn has(entries: &[Value], source: &str, needle: &str) -> bool {
    entries.iter().any(|e| {
        e["source"] == source && e["line"].as_str().is_some_and(|line| line.contains(needle))
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn push_to_live_then_redeploy_a_change() -> Result<()> {
    let platform = Platform::start().await?;
    let client = signed_in(&platform, "ada").await?;
    let repo = AppRepo::python("v1")?;
    let app = client
        .create_app(
            json!({"name": "greeter", "repo_url": repo.url(), "branch": "main",
            "port": 8000, "env": {"GREETING": "hello"}}),
        )
        .await?;
    let app_id = app["id"].as_str().context("app id")?;

    let first = deploy_live(&client, &platform, app_id).await?;
    let first_url = endpoint(&first)?;
    assert_eq!(fetch_body(&first_url).await?, "hello v1");
    assert!(
        first["image"]
            .as_str()
            .is_some_and(|i| i.contains("@sha256:")),
        "{first}"
    );
    let states = state_names(&first)?;
    assert_eq!(
        states,
        [
            "queued",
            "cloning",
            "building",
            "pushing",
            "deploying",
            "live"
        ]
    );

    // Build output and the app's own output arrive over the socket, each
    // frame with its offset, in order.
    let entries = client
        .log_socket(app_id, 0, Duration::from_secs(60), |entries| {
            has(entries, "build", "Detected Python")
                && has(entries, "app", "listening on 8000 with v1")
        })
        .await?;
    assert!(
        has(&entries, "build", "Detected Python"),
        "no build lines: {entries:?}"
    );
    assert!(
        has(&entries, "app", "listening on 8000 with v1"),
        "no app lines: {entries:?}\n{}",
        platform.all_output()
    );
    let offsets: Vec<i64> = entries
        .iter()
        .filter_map(|e| e["offset"].as_i64())
        .collect();
    assert!(
        offsets.windows(2).all(|w| w[1] > w[0]),
        "offsets must grow: {offsets:?}"
    );

    // The REST endpoint returns the same records as the socket.
    let page = client
        .get(&format!("/apps/{app_id}/logs?from=0&limit=5000"))
        .await?;
    let rest: Vec<&Value> = page["entries"]
        .as_array()
        .context("entries")?
        .iter()
        .take(entries.len())
        .collect();
    assert_eq!(rest, entries.iter().collect::<Vec<_>>());

    // A change deploys again; the old instance is gone afterwards.
    repo.write("version.txt", "v2")?;
    repo.commit("Say v2\n\nThe body of the message stays out of the history.")?;
    let second = deploy_live(&client, &platform, app_id).await?;
    assert_eq!(
        second["commit_message"], "Say v2",
        "reported after the clone"
    );
    let second_url = endpoint(&second)?;
    assert_eq!(second_url, first_url, "the app keeps its URL");
    assert!(
        first_url.starts_with("http://greeter.") && first_url.contains(".localhost:"),
        "{first_url}"
    );
    assert_eq!(fetch_body(&second_url).await?, "hello v2");
    let docker = engine::connect(&platform.env["BERTH_DOCKER_HOST"]).await?;
    assert_eq!(
        engine::running_deployments(&docker, berth_proto::labels::APP, app_id).await?,
        [second["id"].as_str().context("id")?.to_owned()],
        "only the new release runs"
    );
    let first_now = client
        .deployment(first["id"].as_str().context("id")?)
        .await?;
    assert_eq!(first_now["state"], "superseded");
    let app_now = client.get(&format!("/apps/{app_id}")).await?;
    assert_eq!(app_now["url"], second_url.as_str(), "{app_now}");

    // The same commit again: no build. The image is the one berth recorded
    // for it, by digest, found in the platform's own registry through its
    // token service (the backend) with a pull grant of the tenant.
    let third = deploy_live(&client, &platform, app_id).await?;
    assert_eq!(
        state_names(&third)?,
        ["queued", "cloning", "deploying", "live"],
        "{third}"
    );
    assert_eq!(third["image"], second["image"]);
    assert_eq!(fetch_body(&endpoint(&third)?).await?, "hello v2");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_build_leaves_the_previous_release_serving() -> Result<()> {
    let platform = Platform::start().await?;
    let client = signed_in(&platform, "grace").await?;
    let repo = AppRepo::python("v1")?;
    let app = client
        .create_app(json!({"name": "steady", "repo_url": repo.url(), "port": 8000}))
        .await?;
    let app_id = app["id"].as_str().context("app id")?;
    let live = deploy_live(&client, &platform, app_id).await?;
    let url = endpoint(&live)?;

    // The repository's Dockerfile wins over detection, and it fails.
    repo.write(
        "Dockerfile",
        "FROM localhost/berth/python:bookworm\nRUN echo 'compiling assets' && exit 3\n",
    )?;
    let broken = repo.commit("broken build")?;
    let id = client.deploy(app_id, json!({})).await?;
    let failed = client.wait_settled(&id, SETTLE).await?;
    assert_eq!(failed["state"], "failed", "{failed}");
    assert_eq!(failed["commit"], broken.as_str());
    let reason = failed["reason"].as_str().context("a failure reason")?;
    assert!(
        reason.contains("exit") || reason.contains("code 3"),
        "reason: {reason}"
    );

    assert_eq!(
        fetch_body(&url).await?,
        "hello v1",
        "the previous release stops serving"
    );
    let live_now = client
        .deployment(live["id"].as_str().context("id")?)
        .await?;
    assert_eq!(live_now["state"], "live");

    // The user sees why in the log, too.
    let entries = client
        .log_socket(app_id, 0, Duration::from_secs(30), |e| {
            has(e, "build", "compiling assets")
        })
        .await?;
    assert!(has(&entries, "build", "compiling assets"), "{entries:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_branch_fails_with_a_reason() -> Result<()> {
    let platform = Platform::start().await?;
    let client = signed_in(&platform, "linus").await?;
    let repo = AppRepo::python("v1")?;
    let app = client
        .create_app(json!({"name": "nobranch", "repo_url": repo.url(), "branch": "release"}))
        .await?;
    let id = client
        .deploy(app["id"].as_str().context("app id")?, json!({}))
        .await?;
    let failed = client.wait_settled(&id, Duration::from_secs(60)).await?;
    assert_eq!(failed["state"], "failed", "{failed}");
    let reason = failed["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("release"),
        "the reason names the branch: {reason}"
    );
    Ok(())
}

/// Polls `url` until `serving` says what it answers is what we wait for.
async fn until_serving(url: &str, wanted: bool) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let serves = fetch_body(url).await.is_ok_and(|body| body == "hello v1");
        if serves == wanted {
            return Ok(());
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "{url} still {} after 60 s",
            if wanted { "does not serve" } else { "serves" }
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_app_scaled_to_zero_stops_and_resumes_when_scaled_up() -> Result<()> {
    let platform = Platform::start().await?;
    let client = signed_in(&platform, "hopper").await?;
    let repo = AppRepo::python("v1")?;
    let app = client
        .create_app(json!({"name": "pausable", "repo_url": repo.url(), "port": 8000}))
        .await?;
    let app_id = app["id"].as_str().context("app id")?;
    let live = deploy_live(&client, &platform, app_id).await?;
    let url = endpoint(&live)?;
    let scale = format!("/apps/{app_id}/scale");

    let stopped = client
        .expect(
            reqwest::Method::PUT,
            &scale,
            Some(json!({"replicas": 0})),
            202,
        )
        .await?;
    assert_eq!(stopped["replicas"], 0);
    until_serving(&url, false).await?;

    client
        .expect(
            reqwest::Method::PUT,
            &scale,
            Some(json!({"replicas": 1})),
            202,
        )
        .await?;
    let app = client.get(&format!("/apps/{app_id}")).await?;
    let url = app["url"].as_str().context("the app keeps its url")?;
    until_serving(url, true).await?;
    assert_eq!(app["state"], "live", "{app}");
    Ok(())
}
