//! Linking a GitHub account to the signed-in berth account. A link lets
//! GitHub sign-in open the account from then on, so it is guarded like a
//! password change would be:
//!
//! * it needs a recent sign-in (`auth::recent`: the password, or for an
//!   account without one, a session that signed in within minutes);
//! * it never replaces a link: an account that has one answers `409`
//!   (unlink first, which needs a password);
//! * the flow is bound to the browser that started it (see `oauth`), and
//!   its end issues no session: the browser that started it has one;
//! * the account's address is mailed that GitHub was linked.

use super::oauth::{self, CallbackQuery, StartResponse};
use super::store::{self, Account, PendingSignIn};
use crate::audit::{self, Event, SourceAddr};
use crate::auth::{recent, CurrentUser};
use crate::error::{Error, Result};
use crate::extract::Json;
use crate::mail::{self, Email};
use crate::state::AppState;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use berth_proto::Binding;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct LinkRequest {
    /// The account's password; an account without one must have signed in
    /// (with GitHub) within the last 5 minutes instead.
    #[serde(default)]
    pub current_password: Option<String>,
    /// For the web UI: the callback redirects to `/account` instead of
    /// answering JSON.
    #[serde(default)]
    pub browser: bool,
}

/// What a finished link answers to an API client.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkedResponse {
    /// The GitHub login now linked to the account.
    pub github_login: String,
}

/// Start linking a GitHub account to yours. Answers the URL to send the
/// browser to (and sets the cookie the callback needs, as
/// `GET /auth/github/start` does).
#[utoipa::path(post, path = "/api/v1/auth/github/link", tag = "auth", request_body = LinkRequest,
    security(("bearer" = [])),
    responses((status = 200, body = StartResponse),
              (status = 401, body = crate::error::Problem),
              (status = 403, body = crate::error::Problem,
               description = "an account without a password did not sign in recently"),
              (status = 404, body = crate::error::Problem, description = "GitHub sign-in is off"),
              (status = 409, body = crate::error::Problem,
               description = "the account already has a GitHub link: unlink it first"),
              (status = 422, body = crate::error::Problem,
               description = "`current_password` is missing or wrong")))]
pub async fn link(
    State(state): State<AppState>,
    user: CurrentUser,
    jar: CookieJar,
    Json(request): Json<LinkRequest>,
) -> Result<(CookieJar, Json<StartResponse>)> {
    oauth::configured(&state)?;
    let mut conn = state.db.acquire().await?;
    if let Some((_, login)) = store::linked_login(&mut conn, user.id).await? {
        return Err(already_linked(&login));
    }
    recent::confirm_for(
        &mut conn,
        &user,
        request.current_password,
        "current_password",
    )
    .await?;
    drop(conn);
    oauth::begin(&state, jar, Some(user.id), request.browser).await
}

fn already_linked(login: &str) -> Error {
    Error::Conflict(format!(
        "this account is already linked to the GitHub account {login}; unlink it first"
    ))
}

/// The callback of a link flow: attaches the GitHub account to `user_id`,
/// with no session in the answer.
pub(super) async fn finish(
    state: &AppState,
    source: SourceAddr,
    query: &CallbackQuery,
    pending: &PendingSignIn,
    user_id: Uuid,
    jar: CookieJar,
) -> Result<Response> {
    let (_, redirect_uri) = oauth::configured(state)?;
    let linked = attach(state, source, query, pending, user_id, &redirect_uri).await;
    let ui = state.settings.public_url.as_deref().unwrap_or("");
    match (linked, pending.browser) {
        (Ok(github_login), false) => {
            Ok((jar, Json(LinkedResponse { github_login })).into_response())
        }
        (Ok(_), true) => {
            Ok((jar, Redirect::to(&format!("{ui}/account?github=linked"))).into_response())
        }
        (Err(error), false) => Err(error),
        (Err(error), true) => {
            let detail = oauth::url_encoded(&error.to_problem().detail);
            let to = format!("{ui}/account?github_error={detail}");
            Ok((jar, Redirect::to(&to)).into_response())
        }
    }
}

async fn attach(
    state: &AppState,
    source: SourceAddr,
    query: &CallbackQuery,
    pending: &PendingSignIn,
    user_id: Uuid,
    redirect_uri: &str,
) -> Result<String> {
    let (github_user, token) = oauth::authorized(state, query, pending, redirect_uri).await?;
    // Sealed for the user it is linked to: it opens for nobody else.
    let sealed = state.key.seal(
        &Binding::github_token(user_id),
        token.access_token.as_bytes(),
    );
    let mut tx = state.db.begin().await?;
    let account: Option<(String, Option<String>)> = sqlx::query_as(
        "SELECT username, email FROM users WHERE id = $1 AND deleted_at IS NULL FOR UPDATE",
    )
    .bind(user_id)
    .fetch_optional(&mut *tx)
    .await?;
    let (username, email) = account.ok_or(Error::Unauthorized("the account no longer exists"))?;
    if store::user_of(&mut tx, github_user.id)
        .await?
        .is_some_and(|owner| owner != user_id)
    {
        return Err(Error::Conflict(
            "this GitHub account is linked to another berth account".into(),
        ));
    }
    // Linked meanwhile (another flow finished first): the same GitHub
    // account only refreshes its token, another one is refused.
    if let Some((github_id, login)) = store::linked_login(&mut tx, user_id).await? {
        if github_id != github_user.id {
            return Err(already_linked(&login));
        }
    }
    let account = Account {
        user_id,
        github_id: github_user.id,
        login: &github_user.login,
        token: &sealed,
        scopes: &token.scope,
    };
    store::upsert_account(&mut tx, account).await?;
    let details = serde_json::json!({"github_login": github_user.login, "created": false});
    let event = Event::new(user_id, "auth.github_linked", "user", user_id, source).details(details);
    audit::record(&mut tx, event).await?;
    tx.commit().await?;
    tracing::info!(%user_id, github_login = %github_user.login, "GitHub linked");
    if let (Some(mailer), Some(email)) = (state.mailer.clone(), email) {
        let public = state.settings.public_url.as_deref();
        let mail = linked_mail(public, &email, &username, &github_user.login);
        mail::send_later(mailer, mail, "github_linked");
    }
    Ok(github_user.login)
}

/// To the account's address: GitHub was linked, and what to do if that
/// was not its owner.
fn linked_mail(public_url: Option<&str>, to: &str, username: &str, github_login: &str) -> Email {
    let account = public_url.map_or_else(String::new, |base| format!(" ({base}/account)"));
    Email {
        to: to.to_owned(),
        subject: "GitHub was linked to your berth account".into(),
        body: format!(
            "The GitHub account {github_login} was linked to the berth account {username}. \
             It can now sign in to your account with GitHub.\n\n\
             If it was not you, change your password (it signs out every session), then unlink \
             GitHub on your account page{account}.\n"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mail_names_both_accounts_and_what_to_do() {
        let mail = linked_mail(Some("https://berth.example"), "a@b.c", "alice", "octo");
        assert_eq!(mail.to, "a@b.c");
        assert!(mail.body.contains("GitHub account octo"), "{}", mail.body);
        assert!(mail.body.contains("berth account alice"), "{}", mail.body);
        assert!(
            mail.body.contains("https://berth.example/account"),
            "{}",
            mail.body
        );
    }
}
