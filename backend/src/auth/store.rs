//! Users and refresh tokens in PostgreSQL.

use crate::credentials::tokens::{hash_token, random_token};
use crate::error::{conflict_on, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use std::time::Duration;
use utoipa::ToSchema;
use uuid::Uuid;

/// An account. Its username is also its tenant slug.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub created_at: DateTime<Utc>,
}

pub async fn insert_user(
    conn: &mut PgConnection,
    username: &str,
    email: &str,
    password_hash: Option<&str>,
) -> Result<User> {
    sqlx::query_as::<_, User>(
        "INSERT INTO users (id, username, email, password_hash) VALUES ($1, $2, $3, $4)
         RETURNING id, username, email, created_at",
    )
    .bind(Uuid::now_v7())
    .bind(username)
    .bind(email)
    .bind(password_hash)
    .fetch_one(conn)
    .await
    .map_err(|error| match &error {
        sqlx::Error::Database(db) if db.constraint() == Some("users_email_key") => {
            conflict_on("users_email_key", "email", "is already registered")(error)
        }
        _ => conflict_on("users_username_key", "username", "is taken")(error),
    })
}

/// The account a login names (by username or email).
#[derive(Debug, sqlx::FromRow)]
pub struct Login {
    pub id: Uuid,
    pub username: String,
    /// None: the account signs in with GitHub only.
    pub password_hash: Option<String>,
}

/// The account whose username or email is `login`.
pub async fn find_login(db: &PgPool, login: &str) -> Result<Option<Login>> {
    Ok(sqlx::query_as::<_, Login>(
        "SELECT id, username, password_hash FROM users
         WHERE (username = $1 OR lower(email) = lower($1)) AND deleted_at IS NULL
         ORDER BY username = $1 DESC LIMIT 1",
    )
    .bind(login)
    .fetch_optional(db)
    .await?)
}

/// Whether `session` of user `id` is still on: the account exists, its
/// session epoch is `epoch` (when given), and the session (a refresh token
/// family) holds a refresh token that is neither revoked nor expired.
/// Logout, signing a session out, a password change or reset and an
/// account deletion each revoke the session's tokens, so this is false
/// from the moment they commit. One indexed query, made on every request.
pub async fn session_is_live(
    db: &PgPool,
    id: Uuid,
    session: Uuid,
    epoch: Option<i32>,
) -> Result<bool> {
    Ok(sqlx::query_scalar::<_, bool>(
        "SELECT ($3::int IS NULL OR u.session_epoch = $3) AND EXISTS (
                    SELECT 1 FROM refresh_tokens r
                    WHERE r.family_id = $2 AND r.user_id = u.id
                      AND r.revoked_at IS NULL AND r.expires_at > now())
         FROM users u WHERE u.id = $1 AND u.deleted_at IS NULL",
    )
    .bind(id)
    .bind(session)
    .bind(epoch)
    .fetch_optional(db)
    .await?
    .unwrap_or(false))
}

/// Stores a new refresh token of `family` and returns it (the only time it
/// exists in clear). `signed_in_at` is when the session signed in: now for
/// a new session, carried over on a refresh.
pub async fn create_refresh_token(
    conn: &mut PgConnection,
    user_id: Uuid,
    family_id: Uuid,
    ttl: Duration,
    signed_in_at: Option<DateTime<Utc>>,
) -> Result<(Uuid, String)> {
    let id = Uuid::now_v7();
    let token = random_token();
    sqlx::query(
        "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, expires_at, signed_in_at)
         VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5), COALESCE($6, now()))",
    )
    .bind(id)
    .bind(user_id)
    .bind(family_id)
    .bind(hash_token(&token))
    .bind(ttl.as_secs_f64())
    .bind(signed_in_at)
    .execute(conn)
    .await?;
    Ok((id, token))
}

pub enum Rotation {
    /// The presented token is now revoked; here is its successor.
    Rotated {
        user_id: Uuid,
        /// The token's family: the session goes on.
        session: Uuid,
        refresh_token: String,
    },
    /// The token was already revoked: its whole family is now revoked.
    Reused,
    /// Unknown or expired.
    Invalid,
}

#[derive(sqlx::FromRow)]
struct StoredToken {
    id: Uuid,
    user_id: Uuid,
    family_id: Uuid,
    expired: bool,
    revoked: bool,
    signed_in_at: DateTime<Utc>,
}

/// Revokes the presented token and issues its successor in one transaction.
pub async fn rotate_refresh_token(db: &PgPool, token: &str, ttl: Duration) -> Result<Rotation> {
    let mut tx = db.begin().await?;
    let stored = sqlx::query_as::<_, StoredToken>(
        "SELECT id, user_id, family_id, expires_at <= now() AS expired,
                revoked_at IS NOT NULL AS revoked, signed_in_at
         FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
    )
    .bind(hash_token(token))
    .fetch_optional(&mut *tx)
    .await?;
    let Some(stored) = stored else {
        return Ok(Rotation::Invalid);
    };
    if stored.revoked {
        revoke_family(&mut tx, stored.family_id).await?;
        tx.commit().await?;
        tracing::warn!(user_id = %stored.user_id, family_id = %stored.family_id,
            "a revoked refresh token was presented again; its family is revoked");
        return Ok(Rotation::Reused);
    }
    if stored.expired {
        return Ok(Rotation::Invalid);
    }
    let (next_id, refresh_token) = create_refresh_token(
        &mut tx,
        stored.user_id,
        stored.family_id,
        ttl,
        Some(stored.signed_in_at),
    )
    .await?;
    sqlx::query("UPDATE refresh_tokens SET revoked_at = now(), replaced_by = $2 WHERE id = $1")
        .bind(stored.id)
        .bind(next_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Rotation::Rotated {
        user_id: stored.user_id,
        session: stored.family_id,
        refresh_token,
    })
}

async fn revoke_family(conn: &mut PgConnection, family_id: Uuid) -> Result<()> {
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL",
    )
    .bind(family_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Logs out: revokes the token's session (its family) and returns whose it
/// was. Unknown tokens are ignored, so logging out twice is fine.
pub async fn revoke_session(conn: &mut PgConnection, token: &str) -> Result<Option<Uuid>> {
    Ok(sqlx::query_scalar::<_, Uuid>(
        "WITH token AS (SELECT family_id, user_id FROM refresh_tokens WHERE token_hash = $1),
              revoked AS (UPDATE refresh_tokens SET revoked_at = now()
                          WHERE family_id = (SELECT family_id FROM token)
                            AND revoked_at IS NULL)
         SELECT user_id FROM token",
    )
    .bind(hash_token(token))
    .fetch_optional(conn)
    .await?)
}
