//! `GET /me/quota`: the caller's quotas and how much of each is used.

use crate::auth::CurrentUser;
use crate::error::Result;
use crate::extract::Json;
use crate::quota::slots::SlotKind;
use crate::quota::{self, QuotaView};
use crate::state::AppState;
use axum::extract::State;

/// Your account's quotas (set by the operator) and what you use of each:
/// apps, deployments waiting to start, open log sockets and event streams,
/// log reads in progress, and the memory and CPU of your apps times their
/// replicas; with what an app gets by default and may ask for at most.
#[utoipa::path(get, path = "/api/v1/me/quota", tag = "apps", security(("bearer" = [])),
    responses((status = 200, body = QuotaView), (status = 401, body = crate::error::Problem)))]
pub async fn get_quota(
    State(state): State<AppState>,
    user: CurrentUser,
) -> Result<Json<QuotaView>> {
    let quotas = &state.settings.quotas;
    let mut conn = state.db.acquire().await?;
    let usage = quota::usage(&mut conn, user.id, quotas).await?;
    drop(conn);
    let streams = state.slots.held(user.id, SlotKind::Stream).await?;
    let log_reads = state.slots.held(user.id, SlotKind::LogRead).await?;
    Ok(Json(QuotaView::new(quotas, usage, streams, log_reads)))
}
