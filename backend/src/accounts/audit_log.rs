//! `GET /audit`: the caller's own audit log. The log itself (recording,
//! the query) is `crate::audit`; the endpoint is here because it needs the
//! signed-in caller, and `auth` records into the log.

use crate::audit::{self, AuditEvent, ListAudit};
use crate::auth::CurrentUser;
use crate::error::Result;
use crate::extract::{Json, Query};
use crate::state::AppState;
use axum::extract::State;

/// The caller's audit log, newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(ListAudit),
    security(("bearer" = [])),
    responses((status = 200, body = [AuditEvent]), (status = 401, body = crate::error::Problem),
              (status = 422, body = crate::error::Problem)))]
pub async fn list_events(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(query): Query<ListAudit>,
) -> Result<Json<Vec<AuditEvent>>> {
    Ok(Json(audit::list(&state.db, user.id, query).await?))
}
