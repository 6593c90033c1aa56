//! Pending sign-ins (`oauth_states`) and linked accounts (`github_accounts`).

use crate::auth::tokens::hash_token;
use crate::error::Result;
use berth_proto::Sealed;
use sqlx::types::Json as SqlJson;
use sqlx::{PgConnection, PgPool};
use std::time::Duration;
use uuid::Uuid;

/// How long a started sign-in may take.
pub const STATE_TTL: Duration = Duration::from_secs(10 * 60);

pub async fn insert_state(
    db: &PgPool,
    state: &str,
    verifier: &Sealed,
    link_user_id: Option<Uuid>,
    browser: bool,
) -> Result<()> {
    let mut tx = db.begin().await?;
    // Abandoned sign-ins go away with the next one.
    sqlx::query("DELETE FROM oauth_states WHERE expires_at < now()")
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO oauth_states (state_hash, pkce_verifier_sealed, link_user_id, expires_at,
                                   browser)
         VALUES ($1, $2, $3, now() + make_interval(secs => $4), $5)",
    )
    .bind(hash_token(state))
    .bind(SqlJson(verifier))
    .bind(link_user_id)
    .bind(STATE_TTL.as_secs_f64())
    .bind(browser)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// A started sign-in, consumed.
pub struct PendingSignIn {
    pub verifier: Sealed,
    pub link_user_id: Option<Uuid>,
    /// Started by the web UI: finish with a redirect and the session cookie.
    pub browser: bool,
}

/// Deletes the state and returns its sign-in if it had not expired: a
/// state works once, whatever happens next.
pub async fn consume_state(db: &PgPool, state: &str) -> Result<Option<PendingSignIn>> {
    let row = sqlx::query_as::<_, (SqlJson<Sealed>, Option<Uuid>, bool, bool)>(
        "DELETE FROM oauth_states WHERE state_hash = $1
         RETURNING pkce_verifier_sealed, link_user_id, browser, expires_at > now()",
    )
    .bind(hash_token(state))
    .fetch_optional(db)
    .await?;
    Ok(row.and_then(|(verifier, link_user_id, browser, live)| {
        live.then_some(PendingSignIn {
            verifier: verifier.0,
            link_user_id,
            browser,
        })
    }))
}

/// The berth user a GitHub account is linked to.
pub async fn user_of(conn: &mut PgConnection, github_id: i64) -> Result<Option<Uuid>> {
    Ok(
        sqlx::query_scalar("SELECT user_id FROM github_accounts WHERE github_id = $1 FOR UPDATE")
            .bind(github_id)
            .fetch_optional(conn)
            .await?,
    )
}

pub struct Account<'a> {
    pub user_id: Uuid,
    pub github_id: i64,
    pub login: &'a str,
    pub token: &'a Sealed,
    pub scopes: &'a str,
}

/// Links (or re-links, with a fresh token) a GitHub account to a user; a
/// user has at most one.
pub async fn upsert_account(conn: &mut PgConnection, account: Account<'_>) -> Result<()> {
    sqlx::query(
        "INSERT INTO github_accounts (user_id, github_id, login, token_sealed, scopes)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (user_id) DO UPDATE SET github_id = $2, login = $3, token_sealed = $4,
             scopes = $5, updated_at = now()",
    )
    .bind(account.user_id)
    .bind(account.github_id)
    .bind(account.login)
    .bind(SqlJson(account.token))
    .bind(account.scopes)
    .execute(conn)
    .await?;
    Ok(())
}

/// The user's sealed GitHub token, if they linked an account.
pub async fn token_of(conn: &mut PgConnection, user_id: Uuid) -> Result<Option<Sealed>> {
    Ok(sqlx::query_scalar::<_, SqlJson<Sealed>>(
        "SELECT token_sealed FROM github_accounts WHERE user_id = $1",
    )
    .bind(user_id)
    .fetch_optional(conn)
    .await?
    .map(|token| token.0))
}

/// Whether `username` is taken.
pub async fn username_taken(conn: &mut PgConnection, username: &str) -> Result<bool> {
    Ok(
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE username = $1)")
            .bind(username)
            .fetch_one(conn)
            .await?,
    )
}
