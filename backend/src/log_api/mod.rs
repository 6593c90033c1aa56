//! HTTP access to app logs: a REST page of history, and a WebSocket that
//! sends history then live entries (opened with a bearer token or a
//! single-use ticket, `auth::tickets`). Reading itself is
//! [`crate::logs::LogReader`]'s job.

pub(crate) mod ws;

use crate::apps_store;
use crate::auth::CurrentUser;
use crate::error::{Error, Result};
use crate::extract::{Json, Path, Query};
use crate::logs::{LogPage, LogReadError, StartAt};
use crate::quota::slots::SlotKind;
use crate::state::AppState;
use axum::extract::State;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

pub const DEFAULT_LIMIT: usize = 500;
pub const MAX_LIMIT: usize = 5000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/apps/{id}/logs", get(read_logs))
        .route("/apps/{id}/logs/ws", get(ws::follow_logs))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// Start at this offset (resume with the last offset seen + 1).
    pub from: Option<i64>,
    /// Start at the first entry written at or after this time (RFC 3339).
    /// With `from` (REST only): entries from that offset written at or
    /// after this time, to go on after a `truncated` page.
    pub since: Option<DateTime<Utc>>,
    /// Most entries in the page, 1 to 5000 (500 when absent). REST only.
    pub limit: Option<usize>,
    /// A ticket from POST /ws-tickets, for clients that cannot send headers. WebSocket only.
    pub ticket: Option<String>,
}

impl LogQuery {
    /// Where a socket starts: `from` or `since`, not both.
    fn start(&self) -> Result<StartAt> {
        if self.from.is_some() && self.since.is_some() {
            return Err(Error::invalid(
                "from",
                "give either `from` or `since`, not both",
            ));
        }
        self.page_start()
    }

    /// Where a REST page starts: `from` and `since` together go on after a
    /// page that stopped at its scan budget.
    fn page_start(&self) -> Result<StartAt> {
        match (self.from, self.since) {
            (Some(offset), _) if offset < 0 => Err(Error::invalid("from", "must be 0 or more")),
            (Some(offset), Some(time)) => Ok(StartAt::TimeFrom(offset, time)),
            (Some(offset), None) => Ok(StartAt::Offset(offset)),
            (None, Some(time)) => Ok(StartAt::Time(time)),
            (None, None) => Ok(StartAt::Beginning),
        }
    }
}

fn unavailable(error: LogReadError) -> Error {
    Error::Unavailable(error.to_string())
}

/// Makes sure the app is the caller's.
async fn owned_app(state: &AppState, owner: Uuid, app_id: Uuid) -> Result<()> {
    let mut conn = state.db.acquire().await?;
    apps_store::get(&mut conn, owner, app_id)
        .await?
        .map(drop)
        .ok_or(Error::NotFound("app"))
}

/// A page of the app's log (build output, app output, events), oldest first.
/// A `since` read skips older entries for at most 10 000 records; when it
/// stops there the page is `truncated`: go on with `from=next_offset` and
/// the same `since`.
#[utoipa::path(get, path = "/api/v1/apps/{id}/logs", tag = "logs",
    params(("id" = Uuid, Path, description = "app id"), LogQuery), security(("bearer" = [])),
    responses((status = 200, body = LogPage), (status = 404, body = crate::error::Problem),
              (status = 429, body = crate::error::Problem, description = "too many log reads in progress"),
              (status = 503, body = crate::error::Problem)))]
async fn read_logs(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(app_id): Path<Uuid>,
    Query(query): Query<LogQuery>,
) -> Result<Json<LogPage>> {
    let start = query.page_start()?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Error::invalid(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        ));
    }
    owned_app(&state, user.id, app_id).await?;
    // Each read opens its own Kafka consumer: bounded per tenant.
    let _slot = state
        .slots
        .acquire(user.id, SlotKind::LogRead, state.settings.quotas.log_reads)
        .await?;
    let page = state
        .logs
        .read(app_id, start, limit)
        .await
        .map_err(unavailable)?;
    Ok(Json(page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_points() {
        let query = |from, since| LogQuery {
            from,
            since,
            ..Default::default()
        };
        assert_eq!(query(None, None).start().unwrap(), StartAt::Beginning);
        assert_eq!(query(Some(7), None).start().unwrap(), StartAt::Offset(7));
        assert!(query(Some(-1), None).start().is_err());
        assert!(query(Some(1), Some(Utc::now())).start().is_err());
        let now = Utc::now();
        assert_eq!(
            query(Some(1), Some(now)).page_start().unwrap(),
            StartAt::TimeFrom(1, now)
        );
    }
}
