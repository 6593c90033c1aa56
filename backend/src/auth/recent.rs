//! A recent sign-in, for the changes that would let a stolen access token
//! (15 minutes) become a lasting takeover: linking GitHub (GitHub sign-in
//! then opens the account for good), changing the email address (a
//! password reset then gives a password) and deleting the account.
//!
//! An account with a password proves it with the password, every time. An
//! account without one (made by GitHub sign-in) has nothing to type: its
//! session must have signed in (with GitHub) within `RECENT_SIGN_IN`.
//! Refreshing a session does not make it recent: a session carries the
//! time it signed in from refresh token to refresh token.

use super::CurrentUser;
use crate::credentials::password;
use crate::error::{Error, Result};
use sqlx::PgConnection;
use std::time::Duration;

/// How long after signing in a password-less account may make sensitive
/// changes.
pub const RECENT_SIGN_IN: Duration = Duration::from_secs(5 * 60);

/// Checks that `user` just proved who they are: `given` matches
/// `password_hash` (the field `field` names it in the answer), or for an
/// account without a password, its session signed in recently.
pub async fn confirm(
    conn: &mut PgConnection,
    user: &CurrentUser,
    password_hash: Option<String>,
    given: Option<String>,
    field: &'static str,
) -> Result<()> {
    if password_hash.is_some() {
        let Some(given) = given.filter(|given| !given.is_empty()) else {
            return Err(Error::invalid(field, "type your password to confirm this"));
        };
        return match password::verify(given, password_hash).await? {
            true => Ok(()),
            false => Err(Error::invalid(field, "the password is wrong")),
        };
    }
    let recent: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM refresh_tokens
                        WHERE family_id = $1 AND user_id = $2 AND revoked_at IS NULL
                          AND signed_in_at > now() - make_interval(secs => $3))",
    )
    .bind(user.session)
    .bind(user.id)
    .bind(RECENT_SIGN_IN.as_secs_f64())
    .fetch_one(conn)
    .await?;
    if recent {
        Ok(())
    } else {
        Err(not_recent())
    }
}

fn not_recent() -> Error {
    Error::RecentSignInRequired(format!(
        "this account has no password: sign in with GitHub again, then make this change within \
         {} minutes",
        RECENT_SIGN_IN.as_secs() / 60
    ))
}

/// `confirm` for an account whose password hash the caller has not read.
pub async fn confirm_for(
    conn: &mut PgConnection,
    user: &CurrentUser,
    given: Option<String>,
    field: &'static str,
) -> Result<()> {
    let hash: Option<Option<String>> =
        sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1 AND deleted_at IS NULL")
            .bind(user.id)
            .fetch_optional(&mut *conn)
            .await?;
    let hash = hash.ok_or(Error::Unauthorized("the account no longer exists"))?;
    confirm(conn, user, hash, given, field).await
}
