//! One `build.requested` off the queue: refused when past its deadline or
//! cancelled, else built once a slot is free; the build stops when the
//! backend cancels it, the worker shuts down, or the broker takes the
//! delivery back.

use super::BuildService;
use crate::docker::ImageBuilder;
use crate::git::SourceFetcher;
use crate::registry::Registry;
use async_trait::async_trait;
use berth_common::{DeliveryInfo, Handler, LogSink, MessagePublisher, Outcome};
use berth_proto::{DeploymentProgress, DeploymentState, Envelope, Message};
use chrono::Utc;
use tracing::Instrument;

#[async_trait]
impl<B, F, R, L, P> Handler for BuildService<B, F, R, L, P>
where
    B: ImageBuilder,
    F: SourceFetcher,
    R: Registry,
    L: LogSink,
    P: MessagePublisher,
{
    async fn handle(
        &self,
        envelope: Envelope,
        message: Message,
        delivery: DeliveryInfo,
    ) -> Outcome {
        let Message::BuildRequested(request) = message else {
            return Outcome::Reject(format!(
                "the build worker does not handle `{}`",
                envelope.kind
            ));
        };
        let Some(deployment_id) = envelope.deployment_id else {
            return Outcome::Reject("a build.requested message needs a deployment_id".into());
        };
        let span = tracing::info_span!("build", %deployment_id, app_id = %request.app.id,
            app = %request.app.name, tenant = %request.app.tenant, attempt = envelope.attempt);
        if envelope.is_expired(Utc::now()) {
            // The backend ends it `timed_out` at that deadline; building it
            // now would deploy what nobody waits for any more.
            let _entered = span.enter();
            tracing::info!(deadline = ?envelope.deadline, "build request past its deadline; refused");
            metrics::counter!("berth_builds_total", "outcome" => "expired").increment(1);
            let progress = DeploymentProgress {
                reason: Some("waited for a build worker past its deadline".into()),
                ..DeploymentProgress::new(DeploymentState::TimedOut)
            };
            return match self.report(deployment_id, envelope.attempt, progress).await {
                Ok(()) => Outcome::Done,
                Err(error) => Outcome::Retry(error.to_string()),
            };
        }
        let watched = self
            .cancellations
            .watch(request.app.id, Some(deployment_id));
        let _slot = tokio::select! {
            slot = self.slots.acquire(&request.app.tenant) => slot,
            () = self.shutdown.cancelled() => {
                return Outcome::Retry("the build worker is shutting down".into())
            }
            () = watched.cancelled() => {
                tracing::info!(parent: &span, reason = watched.reason(), "build cancelled while waiting for a slot");
                return Outcome::Done;
            }
        };
        self.build_watched(
            deployment_id,
            envelope.attempt,
            request,
            &watched,
            &delivery.lost,
        )
        .instrument(span)
        .await
    }

    async fn retrying(&self, envelope: &Envelope, delay: std::time::Duration, reason: &str) {
        self.publisher.tell_waiting(envelope, delay, reason).await;
    }
}
