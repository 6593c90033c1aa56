//! The loops `server::serve` starts beside the HTTP API: nothing here
//! answers a request.
//!
//! * `relay`: publishes the outbox to RabbitMQ;
//! * `inform`: applies the workers' progress reports to deployments;
//! * `reaper`: times out deployments that stopped moving, and prunes;
//! * `github_status`: sends queued commit statuses and Deployments to GitHub;
//! * `dead_letters`: turns dead-lettered messages into a definite state;
//! * `converge`: sends the deploy-workers what should run, for their
//!   reconciler;
//! * `retention`: prunes release images rollback no longer reaches, and
//!   the log topics of deleted apps.

pub mod converge;
pub mod dead_letters;
pub mod domain_checks;
pub mod github_status;
pub mod inform;
pub mod reaper;
pub mod relay;
pub mod retention;

use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Runs `pass` now and then every `interval` (a late pass delays the next
/// rather than bunching them) until `shutdown`.
pub async fn every<F, Fut>(interval: Duration, shutdown: CancellationToken, pass: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    every_or_when(interval, None, shutdown, pass).await
}

/// [`every`], and also at once when `wake` is notified.
pub async fn every_or_when<F, Fut>(
    interval: Duration,
    wake: Option<std::sync::Arc<tokio::sync::Notify>>,
    shutdown: CancellationToken,
    mut pass: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
            _ = async {
                match &wake {
                    Some(wake) => wake.notified().await,
                    None => std::future::pending().await,
                }
            } => {}
        }
        pass().await;
    }
}
