//! GitHub push webhooks. Each app has its own secret and its own payload
//! URL, `/webhooks/github/{app id}`: the URL says which secret to check, so
//! the signature is verified before anything in the body is read, and apps
//! that share a repository (a monorepo) each get their own hook and secret.
//! That is the URL berth shows and registers. `/webhooks/github`, without
//! an app, serves hooks set up by hand on one URL (`repo_wide`): it reads
//! only the repository from the unverified body and acts for the apps of
//! that repository whose secret signed the delivery.
//!
//! A delivery with a good signature is remembered (per app, by delivery id
//! and by body hash), so a replay does nothing. `ping` answers a pong;
//! `push` to the app's branch deploys exactly the pushed head commit, unless
//! only files outside the app's folder changed; anything else is ignored.

mod deliver;
pub mod manage;
#[cfg(test)]
mod props;
pub mod push;
pub mod repo_wide;
pub mod store;

use crate::audit::SourceAddr;
use crate::error::{Error, Result};
use crate::extract::{Json, Path};
use crate::state::AppState;
use crate::webhook_guard::signature;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use berth_proto::Binding;
use deliver::Verified;
use serde::Serialize;
use std::borrow::Cow;
use utoipa::ToSchema;
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/webhooks/github/{id}", post(receive_github))
        .route("/webhooks/github", post(repo_wide::receive_github_repo))
        .route(
            "/apps/{id}/webhook",
            get(manage::get_webhook)
                .post(manage::create_webhook)
                .delete(manage::delete_webhook),
        )
}

/// GitHub caps payloads at 25 MB. The per-app URL reads that much only
/// for an app that has a webhook, and checks one secret.
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
    pub(crate) fn ignored(reason: impl Into<String>) -> Self {
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

/// The one answer to every delivery that is not proven to come from an
/// app's hook: no app, no webhook, no repository, no or a wrong signature.
fn unauthorized() -> Error {
    Error::Unauthorized(
        "the X-Hub-Signature-256 signature is missing or does not match the app's webhook secret",
    )
}

/// The request's body, refusing more than `max` bytes: by the declared
/// length first, so an oversized body is not read at all, and otherwise as
/// soon as `max` bytes came without its end.
async fn read_body(headers: &HeaderMap, body: Body, max: usize) -> Result<Bytes> {
    let declared = header(headers, header::CONTENT_LENGTH.as_str())
        .and_then(|length| length.parse::<usize>().ok());
    if declared.is_some_and(|length| length > max) {
        return Err(Error::PayloadTooLarge);
    }
    axum::body::to_bytes(body, max)
        .await
        .map_err(|_| Error::PayloadTooLarge)
}

/// 202 when the delivery requested a deployment, else 200.
fn status(deployed: bool) -> StatusCode {
    if deployed {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    }
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
        (status = 413, body = crate::error::Problem),
        (status = 429, body = crate::error::Problem, description = "too many deliveries from this address")))]
#[tracing::instrument(skip_all, fields(app_id = %app_id, delivery, event))]
async fn receive_github(
    State(state): State<AppState>,
    source: SourceAddr,
    Path(app_id): Path<Uuid>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<DeliveryOutcome>)> {
    state.webhooks.admit(source.0)?;
    // No body is read unless the app has a secret and the request a signature.
    let Some((owner, sealed)) = store::secret(&state.db, app_id).await? else {
        return Err(unauthorized());
    };
    let Some(signature) = header(&headers, signature::HEADER) else {
        return Err(unauthorized());
    };
    let body = read_body(&headers, body, MAX_BODY_BYTES).await?;
    let secret = state.key.open(&Binding::webhook_secret(app_id), &sealed)?;
    let signed = state
        .webhooks
        .signed_by(vec![((), secret)], body.clone(), signature.to_owned())
        .await?;
    if signed.is_empty() {
        tracing::warn!("webhook delivery with a wrong signature refused");
        return Err(unauthorized());
    }
    let verified = Verified::read(&headers, &body)?;
    let outcome = deliver::handle(&state, source, owner, app_id, &verified).await?;
    Ok((status(outcome.deployment_id.is_some()), Json(outcome)))
}
