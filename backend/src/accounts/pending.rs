//! What waits for an address to be confirmed: sign-ups and email changes,
//! each behind a one-time token stored as its SHA-256 like the other tokens.

use crate::credentials::tokens::{hash_token, random_token};
use crate::error::Result;
use sqlx::PgConnection;
use std::time::Duration;
use uuid::Uuid;

/// How long a sign-up or a new address waits to be confirmed.
pub const CONFIRM_WITHIN: Duration = Duration::from_secs(24 * 60 * 60);

/// Mails an address may get in an hour without having asked for them.
pub const UNSOLICITED_PER_HOUR: i64 = 5;

/// Counts one more mail to `address` unless it had its hourly share; false
/// means: send nothing. Call it inside the transaction that goes on to
/// make the mail: the count is locked for the address until it commits.
pub async fn allow_unsolicited_mail(conn: &mut PgConnection, address: &str) -> Result<bool> {
    let address = address.to_lowercase();
    // Sign-ups for one address run at once in their own transactions: each
    // would count before the others commit, so they take turns.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(&address)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM unsolicited_mails WHERE sent_at < now() - interval '1 hour'")
        .execute(&mut *conn)
        .await?;
    let sent = sqlx::query(
        "INSERT INTO unsolicited_mails (address)
         SELECT $1 WHERE (SELECT count(*) FROM unsolicited_mails WHERE address = $1) < $2",
    )
    .bind(&address)
    .bind(UNSOLICITED_PER_HOUR)
    .execute(conn)
    .await?;
    Ok(sent.rows_affected() == 1)
}

/// A sign-up as it was asked for, waiting for its address.
#[derive(Debug, sqlx::FromRow)]
pub struct Registration {
    pub username: String,
    pub email: String,
    pub password_hash: String,
}

/// Stores a sign-up and returns the token that confirms it.
pub async fn create_registration(
    conn: &mut PgConnection,
    registration: &Registration,
    ttl: Duration,
) -> Result<String> {
    sqlx::query("DELETE FROM pending_registrations WHERE expires_at < now()")
        .execute(&mut *conn)
        .await?;
    let token = random_token();
    sqlx::query(
        "INSERT INTO pending_registrations (token_hash, username, email, password_hash, expires_at)
         VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))",
    )
    .bind(hash_token(&token))
    .bind(&registration.username)
    .bind(&registration.email)
    .bind(&registration.password_hash)
    .bind(ttl.as_secs_f64())
    .execute(conn)
    .await?;
    Ok(token)
}

/// The sign-up a token confirms, if the token is unused and unexpired; its
/// row locked until the transaction ends.
pub async fn find_registration(
    conn: &mut PgConnection,
    token: &str,
) -> Result<Option<Registration>> {
    Ok(sqlx::query_as::<_, Registration>(
        "SELECT username, email, password_hash FROM pending_registrations
         WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now() FOR UPDATE",
    )
    .bind(hash_token(token))
    .fetch_optional(conn)
    .await?)
}

/// Spends a sign-up token: it works once.
pub async fn spend_registration(conn: &mut PgConnection, token: &str) -> Result<()> {
    sqlx::query("UPDATE pending_registrations SET used_at = now() WHERE token_hash = $1")
        .bind(hash_token(token))
        .execute(conn)
        .await?;
    Ok(())
}

/// Stores a change of the user's address to `email`, replacing any change
/// still waiting, and returns the token that confirms it.
pub async fn create_email_change(
    conn: &mut PgConnection,
    user_id: Uuid,
    email: &str,
    ttl: Duration,
) -> Result<String> {
    sqlx::query("DELETE FROM email_changes WHERE user_id = $1 AND used_at IS NULL")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    let token = random_token();
    sqlx::query(
        "INSERT INTO email_changes (token_hash, user_id, email, expires_at)
         VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
    )
    .bind(hash_token(&token))
    .bind(user_id)
    .bind(email)
    .bind(ttl.as_secs_f64())
    .execute(conn)
    .await?;
    Ok(token)
}

/// Spends an email change token: whose address changes, and to what.
pub async fn consume_email_change(
    conn: &mut PgConnection,
    token: &str,
) -> Result<Option<(Uuid, String)>> {
    Ok(sqlx::query_as::<_, (Uuid, String)>(
        "UPDATE email_changes c SET used_at = now()
         FROM users u
         WHERE c.token_hash = $1 AND c.used_at IS NULL AND c.expires_at > now()
           AND u.id = c.user_id AND u.deleted_at IS NULL
         RETURNING c.user_id, c.email",
    )
    .bind(hash_token(token))
    .fetch_optional(conn)
    .await?)
}

/// Whether a live account other than `except` has this address.
pub async fn email_in_use(
    conn: &mut PgConnection,
    email: &str,
    except: Option<Uuid>,
) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM users WHERE lower(email) = lower($1)
                        AND deleted_at IS NULL AND id IS DISTINCT FROM $2)",
    )
    .bind(email)
    .bind(except)
    .fetch_one(conn)
    .await?)
}
