//! Faults injected from outside the processes, checked against the engine:
//! what runs ends up equal to what the database says. The short form of
//! the fault suite; each scenario runs on its own platform.

use anyhow::{Context, Result};
use berth_tests::api::fetch_body;
use berth_tests::flow::{deploy_live, endpoint, live_app_with_instances, settled_live, signed_in};
use berth_tests::{engine, AppRepo, Client, Platform};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn wait_until<F, Fut>(within: Duration, what: &str, mut check: F) -> Result<Value>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<Value>>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{what} did not happen in {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until the app's log holds an event line with `needle`: the
/// reconciler tells the app's users what it repaired.
async fn expect_repair_in_log(client: &Client, app_id: &str, needle: &str) -> Result<()> {
    let repaired = |entries: &[Value]| {
        entries.iter().any(|entry| {
            entry["source"] == "event"
                && entry["line"]
                    .as_str()
                    .is_some_and(|line| line.contains(needle))
        })
    };
    let entries = client
        .log_socket(app_id, 0, Duration::from_secs(30), repaired)
        .await?;
    anyhow::ensure!(
        repaired(&entries),
        "no repair saying {needle:?} in the app's log: {entries:?}"
    );
    Ok(())
}

/// The app's live deployment as the database has it.
async fn live_deployment(client: &Client, app_id: &str) -> Result<Option<Value>> {
    let deployments = client.get(&format!("/apps/{app_id}/deployments")).await?;
    Ok(deployments
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["state"] == "live")
        .cloned())
}

/// F1 of the reliability review: the deploy-worker is down while a
/// deployment waits for it, the deployment times out, and the worker comes
/// back to a deploy request nobody wants any more. What runs must be the
/// release the database says is live.
#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_that_timed_out_while_the_deploy_worker_was_down_never_stays_live(
) -> Result<()> {
    let mut platform = Platform::start_with(&[
        // Deadlines of seconds: pushing 12 s, deploying 9 s.
        ("BERTH_DEADLINE_SCALE", "0.01".into()),
        ("BERTH_REAPER_INTERVAL_SECS", "1".into()),
    ])
    .await?;
    let client = signed_in(&platform, "faulty").await?;
    let repo = AppRepo::python("v1")?;
    let app = client
        .create_app(json!({"name": "drift", "repo_url": repo.url(), "port": 8000}))
        .await?;
    let app_id = app["id"].as_str().context("app id")?.to_owned();
    let first = deploy_live(&client, &platform, &app_id).await?;
    endpoint(&first)?;

    platform.kill("berth-deploy-worker").await?;
    repo.write(
        "app.py",
        &std::fs::read_to_string(repo.path().join("app.py"))?.replace("hello v1", "hello v2"),
    )?;
    repo.commit("v2")?;
    let late = client.deploy(&app_id, json!({})).await?;
    let timed_out = client.wait_settled(&late, Duration::from_secs(300)).await?;
    assert_eq!(timed_out["state"], "timed_out", "{timed_out}");

    platform.spawn("berth-deploy-worker")?;
    let docker = engine::connect(&platform.env["BERTH_DOCKER_HOST"]).await?;
    // Before the worker handles the late request everything looks settled:
    // give it the time a deploy takes, then insist on convergence.
    tokio::time::sleep(Duration::from_secs(15)).await;
    // Converged: one container, of the deployment the database says is live,
    // serving v1 — whatever the late deploy did meanwhile.
    let settled = wait_until(Duration::from_secs(120), "convergence", || async {
        let Some(live) = live_deployment(&client, &app_id).await? else {
            return Ok(None);
        };
        let running =
            engine::running_deployments(&docker, berth_proto::labels::APP, &app_id).await?;
        let live_id = live["id"].as_str().unwrap_or_default().to_owned();
        let url = live["endpoint"].as_str().unwrap_or_default().to_owned();
        if running == [live_id] && fetch_body(&url).await.ok().as_deref() == Some("hello v1") {
            return Ok(Some(live));
        }
        Ok(None)
    })
    .await
    .map_err(|error| anyhow::anyhow!("{error}\n{}", platform.all_output()))?;
    assert_eq!(
        settled["release_id"], first["release_id"],
        "the release live before the fault is live again"
    );
    // And it stays so.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let live = live_deployment(&client, &app_id)
        .await?
        .context("a live deployment")?;
    let running = engine::running_deployments(&docker, berth_proto::labels::APP, &app_id).await?;
    assert_eq!(
        running,
        [live["id"].as_str().unwrap().to_owned()],
        "{}",
        platform.all_output()
    );
    assert_eq!(live["release_id"], first["release_id"]);
    assert_eq!(client.deployment(&late).await?["state"], "timed_out");
    Ok(())
}

/// After a reboot, or someone's `podman rm`, the live app's container is
/// gone while the database still says live: the reconciler starts it again.
#[tokio::test(flavor = "multi_thread")]
async fn a_live_app_whose_container_was_removed_runs_again() -> Result<()> {
    let platform = Platform::start_with(&[("BERTH_CONVERGE_INTERVAL_SECS", "2".into())]).await?;
    let client = signed_in(&platform, "rebooted").await?;
    let repo = AppRepo::python("v1")?;
    let app = client
        .create_app(json!({"name": "phoenix", "repo_url": repo.url(), "port": 8000}))
        .await?;
    let app_id = app["id"].as_str().context("app id")?.to_owned();
    let live = deploy_live(&client, &platform, &app_id).await?;
    let live_id = live["id"].as_str().context("id")?.to_owned();

    let docker = engine::connect(&platform.env["BERTH_DOCKER_HOST"]).await?;
    let removed = engine::remove_labelled(&docker, berth_proto::labels::APP, &app_id).await?;
    assert_eq!(removed, 1);

    wait_until(Duration::from_secs(90), "the app running again", || async {
        let running =
            engine::running_deployments(&docker, berth_proto::labels::APP, &app_id).await?;
        let now = client.deployment(&live_id).await?;
        let url = now["endpoint"].as_str().unwrap_or_default().to_owned();
        let serves = fetch_body(&url).await.ok().as_deref() == Some("hello v1");
        Ok((running == [live_id.clone()] && serves).then_some(now))
    })
    .await
    .map_err(|error| anyhow::anyhow!("{error}\n{}", platform.all_output()))?;
    assert_eq!(client.deployment(&live_id).await?["state"], "live");

    // Its users read why it restarted in its own log.
    expect_repair_in_log(&client, &app_id, "deployed the live release again").await
}

/// The edge router restarted with none of berth's configuration (a crash,
/// a reboot without its saved state, an operator's reload): the
/// reconciler puts every route back, and the app answers at the same URL.
/// Checked through the router itself, not berth's records.
#[tokio::test(flavor = "multi_thread")]
async fn a_router_that_lost_its_routes_gets_them_back() -> Result<()> {
    let mut platform =
        Platform::start_with(&[("BERTH_CONVERGE_INTERVAL_SECS", "2".into())]).await?;
    let client = signed_in(&platform, "routed").await?;
    let repo = AppRepo::python("v1")?;
    let app = client
        .create_app(json!({"name": "signpost", "repo_url": repo.url(), "port": 8000}))
        .await?;
    let app_id = app["id"].as_str().context("app id")?.to_owned();
    let url = endpoint(&deploy_live(&client, &platform, &app_id).await?)?;
    assert_eq!(fetch_body(&url).await?, "hello v1");
    // berth's own UI and API answer through the router too.
    let (status, _) = platform.router.get("berth.localhost", "/healthz").await?;
    assert_eq!(status, 200, "the console's route");

    platform.router.restart_empty().await;
    assert!(
        fetch_body(&url).await.is_err(),
        "the router lost its routes"
    );
    wait_until(Duration::from_secs(60), "the route back", || async {
        let serves = fetch_body(&url).await.ok().as_deref() == Some("hello v1");
        Ok(serves.then_some(Value::Null))
    })
    .await
    .map_err(|error| anyhow::anyhow!("{error}\n{}", platform.all_output()))?;
    let (status, _) = platform.router.get("berth.localhost", "/healthz").await?;
    assert_eq!(status, 200, "the console's route is back too");
    let (status, _) = platform.router.get("nobody.routed.localhost", "/").await?;
    assert_eq!(status, 404, "an unknown host");

    expect_repair_in_log(&client, &app_id, "route on the edge router").await
}

/// An app scaled to 2 runs two instances behind its URL; when one is
/// removed by hand, the reconciler makes the count match the scale again.
/// Checked against the engine.
#[tokio::test(flavor = "multi_thread")]
async fn an_app_scaled_up_keeps_as_many_instances_as_its_scale() -> Result<()> {
    let platform = Platform::start_with(&[("BERTH_CONVERGE_INTERVAL_SECS", "2".into())]).await?;
    let client = signed_in(&platform, "scaled").await?;
    let repo = AppRepo::python("v1")?;
    let (app_id, live) =
        live_app_with_instances(&client, &platform, "twins", &repo.url(), 2).await?;
    let live_id = live["id"].as_str().context("id")?.to_owned();
    let url = endpoint(&live)?;
    let docker = engine::connect(&platform.env["BERTH_DOCKER_HOST"]).await?;
    let two = || async {
        let running =
            engine::running_deployments(&docker, berth_proto::labels::APP, &app_id).await?;
        let serves = fetch_body(&url).await.ok().as_deref() == Some("hello v1");
        Ok((running == [live_id.clone(), live_id.clone()] && serves).then_some(Value::Null))
    };
    wait_until(Duration::from_secs(60), "two instances", two)
        .await
        .map_err(|error| anyhow::anyhow!("{error}\n{}", platform.all_output()))?;

    let one = engine::labelled(&docker, berth_proto::labels::APP, &app_id, false)
        .await?
        .into_iter()
        .find_map(|c| c.id)
        .context("an instance")?;
    engine::remove(&docker, &one).await?;
    wait_until(Duration::from_secs(60), "two instances again", two)
        .await
        .map_err(|error| anyhow::anyhow!("{error}\n{}", platform.all_output()))?;
    Ok(())
}

/// F12 of the reliability review: the relay published a build request
/// twice (a crash between publish and commit). Both copies reach the
/// build-worker; the deployment still ends `live`, not `failed`, with one
/// container of it running.
#[tokio::test(flavor = "multi_thread")]
async fn a_build_request_delivered_twice_still_ends_live_with_one_container() -> Result<()> {
    let platform = Platform::start().await?;
    let client = signed_in(&platform, "twice").await?;
    let repo = AppRepo::python("v1")?;
    let app = client
        .create_app(json!({"name": "echo", "repo_url": repo.url(), "port": 8000}))
        .await?;
    let app_id = app["id"].as_str().context("app id")?.to_owned();
    let id = client.deploy(&app_id, json!({})).await?;
    // The copy goes out as the original did: the deployment is in progress.
    let copied = std::process::Command::new("psql")
        .arg(&platform.env["BERTH_DATABASE_URL"])
        .args(["-v", "ON_ERROR_STOP=1", "-qtAc"])
        .arg(format!(
            "INSERT INTO outbox (routing_key, envelope) \
             SELECT routing_key, envelope FROM outbox \
             WHERE envelope->>'deployment_id' = '{id}' AND envelope->>'type' = 'build.requested' \
             RETURNING id"
        ))
        .output()
        .context("psql runs")?;
    anyhow::ensure!(
        copied.status.success() && !copied.stdout.is_empty(),
        "copying the outbox row: {}",
        String::from_utf8_lossy(&copied.stderr)
    );
    let settled = client.wait_settled(&id, Duration::from_secs(300)).await?;
    assert_eq!(
        settled["state"],
        "live",
        "{settled}\n{}",
        platform.all_output()
    );
    // Both copies are built (the second after the first, one slot per
    // tenant) and both ask for the deploy: one container runs.
    let cloned_twice = |entries: &[Value]| {
        entries
            .iter()
            .filter(|entry| {
                entry["source"] == "build"
                    && entry["line"]
                        .as_str()
                        .is_some_and(|line| line.starts_with("Cloning "))
            })
            .count()
            >= 2
    };
    let entries = client
        .log_socket(&app_id, 0, Duration::from_secs(180), cloned_twice)
        .await?;
    assert!(
        cloned_twice(&entries),
        "the copy was never built: {entries:?}"
    );
    // The copy's build and its deploy request take seconds.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let docker = engine::connect(&platform.env["BERTH_DOCKER_HOST"]).await?;
    let running = engine::running_deployments(&docker, berth_proto::labels::APP, &app_id).await?;
    assert_eq!(
        running,
        std::slice::from_ref(&id),
        "{}",
        platform.all_output()
    );
    let now = client.deployment(&id).await?;
    assert_eq!(now["state"], "live", "{now}");
    assert_eq!(
        fetch_body(&endpoint(&now)?).await?,
        "hello v1",
        "{}",
        platform.all_output()
    );
    Ok(())
}

/// Every `farewell <version> <n>` line in the app's log, from the REST log
/// API, in the order stored.
async fn farewells(client: &Client, app_id: &str, version: &str) -> Result<Vec<u64>> {
    let prefix = format!("farewell {version} ");
    let mut numbers = Vec::new();
    let mut from = 0;
    loop {
        let page = client
            .get(&format!("/apps/{app_id}/logs?from={from}&limit=5000"))
            .await?;
        let entries = page["entries"].as_array().context("log entries")?;
        numbers.extend(entries.iter().filter_map(|entry| {
            let line = entry["line"].as_str()?.strip_prefix(&prefix)?;
            (entry["source"] == "app").then(|| line.parse::<u64>().ok())?
        }));
        let next = page["next_offset"].as_i64().context("next_offset")?;
        if entries.is_empty() || next <= from {
            return Ok(numbers);
        }
        from = next;
    }
}

/// F21 of the reliability review: the log-streamer is down while a deploy
/// replaces a container, whose last 1000 lines it prints as it stops. The
/// replaced container stays (stopped) until the streamer is back and has
/// read them: every line reaches the app's log once.
#[tokio::test(flavor = "multi_thread")]
async fn the_last_lines_of_a_container_replaced_while_the_log_streamer_was_down_are_kept(
) -> Result<()> {
    let mut platform = Platform::start().await?;
    let client = signed_in(&platform, "farewell").await?;
    let repo = AppRepo::python_farewell("v1")?;
    let app = client
        .create_app(json!({"name": "parting", "repo_url": repo.url(), "port": 8000}))
        .await?;
    let app_id = app["id"].as_str().context("app id")?.to_owned();
    let first = deploy_live(&client, &platform, &app_id).await?;
    let first_id = first["id"].as_str().context("id")?.to_owned();
    // The streamer follows the container before it goes down.
    let listening = |entries: &[Value]| {
        entries
            .iter()
            .any(|entry| entry["line"].as_str() == Some("listening on 8000 with v1"))
    };
    let entries = client
        .log_socket(&app_id, 0, Duration::from_secs(60), listening)
        .await?;
    assert!(listening(&entries), "{entries:?}");

    platform.kill("berth-log-streamer").await?;
    repo.write("version.txt", "v2")?;
    repo.commit("v2")?;
    let second = client.deploy(&app_id, json!({})).await?;
    let second = settled_live(&client, &platform, &second).await?;
    assert_eq!(fetch_body(&endpoint(&second)?).await?, "hello v2");
    let docker = engine::connect(&platform.env["BERTH_DOCKER_HOST"]).await?;
    let kept: Vec<_> = engine::labelled(&docker, berth_proto::labels::APP, &app_id, true)
        .await?
        .into_iter()
        .filter(|c| {
            c.labels
                .as_ref()
                .and_then(|l| l.get(berth_proto::labels::DEPLOYMENT))
                == Some(&first_id)
        })
        .map(|c| c.state.map(|state| state.to_string()))
        .collect();
    assert_eq!(
        kept,
        [Some("exited".to_owned())],
        "the replaced container is kept, stopped"
    );

    platform.spawn("berth-log-streamer")?;
    let read = wait_until(Duration::from_secs(60), "1000 farewell lines", || async {
        let numbers = farewells(&client, &app_id, "v1").await?;
        Ok((numbers.len() >= 1000).then(|| json!(numbers)))
    })
    .await
    .map_err(|error| anyhow::anyhow!("{error}\n{}", platform.all_output()))?;
    let numbers: Vec<u64> = serde_json::from_value(read)?;
    assert_eq!(
        numbers,
        (0..1000).collect::<Vec<_>>(),
        "each line once, in order"
    );
    Ok(())
}
