//! Live deployment states for the web UI, as server-sent events.
//!
//! A trigger announces every new deployment and state change on the
//! PostgreSQL channel `berth_deployments` when its transaction commits
//! (migration 0007). One listener per backend process (`EventHub::run`)
//! fans them out to the open streams, each of which passes on its user's
//! own. An event says what changed; the page reads the details from the
//! API. When events may have been missed (the listener's connection was
//! lost, or a slow stream fell behind), the stream says `resync`, and the
//! page reloads what it shows.

use crate::auth::CurrentUser;
use crate::error::Result;
use crate::extract::Query;
use crate::quota::slots::{Slot, SlotKind};
use crate::session_ends::SessionWatch;
use crate::state::AppState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use futures::Stream;
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

pub const CHANNEL: &str = "berth_deployments";
/// Events a stream may fall behind by before it is told to resync.
const BUFFER: usize = 1024;

/// A deployment was created or changed state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeploymentEvent {
    pub deployment_id: Uuid,
    pub app_id: Uuid,
    #[serde(skip_serializing)]
    pub owner_id: Option<Uuid>,
    pub state: String,
    pub changed_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub enum Announcement {
    Deployment(DeploymentEvent),
    /// Events may have been missed: reload.
    Resync,
}

/// The process's one listener, and the channel its streams read.
pub struct EventHub {
    sender: broadcast::Sender<Announcement>,
    /// True while the listener is subscribed to the channel.
    listening: watch::Sender<bool>,
}

impl Default for EventHub {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(BUFFER).0,
            listening: watch::channel(false).0,
        }
    }
}

impl EventHub {
    /// Waits until the listener is subscribed (changes from then on are
    /// seen).
    pub async fn listening(&self) {
        let mut listening = self.listening.subscribe();
        let _ = listening.wait_for(|listening| *listening).await;
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Announcement> {
        self.sender.subscribe()
    }

    /// Listens until `stop`, reconnecting after a lost connection (and then
    /// telling every stream to resync).
    pub async fn run(&self, db: PgPool, stop: CancellationToken) {
        let mut delay = Duration::from_millis(500);
        while !stop.is_cancelled() {
            let listened = self.listen(&db, &stop).await;
            self.listening.send_replace(false);
            match listened {
                Ok(()) => return,
                Err(error) => {
                    tracing::warn!(%error, "deployment event listener lost; reconnecting");
                    let _ = self.sender.send(Announcement::Resync);
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    async fn listen(&self, db: &PgPool, stop: &CancellationToken) -> sqlx::Result<()> {
        let mut listener = PgListener::connect_with(db).await?;
        // Reconnecting silently would hide a gap; `run` reconnects and says so.
        listener.ignore_pool_close_event(true);
        listener.listen(CHANNEL).await?;
        tracing::info!(channel = CHANNEL, "listening for deployment events");
        self.listening.send_replace(true);
        loop {
            let notification = tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                received = listener.try_recv() => received?,
            };
            let Some(notification) = notification else {
                return Err(sqlx::Error::Protocol(
                    "the listener's connection closed".into(),
                ));
            };
            match serde_json::from_str::<DeploymentEvent>(notification.payload()) {
                Ok(event) => {
                    let _ = self.sender.send(Announcement::Deployment(event));
                }
                Err(error) => tracing::error!(%error, "an unreadable deployment event"),
            }
        }
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/events", get(stream))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// A single-use ticket from `POST /ws-tickets`, for `EventSource`,
    /// which cannot send an Authorization header.
    pub ticket: Option<String>,
}

/// Your deployments' state changes as they happen (server-sent events).
/// `deployment` events carry `DeploymentEvent`; `resync` means some may
/// have been missed: reload; `session-ended` (then the stream ends) means
/// the session that opened it ended: sign in again. Authenticate with a
/// bearer token or `?ticket=`. Counts toward the tenant's quota of open
/// streams, with log sockets.
#[utoipa::path(get, path = "/api/v1/events", tag = "deployments", params(EventsQuery),
    security(("bearer" = [])),
    responses((status = 200, content_type = "text/event-stream", body = DeploymentEvent),
              (status = 401, body = crate::error::Problem),
              (status = 429, body = crate::error::Problem, description = "too many open streams")))]
pub async fn stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<EventsQuery>,
) -> Result<Sse<impl Stream<Item = std::result::Result<Event, Infallible>>>> {
    let user = crate::log_api::ws::authenticate(&state, &headers, query.ticket.as_deref()).await?;
    let slot = state
        .slots
        .acquire(user.id, SlotKind::Stream, state.settings.quotas.streams)
        .await?;
    let open = Open {
        receiver: state.events.subscribe(),
        shutdown: state.shutdown.clone(),
        session: user.watch_session(&state),
        slot,
    };
    Ok(Sse::new(events_for(user, open)).keep_alive(KeepAlive::default()))
}

/// An open stream: what it reads, what ends it, the quota slot it holds.
struct Open {
    receiver: broadcast::Receiver<Announcement>,
    shutdown: CancellationToken,
    session: SessionWatch,
    slot: Slot,
}

/// The stream holds `slot` until the client goes (the stream is dropped).
fn events_for(
    user: CurrentUser,
    open: Open,
) -> impl Stream<Item = std::result::Result<Event, Infallible>> {
    futures::stream::unfold(Some(open), move |open| async move {
        let Open {
            mut receiver,
            shutdown,
            session,
            slot,
        } = open?;
        loop {
            let received = tokio::select! {
                _ = shutdown.cancelled() => return None,
                _ = session.ended() => {
                    tracing::info!(user_id = %user.id, "event stream ended: its session ended");
                    let event = Event::default().event("session-ended").data("{}");
                    return Some((Ok(event), None));
                }
                received = receiver.recv() => received,
            };
            let event = match received {
                Ok(Announcement::Deployment(event)) if event.owner_id == Some(user.id) => {
                    Event::default()
                        .event("deployment")
                        .json_data(&event)
                        .expect("events serialize")
                }
                Ok(Announcement::Deployment(_)) => continue,
                Ok(Announcement::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    Event::default().event("resync").data("{}")
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            let open = Open {
                receiver,
                shutdown,
                session,
                slot,
            };
            return Some((Ok(event), Some(open)));
        }
    })
}
