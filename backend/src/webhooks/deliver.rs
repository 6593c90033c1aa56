//! Acting on a delivery whose signature an app's secret verified: the same
//! for the per-app and the repository-wide payload URL.

use super::push::{self, Decision, PushEvent, Target};
use super::{header, payload_json, store, DeliveryOutcome, DELIVERY_HEADER, EVENT_HEADER};
use crate::apps_store;
use crate::audit::{self, Event, SourceAddr};
use crate::deployments::model::commit_summary;
use crate::deployments::request::{request_build, BuildIntent, Trigger};
use crate::deployments::requested;
use crate::error::{Error, Result};
use crate::state::AppState;
use axum::http::HeaderMap;
use chrono::Utc;
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;

/// A delivery read once its signature is good: its id, its event, the push
/// it carries, and the body's hash (the replay guard for unsigned headers).
pub struct Verified<'a> {
    pub delivery: &'a str,
    pub event: &'a str,
    pub push: Option<PushEvent>,
    pub digest: [u8; 32],
}

impl<'a> Verified<'a> {
    /// Reads the headers and, for `push`, the payload; what is missing or
    /// unreadable is a 400 (GitHub may redeliver once it is fixed).
    pub fn read(headers: &'a HeaderMap, body: &[u8]) -> Result<Self> {
        let delivery = header(headers, DELIVERY_HEADER)
            .filter(|id| id.len() <= 200)
            .ok_or_else(|| Error::BadRequest("the X-GitHub-Delivery header is required".into()))?;
        let event = header(headers, EVENT_HEADER)
            .ok_or_else(|| Error::BadRequest("the X-GitHub-Event header is required".into()))?;
        let span = tracing::Span::current();
        span.record("delivery", delivery);
        span.record("event", event);
        let push = match event {
            "push" => Some(
                PushEvent::parse(&payload_json(headers, body)?).map_err(|e| {
                    Error::BadRequest(format!("the push payload cannot be read: {e}"))
                })?,
            ),
            _ => None,
        };
        Ok(Self {
            delivery,
            event,
            push,
            digest: Sha256::digest(body).into(),
        })
    }
}

/// Handles a verified delivery for one app, in one transaction: remembers
/// it (a replay does nothing), answers `ping`, and deploys a push that is
/// for the app. The outcome is remembered with the delivery.
#[tracing::instrument(skip_all, fields(app_id = %app_id, deployment_id))]
pub async fn handle(
    state: &AppState,
    source: SourceAddr,
    owner: uuid::Uuid,
    app_id: uuid::Uuid,
    verified: &Verified<'_>,
) -> Result<DeliveryOutcome> {
    let Verified {
        delivery,
        event,
        push,
        digest,
    } = verified;
    let mut tx = state.db.begin().await?;
    if !store::record_delivery(&mut tx, app_id, delivery, digest, event).await? {
        tracing::info!("replayed webhook delivery ignored");
        return Ok(DeliveryOutcome::ignored(format!(
            "delivery {delivery} was already received"
        )));
    }
    let outcome = match (*event, push) {
        ("ping", _) => DeliveryOutcome {
            pong: Some(true),
            ..DeliveryOutcome::default()
        },
        (_, Some(push)) => {
            let outcome = on_push(&mut tx, owner, app_id, push, state).await?;
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
        requested(state, Trigger::Push);
    }
    Ok(outcome)
}

/// Deploys the pushed commit if the push is for the app (locked here).
async fn on_push(
    tx: &mut PgConnection,
    owner: uuid::Uuid,
    app_id: uuid::Uuid,
    push: &PushEvent,
    state: &AppState,
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
            let message = push.head_message().map(commit_summary);
            let intent = BuildIntent {
                trigger: Trigger::Push,
                git_ref: &app.branch,
                commit: Some(&commit),
                created_by: None,
                pushed_by: push.pushed_by(),
                commit_message: message.as_deref(),
                github_host: state.github.host(),
                key: &state.key,
                quotas: &state.settings.quotas,
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
