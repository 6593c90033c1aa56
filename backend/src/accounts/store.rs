//! The account's own rows: profile, password, sessions, reset tokens and
//! deletion.

use crate::credentials::tokens::{hash_token, random_token};
use crate::error::{conflict_on, Error, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use std::time::Duration;
use utoipa::ToSchema;
use uuid::Uuid;

/// The caller's account as they see it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Profile {
    pub id: Uuid,
    /// Also the tenant name; it cannot change.
    pub username: String,
    pub email: String,
    pub display_name: Option<String>,
    /// False for accounts made by GitHub sign-in until a password is set
    /// through a password reset.
    pub has_password: bool,
    /// The linked GitHub login, if any.
    pub github_login: Option<String>,
    /// A new address waiting to be confirmed from its inbox.
    pub pending_email: Option<String>,
    pub created_at: DateTime<Utc>,
}

pub async fn profile(db: &PgPool, id: Uuid) -> Result<Option<Profile>> {
    Ok(sqlx::query_as::<_, Profile>(
        "SELECT u.id, u.username, u.email, u.display_name,
                u.password_hash IS NOT NULL AS has_password, g.login AS github_login,
                (SELECT c.email FROM email_changes c
                 WHERE c.user_id = u.id AND c.used_at IS NULL AND c.expires_at > now()
                 ORDER BY c.created_at DESC LIMIT 1) AS pending_email,
                u.created_at
         FROM users u LEFT JOIN github_accounts g ON g.user_id = u.id
         WHERE u.id = $1 AND u.deleted_at IS NULL",
    )
    .bind(id)
    .fetch_optional(db)
    .await?)
}

/// What a profile change needs to know about the account, its row locked.
#[derive(Debug, sqlx::FromRow)]
pub struct Locked {
    pub username: String,
    pub email: String,
    pub password_hash: Option<String>,
}

pub async fn lock(conn: &mut PgConnection, id: Uuid) -> Result<Locked> {
    sqlx::query_as::<_, Locked>(
        "SELECT username, email, password_hash FROM users
         WHERE id = $1 AND deleted_at IS NULL FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or(Error::Unauthorized("the account no longer exists"))
}

/// `display_name`: `Some(None)` clears it.
pub async fn update_profile(
    conn: &mut PgConnection,
    id: Uuid,
    email: Option<&str>,
    display_name: Option<Option<&str>>,
) -> Result<()> {
    sqlx::query(
        "UPDATE users SET email = COALESCE($2, email),
                display_name = CASE WHEN $3 THEN $4 ELSE display_name END
         WHERE id = $1",
    )
    .bind(id)
    .bind(email)
    .bind(display_name.is_some())
    .bind(display_name.flatten())
    .execute(conn)
    .await
    .map_err(conflict_on(
        "users_email_key",
        "email",
        "belongs to another account",
    ))?;
    Ok(())
}

/// Sets the password and ends every session: refresh tokens are revoked and
/// the session epoch moves on, which kills the access tokens already issued.
pub async fn set_password(conn: &mut PgConnection, id: Uuid, hash: &str) -> Result<()> {
    sqlx::query(
        "UPDATE users SET password_hash = $2, session_epoch = session_epoch + 1 WHERE id = $1",
    )
    .bind(id)
    .bind(hash)
    .execute(&mut *conn)
    .await?;
    revoke_sessions(conn, id).await
}

pub async fn revoke_sessions(conn: &mut PgConnection, id: Uuid) -> Result<()> {
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes the GitHub link (and its sealed token); the login it had.
pub async fn unlink_github(conn: &mut PgConnection, id: Uuid) -> Result<Option<String>> {
    Ok(sqlx::query_scalar::<_, String>(
        "DELETE FROM github_accounts WHERE user_id = $1 RETURNING login",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

/// The live account with this email address: id, username and the address
/// as the account has it.
pub async fn find_by_email(db: &PgPool, email: &str) -> Result<Option<(Uuid, String, String)>> {
    Ok(sqlx::query_as::<_, (Uuid, String, String)>(
        "SELECT id, username, email FROM users
         WHERE lower(email) = lower($1) AND deleted_at IS NULL",
    )
    .bind(email.trim())
    .fetch_optional(db)
    .await?)
}

/// A new reset token for the user, unless one was made in the last
/// `cooldown` (then `None`: a burst of requests sends one mail).
pub async fn create_reset_token(
    db: &PgPool,
    user_id: Uuid,
    ttl: Duration,
    cooldown: Duration,
) -> Result<Option<String>> {
    let token = random_token();
    let made = sqlx::query(
        "INSERT INTO password_resets (token_hash, user_id, expires_at)
         SELECT $2, $1, now() + make_interval(secs => $3)
         WHERE NOT EXISTS (SELECT 1 FROM password_resets WHERE user_id = $1
                           AND created_at > now() - make_interval(secs => $4))",
    )
    .bind(user_id)
    .bind(hash_token(&token))
    .bind(ttl.as_secs_f64())
    .bind(cooldown.as_secs_f64())
    .execute(db)
    .await?
    .rows_affected();
    Ok((made == 1).then_some(token))
}

/// Spends a reset token: the user it was for, if it is unused, unexpired
/// and the account still exists. Every other token of the user dies too.
pub async fn consume_reset_token(conn: &mut PgConnection, token: &str) -> Result<Option<Uuid>> {
    let user_id = sqlx::query_scalar::<_, Uuid>(
        "UPDATE password_resets r SET used_at = now()
         FROM users u
         WHERE r.token_hash = $1 AND r.used_at IS NULL AND r.expires_at > now()
           AND u.id = r.user_id AND u.deleted_at IS NULL
         RETURNING r.user_id",
    )
    .bind(hash_token(token))
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(user_id) = user_id {
        sqlx::query("DELETE FROM password_resets WHERE user_id = $1 AND used_at IS NULL")
            .bind(user_id)
            .execute(conn)
            .await?;
    }
    Ok(user_id)
}

/// Erases what identifies the person (email, password, display name, the
/// GitHub link and its token, pending resets) and ends every session. The
/// row stays, keeping the username: it is a tenant slug and is never reused.
pub async fn erase(conn: &mut PgConnection, id: Uuid) -> Result<()> {
    sqlx::query(
        "WITH github AS (DELETE FROM github_accounts WHERE user_id = $1),
              resets AS (DELETE FROM password_resets WHERE user_id = $1),
              changes AS (DELETE FROM email_changes WHERE user_id = $1),
              tickets AS (DELETE FROM ws_tickets WHERE user_id = $1),
              links AS (DELETE FROM oauth_states WHERE link_user_id = $1)
         UPDATE users SET deleted_at = now(), email = NULL, password_hash = NULL,
                display_name = NULL, session_epoch = session_epoch + 1
         WHERE id = $1",
    )
    .bind(id)
    .execute(&mut *conn)
    .await?;
    revoke_sessions(conn, id).await
}

/// A signed-in session: one refresh token family.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Session {
    pub id: Uuid,
    /// When it signed in.
    pub started_at: DateTime<Utc>,
    /// When it last exchanged its refresh token.
    pub refreshed_at: DateTime<Utc>,
    /// When it ends unless refreshed.
    pub expires_at: DateTime<Utc>,
    /// Whether it is the session making this request.
    #[sqlx(default)]
    pub current: bool,
}

/// The account's live sessions, most recently used first.
pub async fn sessions(db: &PgPool, user_id: Uuid) -> Result<Vec<Session>> {
    Ok(sqlx::query_as::<_, Session>(
        "SELECT family_id AS id, min(created_at) AS started_at, max(created_at) AS refreshed_at,
                max(expires_at) FILTER (WHERE revoked_at IS NULL) AS expires_at
         FROM refresh_tokens WHERE user_id = $1
         GROUP BY family_id
         HAVING bool_or(revoked_at IS NULL AND expires_at > now())
         ORDER BY refreshed_at DESC",
    )
    .bind(user_id)
    .fetch_all(db)
    .await?)
}

/// Ends one of the account's sessions; false if it has no such live one.
pub async fn end_session(conn: &mut PgConnection, user_id: Uuid, family_id: Uuid) -> Result<bool> {
    let ended = sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = now()
         WHERE user_id = $1 AND family_id = $2 AND revoked_at IS NULL AND expires_at > now()",
    )
    .bind(user_id)
    .bind(family_id)
    .execute(conn)
    .await?;
    Ok(ended.rows_affected() > 0)
}
