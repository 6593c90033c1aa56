//! Live deployment states for the web UI, as server-sent events.
//!
//! Each open stream reads the process's
//! [`EventHub`](crate::event_hub::EventHub) and passes on its user's own
//! deployments. An event says what changed; the page reads the details
//! from the API. When events may have been missed (the hub's
//! listener lost its connection, or a slow stream fell behind), the stream
//! says `resync`, and the page reloads what it shows.

use crate::auth::tickets::authenticate;
use crate::auth::CurrentUser;
use crate::error::Result;
use crate::event_hub::{Announcement, DeploymentEvent};
use crate::extract::Query;
use crate::quota::slots::{Slot, SlotKind};
use crate::session_ends::SessionWatch;
use crate::state::AppState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use axum::Router;
use futures::Stream;
use serde::Deserialize;
use std::convert::Infallible;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use utoipa::IntoParams;

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
    let user = authenticate(&state, &headers, query.ticket.as_deref()).await?;
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
