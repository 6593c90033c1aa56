//! A reboot of the single host, as far as a test sharing the engine with
//! others can make one: every berth process killed, every app container
//! killed, the edge router back with no configuration, then berth started
//! again. The apps come back at the same URLs, with as many instances as
//! their scale, checked through the router and against the engine. (The
//! engine's own crash is the fault suite's: `make chaos`.)

use anyhow::{Context, Result};
use berth_tests::api::fetch_body;
use berth_tests::flow::{endpoint, live_app_with_instances, signed_in};
use berth_tests::{engine, AppRepo, Platform};
use bollard::query_parameters::KillContainerOptions;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread")]
async fn after_a_reboot_apps_answer_at_the_same_urls_with_their_scale() -> Result<()> {
    let mut platform =
        Platform::start_with(&[("BERTH_CONVERGE_INTERVAL_SECS", "2".into())]).await?;
    let client = signed_in(&platform, "rebooter").await?;
    let repo = AppRepo::python("v1")?;
    let (app_id, live) =
        live_app_with_instances(&client, &platform, "survivor", &repo.url(), 2).await?;
    let live_id = live["id"].as_str().context("id")?.to_owned();
    let url = endpoint(&live)?;
    let docker = engine::connect(&platform.env["BERTH_DOCKER_HOST"]).await?;
    let label = berth_proto::labels::APP;
    let two = [live_id.clone(), live_id.clone()];

    // The power goes: berth's processes, the apps and the router's state.
    let processes = platform.instance_names();
    for name in &processes {
        platform.kill(name).await?;
    }
    for container in engine::labelled(&docker, label, &app_id, false).await? {
        let id = container.id.context("container id")?;
        docker
            .kill_container(&id, None::<KillContainerOptions>)
            .await?;
    }
    platform.router.restart_empty().await;
    assert!(fetch_body(&url).await.is_err(), "nothing answers");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !engine::running_deployments(&docker, label, &app_id)
        .await?
        .is_empty()
    {
        anyhow::ensure!(Instant::now() < deadline, "the apps still run");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let rebooted = Instant::now();
    for name in &processes {
        platform.spawn(name)?;
    }
    platform.wait_ready(Duration::from_secs(60)).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let running = engine::running_deployments(&docker, label, &app_id).await?;
        let serves = fetch_body(&url).await.ok().as_deref() == Some("hello v1");
        if running == two && serves {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "not back within 120 s: running {running:?}, serving {serves}\n{}",
            platform.all_output()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    println!(
        "from berth started again to the app serving at its URL with 2 instances: {:.1} s",
        rebooted.elapsed().as_secs_f64()
    );
    assert_eq!(client.deployment(&live_id).await?["state"], "live");
    Ok(())
}
