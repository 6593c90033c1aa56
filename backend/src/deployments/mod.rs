//! Deployments: request one (build, or roll back to a release), follow it,
//! list an app's deployments and releases.

pub mod auto_rollback;
pub mod dispatch;
pub mod idempotency;
pub mod model;
pub mod queue;
pub mod releases;
pub mod repair;
pub mod request;
pub mod store;
pub mod transitions;

use berth_proto::DeploymentState;

use crate::apps_store;
use crate::audit::{self, Event, SourceAddr};
use crate::auth::CurrentUser;
use crate::error::{Error, Result};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;
use crate::validate;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use model::{CreateDeployment, Deployment, ListDeployments, DEFAULT_PAGE, MAX_PAGE};
use releases::ReleaseView;
use request::{BuildIntent, Trigger};
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/apps/{id}/deployments",
            get(list_deployments).post(create_deployment),
        )
        .route("/deployments/{id}", get(get_deployment))
        .route("/deployments/{id}/cancel", post(cancel_deployment))
        .route("/apps/{id}/releases", get(list_releases))
}

/// Loads deployments with their state histories.
async fn with_histories(
    state: &AppState,
    rows: Vec<store::DeploymentRow>,
) -> Result<Vec<Deployment>> {
    let ids: Vec<Uuid> = rows.iter().map(|row| row.id).collect();
    let mut histories = store::histories(&state.db, &ids).await?;
    let mut places = queue::places(&state.db, &ids).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let history = histories.remove(&row.id).unwrap_or_default();
            let place = places.remove(&row.id);
            Deployment::from_row(row, history, place)
        })
        .collect())
}

async fn load(state: &AppState, owner: Uuid, id: Uuid) -> Result<Deployment> {
    let row = store::get_owned(&state.db, owner, id)
        .await?
        .ok_or(Error::NotFound("deployment"))?;
    Ok(with_histories(state, vec![row]).await?.remove(0))
}

/// Deploy the app: build a ref or commit, or roll back to an earlier release.
/// With the account's quota of deployments already waiting to start, a
/// `429` `quota-exceeded`. The same `Idempotency-Key` again within a day
/// answers the deployment it made.
#[utoipa::path(post, path = "/api/v1/apps/{id}/deployments", tag = "deployments",
    params(("id" = Uuid, Path, description = "app id"),
           ("Idempotency-Key" = Option<String>, Header,
            description = "sent again (a retry, a double click), answers the deployment the first request made instead of making another")),
    request_body = CreateDeployment,
    security(("bearer" = [])),
    responses((status = 202, body = Deployment), (status = 404, body = crate::error::Problem),
              (status = 422, body = crate::error::Problem),
              (status = 429, body = crate::error::Problem, description = "too many deployments waiting")))]
#[tracing::instrument(skip_all, fields(app_id = %app_id, deployment_id))]
async fn create_deployment(
    State(state): State<AppState>,
    user: CurrentUser,
    source: SourceAddr,
    Path(app_id): Path<Uuid>,
    headers: HeaderMap,
    body: Option<Json<CreateDeployment>>,
) -> Result<(StatusCode, Json<Deployment>)> {
    let request = body.map(|Json(request)| request).unwrap_or_default();
    let key = idempotency::key_of(&headers)?;
    let mut tx = state.db.begin().await?;
    let app = apps_store::lock_owned(&mut tx, user.id, app_id).await?;
    if let Some(key) = &key {
        if let Some(id) = idempotency::earlier(&mut tx, app.id, key).await? {
            tx.rollback().await?;
            tracing::info!(deployment_id = %id, "the same Idempotency-Key again: the deployment it made");
            return Ok((StatusCode::ACCEPTED, Json(load(&state, user.id, id).await?)));
        }
    }

    let (id, trigger) = if let Some(release_id) = request.release_id {
        if request.git_ref.is_some() || request.commit.is_some() {
            return Err(Error::invalid(
                "release_id",
                "a rollback deploys a release as it is; do not combine it with ref or commit",
            ));
        }
        let release = releases::get(&mut tx, app.id, release_id)
            .await?
            .ok_or_else(|| Error::invalid("release_id", "this app has no such release"))?;
        if release.pruned_at.is_some() {
            return Err(Error::Conflict(format!(
                "release {} was pruned with its image: it is older than the releases \
                 rollback reaches (BERTH_ROLLBACK_RELEASES); deploy its commit instead",
                release.id
            )));
        }
        let id = request::request_rollback(
            &mut tx,
            &app,
            &release,
            user.id,
            state.github.host(),
            &state.settings.quotas,
        )
        .await?;
        let details = serde_json::json!({"app_id": app.id, "app": app.name,
            "trigger": Trigger::Rollback.as_str(), "release_id": release.id,
            "commit": release.commit_sha});
        let event = Event::new(user.id, "deployment.create", "deployment", id, source);
        audit::record(&mut tx, event.details(details)).await?;
        (id, Trigger::Rollback)
    } else {
        let git_ref = request.git_ref.unwrap_or_else(|| app.branch.clone());
        let commit = request.commit.map(|c| c.to_ascii_lowercase());
        let mut checks = validate::Checks::default();
        checks.check("ref", validate::git_ref(&git_ref));
        if let Some(commit) = &commit {
            checks.check("commit", validate::commit(commit));
        }
        checks.finish()?;
        let intent = BuildIntent {
            trigger: Trigger::User,
            git_ref: &git_ref,
            commit: commit.as_deref(),
            created_by: Some(user.id),
            pushed_by: None,
            commit_message: None,
            github_host: state.github.host(),
            key: &state.key,
            quotas: &state.settings.quotas,
        };
        let id = request::request_build(&mut tx, &app, intent).await?;
        let details = serde_json::json!({"app_id": app.id, "app": app.name,
            "trigger": Trigger::User.as_str(), "ref": git_ref, "commit": commit});
        let event = Event::new(user.id, "deployment.create", "deployment", id, source);
        audit::record(&mut tx, event.details(details)).await?;
        (id, Trigger::User)
    };
    if let Some(key) = &key {
        idempotency::remember(&mut tx, app.id, key, id).await?;
    }
    tx.commit().await?;
    tracing::Span::current().record("deployment_id", tracing::field::display(id));
    requested(&state, trigger);
    Ok((StatusCode::ACCEPTED, Json(load(&state, user.id, id).await?)))
}

/// After the transaction that requested a deployment committed: wake the
/// relay, count it, say so.
pub fn requested(state: &AppState, trigger: Trigger) {
    state.outbox.notify_one();
    state.github_status.notify_one();
    let trigger = trigger.as_str();
    metrics::counter!("berth_deployments_created_total", "trigger" => trigger).increment(1);
    tracing::info!(trigger, "deployment requested");
}

/// The app's deployments, newest first.
#[utoipa::path(get, path = "/api/v1/apps/{id}/deployments", tag = "deployments",
    params(("id" = Uuid, Path, description = "app id"), ListDeployments),
    security(("bearer" = [])),
    responses((status = 200, body = [Deployment]), (status = 404, body = crate::error::Problem)))]
async fn list_deployments(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(app_id): Path<Uuid>,
    Query(query): Query<ListDeployments>,
) -> Result<Json<Vec<Deployment>>> {
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Error::invalid(
            "limit",
            format!("must be between 1 and {MAX_PAGE}"),
        ));
    }
    let mut conn = state.db.acquire().await?;
    apps_store::get(&mut conn, user.id, app_id)
        .await?
        .ok_or(Error::NotFound("app"))?;
    drop(conn);
    let rows = store::list_for_app(&state.db, app_id, query.before, limit).await?;
    Ok(Json(with_histories(&state, rows).await?))
}

/// One deployment, with every state it reached.
#[utoipa::path(get, path = "/api/v1/deployments/{id}", tag = "deployments",
    params(("id" = Uuid, Path, description = "deployment id")), security(("bearer" = [])),
    responses((status = 200, body = Deployment), (status = 404, body = crate::error::Problem)))]
async fn get_deployment(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<Deployment>> {
    Ok(Json(load(&state, user.id, id).await?))
}

/// Cancel a deployment in progress: it ends `cancelled` at once, and the
/// workers stop its clone, build or deploy where it is. A deployment that
/// already ended is a `409`.
#[utoipa::path(post, path = "/api/v1/deployments/{id}/cancel", tag = "deployments",
    params(("id" = Uuid, Path, description = "deployment id")), security(("bearer" = [])),
    responses((status = 202, body = Deployment, description = "cancelled; its work is being stopped"),
              (status = 404, body = crate::error::Problem),
              (status = 409, body = crate::error::Problem, description = "the deployment already ended")))]
async fn cancel_deployment(
    State(state): State<AppState>,
    user: CurrentUser,
    source: SourceAddr,
    Path(id): Path<Uuid>,
) -> Result<(StatusCode, Json<Deployment>)> {
    let row = store::get_owned(&state.db, user.id, id)
        .await?
        .ok_or(Error::NotFound("deployment"))?;
    let mut tx = state.db.begin().await?;
    let username: String = sqlx::query_scalar("SELECT username FROM users WHERE id = $1")
        .bind(user.id)
        .fetch_one(&mut *tx)
        .await?;
    let reason = format!("cancelled by {username}");
    let applied = transitions::transition(
        &mut tx,
        id,
        DeploymentState::Cancelled,
        transitions::Change::ended_by_berth(&reason),
    )
    .await?;
    match applied {
        transitions::Applied::Transitioned { from, .. } => {
            let details = serde_json::json!({"app_id": row.app_id, "state": from.as_str()});
            let event = Event::new(user.id, "deployment.cancel", "deployment", id, source);
            audit::record(&mut tx, event.details(details)).await?;
        }
        transitions::Applied::Ignored { current, .. } => {
            return Err(Error::Conflict(format!(
                "the deployment already ended `{current}`; only a deployment in progress can be cancelled"
            )));
        }
        transitions::Applied::UnknownDeployment => return Err(Error::NotFound("deployment")),
    }
    tx.commit().await?;
    state.outbox.notify_one();
    state.github_status.notify_one();
    metrics::counter!("berth_deployments_cancelled_total", "by" => "user").increment(1);
    Ok((StatusCode::ACCEPTED, Json(load(&state, user.id, id).await?)))
}

/// The app's releases, newest first; configs show env var names only.
#[utoipa::path(get, path = "/api/v1/apps/{id}/releases", tag = "deployments",
    params(("id" = Uuid, Path, description = "app id")), security(("bearer" = [])),
    responses((status = 200, body = [ReleaseView]), (status = 404, body = crate::error::Problem)))]
async fn list_releases(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(app_id): Path<Uuid>,
) -> Result<Json<Vec<ReleaseView>>> {
    let mut conn = state.db.acquire().await?;
    let app = apps_store::get(&mut conn, user.id, app_id)
        .await?
        .ok_or(Error::NotFound("app"))?;
    drop(conn);
    let rows = releases::list_for_app(&state.db, app_id).await?;
    Ok(Json(
        rows.into_iter()
            .map(|row| ReleaseView::from_row(row, app.current_release_id, &state.key, &app.tenant))
            .collect(),
    ))
}
