//! The account: sign-up, and the signed-in user's profile, password,
//! sessions, audit log (`audit_log`) and deletion; and the password reset
//! by email, for users who cannot sign in.

pub mod audit_log;
pub mod email_change;
pub mod mails;
pub mod pending;
pub mod reset;
pub mod signup;
pub mod store;

use crate::audit::{self, Event, SourceAddr};
use crate::auth::{self, recent, CurrentUser, TokenResponse};
use crate::credentials::password;
use crate::error::{Error, FieldError, Result};
use crate::extract::{Json, Path};
use crate::mail;
use crate::state::AppState;
use crate::validate;
use crate::{apps, apps_store};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete, get, post, put};
use axum::Router;
use axum_extra::extract::cookie::CookieJar;
use serde::{Deserialize, Deserializer};
use serde_json::json;
use store::{Profile, Session};
use utoipa::ToSchema;
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/me", get(me).patch(update_me).delete(delete_me))
        .route("/me/password", put(change_password))
        .route("/me/github", delete(unlink_github))
        .route("/me/sessions", get(list_sessions))
        .route("/me/sessions/{id}", delete(end_session))
        .route("/audit", get(audit_log::list_events))
        .route("/auth/register", post(signup::register))
        .route("/auth/register/confirm", post(signup::confirm))
        .route("/auth/email-change/confirm", post(email_change::confirm))
        .route("/auth/password-reset", post(reset::request))
        .route("/auth/password-reset/confirm", post(reset::confirm))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateProfile {
    /// `null` or `""` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub display_name: Option<Option<String>>,
    pub email: Option<String>,
    /// Needed to change the email address of an account with a password
    /// (one without must have signed in within the last 5 minutes).
    pub current_password: Option<String>,
}

/// Tells a field sent as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ChangePassword {
    pub current_password: String,
    /// At least 10 characters.
    pub new_password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct DeleteAccount {
    /// The account's username, typed again.
    pub confirm: String,
    /// Needed when the account has a password (one without must have
    /// signed in within the last 5 minutes).
    pub password: Option<String>,
}

/// The caller's account.
#[utoipa::path(get, path = "/api/v1/me", tag = "account", security(("bearer" = [])),
    responses((status = 200, body = Profile), (status = 401, body = crate::error::Problem)))]
async fn me(State(state): State<AppState>, user: CurrentUser) -> Result<Json<Profile>> {
    store::profile(&state.db, user.id)
        .await?
        .map(Json)
        .ok_or(Error::Unauthorized("the account no longer exists"))
}

/// Change the display name or the email address. With mail configured, a
/// new address is `pending_email` until the link mailed to it is opened.
#[utoipa::path(patch, path = "/api/v1/me", tag = "account", request_body = UpdateProfile,
    security(("bearer" = [])),
    responses((status = 200, body = Profile), (status = 401, body = crate::error::Problem),
              (status = 403, body = crate::error::Problem,
               description = "a new address for an account without a password that did not sign in recently"),
              (status = 409, body = crate::error::Problem),
              (status = 422, body = crate::error::Problem)))]
async fn update_me(
    State(state): State<AppState>,
    user: CurrentUser,
    source: SourceAddr,
    Json(request): Json<UpdateProfile>,
) -> Result<Json<Profile>> {
    let email = request.email.as_deref().map(str::trim);
    let display_name = request.display_name.as_ref().map(|name| {
        name.as_deref()
            .map(str::trim)
            .filter(|name| !name.is_empty())
    });
    let mut errors = Vec::new();
    if let Some(Err(message)) = email.map(validate::email) {
        errors.push(FieldError::new("email", message));
    }
    if let Some(Some(Err(message))) = display_name.map(|name| name.map(validate::display_name)) {
        errors.push(FieldError::new("display_name", message));
    }
    if !errors.is_empty() {
        return Err(Error::Validation(errors));
    }
    let mut tx = state.db.begin().await?;
    let account = store::lock(&mut tx, user.id).await?;
    let email = email.filter(|email| !email.eq_ignore_ascii_case(&account.email));
    if email.is_some() {
        // A new address plus a password reset would be a lasting takeover:
        // the password, or a recent sign-in for an account without one.
        let (hash, given) = (
            account.password_hash.clone(),
            request.current_password.clone(),
        );
        recent::confirm(&mut tx, &user, hash, given, "current_password").await?;
    }
    // With mail, a new address waits for its confirmation.
    let (email, mail) = match (email, state.mailer.clone()) {
        (Some(new), Some(mailer)) => {
            let links = mails::Links(state.settings.public_url.as_deref());
            let mail =
                email_change::request(&mut tx, &links, user.id, &account.username, new, source)
                    .await?;
            (None, Some((mailer, mail)))
        }
        (email, _) => (email, None),
    };
    store::update_profile(&mut tx, user.id, email, display_name).await?;
    let changed: Vec<&str> = [
        ("email", email.is_some()),
        ("display_name", display_name.is_some()),
    ]
    .into_iter()
    .filter_map(|(field, set)| set.then_some(field))
    .collect();
    let event = Event::new(user.id, "account.update", "user", user.id, source)
        .details(json!({ "changed": changed }));
    audit::record(&mut tx, event).await?;
    tx.commit().await?;
    if let Some((mailer, mail)) = mail {
        mail::send_later(mailer, mail, "email_change");
    }
    me(State(state), user).await
}

/// Change the password. Every session ends, this one included; the answer
/// carries a new one.
#[utoipa::path(put, path = "/api/v1/me/password", tag = "account", request_body = ChangePassword,
    security(("bearer" = [])),
    responses((status = 200, body = TokenResponse), (status = 401, body = crate::error::Problem),
              (status = 422, body = crate::error::Problem)))]
async fn change_password(
    State(state): State<AppState>,
    user: CurrentUser,
    source: SourceAddr,
    headers: HeaderMap,
    jar: CookieJar,
    Json(request): Json<ChangePassword>,
) -> Result<(CookieJar, Json<TokenResponse>)> {
    if let Err(message) = validate::password(&request.new_password) {
        return Err(Error::invalid("new_password", message));
    }
    let mut tx = state.db.begin().await?;
    let account = store::lock(&mut tx, user.id).await?;
    if account.password_hash.is_none() {
        return Err(Error::invalid(
            "current_password",
            "this account signs in with GitHub and has no password; set one with a password reset",
        ));
    }
    if !password::verify(request.current_password, account.password_hash).await? {
        return Err(Error::invalid(
            "current_password",
            "the current password is wrong",
        ));
    }
    let hash = password::hash(request.new_password).await?;
    store::set_password(&mut tx, user.id, &hash).await?;
    let event = Event::new(user.id, "account.password_change", "user", user.id, source);
    audit::record(&mut tx, event).await?;
    let response = auth::new_session(&state, &mut tx, user.id).await?;
    tx.commit().await?;
    tracing::info!(user_id = %user.id, "password changed; other sessions ended");
    Ok(response.deliver(&state.settings, &headers, jar))
}

/// Delete the account: its apps are deleted as `DELETE /apps/{id}` does,
/// every session ends, and the email, password, profile and GitHub link
/// are erased. The username stays reserved.
#[utoipa::path(delete, path = "/api/v1/me", tag = "account", request_body = DeleteAccount,
    security(("bearer" = [])),
    responses((status = 202, description = "deleted; the apps are being removed"),
              (status = 401, body = crate::error::Problem),
              (status = 403, body = crate::error::Problem,
               description = "an account without a password that did not sign in recently"),
              (status = 422, body = crate::error::Problem)))]
async fn delete_me(
    State(state): State<AppState>,
    user: CurrentUser,
    source: SourceAddr,
    Json(request): Json<DeleteAccount>,
) -> Result<StatusCode> {
    let mut tx = state.db.begin().await?;
    let account = store::lock(&mut tx, user.id).await?;
    if request.confirm.trim() != account.username {
        return Err(Error::invalid(
            "confirm",
            "type the account's username to confirm",
        ));
    }
    recent::confirm(
        &mut tx,
        &user,
        account.password_hash,
        request.password,
        "password",
    )
    .await?;
    let apps = apps_store::lock_all_owned(&mut tx, user.id).await?;
    for app in &apps {
        apps::remove(&mut tx, app, source).await?;
    }
    store::erase(&mut tx, user.id).await?;
    let event = Event::new(user.id, "account.delete", "user", user.id, source)
        .details(json!({ "deleted_apps": apps.len() }));
    audit::record(&mut tx, event).await?;
    tx.commit().await?;
    state.outbox.notify_one();
    state.github_status.notify_one();
    tracing::info!(user_id = %user.id, apps = apps.len(), "account deleted");
    metrics::counter!("berth_users_deleted_total").increment(1);
    Ok(StatusCode::ACCEPTED)
}

/// Unlink the GitHub account: its token is deleted, GitHub sign-in stops
/// working for this account, and builds of private repositories can no
/// longer clone. An account without a password must set one first (by a
/// password reset), or it could not sign in again.
#[utoipa::path(delete, path = "/api/v1/me/github", tag = "account", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem),
              (status = 409, body = crate::error::Problem)))]
async fn unlink_github(
    State(state): State<AppState>,
    user: CurrentUser,
    source: SourceAddr,
) -> Result<StatusCode> {
    let mut tx = state.db.begin().await?;
    let account = store::lock(&mut tx, user.id).await?;
    if account.password_hash.is_none() {
        return Err(Error::Conflict(
            "this account signs in only with GitHub; set a password (password reset) before unlinking"
                .into(),
        ));
    }
    let login = store::unlink_github(&mut tx, user.id)
        .await?
        .ok_or(Error::NotFound("linked GitHub account"))?;
    let event = Event::new(user.id, "account.github_unlink", "user", user.id, source)
        .details(json!({ "github_login": login }));
    audit::record(&mut tx, event).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Your signed-in sessions (each browser or client that logged in); the one
/// asking is marked `current`.
#[utoipa::path(get, path = "/api/v1/me/sessions", tag = "account", security(("bearer" = [])),
    responses((status = 200, body = Vec<Session>), (status = 401, body = crate::error::Problem)))]
async fn list_sessions(
    State(state): State<AppState>,
    user: CurrentUser,
) -> Result<Json<Vec<Session>>> {
    let mut sessions = store::sessions(&state.db, user.id).await?;
    for session in &mut sessions {
        session.current = session.id == user.session;
    }
    Ok(Json(sessions))
}

/// Sign one session out: its refresh token and its access tokens stop
/// working at once, and its open log sockets and event streams are closed.
#[utoipa::path(delete, path = "/api/v1/me/sessions/{id}", tag = "account",
    params(("id" = Uuid, Path, description = "session id")), security(("bearer" = [])),
    responses((status = 204), (status = 401, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem)))]
async fn end_session(
    State(state): State<AppState>,
    user: CurrentUser,
    source: SourceAddr,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    let mut tx = state.db.begin().await?;
    if !store::end_session(&mut tx, user.id, id).await? {
        return Err(Error::NotFound("session"));
    }
    let event = Event::new(user.id, "account.session_end", "session", id, source);
    audit::record(&mut tx, event).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
