//! Sign-up. With mail configured, an account exists only once its address
//! is confirmed from its inbox: the API answers every well-formed sign-up
//! with the same `202`, just as fast, and the mail tells the address's
//! owner what happened (a link to confirm; or that the address already has
//! an account; or that the username is taken). So no answer says which
//! emails or usernames exist.
//!
//! Without mail there is nothing to confirm with: the account is made at
//! once, and a taken email or username is a `409`. Operators who care set
//! `BERTH_SMTP_URL`; the backend warns at start when it is not set.

use super::mails::{self, Links};
use super::pending::{self, Registration, CONFIRM_WITHIN};
use super::store as account_store;
use crate::audit::{self, Event, SourceAddr};
use crate::auth::{self, TokenResponse, User};
use crate::credentials::password;
use crate::credentials::throttle::Guarded;
use crate::error::{Error, FieldError, Result};
use crate::extract::Json;
use crate::mail::{self, Mailer};
use crate::state::AppState;
use crate::{github, tenant_names, validate};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterRequest {
    /// A DNS-1123 label (lowercase letters, digits, '-'); it becomes your tenant name.
    #[schema(example = "alice")]
    pub username: String,
    pub email: String,
    /// At least 10 characters.
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RegistrationStarted {
    #[schema(
        example = "check your inbox at alice@example.com: the link in the mail finishes signing up"
    )]
    pub status: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ConfirmRegistration {
    /// The token from the mail.
    pub token: String,
    /// The password chosen at sign-up, typed again.
    pub password: String,
}

/// Sign up. With mail configured (the usual case) the answer is `202` and
/// the account is made when the link mailed to the address is opened;
/// without mail, `201` with the account.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", request_body = RegisterRequest,
    responses((status = 202, body = RegistrationStarted, description = "mail is configured: confirm from the inbox"),
              (status = 201, body = User, description = "mail is not configured: the account is made at once"),
              (status = 409, body = crate::error::Problem, description = "only without mail"),
              (status = 422, body = crate::error::Problem),
              (status = 429, body = crate::error::Problem)))]
pub async fn register(
    State(state): State<AppState>,
    source: SourceAddr,
    Json(request): Json<RegisterRequest>,
) -> Result<Response> {
    state.limiter.check(Guarded::Register, source.0).await?;
    let request = RegisterRequest {
        email: request.email.trim().to_owned(),
        ..request
    };
    validate_request(&request)?;
    let Some(mailer) = state.mailer.clone() else {
        let user = register_at_once(&state, request, source).await?;
        return Ok((StatusCode::CREATED, Json(user)).into_response());
    };
    let status = format!(
        "check your inbox at {}: the link in the mail finishes signing up",
        request.email
    );
    // Everything that differs between a free and a taken name happens
    // after the answer, so its timing tells nothing either.
    tokio::spawn(async move {
        if let Err(error) = start(&state, mailer, request, source).await {
            tracing::error!(%error, "a sign-up could not be started");
        }
    });
    Ok((StatusCode::ACCEPTED, Json(RegistrationStarted { status })).into_response())
}

fn validate_request(request: &RegisterRequest) -> Result<()> {
    let checks = [
        ("username", tenant_names::tenant_name(&request.username)),
        ("email", validate::email(&request.email)),
        ("password", validate::password(&request.password)),
    ];
    let errors: Vec<FieldError> = checks
        .into_iter()
        .filter_map(|(field, check)| check.err().map(|message| FieldError::new(field, message)))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Validation(errors))
    }
}

/// Mails the address what became of its sign-up.
async fn start(
    state: &AppState,
    mailer: Arc<dyn Mailer>,
    request: RegisterRequest,
    source: SourceAddr,
) -> Result<()> {
    let links = Links(state.settings.public_url.as_deref());
    let mut tx = state.db.begin().await?;
    if !pending::allow_unsolicited_mail(&mut tx, &request.email).await? {
        tracing::warn!("a sign-up sent no mail: its address had its hourly share");
        return Ok(());
    }
    let existing = account_store::find_by_email(&state.db, &request.email).await?;
    let email = if let Some((owner, username, address)) = existing {
        let event = Event::new(owner, "auth.register_existing_email", "user", owner, source);
        audit::record(&mut tx, event).await?;
        mails::already_registered(&links, &address, &username)
    } else if github::store::username_taken(&mut tx, &request.username).await? {
        mails::username_taken(&links, &request.email, &request.username)
    } else {
        let registration = Registration {
            password_hash: password::hash(request.password).await?,
            username: request.username,
            email: request.email,
        };
        let token = pending::create_registration(&mut tx, &registration, CONFIRM_WITHIN).await?;
        mails::confirm_registration(
            &links,
            &registration.email,
            &registration.username,
            &token,
            CONFIRM_WITHIN,
        )
    };
    tx.commit().await?;
    mail::send_later(mailer, email, "registration");
    Ok(())
}

async fn register_at_once(
    state: &AppState,
    request: RegisterRequest,
    source: SourceAddr,
) -> Result<User> {
    let hash = password::hash(request.password).await?;
    let mut tx = state.db.begin().await?;
    let user =
        auth::store::insert_user(&mut tx, &request.username, &request.email, Some(&hash)).await?;
    registered(&mut tx, &user, source).await?;
    tx.commit().await?;
    Ok(user)
}

async fn registered(conn: &mut sqlx::PgConnection, user: &User, source: SourceAddr) -> Result<()> {
    let event = Event::new(user.id, "auth.register", "user", user.id, source);
    audit::record(conn, event).await?;
    tracing::info!(user_id = %user.id, username = %user.username, "registered");
    metrics::counter!("berth_users_registered_total").increment(1);
    Ok(())
}

/// Finish signing up with the token from the mail and the password chosen
/// at sign-up: the account is made and signed in (with `X-Berth-Session:
/// cookie`, the refresh token is in the session cookie).
#[utoipa::path(post, path = "/api/v1/auth/register/confirm", tag = "auth",
    request_body = ConfirmRegistration,
    responses((status = 201, body = TokenResponse),
              (status = 409, body = crate::error::Problem,
               description = "the username or address was taken since the sign-up"),
              (status = 422, body = crate::error::Problem),
              (status = 429, body = crate::error::Problem)))]
pub async fn confirm(
    State(state): State<AppState>,
    source: SourceAddr,
    headers: HeaderMap,
    jar: CookieJar,
    Json(request): Json<ConfirmRegistration>,
) -> Result<(StatusCode, CookieJar, Json<TokenResponse>)> {
    state.limiter.check(Guarded::Register, source.0).await?;
    let token = request.token.trim();
    let mut tx = state.db.begin().await?;
    let Some(registration) = pending::find_registration(&mut tx, token).await? else {
        return Err(Error::invalid(
            "token",
            "this confirmation link is invalid, expired or already used; sign up again",
        ));
    };
    // Whoever signed up chose the password; whoever opens the link holds
    // the mailbox. Both must be the same person, or someone could sign up
    // with another's address and know the password of the account its
    // owner then confirms. A wrong password leaves the link usable.
    let hash = Some(registration.password_hash.clone());
    if !password::verify(request.password, hash).await? {
        return Err(Error::invalid(
            "password",
            "this is not the password chosen when signing up; if you did not sign up, ignore the mail",
        ));
    }
    pending::spend_registration(&mut tx, token).await?;
    let user = auth::store::insert_user(
        &mut tx,
        &registration.username,
        &registration.email,
        Some(&registration.password_hash),
    )
    .await
    .map_err(|error| match error {
        Error::Conflict(_) | Error::Taken(_) => Error::Conflict(
            "the username or the email address was taken since you signed up; sign up again".into(),
        ),
        other => other,
    })?;
    registered(&mut tx, &user, source).await?;
    let tokens = auth::new_session(&state, &mut tx, user.id).await?;
    tx.commit().await?;
    let (jar, body) = tokens.deliver(&state.settings, &headers, jar);
    Ok((StatusCode::CREATED, jar, body))
}
