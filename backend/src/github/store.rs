//! Pending sign-ins (`oauth_states`) and linked accounts (`github_accounts`).

use crate::credentials::tokens::hash_token;
use crate::error::Result;
use berth_proto::Sealed;
use sqlx::types::Json as SqlJson;
use sqlx::{PgConnection, PgPool};
use std::time::Duration;
use uuid::Uuid;

/// How long a started sign-in may take.
pub const STATE_TTL: Duration = Duration::from_secs(10 * 60);

/// A sign-in (or link) being started.
pub struct NewState<'a> {
    /// The `state` sent to GitHub and back.
    pub state: &'a str,
    /// The nonce in the starting browser's cookie.
    pub nonce: &'a str,
    pub verifier: &'a Sealed,
    pub link_user_id: Option<Uuid>,
    pub browser: bool,
}

/// Stores a started sign-in: the state and the browser's nonce as their
/// SHA-256, the PKCE verifier sealed. Expired ones are pruned by the
/// reaper (anyone can start sign-ins).
pub async fn insert_state(db: &PgPool, new: NewState<'_>) -> Result<()> {
    sqlx::query(
        "INSERT INTO oauth_states (state_hash, nonce_hash, pkce_verifier_sealed, link_user_id,
                                   expires_at, browser)
         VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5), $6)",
    )
    .bind(hash_token(new.state))
    .bind(hash_token(new.nonce))
    .bind(SqlJson(new.verifier))
    .bind(new.link_user_id)
    .bind(STATE_TTL.as_secs_f64())
    .bind(new.browser)
    .execute(db)
    .await?;
    Ok(())
}

/// A started sign-in, consumed.
pub struct PendingSignIn {
    pub verifier: Sealed,
    /// The SHA-256 of the nonce the starting browser holds.
    pub nonce_hash: Vec<u8>,
    pub link_user_id: Option<Uuid>,
    /// Started by the web UI: finish with a redirect (and for a sign-in,
    /// the session cookie).
    pub browser: bool,
}

impl PendingSignIn {
    /// Whether `nonce` (from the callback's cookie) is the one the starting
    /// browser was given; compared without an early exit.
    pub fn started_with(&self, nonce: Option<&str>) -> bool {
        let Some(nonce) = nonce else {
            return false;
        };
        let given = hash_token(nonce);
        given.len() == self.nonce_hash.len()
            && given
                .iter()
                .zip(&self.nonce_hash)
                .fold(0u8, |diff, (a, b)| diff | (a ^ b))
                == 0
    }
}

/// Deletes the state and returns its sign-in if it had not expired: a
/// state works once, whatever happens next.
pub async fn consume_state(db: &PgPool, state: &str) -> Result<Option<PendingSignIn>> {
    let row = sqlx::query_as::<_, (SqlJson<Sealed>, Vec<u8>, Option<Uuid>, bool, bool)>(
        "DELETE FROM oauth_states WHERE state_hash = $1
         RETURNING pkce_verifier_sealed, nonce_hash, link_user_id, browser, expires_at > now()",
    )
    .bind(hash_token(state))
    .fetch_optional(db)
    .await?;
    Ok(
        row.and_then(|(verifier, nonce_hash, link_user_id, browser, live)| {
            live.then_some(PendingSignIn {
                verifier: verifier.0,
                nonce_hash,
                link_user_id,
                browser,
            })
        }),
    )
}

/// The GitHub login linked to the user, if any.
pub async fn linked_login(conn: &mut PgConnection, user_id: Uuid) -> Result<Option<(i64, String)>> {
    Ok(sqlx::query_as::<_, (i64, String)>(
        "SELECT github_id, login FROM github_accounts WHERE user_id = $1 FOR UPDATE",
    )
    .bind(user_id)
    .fetch_optional(conn)
    .await?)
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
