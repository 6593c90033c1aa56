//! The log WebSocket: each entry is one JSON text frame, history first, then
//! live. When the offset asked for is no longer in the log (retention
//! removed it, or the log was reset), a `{"skipped": Skip}` frame comes
//! first. The server pings periodically and closes with a reason on error,
//! and with `4401` when the session that opened it ends (logout, signed
//! out, password change, account deletion): logs often hold secrets, and a
//! socket must not outlive the sign-in it was opened with.

use super::{owned_app, LogQuery};
use crate::auth::tickets::authenticate;
use crate::error::{Error, Result};
use crate::extract::{Path, Query};
use crate::logs::{Followed, LogReader, StartAt};
use crate::quota::slots::SlotKind;
use crate::session_ends::SessionWatch;
use crate::state::AppState;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::header::{HOST, ORIGIN};
use axum::http::HeaderMap;
use axum::response::Response;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Clients only send control frames; anything larger is refused.
const MAX_CLIENT_MESSAGE: usize = 4096;
/// The close code for "your session ended; sign in again" (4000-4999 are
/// the application's; 4401 echoes HTTP 401).
pub const CLOSE_SESSION_ENDED: u16 = 4401;

/// Follow the app's log over a WebSocket (history from `from`/`since`, then live).
#[utoipa::path(get, path = "/api/v1/apps/{id}/logs/ws", tag = "logs",
    params(("id" = Uuid, Path, description = "app id"), LogQuery), security(("bearer" = [])),
    responses((status = 101, description = "switching to WebSocket; each text frame is a LogEntry, or first a {\"skipped\": Skip} when `from` is no longer in the log"),
              (status = 401, body = crate::error::Problem), (status = 403, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem), (status = 429, body = crate::error::Problem)))]
pub async fn follow_logs(
    State(state): State<AppState>,
    Path(app_id): Path<Uuid>,
    Query(query): Query<LogQuery>,
    headers: HeaderMap,
    upgrade: std::result::Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response> {
    let start = query.start()?;
    let user = authenticate(&state, &headers, query.ticket.as_deref()).await?;
    owned_app(&state, user.id, app_id).await?;
    if !origin_allowed(&headers, &state.settings.websocket_origins) {
        return Err(Error::Forbidden(
            "this origin may not open log sockets".into(),
        ));
    }
    // Log sockets and event streams share the tenant's quota.
    let guard = state
        .slots
        .acquire(user.id, SlotKind::Stream, state.settings.quotas.streams)
        .await?;
    let upgrade = upgrade.map_err(|rejection| {
        Error::BadRequest(format!(
            "this endpoint speaks WebSocket: {}",
            rejection.body_text()
        ))
    })?;
    let stream = Stream {
        reader: state.logs.clone(),
        app_id,
        start,
        ping: state.settings.websocket_ping,
        shutdown: state.shutdown.clone(),
        session: user.watch_session(&state),
    };
    tracing::info!(%app_id, user_id = %user.id, ?start, "log socket opened");
    Ok(upgrade
        .max_message_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| async move {
            pump(socket, stream).await;
            drop(guard);
            tracing::info!(%app_id, "log socket closed");
        }))
}

/// No Origin (not a browser) passes; otherwise it must be an allowed one,
/// or, when none are configured, the server's own host.
pub(crate) fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin = origin.trim_end_matches('/');
    if !allowed.is_empty() {
        return allowed.iter().any(|a| a.eq_ignore_ascii_case(origin));
    }
    let host = headers.get(HOST).and_then(|h| h.to_str().ok());
    let origin_host = url::Url::parse(origin).ok().and_then(|url| {
        let host = url.host_str()?.to_owned();
        Some(match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host,
        })
    });
    matches!((host, origin_host), (Some(a), Some(b)) if a.eq_ignore_ascii_case(&b))
}

/// How long a closing socket waits for the client's Close.
const CLOSE_HANDSHAKE: Duration = Duration::from_secs(2);

async fn close(mut socket: WebSocket, code: u16, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    if socket.send(Message::Close(Some(frame))).await.is_err() {
        return;
    }
    // Finish the closing handshake: read (and drop) what the client still
    // sends (a pong, say) until its Close. Dropping a connection with
    // unread data resets it, and the client may then lose the close frame
    // and its reason.
    let handshake = async {
        while let Some(Ok(message)) = socket.recv().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_HANDSHAKE, handshake).await;
}

/// What one socket streams, and what stops it.
struct Stream {
    reader: Arc<dyn LogReader>,
    app_id: Uuid,
    start: StartAt,
    ping: Duration,
    shutdown: CancellationToken,
    session: SessionWatch,
}

async fn pump(mut socket: WebSocket, stream: Stream) {
    let Stream {
        reader,
        app_id,
        start,
        ping,
        shutdown,
        session,
    } = stream;
    let Followed {
        skipped,
        mut entries,
    } = match reader.follow(app_id, start).await {
        Ok(followed) => followed,
        Err(error) => {
            tracing::warn!(%app_id, %error, "cannot follow the log");
            return close(socket, close_code::ERROR, "the log store is unavailable").await;
        }
    };
    if let Some(skipped) = skipped {
        let text = serde_json::json!({ "skipped": skipped }).to_string();
        if socket.send(Message::Text(text.into())).await.is_err() {
            return;
        }
    }
    let mut pings = tokio::time::interval_at(tokio::time::Instant::now() + ping, ping);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                return close(socket, close_code::AWAY, "the server is shutting down").await;
            }
            _ = session.ended() => {
                tracing::info!(%app_id, "log socket closed: its session ended");
                return close(socket, CLOSE_SESSION_ENDED, "the session has ended; sign in again").await;
            }
            entry = entries.recv() => match entry {
                Some(Ok(entry)) => {
                    let text = serde_json::to_string(&entry).expect("log entries serialize");
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        return;
                    }
                }
                Some(Err(error)) => {
                    tracing::warn!(%app_id, %error, "the log stream failed");
                    return close(socket, close_code::ERROR, "the log store is unavailable").await;
                }
                None => return close(socket, close_code::NORMAL, "the log ended").await,
            },
            _ = pings.tick() => {
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(origin: Option<&'static str>, host: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_static(host));
        if let Some(origin) = origin {
            headers.insert(ORIGIN, HeaderValue::from_static(origin));
        }
        headers
    }

    #[test]
    fn origins() {
        let allowed = vec!["https://berth.example.com".to_owned()];
        assert!(origin_allowed(&headers(None, "x"), &allowed));
        assert!(origin_allowed(
            &headers(Some("https://berth.example.com"), "x"),
            &allowed
        ));
        assert!(!origin_allowed(
            &headers(Some("https://evil.example"), "x"),
            &allowed
        ));
        assert!(origin_allowed(
            &headers(Some("http://127.0.0.1:8080"), "127.0.0.1:8080"),
            &[]
        ));
        assert!(!origin_allowed(
            &headers(Some("http://evil.example"), "127.0.0.1:8080"),
            &[]
        ));
    }
}
