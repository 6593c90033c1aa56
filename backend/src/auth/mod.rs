//! Sessions: log in, refresh, log out. The account itself (sign-up,
//! profile, password, deletion, reset) is in `accounts`.

pub mod cookie;
pub mod extractor;
pub mod recent;
pub mod store;
pub mod tickets;

pub use extractor::CurrentUser;
pub use store::User;

use crate::audit::{self, Event, SourceAddr};
use crate::credentials::password;
use crate::credentials::throttle::{self, Guarded};
use crate::error::{Error, Result};
use crate::extract::Json;
use crate::state::{ApiSettings, AppState};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use axum_extra::extract::cookie::CookieJar;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use store::Rotation;
use utoipa::ToSchema;
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/login", post(login))
        .route("/auth/refresh", post(refresh))
        .route("/auth/logout", post(logout))
        .route("/ws-tickets", post(tickets::create_ticket))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    /// Username or email address.
    pub login: String,
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RefreshRequest {
    /// Leave out to use the session cookie (with `X-Berth-Session: cookie`).
    #[serde(default)]
    pub refresh_token: Option<String>,
}

impl RefreshRequest {
    /// The refresh token from the body, else from the session cookie.
    fn token(
        &self,
        settings: &ApiSettings,
        headers: &HeaderMap,
        jar: &CookieJar,
    ) -> Option<String> {
        self.refresh_token
            .as_deref()
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .map(str::to_owned)
            .or_else(|| cookie::refresh_token(settings, headers, jar))
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// A JWT to send as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Single-use: exchange it at /auth/refresh for a new pair. Absent when
    /// the request asked for the session cookie (`X-Berth-Session: cookie`):
    /// then it is in the `berth_refresh` cookie.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

impl TokenResponse {
    /// Hands the pair out: with `X-Berth-Session: cookie`, the refresh
    /// token goes into the HttpOnly cookie instead of the body.
    pub fn deliver(
        mut self,
        settings: &ApiSettings,
        headers: &HeaderMap,
        jar: CookieJar,
    ) -> (CookieJar, Json<Self>) {
        let jar = match (cookie::wants_cookie(headers), self.refresh_token.take()) {
            (true, Some(token)) => cookie::with_session(jar, settings, token),
            (false, token) => {
                self.refresh_token = token;
                jar
            }
            (true, None) => jar,
        };
        (jar, Json(self))
    }
}

/// The token pair of a session: a new access token (under the user's
/// current session epoch) with the session's refresh token.
pub async fn tokens_for(
    state: &AppState,
    conn: &mut PgConnection,
    user_id: Uuid,
    session: Uuid,
    refresh_token: String,
) -> Result<TokenResponse> {
    let epoch = sqlx::query_scalar::<_, i32>("SELECT session_epoch FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_one(conn)
        .await?;
    Ok(TokenResponse {
        access_token: state.tokens.issue(user_id, epoch, session)?,
        token_type: "Bearer",
        expires_in: state.tokens.access_ttl.as_secs(),
        refresh_token: Some(refresh_token),
    })
}

/// Starts a session (a new refresh token family) and issues its first pair.
pub async fn new_session(
    state: &AppState,
    conn: &mut PgConnection,
    user_id: Uuid,
) -> Result<TokenResponse> {
    let family = Uuid::now_v7();
    let ttl = state.settings.refresh_token_ttl;
    let (_, refresh_token) = store::create_refresh_token(conn, user_id, family, ttl, None).await?;
    tokens_for(state, conn, user_id, family, refresh_token).await
}

/// Exchange a username (or email) and password for tokens.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = crate::error::Problem)))]
async fn login(
    State(state): State<AppState>,
    source: SourceAddr,
    headers: HeaderMap,
    jar: CookieJar,
    Json(request): Json<LoginRequest>,
) -> Result<(CookieJar, Json<TokenResponse>)> {
    state.limiter.check(Guarded::Login, source.0).await?;
    let login = request.login.trim();
    let found = store::find_login(&state.db, login).await?;
    // An account's username and email are one name to the backoff; other
    // names count as typed.
    let name = found
        .as_ref()
        .map_or_else(|| login.to_owned(), |account| account.username.clone());
    // Checked before the password, so a blocked name cannot be guessed at,
    // and for every name alike, so being blocked reveals no account.
    if let Some(wait) = throttle::login_blocked(&state.db, &name).await? {
        metrics::counter!("berth_logins_total", "outcome" => "blocked").increment(1);
        return Err(Error::throttled(
            "too many failed sign-ins for this login",
            wait,
        ));
    }
    let (user_id, stored) = match found {
        Some(account) => (Some(account.id), account.password_hash),
        None => (None, None),
    };
    let valid = password::verify(request.password, stored).await?;
    let mut tx = state.db.begin().await?;
    let user_id = match (valid, user_id) {
        (true, Some(id)) => id,
        _ => {
            metrics::counter!("berth_logins_total", "outcome" => "refused").increment(1);
            // Recorded either way (an unknown login in nobody's log, a
            // known one in its owner's); the answer is the same.
            let event = Event {
                user_id,
                actor: None,
                action: "auth.login_failed",
                target_type: "user",
                target_id: user_id,
                details: serde_json::json!({}),
                source,
            }
            .actor(login);
            audit::record(&mut tx, event).await?;
            throttle::record_login_failure(&mut tx, &name).await?;
            tx.commit().await?;
            return Err(Error::InvalidCredentials);
        }
    };
    throttle::clear_login_failures(&mut tx, &[&name, login]).await?;
    let tokens = new_session(&state, &mut tx, user_id).await?;
    audit::record(
        &mut tx,
        Event::new(user_id, "auth.login", "user", user_id, source),
    )
    .await?;
    tx.commit().await?;
    metrics::counter!("berth_logins_total", "outcome" => "ok").increment(1);
    Ok(tokens.deliver(&state.settings, &headers, jar))
}

/// Exchange a refresh token for a new pair; the old refresh token is revoked.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = crate::error::Problem)))]
async fn refresh(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    Json(request): Json<RefreshRequest>,
) -> Result<(CookieJar, Json<TokenResponse>)> {
    let token = request.token(&state.settings, &headers, &jar).ok_or(Error::Unauthorized(
        "no refresh token: send it in the body, or send the session cookie with X-Berth-Session: cookie",
    ))?;
    let ttl = state.settings.refresh_token_ttl;
    match store::rotate_refresh_token(&state.db, &token, ttl).await? {
        Rotation::Rotated {
            user_id,
            session,
            refresh_token,
        } => {
            let mut conn = state.db.acquire().await?;
            let tokens = tokens_for(&state, &mut conn, user_id, session, refresh_token).await?;
            Ok(tokens.deliver(&state.settings, &headers, jar))
        }
        Rotation::Reused | Rotation::Invalid => Err(Error::Unauthorized(
            "the refresh token is invalid, expired or already used; log in again",
        )),
    }
}

/// Revoke a refresh token and the session it belongs to.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", request_body = RefreshRequest,
    responses((status = 204)))]
async fn logout(
    State(state): State<AppState>,
    source: SourceAddr,
    headers: HeaderMap,
    jar: CookieJar,
    Json(request): Json<RefreshRequest>,
) -> Result<(CookieJar, StatusCode)> {
    let mut tx = state.db.begin().await?;
    if let Some(token) = request.token(&state.settings, &headers, &jar) {
        if let Some(user_id) = store::revoke_session(&mut tx, &token).await? {
            let event = Event::new(user_id, "auth.logout", "user", user_id, source);
            audit::record(&mut tx, event).await?;
        }
    }
    tx.commit().await?;
    let jar = if cookie::wants_cookie(&headers) {
        cookie::cleared(jar, &state.settings)
    } else {
        jar
    };
    Ok((jar, StatusCode::NO_CONTENT))
}
