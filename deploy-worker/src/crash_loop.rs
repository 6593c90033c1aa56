//! The first half of automatic rollback: noticing that a release fails
//! where it runs. The runtime reports each instance that crashed, and each
//! deployment none of whose instances passed its health check for
//! [`UNHEALTHY_FOR`] ([`Failure`]). When the instances of one deployment
//! crash [`CRASHES`] times within [`WITHIN`], or at once for failing health,
//! the worker tells the backend ([`ReleaseFailing`]) and the app's users
//! (a line in its log). The backend decides whether to roll back: only a
//! live deployment, within the rollback window after it went live.
//!
//! A stop that berth asked for (a retirement, a scale down) is not a crash:
//! the app exits 0 or by the stop's signal (143, 137). An app killed for
//! its memory is, as is any other exit code.

use berth_common::MessagePublisher;
use berth_proto::{AppRef, ReleaseFailing};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::restart::Restarts;
use crate::runtime::Runtime;
use crate::DeployService;

/// Crashes of one deployment's instances that make a crash loop...
pub const CRASHES: usize = 3;
/// ...when they happen within this time.
pub const WITHIN: Duration = Duration::from_secs(120);

/// A deployment whose instances fail their health check this long, all of
/// them, fails.
pub const UNHEALTHY_FOR: Duration = Duration::from_secs(60);

/// Something wrong with a deployment's instances, as the runtime saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub app: AppRef,
    pub deployment_id: Uuid,
    pub kind: FailureKind,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureKind {
    /// One instance (the runtime's id of it) stopped without berth asking
    /// it to.
    Crashed {
        instance: String,
        exit_code: Option<i64>,
        oom: bool,
    },
    /// None of the running instances passed its health check for
    /// [`UNHEALTHY_FOR`]; `said` is what the last check got.
    Unhealthy { said: String },
}

impl Failure {
    /// Whether an exit with `code` is a crash rather than the end of a
    /// stop berth asked for.
    pub fn is_crash(code: Option<i64>, oom: bool) -> bool {
        oom || !matches!(code, Some(0 | 137 | 143) | None)
    }
}

fn how(exit_code: Option<i64>, oom: bool) -> String {
    match (oom, exit_code) {
        (true, _) => "killed for using more memory than its limit".to_owned(),
        (false, Some(code)) => format!("exit code {code}"),
        (false, None) => "exit code unknown".to_owned(),
    }
}

/// Crashes seen per deployment, and the deployments already reported.
#[derive(Debug, Default)]
pub struct CrashLoops {
    recent: HashMap<Uuid, VecDeque<DateTime<Utc>>>,
    reported: HashMap<Uuid, DateTime<Utc>>,
}

impl CrashLoops {
    /// Counts `failure`; returns the reason to report when it makes its
    /// deployment fail and that deployment was not reported yet.
    pub fn record(&mut self, failure: &Failure) -> Option<String> {
        let within = chrono::Duration::from_std(WITHIN).unwrap_or_default();
        let since = failure.at - within;
        self.recent.retain(|_, times| {
            times.retain(|at| *at > since);
            !times.is_empty()
        });
        self.reported.retain(|_, at| *at > failure.at - within * 30);
        if self.reported.contains_key(&failure.deployment_id) {
            return None;
        }
        let reason = match &failure.kind {
            FailureKind::Unhealthy { said } => format!(
                "none of its instances passed its health check for {} s (last: {said})",
                UNHEALTHY_FOR.as_secs()
            ),
            FailureKind::Crashed { exit_code, oom, .. } => {
                let times = self.recent.entry(failure.deployment_id).or_default();
                times.push_back(failure.at);
                if times.len() < CRASHES {
                    return None;
                }
                format!(
                    "its instances crashed {CRASHES} times within {} minutes (last: {})",
                    WITHIN.as_secs() / 60,
                    how(*exit_code, *oom)
                )
            }
        };
        self.recent.remove(&failure.deployment_id);
        self.reported.insert(failure.deployment_id, failure.at);
        Some(reason)
    }
}

impl<R: Runtime, P: MessagePublisher> DeployService<R, P> {
    /// Follows the runtime's failures until `shutdown`, reporting the
    /// deployments that fail; a runtime that cannot report failures makes
    /// this return.
    pub async fn watch_failures(&self, shutdown: CancellationToken) {
        let mut loops = CrashLoops::default();
        let mut restarts = Restarts::default();
        while !shutdown.is_cancelled() {
            let mut failures = match self.runtime().failures().await {
                Ok(Some(failures)) => failures,
                Ok(None) => return,
                Err(error) => {
                    tracing::warn!(%error, "cannot follow the engine's failures; trying again");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
                        _ = shutdown.cancelled() => return,
                    }
                }
            };
            tracing::info!("following the engine's failures");
            loop {
                let due = restarts.next_due();
                let failure = tokio::select! {
                    failure = failures.next() => failure,
                    _ = until(due) => {
                        for instance in restarts.take_due() {
                            self.restart(&instance).await;
                        }
                        continue;
                    }
                    _ = shutdown.cancelled() => return,
                };
                let Some(failure) = failure else {
                    break;
                };
                tracing::info!(app_id = %failure.app.id, deployment_id = %failure.deployment_id,
                    kind = ?failure.kind, "an instance failed");
                if let Some(reason) = loops.record(&failure) {
                    self.report_failing(&failure, reason).await;
                }
                if let FailureKind::Crashed { instance, .. } = &failure.kind {
                    if self.runtime().restarts_crashed_instances() {
                        let (number, pause) = restarts.crashed(instance, failure.at);
                        let line = format!(
                            "berth: an instance crashed (crash {number} in a row); starting it again in {} s",
                            pause.as_secs()
                        );
                        self.write_event(&failure.app, Some(failure.deployment_id), line)
                            .await;
                    }
                }
            }
            tracing::warn!("the engine's event stream ended; following it again");
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    async fn restart(&self, instance: &str) {
        match self.runtime().restart_crashed(instance).await {
            Ok(true) => tracing::info!(instance, "started a crashed instance again"),
            Ok(false) => tracing::info!(
                instance,
                "a crashed instance is no longer wanted; not started"
            ),
            Err(error) => {
                tracing::warn!(instance, %error, "could not start a crashed instance again")
            }
        }
    }

    async fn report_failing(&self, crash: &Failure, reason: String) {
        tracing::warn!(app_id = %crash.app.id, deployment_id = %crash.deployment_id, %reason,
            "a release fails");
        metrics::counter!("berth_failing_releases_total").increment(1);
        let failing = ReleaseFailing {
            app: crash.app.clone(),
            reason: reason.clone(),
            at: crash.at,
        };
        if let Err(error) = self
            .publisher()
            .send(Some(crash.deployment_id), 1, &failing)
            .await
        {
            // The next crash of the loop is not reported again; the
            // reconciler keeps repairing what it can.
            tracing::error!(%error, "could not report a crash loop");
        }
        let line = format!(
            "berth: this release is failing: {reason}; if it went live in the last minutes, berth rolls the app back to its previous release"
        );
        self.write_event(&crash.app, Some(crash.deployment_id), line)
            .await;
    }
}

/// Waits until `due`, or forever without one.
async fn until(due: Option<tokio::time::Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crash(deployment_id: Uuid, secs: i64) -> Failure {
        Failure {
            app: AppRef {
                id: Uuid::nil(),
                name: "web".into(),
                tenant: "acme".into(),
            },
            deployment_id,
            kind: FailureKind::Crashed {
                instance: "c1".into(),
                exit_code: Some(1),
                oom: false,
            },
            at: DateTime::<Utc>::from_timestamp(1_700_000_000 + secs, 0).unwrap(),
        }
    }

    #[test]
    fn three_crashes_within_two_minutes_are_a_crash_loop_reported_once() {
        let mut loops = CrashLoops::default();
        let deployment = Uuid::now_v7();
        assert_eq!(loops.record(&crash(deployment, 0)), None);
        assert_eq!(loops.record(&crash(deployment, 50)), None);
        let reason = loops.record(&crash(deployment, 100)).expect("a crash loop");
        assert_eq!(
            reason,
            "its instances crashed 3 times within 2 minutes (last: exit code 1)"
        );
        assert_eq!(loops.record(&crash(deployment, 101)), None, "reported once");
        assert_eq!(loops.record(&crash(deployment, 102)), None);
    }

    #[test]
    fn crashes_further_apart_or_of_other_deployments_are_not() {
        let mut loops = CrashLoops::default();
        let (one, other) = (Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(loops.record(&crash(one, 0)), None);
        assert_eq!(loops.record(&crash(other, 10)), None);
        assert_eq!(loops.record(&crash(one, 100)), None);
        assert_eq!(loops.record(&crash(other, 20)), None);
        // The first crash of `one` is more than 2 minutes old by now.
        assert_eq!(loops.record(&crash(one, 130)), None);
        assert!(loops.record(&crash(one, 140)).is_some());
    }

    #[test]
    fn a_stop_berth_asked_for_is_not_a_crash() {
        for code in [0, 137, 143] {
            assert!(!Failure::is_crash(Some(code), false), "{code}");
        }
        assert!(Failure::is_crash(Some(1), false));
        assert!(Failure::is_crash(Some(139), false));
        assert!(Failure::is_crash(Some(137), true), "killed for its memory");
    }

    #[test]
    fn failing_health_is_reported_at_once_and_once() {
        let mut loops = CrashLoops::default();
        let deployment = Uuid::now_v7();
        let mut unhealthy = crash(deployment, 0);
        unhealthy.kind = FailureKind::Unhealthy {
            said: "GET /healthz answered 500".into(),
        };
        assert_eq!(
            loops.record(&unhealthy).as_deref(),
            Some("none of its instances passed its health check for 60 s (last: GET /healthz answered 500)")
        );
        assert_eq!(loops.record(&unhealthy), None);
        assert_eq!(
            loops.record(&crash(deployment, 1)),
            None,
            "already reported"
        );
    }
}
