//! Apps: create, list, read, change, delete; read env var values.

pub mod model;
pub(crate) mod quota_view;

use crate::apps_store as store;
use crate::audit::{self, Event, SourceAddr};
use crate::auth::CurrentUser;
use crate::deployments::{self, transitions};
use crate::error::{Error, Result};
use crate::extract::{Json, Path};
use crate::outbox;
use crate::quota::{self, StoredResources};
use crate::state::AppState;
use crate::validate;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::Router;
use berth_proto::{AppRemovalRequested, AppScaleRequested, Binding, Cancellation, DeploymentState};
use model::{App, AppEnv, CreateApp, EnvVars, ScaleApp, UpdateApp, DEFAULT_BRANCH, DEFAULT_PORT};
use serde_json::json;
use sqlx::PgConnection;
use store::AppRow;
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/apps", get(list_apps).post(create_app))
        .route(
            "/apps/{id}",
            get(get_app).patch(update_app).delete(delete_app),
        )
        .route("/apps/{id}/env", get(get_env))
        .route("/apps/{id}/scale", put(scale_app))
        .route("/me/quota", get(quota_view::get_quota))
}

async fn load(state: &AppState, owner: Uuid, id: Uuid) -> Result<App> {
    let mut conn = state.db.acquire().await?;
    let row = store::get(&mut conn, owner, id)
        .await?
        .ok_or(Error::NotFound("app"))?;
    App::from_row(row, &state.key, &state.settings.quotas.app)
}

/// Create an app. Over the account's app count or its memory or CPU quota
/// is a `422` `quota-exceeded` problem naming the limit.
#[utoipa::path(post, path = "/api/v1/apps", tag = "apps", request_body = CreateApp,
    security(("bearer" = [])),
    responses((status = 201, body = App), (status = 409, body = crate::error::Problem),
              (status = 422, body = crate::error::Problem)))]
async fn create_app(
    State(state): State<AppState>,
    user: CurrentUser,
    source: SourceAddr,
    Json(request): Json<CreateApp>,
) -> Result<(StatusCode, Json<App>)> {
    let policy = state.settings.repo_policy();
    let quotas = &state.settings.quotas;
    request.validate(&policy, &quotas.app)?;
    validate::repo_host(&request.repo_url, &policy).await?;
    let env = request.env.unwrap_or_default();
    let resources = StoredResources::default().apply(&request.resources.unwrap_or_default());
    let effective = quotas.app.effective(resources);
    let mut tx = state.db.begin().await?;
    let id = Uuid::now_v7();
    let tenant = store::tenant_of(&mut tx, user.id).await?;
    let app = store::NewApp {
        id,
        owner: user.id,
        name: &request.name,
        repo_url: request.repo_url.trim(),
        branch: request.branch.as_deref().unwrap_or(DEFAULT_BRANCH),
        subdirectory: request.subdirectory.as_deref(),
        port: request.port.unwrap_or(DEFAULT_PORT),
        health_check_path: request.health_check_path.as_deref(),
        env: state.key.seal_json(&Binding::app_env(&tenant, id), &env),
        resources,
    };
    // Env var names only: their values may be secrets.
    let details = json!({
        "name": app.name, "repo_url": audit::repo_url(app.repo_url), "branch": app.branch,
        "subdirectory": app.subdirectory, "port": app.port,
        "health_check_path": app.health_check_path, "env_names": env.keys().collect::<Vec<_>>(),
        "resources": effective,
    });
    quota::check_new_app(&mut tx, user.id, quotas, effective).await?;
    store::insert(&mut tx, app).await?;
    let event = Event::new(user.id, "app.create", "app", id, source).details(details);
    audit::record(&mut tx, event).await?;
    tx.commit().await?;
    tracing::info!(app_id = %id, name = %request.name, "app created");
    Ok((StatusCode::CREATED, Json(load(&state, user.id, id).await?)))
}

/// The caller's apps, by name.
#[utoipa::path(get, path = "/api/v1/apps", tag = "apps", security(("bearer" = [])),
    responses((status = 200, body = [App])))]
async fn list_apps(State(state): State<AppState>, user: CurrentUser) -> Result<Json<Vec<App>>> {
    let rows = store::list(&state.db, user.id).await?;
    let apps = rows
        .into_iter()
        .map(|row| App::from_row(row, &state.key, &state.settings.quotas.app))
        .collect::<Result<_>>()?;
    Ok(Json(apps))
}

/// One app.
#[utoipa::path(get, path = "/api/v1/apps/{id}", tag = "apps",
    params(("id" = Uuid, Path, description = "app id")), security(("bearer" = [])),
    responses((status = 200, body = App), (status = 404, body = crate::error::Problem)))]
async fn get_app(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<App>> {
    Ok(Json(load(&state, user.id, id).await?))
}

/// Change an app. A new `env` replaces the set and bumps `env_version`;
/// changes apply from the next deployment. More `resources` than the
/// account's memory or CPU quota allows is a `422` `quota-exceeded`.
#[utoipa::path(patch, path = "/api/v1/apps/{id}", tag = "apps",
    params(("id" = Uuid, Path, description = "app id")), request_body = UpdateApp,
    security(("bearer" = [])),
    responses((status = 200, body = App), (status = 404, body = crate::error::Problem),
              (status = 422, body = crate::error::Problem)))]
async fn update_app(
    State(state): State<AppState>,
    user: CurrentUser,
    source: SourceAddr,
    Path(id): Path<Uuid>,
    Json(request): Json<UpdateApp>,
) -> Result<Json<App>> {
    let policy = state.settings.repo_policy();
    let quotas = &state.settings.quotas;
    request.validate(&policy, &quotas.app)?;
    if let Some(url) = &request.repo_url {
        validate::repo_host(url, &policy).await?;
    }
    let mut tx = state.db.begin().await?;
    let current = store::lock_owned(&mut tx, user.id, id).await?;
    let resources = match &request.resources {
        Some(change) => {
            let stored = current.stored_resources().apply(change);
            let (before, after) = (
                quotas.app.effective(current.stored_resources()),
                quotas.app.effective(stored),
            );
            let replicas = current.replica_count();
            quota::check_app_change(
                &mut tx,
                user.id,
                quotas,
                id,
                (before, replicas),
                (after, replicas),
            )
            .await?;
            Some((stored, after))
        }
        None => None,
    };
    // Only a different set is a new version.
    let (env, env_names) = match request.env {
        Some(env) => {
            let binding = Binding::app_env(&current.tenant, current.id);
            let old: EnvVars = state.key.open_json(&binding, &current.env_sealed)?;
            let names = env.keys().cloned().collect::<Vec<_>>();
            let sealed = (old != env).then(|| state.key.seal_json(&binding, &env));
            (sealed, Some(names))
        }
        None => (None, None),
    };
    let mut changes = serde_json::Map::new();
    if let Some(url) = &request.repo_url {
        changes.insert("repo_url".into(), json!(audit::repo_url(url.trim())));
    }
    if let Some(branch) = &request.branch {
        changes.insert("branch".into(), json!(branch));
    }
    if let Some(subdirectory) = &request.subdirectory {
        changes.insert("subdirectory".into(), json!(subdirectory));
    }
    if let Some(port) = request.port {
        changes.insert("port".into(), json!(port));
    }
    if let Some(path) = &request.health_check_path {
        changes.insert("health_check_path".into(), json!(path));
    }
    if let Some((_, effective)) = resources {
        changes.insert("resources".into(), json!(effective));
    }
    if let Some(names) = env_names {
        // Names only, and whether the set changed: values may be secrets.
        changes.insert("env_names".into(), json!(names));
        changes.insert("env_changed".into(), json!(env.is_some()));
    }
    let event = Event::new(user.id, "app.update", "app", id, source)
        .details(json!({"name": current.name, "changes": changes}));
    store::update(
        &mut tx,
        id,
        store::AppChanges {
            repo_url: request.repo_url.map(|url| url.trim().to_owned()),
            branch: request.branch,
            subdirectory: request.subdirectory,
            port: request.port,
            health_check_path: request.health_check_path,
            env,
            resources: resources.map(|(stored, _)| stored),
        },
    )
    .await?;
    audit::record(&mut tx, event).await?;
    tx.commit().await?;
    Ok(Json(load(&state, user.id, id).await?))
}

/// Delete an app: its in-progress deployments are cancelled and the runtime
/// is asked to remove everything it runs.
#[utoipa::path(delete, path = "/api/v1/apps/{id}", tag = "apps",
    params(("id" = Uuid, Path, description = "app id")), security(("bearer" = [])),
    responses((status = 202, description = "deleted; the runtime removes its workloads"),
              (status = 404, body = crate::error::Problem)))]
async fn delete_app(
    State(state): State<AppState>,
    user: CurrentUser,
    source: SourceAddr,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    let mut tx = state.db.begin().await?;
    let app = store::lock_owned(&mut tx, user.id, id).await?;
    remove(&mut tx, &app, source).await?;
    tx.commit().await?;
    state.outbox.notify_one();
    state.github_status.notify_one();
    Ok(StatusCode::ACCEPTED)
}

/// Deleting an app, for its owner or with the owner's account: cancels its
/// deployments in progress, frees its name and asks the runtime to remove
/// it (through the outbox, so notify the relay after committing). `app`
/// must be locked in `tx`.
pub async fn remove(tx: &mut PgConnection, app: &AppRow, source: SourceAddr) -> Result<()> {
    let cancelled = transitions::end_in_progress(
        tx,
        app.id,
        DeploymentState::Cancelled,
        "the app was deleted",
    )
    .await?;
    store::mark_deleted(tx, app.id).await?;
    // Its domains are free for others to claim (the router drops them
    // with the app's route).
    crate::custom_domains::store::delete_for_app(tx, app.id).await?;
    // Every worker stops what it holds of the app, including work whose
    // deployment already ended; the removal then clears what runs.
    let everything = Cancellation {
        app: app.app_ref(),
        deployment_id: None,
        reason: "the app was deleted".into(),
        state: DeploymentState::Cancelled,
    };
    outbox::enqueue(tx, None, &everything).await?;
    outbox::enqueue(tx, None, &AppRemovalRequested { app: app.app_ref() }).await?;
    let details = json!({"name": app.name, "cancelled_deployments": cancelled});
    let event = Event::new(app.owner_id, "app.delete", "app", app.id, source).details(details);
    audit::record(tx, event).await?;
    tracing::info!(app_id = %app.id, cancelled, "app deleted");
    Ok(())
}

/// Set how many instances of the app run; `0` stops it and a later scale
/// up resumes it. The scale belongs to the app: later deploys and rollbacks
/// keep it. Scaling past the account's memory or CPU quota is a `422`
/// `quota-exceeded`; scaling down always works.
#[utoipa::path(put, path = "/api/v1/apps/{id}/scale", tag = "apps",
    params(("id" = Uuid, Path, description = "app id")), request_body = ScaleApp,
    security(("bearer" = [])),
    responses((status = 202, body = App, description = "the runtime is asked to scale"),
              (status = 404, body = crate::error::Problem),
              (status = 422, body = crate::error::Problem)))]
async fn scale_app(
    State(state): State<AppState>,
    user: CurrentUser,
    source: SourceAddr,
    Path(id): Path<Uuid>,
    Json(request): Json<ScaleApp>,
) -> Result<(StatusCode, Json<App>)> {
    request.validate()?;
    let mut tx = state.db.begin().await?;
    let app = store::lock_owned(&mut tx, user.id, id).await?;
    let quotas = &state.settings.quotas;
    let resources = quotas.app.effective(app.stored_resources());
    quota::check_app_change(
        &mut tx,
        user.id,
        quotas,
        id,
        (resources, app.replica_count()),
        (resources, request.replicas),
    )
    .await?;
    store::set_replicas(&mut tx, id, request.replicas).await?;
    let live_deployment_id = deployments::store::live(&mut tx, id)
        .await?
        .map(|(deployment_id, _)| deployment_id);
    let message = AppScaleRequested {
        app: app.app_ref(),
        replicas: request.replicas,
        live_deployment_id,
    };
    outbox::enqueue(&mut tx, None, &message).await?;
    let details = json!({"name": app.name, "from": app.replicas, "replicas": request.replicas});
    let event = Event::new(user.id, "app.scale", "app", id, source).details(details);
    audit::record(&mut tx, event).await?;
    tx.commit().await?;
    state.outbox.notify_one();
    tracing::info!(app_id = %id, replicas = request.replicas, "app scaled");
    Ok((StatusCode::ACCEPTED, Json(load(&state, user.id, id).await?)))
}

/// The app's env vars with their values.
#[utoipa::path(get, path = "/api/v1/apps/{id}/env", tag = "apps",
    params(("id" = Uuid, Path, description = "app id")), security(("bearer" = [])),
    responses((status = 200, body = AppEnv), (status = 404, body = crate::error::Problem)))]
async fn get_env(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<AppEnv>> {
    let mut conn = state.db.acquire().await?;
    let row = store::get(&mut conn, user.id, id)
        .await?
        .ok_or(Error::NotFound("app"))?;
    Ok(Json(AppEnv {
        env: state
            .key
            .open_json(&Binding::app_env(&row.tenant, row.id), &row.env_sealed)?,
        env_version: row.env_version,
    }))
}
