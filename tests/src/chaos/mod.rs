//! `make chaos`: the long form of the fault suite.
//!
//! Two backends and two of each worker (one log-streamer) run against a
//! stack of their own (`BERTH_STACK=chaos`: PostgreSQL with durable
//! settings, RabbitMQ, tansu, podman, on ports apart from `make up`'s).
//! Tenants push, redeploy, cancel, roll back, scale and delete apps while
//! faults hit every process and every service; the faults go on until each
//! kind of fault has hit each state a deployment can be in progress in at
//! least `--coverage` times. Then the run stops the faults and checks, from
//! the engine and the broker rather than berth's own records, that what
//! runs is what the database says (see [`invariants`]).
//!
//! The seed draws the tenants' actions and the faults; a run with the same
//! seed makes the same choices, though the timing of a loaded machine
//! decides which states they meet.

mod faults;
mod invariants;
mod report;
mod tenants;
mod workload;

pub use report::Report;

use crate::Platform;
use anyhow::{Context as _, Result};
use clap::Parser;
use sqlx::postgres::{PgPool, PgPoolOptions};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tenants::Tenant;
use tokio::sync::Mutex;

#[derive(Debug, Clone, Parser)]
#[command(about = "berth's fault suite, long form: faults during hundreds of deployments")]
pub struct Args {
    /// Replays the choices of an earlier run (it prints its seed).
    #[arg(long, env = "BERTH_CHAOS_SEED")]
    pub seed: Option<u64>,
    /// Deployments to ask for, at least (more while faults still miss a state).
    #[arg(long, env = "BERTH_CHAOS_DEPLOYMENTS", default_value_t = 200)]
    pub deployments: usize,
    #[arg(long, env = "BERTH_CHAOS_TENANTS", default_value_t = 10)]
    pub tenants: usize,
    #[arg(long, env = "BERTH_CHAOS_APPS_PER_TENANT", default_value_t = 2)]
    pub apps_per_tenant: usize,
    /// How many times each kind of fault must hit each in-progress state.
    #[arg(long, env = "BERTH_CHAOS_COVERAGE", default_value_t = 3)]
    pub coverage: usize,
    /// Backends, build-workers and deploy-workers each.
    #[arg(long, env = "BERTH_CHAOS_COPIES", default_value_t = 2)]
    pub copies: usize,
    /// How long after the last fault (and the last deployment's end) what
    /// runs must equal what the database says.
    #[arg(long, env = "BERTH_CHAOS_CONVERGE_SECS", default_value_t = 60)]
    pub converge_secs: u64,
    /// How long the deployments still in progress after the last fault may
    /// take to end.
    #[arg(long, env = "BERTH_CHAOS_SETTLE_MINUTES", default_value_t = 20)]
    pub settle_minutes: u64,
}

/// The states of a deployment in progress, in pipeline order.
pub const IN_PROGRESS: [&str; 5] = ["queued", "cloning", "building", "pushing", "deploying"];

/// What the workload, the faults and the checks share.
pub struct Context {
    pub platform: Mutex<Platform>,
    /// The platform's own database, read for the states faults meet and
    /// for the desired state the checks compare with the engine.
    pub db: PgPool,
    pub tenants: Vec<Tenant>,
    pub apps_per_tenant: usize,
    pub started: Instant,
    pub stop_workload: AtomicBool,
    pub stop_faults: AtomicBool,
    pub coverage_met: AtomicBool,
    /// Deployments the workload asked for.
    pub made: AtomicUsize,
}

impl Context {
    /// Deployments in progress now (an error while PostgreSQL is down).
    pub async fn in_progress(&self) -> Result<usize> {
        let (count,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM deployments WHERE state = ANY($1)")
                .bind(&IN_PROGRESS[..])
                .fetch_one(&self.db)
                .await?;
        Ok(count as usize)
    }

    /// `version.txt` of app `app_id` at `commit`: what its release serves.
    pub async fn version_at(&self, app_id: &str, commit: &str) -> Option<String> {
        for tenant in &self.tenants {
            for app in tenant.apps.lock().await.iter() {
                if app.id == app_id {
                    return app.repo.file_at(commit, "version.txt").ok();
                }
            }
        }
        None
    }

    pub fn tenant(&self, name: &str) -> &Tenant {
        self.tenants
            .iter()
            .find(|tenant| tenant.name == name)
            .expect("a tenant of this run")
    }
}

/// The settings the run's processes get on top of the platform's.
fn settings(copies: usize) -> Vec<(&'static str, String)> {
    vec![
        // One build at a time per worker on this 2-core machine; the
        // backend dispatches as many as the workers take together.
        ("BERTH_BUILD_CONCURRENCY", "1".into()),
        ("BERTH_BUILD_SLOTS", copies.to_string()),
        ("BERTH_CONVERGE_INTERVAL_SECS", "10".into()),
        ("BERTH_REAPER_INTERVAL_SECS", "5".into()),
        ("BERTH_QUOTA_QUEUED_DEPLOYMENTS", "50".into()),
        ("BERTH_AUTH_RATE_LIMIT", "1000".into()),
        ("RUST_LOG", "info,berth=debug".into()),
    ]
}

pub async fn run(args: Args) -> Result<Report> {
    anyhow::ensure!(
        std::env::var("BERTH_STACK").is_ok_and(|stack| !stack.is_empty()),
        "the fault suite crashes the stack's services: run it on a stack of its own \
         (make chaos does: BERTH_STACK=chaos), never on make up's"
    );
    let seed = args.seed.unwrap_or_else(rand::random);
    println!("chaos: seed {seed} (replay its choices with BERTH_CHAOS_SEED={seed})");
    let platform = Platform::start_copies(&settings(args.copies), args.copies).await?;
    println!(
        "chaos: processes and logs in {}",
        platform.dir.path().display()
    );
    let db = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(5))
        .connect(&platform.env["BERTH_DATABASE_URL"])
        .await
        .context("connecting to the platform's database")?;
    let mut tenants = Vec::new();
    for n in 0..args.tenants {
        let tenant = Tenant::sign_up(&platform, &format!("tenant{n:02}")).await?;
        for a in 0..args.apps_per_tenant {
            let app = tenant.create_app(&format!("app-{a}")).await?;
            tenant.apps.lock().await.push(app);
        }
        tenants.push(tenant);
    }
    let ctx = Arc::new(Context {
        platform: Mutex::new(platform),
        db,
        tenants,
        apps_per_tenant: args.apps_per_tenant,
        started: Instant::now(),
        stop_workload: AtomicBool::new(false),
        stop_faults: AtomicBool::new(false),
        coverage_met: AtomicBool::new(false),
        made: AtomicUsize::new(0),
    });
    let workload = tokio::spawn(workload::run(ctx.clone(), seed));
    let faults = tokio::spawn(faults::run(
        ctx.clone(),
        args.coverage,
        seed.rotate_left(32),
    ));
    let most = args.deployments * 2;
    let mut shown = Instant::now();
    while !workload.is_finished() && !faults.is_finished() {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let made = ctx.made.load(Ordering::SeqCst);
        let covered = ctx.coverage_met.load(Ordering::SeqCst);
        if made >= most || (made >= args.deployments && covered) {
            break;
        }
        if shown.elapsed() > Duration::from_secs(30) {
            shown = Instant::now();
            let minutes = ctx.started.elapsed().as_secs() / 60;
            println!("chaos: {minutes} min, {made} deployments asked for, coverage met: {covered}");
        }
    }
    ctx.stop_workload.store(true, Ordering::SeqCst);
    let workload = workload.await.context("the workload panicked")??;
    ctx.stop_faults.store(true, Ordering::SeqCst);
    let faults = faults.await.context("the faults panicked")??;
    println!("chaos: faults stopped; checking the invariants");
    let checks = invariants::check(&ctx, &workload, &faults, &args).await?;
    Ok(Report::new(seed, &args, &workload, &faults, checks))
}
