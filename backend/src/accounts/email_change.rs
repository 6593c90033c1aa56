//! Changing the account's email address. With mail configured the new
//! address must be confirmed from its inbox first; until then the profile
//! shows it as `pending_email`. The answer is the same whether or not
//! another account has the address: if one does, the mail to it says so
//! and confirming fails.

use super::mails::{self, Links};
use super::pending::{self, CONFIRM_WITHIN};
use crate::audit::{self, Event, SourceAddr};
use crate::error::{Error, Result};
use crate::extract::Json;
use crate::mail::{self, Email};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Deserialize, ToSchema)]
pub struct ConfirmEmailChange {
    /// The token from the mail.
    pub token: String,
}

/// Records the wish to move `user_id` (named `username`) to `email` and
/// returns the mail to send once the transaction commits.
pub async fn request(
    conn: &mut PgConnection,
    links: &Links<'_>,
    user_id: Uuid,
    username: &str,
    email: &str,
    source: SourceAddr,
) -> Result<Email> {
    if !pending::allow_unsolicited_mail(conn, email).await? {
        return Err(Error::TooManyRequests(
            "too many mails went to this address in the last hour; try again later".into(),
        ));
    }
    // The token exists either way, so the profile looks the same.
    let token = pending::create_email_change(conn, user_id, email, CONFIRM_WITHIN).await?;
    let event = Event::new(
        user_id,
        "account.email_change_requested",
        "user",
        user_id,
        source,
    );
    audit::record(conn, event).await?;
    Ok(
        if pending::email_in_use(conn, email, Some(user_id)).await? {
            mails::email_in_use(email)
        } else {
            mails::confirm_email_change(links, email, username, &token, CONFIRM_WITHIN)
        },
    )
}

/// Confirm a new email address with the token mailed to it. Needs no
/// sign-in: the link may be opened on another device.
#[utoipa::path(post, path = "/api/v1/auth/email-change/confirm", tag = "account",
    request_body = ConfirmEmailChange,
    responses((status = 204, description = "the account has the new address"),
              (status = 409, body = crate::error::Problem,
               description = "another account has the address"),
              (status = 422, body = crate::error::Problem)))]
pub async fn confirm(
    State(state): State<AppState>,
    source: SourceAddr,
    Json(request): Json<ConfirmEmailChange>,
) -> Result<StatusCode> {
    let mut tx = state.db.begin().await?;
    let Some((user_id, email)) =
        pending::consume_email_change(&mut tx, request.token.trim()).await?
    else {
        return Err(Error::invalid(
            "token",
            "this confirmation link is invalid, expired or already used; change the address again",
        ));
    };
    let old = super::store::lock(&mut tx, user_id).await?;
    super::store::update_profile(&mut tx, user_id, Some(&email), None).await?;
    let event = Event::new(user_id, "account.email_change", "user", user_id, source)
        .details(json!({ "changed": ["email"] }));
    audit::record(&mut tx, event).await?;
    tx.commit().await?;
    tracing::info!(%user_id, "email address changed");
    // The old address hears of it: if it was not its owner, that is where
    // they still read mail.
    if let Some(mailer) = state.mailer.clone() {
        let links = Links(state.settings.public_url.as_deref());
        let mail = mails::email_changed(&links, &old.email, &old.username);
        mail::send_later(mailer, mail, "email_changed");
    }
    Ok(StatusCode::NO_CONTENT)
}
