//! GitHub push webhooks. Each app has its own secret and its own payload
//! URL, `/webhooks/github/{app id}`: the URL says which secret to check, so
//! the signature is verified before anything in the body is read, and apps
//! that share a repository (a monorepo) each get their own hook and secret.
//!
//! A delivery with a good signature is remembered (per app, by delivery id
//! and by body hash), so a replay does nothing. `ping` answers a pong;
//! `push` to the app's branch deploys exactly the pushed head commit, unless
//! only files outside the app's folder changed; anything else is ignored.

pub mod github;
pub mod manage;
pub mod push;
pub mod signature;
pub mod store;

use crate::apps::store as apps_store;
use crate::audit::{self, Event, SourceAddr};
use crate::deployments::request::{request_build, BuildIntent, Trigger};
use crate::deployments::requested;
use crate::error::{Error, Result};
use crate::extract::{Json, Path};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use chrono::Utc;
use push::{Decision, PushEvent, Target};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use std::borrow::Cow;
use utoipa::ToSchema;
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/webhooks/github/{id}", post(receive_github))
        .route(
            "/apps/{id}/webhook",
            get(manage::get_webhook)
                .post(manage::create_webhook)
                .delete(manage::delete_webhook),
        )
}

/// GitHub caps payloads at 25 MB.
pub const MAX_BODY_BYTES: usize = 25 * 1024 * 1024;
const DELIVERY_HEADER: &str = "x-github-delivery";
const EVENT_HEADER: &str = "x-github-event";

/// What a delivery did. GitHub only needs a 2xx; people read this in the
/// hook's "Recent deliveries".
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct DeliveryOutcome {
    /// The deployment the push requested.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<Uuid>,
    /// The commit it deploys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Why nothing was done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored: Option<String>,
    /// The answer to `ping`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pong: Option<bool>,
}

impl DeliveryOutcome {
    fn ignored(reason: impl Into<String>) -> Self {
        Self {
            ignored: Some(reason.into()),
            ..Self::default()
        }
    }

    /// As remembered in `webhook_deliveries.outcome`.
    fn summary(&self) -> String {
        match (&self.deployment_id, &self.ignored) {
            (Some(_), _) => "deployed".into(),
            (None, Some(reason)) => format!("ignored: {reason}"),
            (None, None) => "pong".into(),
        }
    }
}

fn unauthorized() -> Error {
    Error::Unauthorized(
        "the X-Hub-Signature-256 signature is missing or does not match the app's webhook secret",
    )
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

/// The delivery's JSON: the body, or its `payload` field when the hook was
/// set up with GitHub's form content type.
fn payload_json<'a>(headers: &HeaderMap, body: &'a [u8]) -> Result<Cow<'a, [u8]>> {
    let form = header(headers, header::CONTENT_TYPE.as_str()).is_some_and(|kind| {
        kind.to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded")
    });
    if !form {
        return Ok(Cow::Borrowed(body));
    }
    url::form_urlencoded::parse(body)
        .find(|(key, _)| key == "payload")
        .map(|(_, json)| Cow::Owned(json.into_owned().into_bytes()))
        .ok_or_else(|| Error::BadRequest("the form has no `payload` field".into()))
}

/// Receive a GitHub webhook delivery for an app (the payload URL its hook
/// posts to). The signature must match the app's secret; a delivery already
/// received does nothing.
#[utoipa::path(post, path = "/api/v1/webhooks/github/{id}", tag = "webhooks",
    params(("id" = Uuid, Path, description = "app id"),
           ("X-Hub-Signature-256" = String, Header, description = "sha256=<HMAC of the body>"),
           ("X-GitHub-Event" = String, Header, description = "push, ping, ..."),
           ("X-GitHub-Delivery" = String, Header, description = "the event's id")),
    request_body(content = Object, description = "GitHub's event payload (JSON or form)"),
    responses(
        (status = 202, body = DeliveryOutcome, description = "a deployment of the pushed commit was requested"),
        (status = 200, body = DeliveryOutcome, description = "ping, replay or ignored event"),
        (status = 400, body = crate::error::Problem),
        (status = 401, body = crate::error::Problem, description = "missing or wrong signature"),
        (status = 413, body = crate::error::Problem)))]
#[tracing::instrument(skip_all, fields(app_id = %app_id, delivery, event, deployment_id))]
async fn receive_github(
    State(state): State<AppState>,
    source: SourceAddr,
    Path(app_id): Path<Uuid>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<DeliveryOutcome>)> {
    // No body is read unless the app has a secret and the request a signature.
    let Some((owner, sealed)) = store::secret(&state.db, app_id).await? else {
        return Err(unauthorized());
    };
    let Some(signature) = header(&headers, signature::HEADER) else {
        return Err(unauthorized());
    };
    let declared = header(&headers, header::CONTENT_LENGTH.as_str())
        .and_then(|length| length.parse::<usize>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES) {
        return Err(Error::PayloadTooLarge);
    }
    let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| Error::PayloadTooLarge)?;
    let secret = state.key.open(&sealed)?;
    if !signature::verify(&secret, &body, signature) {
        tracing::warn!("webhook delivery with a wrong signature refused");
        return Err(unauthorized());
    }
    let delivery = header(&headers, DELIVERY_HEADER)
        .filter(|id| id.len() <= 200)
        .ok_or_else(|| Error::BadRequest("the X-GitHub-Delivery header is required".into()))?;
    let event = header(&headers, EVENT_HEADER)
        .ok_or_else(|| Error::BadRequest("the X-GitHub-Event header is required".into()))?;
    let span = tracing::Span::current();
    span.record("delivery", delivery);
    span.record("event", event);
    let push = match event {
        "push" => Some(
            PushEvent::parse(&payload_json(&headers, &body)?)
                .map_err(|e| Error::BadRequest(format!("the push payload cannot be read: {e}")))?,
        ),
        _ => None,
    };

    let mut tx = state.db.begin().await?;
    let digest = Sha256::digest(&body);
    if !store::record_delivery(&mut tx, app_id, delivery, &digest, event).await? {
        tracing::info!("replayed webhook delivery ignored");
        let outcome = DeliveryOutcome::ignored(format!("delivery {delivery} was already received"));
        return Ok((StatusCode::OK, Json(outcome)));
    }
    let outcome = match (event, push) {
        ("ping", _) => DeliveryOutcome {
            pong: Some(true),
            ..DeliveryOutcome::default()
        },
        (_, Some(push)) => {
            let outcome = on_push(&mut tx, owner, app_id, &push, state.github.host()).await?;
            if let Some(id) = outcome.deployment_id {
                // The owner's log: a deploy of their app, by whoever pushed.
                let pusher = push.pushed_by().unwrap_or("unknown");
                let details = json!({"app_id": app_id, "trigger": Trigger::Push.as_str(),
                    "commit": outcome.commit, "ref": push.git_ref, "delivery": delivery});
                let event = Event::new(owner, "deployment.create", "deployment", id, source)
                    .actor(format!("github:{pusher}"))
                    .details(details);
                audit::record(&mut tx, event).await?;
            }
            outcome
        }
        (other, None) => {
            DeliveryOutcome::ignored(format!("berth acts on push events, not on {other}"))
        }
    };
    let summary = outcome.summary();
    store::set_outcome(&mut tx, app_id, delivery, &summary, outcome.deployment_id).await?;
    tx.commit().await?;
    tracing::info!(outcome = %summary, "webhook delivery handled");
    if outcome.deployment_id.is_some() {
        requested(&state, Trigger::Push);
        return Ok((StatusCode::ACCEPTED, Json(outcome)));
    }
    Ok((StatusCode::OK, Json(outcome)))
}

/// Deploys the pushed commit if the push is for the app (locked here).
async fn on_push(
    tx: &mut PgConnection,
    owner: Uuid,
    app_id: Uuid,
    push: &PushEvent,
    github_host: &str,
) -> Result<DeliveryOutcome> {
    if !apps_store::lock(tx, owner, app_id).await? {
        return Ok(DeliveryOutcome::ignored("the app was deleted"));
    }
    let app = apps_store::get(tx, owner, app_id)
        .await?
        .ok_or(Error::NotFound("app"))?;
    let target = Target {
        repo_url: &app.repo_url,
        branch: &app.branch,
        subdirectory: app.subdirectory.as_deref(),
    };
    match push::decide(push, &target, Utc::now()) {
        Decision::Ignore(reason) => Ok(DeliveryOutcome::ignored(reason)),
        Decision::Deploy(commit) => {
            let intent = BuildIntent {
                trigger: Trigger::Push,
                git_ref: &app.branch,
                commit: Some(&commit),
                created_by: None,
                pushed_by: push.pushed_by(),
                github_host,
            };
            let id = request_build(tx, &app, intent).await?;
            tracing::Span::current().record("deployment_id", tracing::field::display(id));
            Ok(DeliveryOutcome {
                deployment_id: Some(id),
                commit: Some(commit),
                ..DeliveryOutcome::default()
            })
        }
    }
}
