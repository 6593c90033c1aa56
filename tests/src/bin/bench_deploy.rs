//! `make bench-deploy`: how much time berth adds to a deploy.
//!
//! For one repository, each run measures
//! (a) `POST /apps/{id}/deployments` → `live`, through the real platform
//!     (clone, build, push, pull, start, health check, swap, state updates);
//! (b) building the same repository and starting the image directly on the
//!     engine until it accepts connections.
//! Each run commits a new version for (a) and writes another for (b), so
//! both build a fresh layer and neither reuses the other's cache.

use anyhow::{ensure, Context, Result};
use berth_tests::{engine, AppRepo, Client, Platform};
use clap::Parser;
use serde_json::json;
use std::collections::HashMap;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// Measured runs (after one warm-up run that is not counted).
    #[arg(long, env = "BERTH_BENCH_RUNS", default_value_t = 5)]
    runs: usize,
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    let mid = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let platform = Platform::start().await?;
    let mut client = Client::new(&platform.base_url);
    client.sign_up("bench").await?;
    let base_image = platform.env["BERTH_BASE_IMAGE_PYTHON"].clone();
    let repo = AppRepo::python("v0")?;
    repo.write(
        "Dockerfile",
        &format!("FROM {base_image}\nWORKDIR /app\nCOPY . .\nCMD [\"python3\", \"app.py\"]\n"),
    )?;
    repo.commit("benchmark Dockerfile")?;
    let app = client
        .create_app(json!({"name": "bench", "repo_url": repo.url(), "port": 8000}))
        .await?;
    let app_id = app["id"].as_str().context("app id")?.to_owned();
    let docker = engine::connect(&platform.env["BERTH_DOCKER_HOST"]).await?;
    let labels = HashMap::from([("berth.dev/bench".to_owned(), "direct".to_owned())]);

    let (mut through_berth, mut direct, mut overhead) = (Vec::new(), Vec::new(), Vec::new());
    println!("run  berth(a)  direct(b)  overhead(a-b)");
    for run in 0..=args.runs {
        repo.write("version.txt", &format!("a{run}"))?;
        repo.commit(&format!("run {run}"))?;
        let started = Instant::now();
        let id = client.deploy(&app_id, json!({})).await?;
        let deployment = client.wait_settled(&id, Duration::from_secs(600)).await?;
        let a = started.elapsed().as_secs_f64();
        ensure!(
            deployment["state"] == "live",
            "run {run}: {deployment}\n{}",
            platform.all_output()
        );

        repo.write("version.txt", &format!("b{run}"))?;
        let tag = format!("localhost/berth-bench/direct:{run}");
        let started = Instant::now();
        engine::build(&docker, repo.path(), &tag).await?;
        let (container, _) = engine::run_until_listening(
            &docker,
            &tag,
            8000,
            labels.clone(),
            Duration::from_secs(120),
        )
        .await?;
        let b = started.elapsed().as_secs_f64();
        engine::remove(&docker, &container).await?;

        if run == 0 {
            println!("warm-up  {a:8.2}s  {b:8.2}s  (not counted)");
            continue;
        }
        println!("{run:>3}  {a:8.2}s  {b:8.2}s  {:8.2}s", a - b);
        through_berth.push(a);
        direct.push(b);
        overhead.push(a - b);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    println!(
        "mean     {:8.2}s  {:8.2}s  {:8.2}s",
        mean(&through_berth),
        mean(&direct),
        mean(&overhead)
    );
    let (a, b, o) = (
        median(&mut through_berth),
        median(&mut direct),
        median(&mut overhead),
    );
    println!("median   {a:8.2}s  {b:8.2}s  {o:8.2}s");
    println!(
        "platform overhead (median of {} runs): {o:.2} s (target: <= 2 s)",
        args.runs
    );
    Ok(())
}
