//! The reconciler: the backend sends what should run ([`DesiredState`]),
//! and the runtime is made to match it, whatever happened meanwhile (a
//! crash between starting the new workload and retiring the old, a lost
//! message, a reboot, someone's `podman rm`). Each repair is logged,
//! counted in `berth_reconciler_repairs_total{kind}` and written into the
//! app's own log as an event, so its users see why it restarted.
//!
//! * workloads of an app the database no longer has (made before the
//!   snapshot was read) are removed;
//! * an app with a deployment on its way is left to that deploy;
//! * workloads of any deployment but the live one are retired, and removed
//!   once kept long enough for the log-streamer to read their logs;
//! * a live app whose workload is gone is deployed again, one that was
//!   stopped is started, and one scaled to 0 is stopped;
//! * last, every app's route on the edge router is made to point at what
//!   its live deployment runs (or at a 503 page), and routes of deleted
//!   apps go.
//!
//! The pass ends with one `runtime.status` report: each live app it looked
//! at is running, stopped, or degraded with the reason its repair failed.

use super::DeployService;
use crate::error::DeployError;
use crate::runtime::{RouteWant, Runtime};
use berth_common::{MessagePublisher, Outcome};
use berth_proto::{
    AppHealth, AppRef, AppStatus, DesiredApp, DesiredState, LogRecord, LogSource, LogStream,
    Release, RuntimeStatus,
};
use chrono::{DateTime, Utc};
use std::collections::BTreeSet;
use std::time::Duration;
use uuid::Uuid;

/// Workloads of apps made this close to the snapshot are left alone: the
/// app may be newer than what the backend read.
const YOUNG: Duration = Duration::from_secs(60);

/// A snapshot older than this is not acted on: the database may have moved
/// on (a deploy that went live since would look like a stray).
const STALE: Duration = Duration::from_secs(30);

/// What an app needs after its strays are gone.
enum Need {
    Nothing,
    Deploy(Uuid, Box<Release>),
    /// To this many instances, from this many running.
    Scale(u32, usize),
}

/// What a repair was, as the app's users read it in their log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Repair {
    /// Workloads of a deleted app: counted, but not written to its log,
    /// which would bring the deleted app's log topic back.
    OrphanRemoved,
    StrayRetired,
    Started,
    Stopped,
    Redeployed,
    Rescaled,
    Rerouted,
}

impl Repair {
    fn kind(self) -> &'static str {
        match self {
            Self::OrphanRemoved => "orphan_removed",
            Self::StrayRetired => "stray_retired",
            Self::Started => "started",
            Self::Stopped => "stopped",
            Self::Redeployed => "redeployed",
            Self::Rescaled => "rescaled",
            Self::Rerouted => "rerouted",
        }
    }

    fn line(self, what: usize) -> Option<String> {
        let workloads = if what == 1 {
            "1 workload".to_owned()
        } else {
            format!("{what} workloads")
        };
        Some(match self {
            Self::OrphanRemoved => return None,
            Self::StrayRetired => format!(
                "berth repaired the app: removed {workloads} of a deployment that is no longer live"
            ),
            Self::Started => format!(
                "berth repaired the app: started {workloads} again; the app should run but had stopped"
            ),
            Self::Stopped => format!(
                "berth repaired the app: stopped {workloads}; the app is scaled to 0"
            ),
            Self::Redeployed => "berth repaired the app: deployed the live release again; \
                its workloads were gone (a reboot, or removed by hand)"
                .to_owned(),
            Self::Rescaled => format!(
                "berth repaired the app: started or stopped {workloads} so that it runs as many instances as its scale says"
            ),
            Self::Rerouted => "berth repaired the app's route on the edge router: \
                it did not lead to what the app runs (the router restarted, or was changed by hand)"
                .to_owned(),
        })
    }
}

fn degraded(reason: String) -> (AppStatus, Option<String>) {
    (AppStatus::Degraded, Some(reason))
}

/// How long writing a repair into the app's log may hold the reconciler up.
const EVENT_WRITE: Duration = Duration::from_secs(5);

/// Whether the app or deployment (its id is a UUIDv7) was made before `at`
/// minus [`YOUNG`].
fn made_before(app_id: Uuid, at: DateTime<Utc>) -> bool {
    let Some((secs, nanos)) = app_id.get_timestamp().map(|t| t.to_unix()) else {
        return false;
    };
    let made = DateTime::<Utc>::from_timestamp(secs as i64, nanos).unwrap_or(at);
    made + YOUNG < at
}

impl<R: Runtime, P: MessagePublisher> DeployService<R, P> {
    /// Counts a repair, and tells the app's users in its log (keyed by the
    /// live deployment when there is one, as the runtime's own events are).
    async fn repaired(&self, repair: Repair, app: &AppRef, key: Option<Uuid>, what: usize) {
        let kind = repair.kind();
        tracing::warn!(app_id = %app.id, app = %app.name, tenant = %app.tenant, kind, what,
            "the reconciler repaired drift");
        metrics::counter!("berth_reconciler_repairs_total", "kind" => kind).increment(what as u64);
        if let Some(line) = repair.line(what) {
            self.write_event(app, key, line).await;
        }
    }

    /// Writes `line` into the app's own log as an event of berth's (keyed
    /// by `key`, the deployment it is about, else the app).
    pub(crate) async fn write_event(&self, app: &AppRef, key: Option<Uuid>, line: String) {
        let Some(events) = &self.events else {
            return;
        };
        let record = LogRecord {
            ts: Utc::now(),
            source: LogSource::Event,
            instance: "berth".to_owned(),
            stream: LogStream::Stdout,
            line,
        };
        let key = key.unwrap_or(app.id).to_string();
        match tokio::time::timeout(EVENT_WRITE, events.append(app.id, &key, &record)).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                tracing::warn!(app_id = %app.id, %error, "could not write an event into the app's log")
            }
            Err(_) => {
                tracing::warn!(app_id = %app.id, "writing an event into the app's log timed out")
            }
        }
    }

    /// Makes the runtime match `desired`; see the module docs.
    pub async fn reconcile(&self, desired: DesiredState) -> Outcome {
        match self.try_reconcile(&desired).await {
            Ok(()) => Outcome::Done,
            Err(error) if error.is_transient() => Outcome::Retry(error.to_string()),
            Err(error) => {
                // The next snapshot tries again; this one is not worth more.
                tracing::error!(%error, "the reconciler could not finish");
                Outcome::Done
            }
        }
    }

    async fn try_reconcile(&self, desired: &DesiredState) -> Result<(), DeployError> {
        let age = Utc::now() - desired.at;
        if age > chrono::Duration::from_std(STALE).unwrap_or_default() {
            tracing::info!(?age, "a stale snapshot of the desired state; skipped");
            return Ok(());
        }
        let known: BTreeSet<Uuid> = desired.apps.iter().map(|d| d.app.id).collect();
        if let Some(running) = self.runtime.apps().await? {
            for app in running {
                if known.contains(&app.id) || !made_before(app.id, desired.at) {
                    continue;
                }
                let lock = self.app_lock(app.id);
                let _serialized = lock.lock().await;
                let removed = self.runtime.remove_app(&app).await?;
                if removed > 0 {
                    self.repaired(Repair::OrphanRemoved, &app, None, removed)
                        .await;
                }
            }
        }
        let mut health = Vec::new();
        for app in desired.apps.iter().filter(|app| !app.busy) {
            let found = match self.reconcile_app(app, desired.at).await {
                Ok(found) => found,
                Err(error) if error.is_transient() => return Err(error),
                Err(error) => {
                    tracing::warn!(app_id = %app.app.id, %error, "could not reconcile the app");
                    app.live.as_ref().map(|_| degraded(error.to_string()))
                }
            };
            if let Some((status, reason)) = found {
                let instances = match &app.live {
                    Some(live) => self
                        .runtime
                        .instance_health(&app.app, live.deployment_id)
                        .await
                        .unwrap_or_else(|error| {
                            tracing::warn!(app_id = %app.app.id, %error, "could not check the app's instances");
                            Vec::new()
                        }),
                    None => Vec::new(),
                };
                health.push(AppHealth {
                    app_id: app.app.id,
                    status,
                    reason,
                    instances,
                });
            }
        }
        self.converge_routes(desired).await;
        if !health.is_empty() {
            let status = RuntimeStatus {
                at: desired.at,
                apps: health,
            };
            // The next pass reports again: a lost report costs a minute.
            if let Err(error) = self.publisher.send(None, 1, &status).await {
                tracing::warn!(%error, "could not report the apps' runtime status");
            }
        }
        Ok(())
    }

    /// Makes the edge router's routes match the desired state and what
    /// runs now that the apps are repaired. Apps with a deploy on its way
    /// and apps newer than the snapshot keep their route: their deploy
    /// moves it. A router that cannot be reached is tried again next pass.
    async fn converge_routes(&self, desired: &DesiredState) {
        let wants: Vec<RouteWant> = desired
            .apps
            .iter()
            .filter(|app| !app.busy)
            .map(|app| RouteWant {
                app: app.app.clone(),
                live: app.live.as_ref().map(|live| live.deployment_id),
                serving: app.live.is_some() && app.replicas > 0,
                domains: app.domains.clone(),
            })
            .collect();
        let busy: BTreeSet<Uuid> = desired
            .apps
            .iter()
            .filter(|app| app.busy)
            .map(|app| app.app.id)
            .collect();
        let known: BTreeSet<Uuid> = desired.apps.iter().map(|app| app.app.id).collect();
        let at = desired.at;
        let keep =
            move |id: Uuid| busy.contains(&id) || (!known.contains(&id) && !made_before(id, at));
        match self.runtime.converge_routes(&wants, &keep).await {
            Ok(changed) => {
                // An app with nothing live got its 503 page: no news to
                // its users, and no repair.
                let repaired = wants
                    .iter()
                    .filter(|want| want.live.is_some() && changed.contains(&want.app.id));
                for want in repaired {
                    self.repaired(Repair::Rerouted, &want.app, want.live, 1)
                        .await;
                }
                let gone = changed
                    .iter()
                    .filter(|id| !wants.iter().any(|w| w.app.id == **id))
                    .count();
                if gone > 0 {
                    tracing::info!(gone, "removed the routes of deleted apps");
                }
            }
            Err(error) => {
                tracing::warn!(%error, "could not bring the edge router's routes in line; next pass tries again");
                metrics::counter!("berth_router_converge_failures_total").increment(1);
            }
        }
    }

    /// Repairs one app; returns what it then runs (`None`: nothing should).
    async fn reconcile_app(
        &self,
        desired: &DesiredApp,
        at: DateTime<Utc>,
    ) -> Result<Option<(AppStatus, Option<String>)>, DeployError> {
        let need = {
            let lock = self.app_lock(desired.app.id);
            let _serialized = lock.lock().await;
            let instances = self.runtime.instances(&desired.app).await?;
            let live = desired.live.as_ref().map(|live| live.deployment_id);
            // A deployment made after the snapshot is not a stray: the
            // snapshot just does not know it yet.
            let strays: BTreeSet<Option<Uuid>> = instances
                .iter()
                .map(|instance| instance.deployment_id)
                .filter(|id| *id != live || live.is_none())
                .filter(|id| id.is_none_or(|id| made_before(id, at)))
                .collect();
            for stray in strays {
                let retired = self.runtime.retire_deployment(&desired.app, stray).await?;
                if retired > 0 {
                    self.repaired(Repair::StrayRetired, &desired.app, live, retired)
                        .await;
                }
            }
            // Only when a stopped workload of another deployment is kept:
            // most passes have none, and ask the runtime nothing more.
            if instances
                .iter()
                .any(|instance| !instance.running && instance.deployment_id != live)
            {
                self.runtime.prune_retired(&desired.app, live).await?;
            }
            let ours: Vec<_> = instances
                .iter()
                .filter(|instance| live.is_some() && instance.deployment_id == live)
                .collect();
            let running = ours.iter().filter(|instance| instance.running).count();
            // Instances are counted only where the runtime lists one per
            // replica; Kubernetes keeps the count itself.
            let miscounted =
                self.runtime.runs_an_instance_per_replica() && running != desired.replicas as usize;
            match &desired.live {
                None => Need::Nothing,
                Some(live) if desired.replicas > 0 && ours.is_empty() => {
                    Need::Deploy(live.deployment_id, Box::new(live.release.clone()))
                }
                Some(_) if desired.replicas > 0 && (running == 0 || miscounted) => {
                    Need::Scale(desired.replicas, running)
                }
                Some(_) if desired.replicas == 0 && running > 0 => Need::Scale(0, running),
                Some(_) => Need::Nothing,
            }
        };
        let wanted = if desired.replicas > 0 {
            AppStatus::Running
        } else {
            AppStatus::Stopped
        };
        let found = desired.live.as_ref().map(|_| (wanted, None));
        match need {
            Need::Nothing => {}
            Need::Scale(replicas, running) => {
                let live = desired.live.as_ref().map(|live| live.deployment_id);
                let changed = self.runtime.scale(&desired.app, replicas, live).await?;
                if changed > 0 {
                    let repair = match (replicas, running) {
                        (0, _) => Repair::Stopped,
                        (_, 0) => Repair::Started,
                        _ => Repair::Rescaled,
                    };
                    self.repaired(repair, &desired.app, live, changed).await;
                }
            }
            Need::Deploy(deployment_id, mut release) => {
                // The app's scale, not the one the release was made with.
                release.config.replicas = desired.replicas;
                // Reports `live` again, which the backend takes as a repeat.
                match self.deploy_for_reason(deployment_id, 1, *release).await {
                    (Outcome::Done, None) => {
                        self.repaired(Repair::Redeployed, &desired.app, Some(deployment_id), 1)
                            .await
                    }
                    (Outcome::Done, Some(why))
                    | (Outcome::Retry(why) | Outcome::Reject(why), _) => {
                        tracing::warn!(app_id = %desired.app.id, %why, "could not deploy the live release again");
                        return Ok(Some(degraded(format!(
                            "berth could not start the live release again: {why}"
                        ))));
                    }
                }
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_apps_made_well_before_the_snapshot_count_as_deleted() {
        let now = Utc::now();
        let old = Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            (now.timestamp() - 600) as u64,
            0,
        ));
        assert!(made_before(old, now));
        assert!(!made_before(Uuid::now_v7(), now));
        assert!(
            !made_before(Uuid::new_v4(), now),
            "no time in it: left alone"
        );
    }
}
