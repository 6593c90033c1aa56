//! Cancellations: how a worker learns that the backend no longer wants work
//! it holds or has not started yet.
//!
//! The backend publishes a [`Cancellation`] with the routing key
//! [`CONTROL_ROUTING_KEY`]; every worker process binds a private, exclusive
//! queue to it, so each hears every cancellation. [`Cancellations`] keeps what
//! was heard for a day (a message can wait in a work queue that long at
//! most, see the deadlines) and wakes the work registered under it.
//!
//! A worker that was down when a cancellation was sent does not hear it: the
//! relay then no longer publishes work of ended deployments, the message's
//! deadline stops late work, and the backend compensates a late report. This
//! is the fast path, not the only one.

use berth_proto::names::{CONTROL_QUEUE_PREFIX, CONTROL_ROUTING_KEY, EXCHANGE};
use berth_proto::{Cancellation, Envelope, Message};
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How long a heard cancellation is remembered.
const REMEMBER: Duration = Duration::from_secs(24 * 60 * 60);
/// At most this many remembered cancellations; the oldest go first.
const MAX_REMEMBERED: usize = 100_000;

/// What a worker has heard, and the work waiting to hear it.
#[derive(Clone, Default)]
pub struct Cancellations {
    inner: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    heard: Vec<(Instant, Cancellation)>,
    watching: HashMap<u64, Watch>,
    next: u64,
}

struct Watch {
    app_id: Uuid,
    deployment_id: Option<Uuid>,
    token: CancellationToken,
    reason: Arc<Mutex<Option<String>>>,
}

/// Registered work; dropping it unregisters. `cancelled()` resolves when a
/// cancellation that covers the work is heard.
pub struct Watched {
    id: u64,
    owner: Cancellations,
    token: CancellationToken,
    reason: Arc<Mutex<Option<String>>>,
}

impl Watched {
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    pub async fn cancelled(&self) {
        self.token.cancelled().await
    }

    /// Why the work was cancelled, once it was.
    pub fn reason(&self) -> Option<String> {
        self.reason.lock().expect("reason poisoned").clone()
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        let mut state = self.owner.inner.lock().expect("cancellations poisoned");
        state.watching.remove(&self.id);
    }
}

impl Cancellations {
    pub fn new() -> Self {
        Self::default()
    }

    /// The reason, if work of `deployment_id` of `app_id` was cancelled.
    pub fn reason_for(&self, app_id: Uuid, deployment_id: Option<Uuid>) -> Option<String> {
        let state = self.inner.lock().expect("cancellations poisoned");
        state
            .heard
            .iter()
            .rev()
            .find(|(_, heard)| heard.covers(app_id, deployment_id))
            .map(|(_, heard)| heard.reason.clone())
    }

    /// Registers work; its token is cancelled at once when a cancellation
    /// covering it was already heard.
    pub fn watch(&self, app_id: Uuid, deployment_id: Option<Uuid>) -> Watched {
        let token = CancellationToken::new();
        let reason = Arc::new(Mutex::new(self.reason_for(app_id, deployment_id)));
        if reason.lock().expect("reason poisoned").is_some() {
            token.cancel();
        }
        let mut state = self.inner.lock().expect("cancellations poisoned");
        let id = state.next;
        state.next += 1;
        state.watching.insert(
            id,
            Watch {
                app_id,
                deployment_id,
                token: token.clone(),
                reason: reason.clone(),
            },
        );
        Watched {
            id,
            owner: self.clone(),
            token,
            reason,
        }
    }

    /// Remembers a cancellation and cancels the work it covers.
    pub fn hear(&self, cancellation: Cancellation) {
        let mut state = self.inner.lock().expect("cancellations poisoned");
        let now = Instant::now();
        state
            .heard
            .retain(|(at, _)| now.duration_since(*at) < REMEMBER);
        if state.heard.len() >= MAX_REMEMBERED {
            state.heard.remove(0);
        }
        for watch in state.watching.values() {
            if cancellation.covers(watch.app_id, watch.deployment_id) {
                *watch.reason.lock().expect("reason poisoned") = Some(cancellation.reason.clone());
                watch.token.cancel();
            }
        }
        tracing::info!(app_id = %cancellation.app.id, deployment_id = ?cancellation.deployment_id,
            reason = %cancellation.reason, "cancellation heard");
        metrics::counter!("berth_cancellations_heard_total").increment(1);
        state.heard.push((now, cancellation));
    }
}

#[derive(Debug, thiserror::Error)]
enum ControlError {
    #[error(transparent)]
    Broker(#[from] lapin::Error),
    #[error("the broker closed the control queue's consumer")]
    Closed,
}

/// Listens for cancellations until `shutdown`, reconnecting after any
/// broker error. `process` names the queue (`berth.control.<process>.<id>`).
pub async fn listen(
    url: String,
    process: &str,
    cancellations: Cancellations,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(200);
    while !shutdown.is_cancelled() {
        match listen_once(&url, process, &cancellations, &shutdown).await {
            Ok(()) => backoff = Duration::from_millis(200),
            Err(error) => {
                tracing::warn!(%error, ?backoff, "control queue lost; reconnecting");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

async fn listen_once(
    url: &str,
    process: &str,
    cancellations: &Cancellations,
    shutdown: &CancellationToken,
) -> Result<(), ControlError> {
    let properties =
        ConnectionProperties::default().with_connection_name(format!("{process}:control").into());
    let connection = Connection::connect(url, properties).await?;
    let channel = connection.create_channel().await?;
    channel.basic_qos(100, BasicQosOptions::default()).await?;
    let queue = format!(
        "{CONTROL_QUEUE_PREFIX}{process}.{}",
        Uuid::new_v4().simple()
    );
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            queue.as_str().into(),
            EXCHANGE.into(),
            CONTROL_ROUTING_KEY.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut deliveries = channel
        .basic_consume(
            queue.as_str().into(),
            format!("{process}-control").as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    tracing::info!(%queue, "listening for cancellations");
    loop {
        let delivery = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            delivery = deliveries.next() => delivery,
        };
        let delivery = match delivery {
            Some(delivery) => delivery?,
            None => return Err(ControlError::Closed),
        };
        match Envelope::from_bytes(&delivery.data).and_then(|envelope| envelope.decode()) {
            Ok(Message::Cancellation(cancellation)) => cancellations.hear(cancellation),
            Ok(other) => tracing::warn!(queue = other.queue(), "not a cancellation; dropped"),
            Err(error) => tracing::warn!(%error, "unreadable control message; dropped"),
        }
        delivery.ack(BasicAckOptions::default()).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_proto::{AppRef, DeploymentState};

    fn cancellation(app: Uuid, deployment: Option<Uuid>) -> Cancellation {
        Cancellation {
            app: AppRef {
                id: app,
                name: "web".into(),
                tenant: "acme".into(),
            },
            deployment_id: deployment,
            reason: "cancelled by alice".into(),
            state: DeploymentState::Cancelled,
        }
    }

    #[tokio::test]
    async fn watched_work_is_woken_by_a_cancellation_that_covers_it() {
        let (app, d1, d2) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let cancellations = Cancellations::new();
        let first = cancellations.watch(app, Some(d1));
        let second = cancellations.watch(app, Some(d2));
        cancellations.hear(cancellation(app, Some(d1)));
        tokio::time::timeout(Duration::from_secs(1), first.cancelled())
            .await
            .expect("woken");
        assert_eq!(first.reason().as_deref(), Some("cancelled by alice"));
        assert!(!second.token().is_cancelled());
        assert_eq!(second.reason(), None);
    }

    #[test]
    fn an_app_wide_cancellation_covers_every_deployment_and_is_remembered() {
        let (app, other) = (Uuid::now_v7(), Uuid::now_v7());
        let cancellations = Cancellations::new();
        cancellations.hear(cancellation(app, None));
        let late = cancellations.watch(app, Some(Uuid::now_v7()));
        assert!(late.token().is_cancelled(), "heard before it was watched");
        assert!(cancellations.reason_for(other, None).is_none());
    }

    #[test]
    fn dropped_work_is_forgotten() {
        let cancellations = Cancellations::new();
        let watched = cancellations.watch(Uuid::now_v7(), None);
        drop(watched);
        assert!(cancellations.inner.lock().unwrap().watching.is_empty());
    }
}
