//! `make bench-router`: what the edge router costs and whether deploys
//! behind it drop requests (issue 13).
//!
//! On a real platform (the four binaries, the stack, the platform's own
//! Caddy) it deploys an app that takes 3 s to listen, with `/` as its
//! health check path, then, under a steady
//! load through the router (keep-alive and new connections in turn, plus
//! 2-second requests always in flight), redeploys it `--redeploys` times
//! and scales it 1 → 3 → 1, counting every request that did not get the
//! app's 200. Then it measures, one request at a time over a kept-alive
//! connection, the latency through the router and straight to the
//! container, and prints p50 and p99 of each.

use anyhow::{ensure, Context, Result};
use berth_tests::{engine, AppRepo, Client, Platform};
use clap::Parser;
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// Redeploys under load.
    #[arg(long, default_value_t = 10)]
    redeploys: usize,
    /// Requests a second the load aims at (short requests, besides the
    /// 2-second ones).
    #[arg(long, default_value_t = 250)]
    rate: u64,
    /// Requests per latency sample.
    #[arg(long, default_value_t = 2000)]
    samples: usize,
}

#[derive(Default)]
struct Tally {
    sent: AtomicUsize,
    slow_sent: AtomicUsize,
    failed: AtomicUsize,
    reasons: Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, reason: String) {
        self.failed.fetch_add(1, Ordering::SeqCst);
        let mut reasons = self.reasons.lock().unwrap();
        if reasons.len() < 20 {
            reasons.push(reason);
        }
    }
}

/// One request through the router; `Ok` only for the app's 200 and body.
async fn request(client: &reqwest::Client, port: u16, host: &str, path: &str) -> Result<()> {
    let response = client
        .get(format!("http://127.0.0.1:{port}{path}"))
        .header(reqwest::header::HOST, host)
        .timeout(Duration::from_secs(15))
        .send()
        .await?;
    let status = response.status();
    let body = response.text().await?;
    ensure!(
        status == 200 && body.starts_with("hello "),
        "{status}: {body}"
    );
    Ok(())
}

/// Short requests at `rate` a second from 8 workers (odd ones on a new
/// connection each time), and 4 workers each keeping a 2-second request in
/// flight, until `stop`.
fn load(
    port: u16,
    host: String,
    rate: u64,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let workers = 8u64;
    let mut tasks = Vec::new();
    for worker in 0..workers {
        let (host, stop, tally) = (host.clone(), stop.clone(), tally.clone());
        tasks.push(tokio::spawn(async move {
            let kept = reqwest::Client::new();
            let mut tick =
                tokio::time::interval(Duration::from_micros(1_000_000 * workers / rate.max(1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !stop.load(Ordering::SeqCst) {
                tick.tick().await;
                let client = if worker % 2 == 1 {
                    reqwest::Client::builder()
                        .pool_max_idle_per_host(0)
                        .build()
                        .unwrap()
                } else {
                    kept.clone()
                };
                tally.sent.fetch_add(1, Ordering::SeqCst);
                if let Err(error) = request(&client, port, &host, "/").await {
                    tally.fail(format!("{error:#}"));
                }
            }
        }));
    }
    for _ in 0..4 {
        let (host, stop, tally) = (host.clone(), stop.clone(), tally.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            while !stop.load(Ordering::SeqCst) {
                tally.slow_sent.fetch_add(1, Ordering::SeqCst);
                if let Err(error) = request(&client, port, &host, "/slow").await {
                    tally.fail(format!("/slow: {error:#}"));
                }
            }
        }));
    }
    tasks
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// p50 and p99 in milliseconds of `samples` sequential GETs of `url` with
/// `host` over one kept-alive connection.
async fn latency(url: &str, host: &str, samples: usize) -> Result<(f64, f64)> {
    let client = reqwest::Client::new();
    let mut times = Vec::with_capacity(samples);
    for n in 0..samples + 50 {
        let started = Instant::now();
        let response = client
            .get(url)
            .header(reqwest::header::HOST, host)
            .send()
            .await?;
        ensure!(response.status() == 200, "{url}: {}", response.status());
        response.bytes().await?;
        if n >= 50 {
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    times.sort_by(|a, b| a.total_cmp(b));
    Ok((percentile(&times, 50.0), percentile(&times, 99.0)))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    // The operator's default drain, not the tests' shorter one.
    let platform = Platform::start_with(&[("BERTH_DRAIN_SECS", "5".into())]).await?;
    let mut client = Client::new(&platform.base_url);
    client.sign_up("bench").await?;
    let repo = AppRepo::python_slow("v1")?;
    let app = client
        // Healthy once `/` answers 200: each swap waits for the health
        // check, and the router keeps checking every instance.
        .create_app(json!({
            "name": "steady", "repo_url": repo.url(), "port": 8000,
            "health_check_path": "/",
        }))
        .await?;
    let app_id = app["id"].as_str().context("app id")?.to_owned();
    let deploy = |client: &Client| {
        let (client, app_id) = (client.clone(), app_id.clone());
        async move {
            let id = client.deploy(&app_id, json!({})).await?;
            let done = client.wait_settled(&id, Duration::from_secs(600)).await?;
            ensure!(done["state"] == "live", "{done}");
            Ok::<_, anyhow::Error>(done)
        }
    };
    let live = deploy(&client).await?;
    let url = live["endpoint"].as_str().context("endpoint")?.to_owned();
    let host = url
        .trim_start_matches("http://")
        .split(':')
        .next()
        .context("host")?
        .to_owned();
    let port = platform.router.port;
    println!("app URL: {url} (router on 127.0.0.1:{port})");

    let (stop, tally) = (Arc::new(AtomicBool::new(false)), Arc::new(Tally::default()));
    let started = Instant::now();
    let tasks = load(port, host.clone(), args.rate, stop.clone(), tally.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    for n in 1..=args.redeploys {
        let at = Instant::now();
        deploy(&client).await.context(format!("redeploy {n}"))?;
        println!(
            "redeploy {n:>2}: live in {:.1} s, failed so far {}",
            at.elapsed().as_secs_f64(),
            tally.failed.load(Ordering::SeqCst)
        );
    }
    let scale = format!("/apps/{app_id}/scale");
    for replicas in [3, 1] {
        client
            .expect(
                reqwest::Method::PUT,
                &scale,
                Some(json!({"replicas": replicas})),
                202,
            )
            .await?;
        tokio::time::sleep(Duration::from_secs(5)).await;
        println!(
            "scaled to {replicas}: failed so far {}",
            tally.failed.load(Ordering::SeqCst)
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    for task in tasks {
        task.await?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let (sent, slow) = (
        tally.sent.load(Ordering::SeqCst),
        tally.slow_sent.load(Ordering::SeqCst),
    );
    let failed = tally.failed.load(Ordering::SeqCst);
    println!(
        "requests during {} redeploys and a scale 1->3->1: {} in {seconds:.0} s \
         ({:.0}/s short, plus {slow} of 2 s), failed: {failed}",
        args.redeploys,
        sent + slow,
        sent as f64 / seconds
    );
    for reason in tally.reasons.lock().unwrap().iter() {
        println!("  failure: {reason}");
    }

    let docker = engine::connect(&platform.env["BERTH_DOCKER_HOST"]).await?;
    let container = engine::labelled(&docker, berth_proto::labels::APP, &app_id, false)
        .await?
        .into_iter()
        .next()
        .context("the app's container runs")?;
    let direct_port = container
        .ports
        .iter()
        .flatten()
        .find_map(|p| p.public_port)
        .context("published port")?;
    let router = latency(&format!("http://127.0.0.1:{port}/"), &host, args.samples).await?;
    let direct = latency(
        &format!("http://127.0.0.1:{direct_port}/"),
        &format!("127.0.0.1:{direct_port}"),
        args.samples,
    )
    .await?;
    println!(
        "latency over {} requests, p50 / p99: through the router {:.2} / {:.2} ms, \
         straight to the container {:.2} / {:.2} ms, added by the router {:.2} / {:.2} ms",
        args.samples,
        router.0,
        router.1,
        direct.0,
        direct.1,
        router.0 - direct.0,
        router.1 - direct.1
    );
    ensure!(failed == 0, "{failed} requests failed during the redeploys");
    Ok(())
}
