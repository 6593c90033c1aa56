//! Password reset by email: a one-time token, valid for
//! `BERTH_PASSWORD_RESET_TTL_MINUTES`, mailed to the account's address.
//!
//! Asking answers the same `202` whether or not the address has an account,
//! and just as fast: the mail leaves in the background. Using the token sets
//! the password and ends every session of the account.

use super::mails::{self, Links};
use super::store;
use crate::audit::{self, Event, SourceAddr};
use crate::credentials::password;
use crate::credentials::throttle::{self, Guarded};
use crate::error::{Error, Result};
use crate::extract::Json;
use crate::mail::{self, Mailer};
use crate::state::AppState;
use crate::validate;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use utoipa::ToSchema;

/// One mail per account per this long, however often a reset is asked for.
pub const RESEND_AFTER: Duration = Duration::from_secs(60);

#[derive(Debug, Deserialize, ToSchema)]
pub struct ResetRequest {
    pub email: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResetRequested {
    #[schema(example = "if this address belongs to an account, a reset link is on its way")]
    pub status: &'static str,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ResetConfirm {
    /// The token from the mail.
    pub token: String,
    /// At least 10 characters.
    pub new_password: String,
}

/// Mail a password reset link to the account with this address, if any.
#[utoipa::path(post, path = "/api/v1/auth/password-reset", tag = "account",
    request_body = ResetRequest,
    responses((status = 202, body = ResetRequested),
              (status = 404, body = crate::error::Problem, description = "mail is not configured"),
              (status = 422, body = crate::error::Problem),
              (status = 429, body = crate::error::Problem)))]
pub async fn request(
    State(state): State<AppState>,
    source: SourceAddr,
    Json(request): Json<ResetRequest>,
) -> Result<(StatusCode, Json<ResetRequested>)> {
    state
        .limiter
        .check(Guarded::PasswordReset, source.0)
        .await?;
    let mailer = state.mailer.clone().ok_or(Error::NotFound(
        "password reset by email: mail is not configured on this server (BERTH_SMTP_URL)",
    ))?;
    let email = request.email.trim();
    if let Err(message) = validate::email(email) {
        return Err(Error::invalid("email", message));
    }
    // Everything that differs between a known and an unknown address
    // happens after the answer, so its timing tells nothing either.
    let email = email.to_owned();
    tokio::spawn(async move {
        if let Err(error) = send_reset(&state, mailer, &email, source).await {
            tracing::error!(%error, "a password reset could not be started");
        }
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(ResetRequested {
            status: "if this address belongs to an account, a reset link is on its way",
        }),
    ))
}

async fn send_reset(
    state: &AppState,
    mailer: Arc<dyn Mailer>,
    email: &str,
    source: SourceAddr,
) -> Result<()> {
    // The mail goes to the address on the account, not to the one typed.
    let Some((user_id, username, address)) = store::find_by_email(&state.db, email).await? else {
        return Ok(());
    };
    let ttl = state.settings.password_reset_ttl;
    let Some(token) = store::create_reset_token(&state.db, user_id, ttl, RESEND_AFTER).await?
    else {
        return Ok(());
    };
    let event = Event::new(
        user_id,
        "account.password_reset_requested",
        "user",
        user_id,
        source,
    );
    let mut conn = state.db.acquire().await?;
    audit::record(&mut conn, event).await?;
    let links = Links(state.settings.public_url.as_deref());
    mail::send_later(
        mailer,
        mails::password_reset(&links, &address, &username, &token, ttl),
        "password_reset",
    );
    Ok(())
}

/// Set a new password with the token from the reset mail.
#[utoipa::path(post, path = "/api/v1/auth/password-reset/confirm", tag = "account",
    request_body = ResetConfirm,
    responses((status = 204, description = "the password is set; sign in with it"),
              (status = 422, body = crate::error::Problem),
              (status = 429, body = crate::error::Problem)))]
pub async fn confirm(
    State(state): State<AppState>,
    source: SourceAddr,
    Json(request): Json<ResetConfirm>,
) -> Result<StatusCode> {
    state
        .limiter
        .check(Guarded::PasswordReset, source.0)
        .await?;
    if let Err(message) = validate::password(&request.new_password) {
        return Err(Error::invalid("new_password", message));
    }
    let hash = password::hash(request.new_password).await?;
    let mut tx = state.db.begin().await?;
    let Some(user_id) = store::consume_reset_token(&mut tx, request.token.trim()).await? else {
        return Err(Error::invalid(
            "token",
            "this reset link is invalid, expired or already used; ask for a new one",
        ));
    };
    store::set_password(&mut tx, user_id, &hash).await?;
    let account = store::lock(&mut tx, user_id).await?;
    throttle::clear_login_failures(&mut tx, &[&account.username, &account.email]).await?;
    let event = Event::new(user_id, "account.password_reset", "user", user_id, source);
    audit::record(&mut tx, event).await?;
    tx.commit().await?;
    tracing::info!(%user_id, "password reset; every session ended");
    Ok(StatusCode::NO_CONTENT)
}
