//! What the tenants do during a run: pushes, redeploys, cancels, rollbacks,
//! scale changes and app deletions, drawn from the run's seed.

use super::tenants::{App, Tenant};
use super::Context;
use anyhow::{Context as _, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// A new commit, deployed.
    Push,
    /// The branch deployed again, without a new commit.
    Redeploy,
    /// A new commit, deployed, then cancelled 0 to 8 s later.
    PushThenCancel,
    /// An earlier release deployed again.
    Rollback,
    /// The app scaled to 0, 1 or 2 instances.
    Scale,
    /// The app deleted (and another made in its place).
    Delete,
}

/// How often each action is drawn, out of 100.
const WEIGHTS: [(Action, u32); 6] = [
    (Action::Push, 40),
    (Action::Redeploy, 15),
    (Action::PushThenCancel, 12),
    (Action::Rollback, 13),
    (Action::Scale, 16),
    (Action::Delete, 4),
];

impl Action {
    fn draw(rng: &mut StdRng) -> Self {
        let mut pick = rng.gen_range(0..WEIGHTS.iter().map(|(_, w)| w).sum::<u32>());
        for (action, weight) in WEIGHTS {
            if pick < weight {
                return action;
            }
            pick -= weight;
        }
        unreachable!("the draw is below the weights' sum")
    }
}

#[derive(Default)]
pub struct Outcome {
    /// The deployments asked for, by id.
    pub deployments: Vec<String>,
    /// Actions done, by kind.
    pub actions: BTreeMap<String, usize>,
    /// Answers other than success that a user could get under faults (a
    /// cancel of a deployment already final, a queue quota), by request
    /// and status.
    pub refused: BTreeMap<String, usize>,
}

impl Outcome {
    fn refused(&mut self, what: &str, status: u16, body: &Value) {
        *self.refused.entry(format!("{what} {status}")).or_default() += 1;
        if status >= 500 {
            eprintln!("chaos: {what} answered {status}: {body}");
        }
    }
}

/// Acts until the run says stop; returns what it asked for.
pub async fn run(ctx: Arc<Context>, seed: u64) -> Result<Outcome> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut outcome = Outcome::default();
    let mut cancels = JoinSet::new();
    let mut made_apps = ctx.tenants.len() * ctx.apps_per_tenant;
    while !ctx.stop_workload.load(Ordering::SeqCst) {
        // A tenant that pushes faster than berth builds only grows its
        // queue: keep about two deployments in progress per tenant.
        if ctx.in_progress().await.unwrap_or(0) > 2 * ctx.tenants.len() {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        let tenant = &ctx.tenants[rng.gen_range(0..ctx.tenants.len())];
        let action = Action::draw(&mut rng);
        let mut apps = tenant.apps.lock().await;
        let live: Vec<usize> = (0..apps.len()).filter(|&i| !apps[i].deleted).collect();
        let index = live[rng.gen_range(0..live.len())];
        let app_id = apps[index].id.clone();
        let done = match action {
            Action::Push | Action::PushThenCancel => {
                let id = push(tenant, &mut apps[index], &mut outcome).await?;
                if let (Some(id), Action::PushThenCancel) = (&id, action) {
                    let after = Duration::from_millis(rng.gen_range(0..8000));
                    cancels.spawn(cancel(ctx.clone(), tenant.name.clone(), id.clone(), after));
                }
                id
            }
            Action::Redeploy => deploy(tenant, &app_id, json!({}), &mut outcome).await?,
            Action::Rollback => rollback(tenant, &app_id, &mut rng, &mut outcome).await?,
            Action::Scale => {
                let replicas = rng.gen_range(0..=2);
                let path = format!("/apps/{app_id}/scale");
                let body = json!({ "replicas": replicas });
                let (status, answer) = tenant.call(Method::PUT, &path, Some(body), &[]).await?;
                if status >= 300 {
                    outcome.refused("scale", status, &answer);
                }
                None
            }
            Action::Delete if live.len() > 1 || rng.gen_bool(0.5) => {
                let path = format!("/apps/{app_id}");
                let (status, answer) = tenant.call(Method::DELETE, &path, None, &[]).await?;
                if status == 202 {
                    apps[index].deleted = true;
                    made_apps += 1;
                    let name = format!("app-{made_apps}");
                    apps.push(tenant.create_app(&name).await?);
                } else {
                    outcome.refused("delete", status, &answer);
                }
                None
            }
            Action::Delete => None,
        };
        drop(apps);
        *outcome.actions.entry(format!("{action:?}")).or_default() += 1;
        if let Some(id) = done {
            outcome.deployments.push(id);
            ctx.made.fetch_add(1, Ordering::SeqCst);
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(300..3000))).await;
    }
    while let Some(cancelled) = cancels.join_next().await {
        if let Some((status, body)) = cancelled?? {
            outcome.refused("cancel", status, &body);
        }
    }
    Ok(outcome)
}

/// Commits a new version and deploys it.
async fn push(tenant: &Tenant, app: &mut App, outcome: &mut Outcome) -> Result<Option<String>> {
    app.repo
        .write("version.txt", &format!("v{}", app.versions))?;
    app.repo.commit(&format!("v{}", app.versions))?;
    app.versions += 1;
    deploy(tenant, &app.id, json!({}), outcome).await
}

/// Deploys an earlier release that rollback still reaches, if there is one.
async fn rollback(
    tenant: &Tenant,
    app_id: &str,
    rng: &mut StdRng,
    outcome: &mut Outcome,
) -> Result<Option<String>> {
    let path = format!("/apps/{app_id}/releases");
    let releases = tenant.expect(Method::GET, &path, None, &[200]).await?;
    let earlier: Vec<&Value> = releases
        .as_array()
        .into_iter()
        .flatten()
        .filter(|release| release["current"] == false && release["pruned_at"].is_null())
        .collect();
    if earlier.is_empty() {
        return Ok(None);
    }
    let release = earlier[rng.gen_range(0..earlier.len())]["id"].clone();
    deploy(tenant, app_id, json!({ "release_id": release }), outcome).await
}

/// Asks for a deployment once, whatever the retries: the request carries an
/// `Idempotency-Key`, so a retry after a lost answer gets the same one.
async fn deploy(
    tenant: &Tenant,
    app_id: &str,
    body: Value,
    outcome: &mut Outcome,
) -> Result<Option<String>> {
    let key = uuid::Uuid::new_v4().to_string();
    let path = format!("/apps/{app_id}/deployments");
    let (status, answer) = tenant
        .call(
            Method::POST,
            &path,
            Some(body),
            &[("Idempotency-Key", &key)],
        )
        .await?;
    if status != 202 {
        outcome.refused("deploy", status, &answer);
        return Ok(None);
    }
    let id = answer["id"].as_str().context("a deployment id")?;
    Ok(Some(id.to_owned()))
}

/// Cancels deployment `id` after `after`; returns an answer other than
/// success (409 when it had already ended).
async fn cancel(
    ctx: Arc<Context>,
    tenant: String,
    id: String,
    after: Duration,
) -> Result<Option<(u16, Value)>> {
    tokio::time::sleep(after).await;
    let tenant = ctx.tenant(&tenant);
    let path = format!("/deployments/{id}/cancel");
    let (status, body) = tenant.call(Method::POST, &path, None, &[]).await?;
    Ok((status >= 300).then_some((status, body)))
}
