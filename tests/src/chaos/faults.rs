//! The faults: every berth process SIGKILLed, and PostgreSQL, RabbitMQ,
//! tansu and the podman service crashed and started again, each from
//! outside (`infra/local/stack.sh crash` on the run's own stack). One fault
//! at a time; each is recorded with the deployment states it met, and the
//! next is the kind that has met the states in progress now the fewest
//! times. Processes that exit by themselves are started again, as a
//! supervisor would, and counted.

use super::{Context, IN_PROGRESS};
use anyhow::{ensure, Context as _, Result};
use berth_common::testing::repo_root;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    KillBackend,
    KillBuildWorker,
    KillDeployWorker,
    KillLogStreamer,
    CrashPostgres,
    CrashRabbitmq,
    CrashTansu,
    CrashPodman,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::KillBackend,
        Kind::KillBuildWorker,
        Kind::KillDeployWorker,
        Kind::KillLogStreamer,
        Kind::CrashPostgres,
        Kind::CrashRabbitmq,
        Kind::CrashTansu,
        Kind::CrashPodman,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Kind::KillBackend => "SIGKILL backend",
            Kind::KillBuildWorker => "SIGKILL build-worker",
            Kind::KillDeployWorker => "SIGKILL deploy-worker",
            Kind::KillLogStreamer => "SIGKILL log-streamer",
            Kind::CrashPostgres => "PostgreSQL crash",
            Kind::CrashRabbitmq => "RabbitMQ stop_app",
            Kind::CrashTansu => "tansu SIGKILL",
            Kind::CrashPodman => "podman service SIGKILL",
        }
    }

    /// The binary a kill hits, or the stack service a crash hits.
    fn target(self) -> &'static str {
        match self {
            Kind::KillBackend => "berth-backend",
            Kind::KillBuildWorker => "berth-build-worker",
            Kind::KillDeployWorker => "berth-deploy-worker",
            Kind::KillLogStreamer => "berth-log-streamer",
            Kind::CrashPostgres => "postgres",
            Kind::CrashRabbitmq => "rabbitmq",
            Kind::CrashTansu => "tansu",
            Kind::CrashPodman => "podman",
        }
    }
}

/// One fault as injected.
pub struct Fault {
    pub kind: Kind,
    /// The process instance or service it hit.
    pub target: String,
    /// Since the run started.
    pub at: Duration,
    pub down: Duration,
    /// The in-progress states deployments were in when it hit.
    pub states: Vec<String>,
}

#[derive(Default)]
pub struct Outcome {
    pub faults: Vec<Fault>,
    /// How often each kind met each in-progress state.
    pub coverage: BTreeMap<(Kind, String), usize>,
    /// Processes that exited without being killed, and how.
    pub exits: Vec<String>,
    /// When the last fault was over (its target running again).
    pub last_fault_over: Option<Instant>,
}

impl Outcome {
    fn covered(&self, kind: Kind, state: &str) -> usize {
        self.coverage
            .get(&(kind, state.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    fn fully_covered(&self, coverage: usize) -> bool {
        Kind::ALL.iter().all(|&kind| {
            IN_PROGRESS
                .iter()
                .all(|state| self.covered(kind, state) >= coverage)
        })
    }
}

/// Injects faults until the run says stop.
pub async fn run(ctx: Arc<Context>, coverage: usize, seed: u64) -> Result<Outcome> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut outcome = Outcome::default();
    // The first deployments reach the workers before anything breaks.
    let mut next = Instant::now() + Duration::from_secs(15);
    let mut last = next;
    while !ctx.stop_faults.load(Ordering::SeqCst) {
        supervise(&ctx, &mut outcome).await?;
        tokio::time::sleep(Duration::from_millis(150)).await;
        let Ok(states) = states_now(&ctx).await else {
            continue;
        };
        // The brief states (a clone, a build from cache, a push, a rollout
        // last seconds) are met when they show, not at the next turn.
        let brief: Vec<&String> = states
            .iter()
            .filter(|state| {
                state.as_str() != "queued"
                    && Kind::ALL
                        .iter()
                        .any(|&kind| outcome.covered(kind, state) < coverage)
            })
            .collect();
        let brief_short = !brief.is_empty();
        let due = Instant::now() >= next
            || (brief_short && Instant::now() >= last + Duration::from_millis(500));
        if !due || states.is_empty() {
            continue;
        }
        // The kind that met these states the fewest times; ties by draw.
        let mut kinds = Kind::ALL.to_vec();
        kinds.shuffle(&mut rng);
        let aimed_at: Vec<&String> = if brief_short {
            brief
        } else {
            states.iter().collect()
        };
        let least = |kind: &Kind| {
            aimed_at
                .iter()
                .map(|state| outcome.covered(*kind, state))
                .min()
                .unwrap_or(0)
        };
        let kind = *kinds.iter().min_by_key(|kind| least(kind)).expect("kinds");
        let short_of_coverage = least(&kind) < coverage;
        let fault = inject(&ctx, kind, states, &mut rng).await?;
        for state in &fault.states {
            *outcome.coverage.entry((kind, state.clone())).or_default() += 1;
        }
        println!(
            "chaos: {:>5.0}s {} ({}, down {:.1}s) during {}",
            fault.at.as_secs_f64(),
            kind.label(),
            fault.target,
            fault.down.as_secs_f64(),
            fault.states.join(", ")
        );
        outcome.faults.push(fault);
        outcome.last_fault_over = Some(Instant::now());
        last = Instant::now();
        ctx.coverage_met
            .store(outcome.fully_covered(coverage), Ordering::SeqCst);
        // Faults come quickly while some state is short of its coverage,
        // then at a pace the platform can make progress at.
        let pause = if short_of_coverage {
            rng.gen_range(1000..3000)
        } else {
            rng.gen_range(5000..15000)
        };
        next = Instant::now() + Duration::from_millis(pause);
    }
    supervise(&ctx, &mut outcome).await?;
    Ok(outcome)
}

/// The in-progress states some deployment is in now.
async fn states_now(ctx: &Context) -> Result<Vec<String>> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT DISTINCT state FROM deployments WHERE state = ANY($1)")
            .bind(&IN_PROGRESS[..])
            .fetch_all(&ctx.db)
            .await?;
    Ok(rows.into_iter().map(|(state,)| state).collect())
}

/// Starts again the processes that exited by themselves.
async fn supervise(ctx: &Context, outcome: &mut Outcome) -> Result<()> {
    let mut platform = ctx.platform.lock().await;
    for (name, status) in platform.exited()? {
        let at = ctx.started.elapsed().as_secs();
        eprintln!("chaos: {name} exited by itself ({status}) at {at}s; starting it again");
        outcome.exits.push(format!("{name} {status} at {at}s"));
        platform.spawn(&name)?;
    }
    Ok(())
}

async fn inject(ctx: &Context, kind: Kind, states: Vec<String>, rng: &mut StdRng) -> Result<Fault> {
    let at = ctx.started.elapsed();
    let started = Instant::now();
    let target = match kind {
        Kind::KillBackend
        | Kind::KillBuildWorker
        | Kind::KillDeployWorker
        | Kind::KillLogStreamer => {
            let down = Duration::from_millis(rng.gen_range(500..4000));
            kill_process(ctx, kind.target(), down, rng).await?
        }
        Kind::CrashPostgres | Kind::CrashRabbitmq | Kind::CrashTansu | Kind::CrashPodman => {
            let down_secs = rng.gen_range(1..=8);
            crash_service(kind.target(), down_secs).await?;
            kind.target().to_owned()
        }
    };
    Ok(Fault {
        kind,
        target,
        at,
        down: started.elapsed(),
        states,
    })
}

/// SIGKILLs one instance of `binary` and starts it again after `down`.
async fn kill_process(
    ctx: &Context,
    binary: &str,
    down: Duration,
    rng: &mut StdRng,
) -> Result<String> {
    let instance = {
        let mut platform = ctx.platform.lock().await;
        let instances: Vec<String> = platform
            .instance_names()
            .into_iter()
            .filter(|name| name == binary || name.starts_with(&format!("{binary}-")))
            .collect();
        let instance = instances.choose(rng).context("an instance")?.clone();
        platform.kill(&instance).await?;
        instance
    };
    tokio::time::sleep(down).await;
    ctx.platform.lock().await.spawn(&instance)?;
    Ok(instance)
}

/// Crashes a service of the run's stack and waits until it is back.
async fn crash_service(service: &str, down_secs: u32) -> Result<()> {
    let output = tokio::process::Command::new(repo_root().join("infra/local/stack.sh"))
        .args(["crash", service, &down_secs.to_string()])
        .output()
        .await
        .context("running infra/local/stack.sh crash")?;
    ensure!(
        output.status.success(),
        "crashing {service} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}
