//! What must hold once the faults stop:
//! - every deployment ends (a final state) within the settle time;
//! - within `--converge-secs` of that, for every app what runs on the
//!   engine is what the database says: the live deployment's container
//!   serving its release when the app is scaled up, nothing for an app
//!   scaled to 0, deleted, or without a live deployment; and no container
//!   of an app the database does not know;
//! - the edge router's routes are what the database says: a live app's URL
//!   serves its live release, a stopped app's answers the 503 page, a
//!   deleted app's the 404 (unless the tenant made an app of that name
//!   since);
//! - no intent is lost: the outbox is drained, the dead-letter queues are
//!   empty (consumed), and every failed deployment says why;
//! - no log line is lost or repeated: each start of each app printed
//!   `tick <run> 0, 1, 2, …`, and its log holds each once, without gaps.

use super::workload;
use super::{faults, Args, Context, IN_PROGRESS};
use crate::api::fetch_body;
use crate::engine;
use anyhow::{Context as _, Result};
use berth_proto::labels;
use bollard::Docker;
use reqwest::Method;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Checks {
    pub violations: Vec<String>,
    pub final_states: BTreeMap<String, usize>,
    /// Why deployments failed or were cancelled, with how many each.
    pub reasons: BTreeMap<String, usize>,
    /// From the last fault until no deployment was in progress.
    pub settled_after: Option<Duration>,
    /// From then until what runs equalled the database.
    pub converged_after: Option<Duration>,
    /// Request → live, of the deployments the workload asked for that went live.
    pub to_live: Vec<Duration>,
    pub log: LogCheck,
}

#[derive(Default)]
pub struct LogCheck {
    pub lines: usize,
    pub runs: usize,
    pub lost: usize,
    pub repeated: usize,
}

pub async fn check(
    ctx: &Context,
    workload: &workload::Outcome,
    faults: &faults::Outcome,
    args: &Args,
) -> Result<Checks> {
    let mut checks = Checks::default();
    let since = faults.last_fault_over.unwrap_or_else(Instant::now);
    settle(ctx, args, &mut checks).await?;
    checks.settled_after = Some(since.elapsed());
    let settled = Instant::now();
    let (host, installation) = {
        let platform = ctx.platform.lock().await;
        (
            platform.env["BERTH_DOCKER_HOST"].clone(),
            platform.env["BERTH_INSTALLATION"].clone(),
        )
    };
    let docker = engine::connect(&host).await?;
    let deadline = settled + Duration::from_secs(args.converge_secs);
    loop {
        let drift = drift(ctx, &docker, &installation).await?;
        if drift.is_empty() {
            checks.converged_after = Some(settled.elapsed());
            break;
        }
        if Instant::now() > deadline {
            checks.violations.extend(drift);
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    intents(ctx, &mut checks).await?;
    logs(ctx, &mut checks).await?;
    final_states(ctx, workload, &mut checks).await?;
    Ok(checks)
}

/// Waits until no deployment is in progress; each one still in progress
/// after the settle time is a violation.
async fn settle(ctx: &Context, args: &Args, checks: &mut Checks) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(args.settle_minutes * 60);
    loop {
        let stuck: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT id::text, state, state_changed_at::text FROM deployments WHERE state = ANY($1)",
        )
        .bind(&IN_PROGRESS[..])
        .fetch_all(&ctx.db)
        .await?;
        if stuck.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            for (id, state, since) in stuck {
                checks.violations.push(format!(
                    "deployment {id} is still {state} (since {since}) {} min after the last fault",
                    args.settle_minutes
                ));
            }
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// What the database says of an app: the desired state.
#[derive(sqlx::FromRow)]
struct Desired {
    app: String,
    /// Another app of the same tenant now has its name (and its URL).
    renamed: bool,
    deleted: bool,
    replicas: i32,
    /// Its live deployment.
    live: Option<String>,
    endpoint: Option<String>,
    commit: Option<String>,
}

/// Where what runs differs from what the database says, one line per app.
async fn drift(ctx: &Context, docker: &Docker, installation: &str) -> Result<Vec<String>> {
    let desired: Vec<Desired> = sqlx::query_as(
        "SELECT a.id::text AS app, a.deleted_at IS NOT NULL AS deleted, a.replicas, \
         d.id::text AS live, d.endpoint, d.commit_sha AS commit, \
         EXISTS (SELECT 1 FROM apps b WHERE b.owner_id = a.owner_id AND b.name = a.name \
                 AND b.id <> a.id AND b.deleted_at IS NULL) AS renamed \
         FROM apps a LEFT JOIN deployments d ON d.app_id = a.id AND d.state = 'live'",
    )
    .fetch_all(&ctx.db)
    .await?;
    let mut running: HashMap<String, Vec<String>> = HashMap::new();
    for container in engine::labelled(docker, labels::INSTALLATION, installation, false).await? {
        let labels = container.labels.unwrap_or_default();
        let app = labels.get(labels::APP).cloned().unwrap_or_default();
        let deployment = labels.get(labels::DEPLOYMENT).cloned().unwrap_or_default();
        running.entry(app).or_default().push(deployment);
    }
    let mut drift = Vec::new();
    let mut lives: HashMap<&str, usize> = HashMap::new();
    for row in desired.iter().filter(|row| row.live.is_some()) {
        *lives.entry(&row.app).or_default() += 1;
    }
    for (app, count) in lives {
        if count > 1 {
            drift.push(format!("app {app} has {count} live deployments"));
        }
    }
    let known: BTreeSet<&str> = desired.iter().map(|row| row.app.as_str()).collect();
    for (app, deployments) in &running {
        if !known.contains(app.as_str()) {
            drift.push(format!(
                "containers of unknown app {app} run: {deployments:?}"
            ));
        }
    }
    for Desired {
        app,
        renamed,
        deleted,
        replicas,
        live,
        endpoint,
        commit,
    } in &desired
    {
        let mut actual = running.get(app).cloned().unwrap_or_default();
        actual.sort();
        let expected: Vec<String> = match live {
            // One running instance per replica, all of the live deployment.
            Some(live) if !deleted && *replicas > 0 => vec![live.clone(); *replicas as usize],
            _ => Vec::new(),
        };
        if actual != expected {
            let why = if *deleted { " (deleted)" } else { "" };
            drift.push(format!(
                "app {app}{why}: runs {actual:?}, the database says {expected:?} (replicas {replicas})"
            ));
            continue;
        }
        // A stopped app's URL answers its 503 page, a deleted one's 404.
        let page = match (deleted, renamed, replicas) {
            (true, false, _) => Some(404),
            (false, _, 0) => Some(503),
            _ => None,
        };
        if let (Some(page), Some(endpoint), Some(_)) = (page, endpoint, live) {
            let status = crate::api::app_get(endpoint)
                .await
                .map(|r| r.status().as_u16());
            if status.as_ref().ok() != Some(&page) {
                drift.push(format!(
                    "app {app}: {endpoint} answers {status:?} through the router, not {page}"
                ));
            }
            continue;
        }
        // Through the edge router: its route must lead to the live release.
        if let (false, Some(_), Some(endpoint), Some(commit)) =
            (*deleted, expected.first(), endpoint, commit)
        {
            let body = fetch_body(endpoint).await.unwrap_or_default();
            let version = ctx.version_at(app, commit).await;
            if version
                .as_deref()
                .is_some_and(|v| body != format!("hello {v}"))
            {
                drift.push(format!(
                    "app {app}: its live release serves {body:?}, not hello {}",
                    version.unwrap_or_default()
                ));
            }
        }
    }
    Ok(drift)
}

/// The outbox is drained, the dead-letter queues empty, and every failed
/// deployment has its reason.
async fn intents(ctx: &Context, checks: &mut Checks) -> Result<()> {
    let (unpublished,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM outbox WHERE published_at IS NULL AND parked_at IS NULL",
    )
    .fetch_one(&ctx.db)
    .await?;
    if unpublished > 0 {
        checks.violations.push(format!(
            "{unpublished} outbox messages were never published"
        ));
    }
    let unexplained: Vec<(String,)> = sqlx::query_as(
        "SELECT id::text FROM deployments WHERE state IN ('failed', 'timed_out') \
         AND coalesce(reason, '') = ''",
    )
    .fetch_all(&ctx.db)
    .await?;
    for (id,) in unexplained {
        checks
            .violations
            .push(format!("deployment {id} failed without a reason"));
    }
    let vhost = ctx.platform.lock().await.vhost_name().to_owned();
    let queues = berth_common::testing::rabbitmqctl(&[
        "list_queues",
        "-p",
        &vhost,
        "-q",
        "--no-table-headers",
        "name",
        "messages",
    ]);
    for line in queues.lines() {
        let mut fields = line.split_whitespace();
        let (Some(name), Some(messages)) = (fields.next(), fields.next()) else {
            continue;
        };
        if name.contains("dead") && messages != "0" {
            checks
                .violations
                .push(format!("{messages} messages left unread in {name}"));
        }
    }
    Ok(())
}

/// Reads every app's whole log and checks each run's ticks.
async fn logs(ctx: &Context, checks: &mut Checks) -> Result<()> {
    for tenant in &ctx.tenants {
        let apps: Vec<String> = tenant
            .apps
            .lock()
            .await
            .iter()
            .filter(|app| !app.deleted)
            .map(|app| app.id.clone())
            .collect();
        for app in apps {
            let mut ticks: HashMap<String, Vec<u64>> = HashMap::new();
            let mut from = 0;
            loop {
                let path = format!("/apps/{app}/logs?from={from}&limit=5000");
                let page = tenant.expect(Method::GET, &path, None, &[200]).await?;
                let entries = page["entries"].as_array().context("log entries")?;
                for entry in entries {
                    let line = entry["line"].as_str().unwrap_or_default();
                    let mut words = line.split_whitespace();
                    if entry["source"] != "app" || words.next() != Some("tick") {
                        continue;
                    }
                    if let (Some(run), Some(Ok(n))) = (words.next(), words.next().map(str::parse)) {
                        ticks.entry(run.to_owned()).or_default().push(n);
                    }
                }
                let next = page["next_offset"].as_i64().context("next_offset")?;
                if entries.is_empty() || next <= from {
                    break;
                }
                from = next;
            }
            for (run, mut seen) in ticks {
                checks.log.runs += 1;
                checks.log.lines += seen.len();
                seen.sort_unstable();
                let distinct: BTreeSet<u64> = seen.iter().copied().collect();
                let repeated = seen.len() - distinct.len();
                let last = *distinct.last().expect("a tick");
                let lost = (last + 1) as usize - distinct.len();
                if repeated + lost > 0 {
                    checks.violations.push(format!(
                        "app {app}, run {run}: {lost} lines lost, {repeated} repeated of ticks 0..={last}"
                    ));
                }
                checks.log.lost += lost;
                checks.log.repeated += repeated;
            }
        }
    }
    Ok(())
}

async fn final_states(
    ctx: &Context,
    workload: &workload::Outcome,
    checks: &mut Checks,
) -> Result<()> {
    let states: Vec<(String, i64)> =
        sqlx::query_as("SELECT state, count(*) FROM deployments GROUP BY state")
            .fetch_all(&ctx.db)
            .await?;
    checks.final_states = states
        .into_iter()
        .map(|(state, count)| (state, count as usize))
        .collect();
    let reasons: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT state, left(reason, 110), count(*) FROM deployments \
         WHERE state IN ('failed', 'timed_out', 'cancelled') GROUP BY 1, 2",
    )
    .fetch_all(&ctx.db)
    .await?;
    checks.reasons = reasons
        .into_iter()
        .map(|(state, reason, count)| (format!("{state}: {reason}"), count as usize))
        .collect();
    let ids = &workload.deployments;
    let to_live: Vec<(f64,)> = sqlx::query_as(
        "SELECT EXTRACT(EPOCH FROM (s.at - d.created_at))::float8 FROM deployments d \
         JOIN deployment_states s ON s.deployment_id = d.id AND s.state = 'live' \
         WHERE d.id::text = ANY($1)",
    )
    .bind(ids)
    .fetch_all(&ctx.db)
    .await?;
    checks.to_live = to_live
        .into_iter()
        .map(|(secs,)| Duration::from_secs_f64(secs.max(0.0)))
        .collect();
    Ok(())
}
