//! An app's webhook, for its owner: create or rotate the secret (shown
//! once), optionally registering the hook on the GitHub repository with a
//! token the caller gives; show whether one is configured and what it last
//! received; remove it.

use super::store;
use crate::apps_store;
use crate::audit::{self, Event, SourceAddr};
use crate::auth::CurrentUser;
use crate::error::{Error, Result};
use crate::extract::{Json, Path};
use crate::github_api::repo_url::repository;
use crate::github_api::GitHubError;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use berth_proto::Binding;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// The events berth's hooks subscribe to.
pub const EVENTS: [&str; 1] = ["push"];
pub const CONTENT_TYPE: &str = "application/json";

/// The payload URL's path, under berth's public address.
pub fn path(app_id: Uuid) -> String {
    format!("/api/v1/webhooks/github/{app_id}")
}

/// The absolute payload URL, when berth knows its public address.
pub fn url(state: &AppState, app_id: Uuid) -> Option<String> {
    let base = state.settings.public_url.as_deref()?;
    Some(format!("{}{}", base.trim_end_matches('/'), path(app_id)))
}

/// 256 random bits, hex: what GitHub signs deliveries with.
fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Optional: have berth register the hook on the repository.
#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// A GitHub token allowed to manage the repository's hooks (classic:
    /// `admin:repo_hook`; fine-grained: "Webhooks" read and write). berth
    /// then creates the hook, or updates the one it made before, with the new
    /// secret. Used for this request only, never stored.
    pub github_token: Option<String>,
}

/// A new webhook secret with where to use it. The secret is shown only here.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookSecret {
    /// The payload URL to give GitHub; null when berth's public URL
    /// (BERTH_PUBLIC_URL) is not configured: then use `path` on it.
    pub url: Option<String>,
    pub path: String,
    /// The secret GitHub signs deliveries with. Shown this once.
    pub secret: String,
    #[schema(example = "application/json")]
    pub content_type: &'static str,
    /// The events to send.
    pub events: Vec<&'static str>,
    /// Whether berth registered the hook on GitHub (a token was given).
    pub registered: bool,
    /// The hook's id on GitHub, when berth registered it.
    pub github_hook_id: Option<u64>,
    pub created_at: DateTime<Utc>,
    pub rotated_at: DateTime<Utc>,
}

/// What a delivery did, as remembered.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    pub delivery_id: String,
    pub event: String,
    /// `deployed`, `pong` or `ignored: <reason>`.
    pub outcome: Option<String>,
    pub deployment_id: Option<Uuid>,
    pub received_at: DateTime<Utc>,
}

/// Whether the app has a webhook; never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct Webhook {
    pub configured: bool,
    pub url: Option<String>,
    pub path: String,
    pub created_at: Option<DateTime<Utc>>,
    pub rotated_at: Option<DateTime<Utc>>,
    /// The latest delivery with a good signature.
    pub last_delivery: Option<DeliveryView>,
}

fn token_problem(message: impl Into<String>) -> Error {
    Error::invalid("github_token", message)
}

/// Registers the hook on the app's repository with the caller's token.
async fn register(
    state: &AppState,
    repo_url: &str,
    url: Option<&str>,
    secret: &str,
    token: &str,
) -> Result<u64> {
    let url = url.ok_or_else(|| {
        token_problem("berth's public URL (BERTH_PUBLIC_URL) is not configured, so GitHub cannot be told where to deliver")
    })?;
    let host = state.github.host();
    let (owner, repo) = repository(repo_url, host).ok_or_else(|| {
        token_problem(format!(
            "the app's repository is not a repository on {host}"
        ))
    })?;
    state
        .github
        .create_hook(&owner, &repo, url, secret, token)
        .await
        .map_err(|error| match error {
            GitHubError::Unavailable(reason) => Error::Unavailable(reason),
            refused => token_problem(refused.to_string()),
        })
}

/// Create the app's webhook secret, or rotate it (the old one stops
/// working at once). The answer is the only time the secret is shown. With
/// a `github_token`, berth also registers the hook on the repository; if
/// GitHub refuses, nothing changes.
#[utoipa::path(post, path = "/api/v1/apps/{id}/webhook", tag = "webhooks",
    params(("id" = Uuid, Path, description = "app id")), request_body = Option<CreateWebhook>,
    security(("bearer" = [])),
    responses((status = 201, body = WebhookSecret), (status = 404, body = crate::error::Problem),
              (status = 422, body = crate::error::Problem, description = "GitHub refused the hook"),
              (status = 503, body = crate::error::Problem, description = "GitHub cannot be reached")))]
pub(super) async fn create_webhook(
    State(state): State<AppState>,
    user: CurrentUser,
    source: SourceAddr,
    Path(id): Path<Uuid>,
    body: Option<Json<CreateWebhook>>,
) -> Result<(StatusCode, Json<WebhookSecret>)> {
    let request = body.map(|Json(request)| request).unwrap_or_default();
    let mut tx = state.db.begin().await?;
    let app = apps_store::lock_owned(&mut tx, user.id, id).await?;
    let secret = new_secret();
    let sealed = state
        .key
        .seal(&Binding::webhook_secret(id), secret.as_bytes());
    store::set_secret(&mut tx, id, &sealed).await?;
    // Registered before the commit: if GitHub refuses, the old secret stays.
    let github_hook_id = match request.github_token.as_deref().map(str::trim) {
        Some(token) if !token.is_empty() => {
            let url = url(&state, id);
            Some(register(&state, &app.repo_url, url.as_deref(), &secret, token).await?)
        }
        Some(_) => return Err(token_problem("must not be empty")),
        None => None,
    };
    let row = store::get(&mut tx, id)
        .await?
        .ok_or_else(|| Error::internal("the webhook just written is missing"))?;
    // Never the secret nor the GitHub token.
    let details = serde_json::json!({"name": app.name, "rotated": row.rotated_at > row.created_at,
        "registered_on_github": github_hook_id.is_some(), "github_hook_id": github_hook_id});
    let event = Event::new(user.id, "app.webhook_set", "app", id, source).details(details);
    audit::record(&mut tx, event).await?;
    tx.commit().await?;
    tracing::info!(app_id = %id, ?github_hook_id, "webhook secret set");
    Ok((
        StatusCode::CREATED,
        Json(WebhookSecret {
            url: url(&state, id),
            path: path(id),
            secret,
            content_type: CONTENT_TYPE,
            events: EVENTS.to_vec(),
            registered: github_hook_id.is_some(),
            github_hook_id,
            created_at: row.created_at,
            rotated_at: row.rotated_at,
        }),
    ))
}

/// Whether the app has a webhook, its payload URL and its latest delivery.
#[utoipa::path(get, path = "/api/v1/apps/{id}/webhook", tag = "webhooks",
    params(("id" = Uuid, Path, description = "app id")), security(("bearer" = [])),
    responses((status = 200, body = Webhook), (status = 404, body = crate::error::Problem)))]
pub(super) async fn get_webhook(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<Webhook>> {
    let mut conn = state.db.acquire().await?;
    apps_store::get(&mut conn, user.id, id)
        .await?
        .ok_or(Error::NotFound("app"))?;
    let row = store::get(&mut conn, id).await?;
    let last = store::last_delivery(&mut conn, id).await?;
    Ok(Json(Webhook {
        configured: row.is_some(),
        url: url(&state, id),
        path: path(id),
        created_at: row.as_ref().map(|row| row.created_at),
        rotated_at: row.as_ref().map(|row| row.rotated_at),
        last_delivery: last.map(|d| DeliveryView {
            delivery_id: d.delivery_id,
            event: d.event,
            outcome: d.outcome,
            deployment_id: d.deployment_id,
            received_at: d.received_at,
        }),
    }))
}

/// Remove the app's webhook: deliveries are refused (401) from now on.
/// The hook on GitHub stays until it is removed there.
#[utoipa::path(delete, path = "/api/v1/apps/{id}/webhook", tag = "webhooks",
    params(("id" = Uuid, Path, description = "app id")), security(("bearer" = [])),
    responses((status = 204, description = "removed (or there was none)"),
              (status = 404, body = crate::error::Problem)))]
pub(super) async fn delete_webhook(
    State(state): State<AppState>,
    user: CurrentUser,
    source: SourceAddr,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    let mut tx = state.db.begin().await?;
    if !apps_store::lock(&mut tx, user.id, id).await? {
        return Err(Error::NotFound("app"));
    }
    if store::delete(&mut tx, id).await? {
        tracing::info!(app_id = %id, "webhook removed");
        let event = Event::new(user.id, "app.webhook_deleted", "app", id, source);
        audit::record(&mut tx, event).await?;
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
