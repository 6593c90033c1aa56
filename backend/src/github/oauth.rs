//! GitHub sign-in: the OAuth authorization-code flow with `state` and PKCE
//! (S256). `start` answers the URL to send the browser to; GitHub sends it
//! back to `callback`, which signs the GitHub account's berth user in,
//! creates one, or links GitHub to the signed-in user who started.

use super::store::{self, Account};
use super::types::{GitHubUser, OAuthApp};
use crate::audit::{self, Event, SourceAddr};
use crate::auth::tokens::{hash_token, random_token};
use crate::auth::{self, cookie, CurrentUser, TokenResponse};
use crate::error::{Error, Result};
use crate::extract::{Json, Query};
use crate::state::AppState;
use crate::validate;
use crate::webhooks::github::GitHubError;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use berth_proto::Binding;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// `repo` covers cloning private repositories and reporting deployments
/// (`repo_deployment`, `repo:status`) on them.
pub const SCOPES: &str = "repo read:user user:email";
const CALLBACK_PATH: &str = "/api/v1/auth/github/callback";

#[derive(Debug, Serialize, ToSchema)]
pub struct StartResponse {
    /// Send the browser here; GitHub sends it back to the callback.
    pub url: String,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct StartQuery {
    /// For the web UI: the callback then sets the session cookie and
    /// redirects to the UI (or to `/sign-in?error=...`).
    #[serde(default)]
    pub browser: bool,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct CallbackQuery {
    pub code: Option<String>,
    pub state: Option<String>,
    /// Set by GitHub when the user refused.
    pub error: Option<String>,
}

/// The OAuth app and the callback URL, or "not configured".
fn configured(state: &AppState) -> Result<(&OAuthApp, String)> {
    let not_configured = Error::NotFound("GitHub sign-in: it is not configured on this server");
    let app = state.github.oauth_app().ok_or(not_configured)?;
    let public = state.settings.public_url.as_deref().ok_or(Error::NotFound(
        "GitHub sign-in: BERTH_PUBLIC_URL is not set on this server",
    ))?;
    Ok((app, format!("{public}{CALLBACK_PATH}")))
}

pub fn challenge(verifier: &str) -> String {
    B64URL.encode(Sha256::digest(verifier.as_bytes()))
}

/// Start signing in with GitHub. With an access token, the flow links
/// GitHub to that account instead. Answers JSON (not a redirect) so that a
/// web UI can send its bearer token and then navigate to `url`.
#[utoipa::path(get, path = "/api/v1/auth/github/start", tag = "auth", params(StartQuery),
    security((), ("bearer" = [])),
    responses((status = 200, body = StartResponse), (status = 404, body = crate::error::Problem)))]
pub async fn start(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<StartQuery>,
) -> Result<Json<StartResponse>> {
    let link = CurrentUser::from_headers(&headers, &state).await?;
    let (app, redirect_uri) = configured(&state)?;
    let oauth_state = random_token();
    let verifier = random_token();
    let binding = Binding::pkce_verifier(&hash_token(&oauth_state));
    let sealed = state.key.seal(&binding, verifier.as_bytes());
    let link = link.map(|user| user.id);
    store::insert_state(&state.db, &oauth_state, &sealed, link, query.browser).await?;
    let mut url = url::Url::parse(&format!("{}/login/oauth/authorize", app.web_url))
        .map_err(|e| Error::internal(format!("BERTH_GITHUB_URL: {e}")))?;
    url.query_pairs_mut()
        .append_pair("client_id", &app.client_id)
        .append_pair("redirect_uri", &redirect_uri)
        .append_pair("scope", SCOPES)
        .append_pair("state", &oauth_state)
        .append_pair("code_challenge", &challenge(&verifier))
        .append_pair("code_challenge_method", "S256");
    Ok(Json(StartResponse { url: url.into() }))
}

/// GitHub sends the browser back here. The state must be one berth made,
/// unexpired and unused. Answers the same tokens as a login; for a sign-in
/// the web UI started (`browser=true`), sets the session cookie and
/// redirects to the UI, or to `/sign-in?error=...` when it failed.
#[utoipa::path(get, path = "/api/v1/auth/github/callback", tag = "auth", params(CallbackQuery),
    responses((status = 200, body = TokenResponse),
              (status = 303, description = "a browser sign-in: to the web UI"),
              (status = 400, body = crate::error::Problem),
              (status = 409, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
pub async fn callback(
    State(state): State<AppState>,
    source: SourceAddr,
    jar: CookieJar,
    Query(query): Query<CallbackQuery>,
) -> Result<Response> {
    let (_, redirect_uri) = configured(&state)?;
    let bad_state = || {
        Error::BadRequest(
            "the sign-in state is unknown, expired or already used; start again".into(),
        )
    };
    let oauth_state = query.state.as_deref().ok_or_else(bad_state)?;
    let pending = store::consume_state(&state.db, oauth_state)
        .await?
        .ok_or_else(bad_state)?;
    let browser = pending.browser;
    let signed_in = sign_in(&state, source, &query, pending, &redirect_uri).await;
    let ui = state.settings.public_url.as_deref().unwrap_or("");
    match (signed_in, browser) {
        (Ok(tokens), false) => Ok(Json(tokens).into_response()),
        (Ok(tokens), true) => {
            let token = tokens.refresh_token.unwrap_or_default();
            let jar = cookie::with_session(jar, &state.settings, token);
            Ok((jar, Redirect::to(&format!("{ui}/"))).into_response())
        }
        (Err(error), false) => Err(error),
        (Err(error), true) => {
            let detail: String =
                url::form_urlencoded::byte_serialize(error.to_problem().detail.as_bytes())
                    .collect();
            Ok(Redirect::to(&format!("{ui}/sign-in?error={detail}")).into_response())
        }
    }
}

/// Trades the code for a token and signs the GitHub account's user in.
async fn sign_in(
    state: &AppState,
    source: SourceAddr,
    query: &CallbackQuery,
    pending: store::PendingSignIn,
    redirect_uri: &str,
) -> Result<TokenResponse> {
    if query.error.is_some() {
        return Err(Error::BadRequest(
            "GitHub sign-in was refused or cancelled".into(),
        ));
    }
    let code = query
        .code
        .as_deref()
        .ok_or_else(|| Error::BadRequest("GitHub sent no authorization code".into()))?;
    let binding = Binding::pkce_verifier(&hash_token(query.state.as_deref().unwrap_or_default()));
    let verifier = String::from_utf8(state.key.open(&binding, &pending.verifier)?)
        .map_err(|_| Error::internal("a sealed PKCE verifier is not text"))?;
    let token = state
        .github
        .exchange_code(code, &verifier, redirect_uri)
        .await
        .map_err(github_problem)?;
    let github_user = state
        .github
        .user(&token.access_token)
        .await
        .map_err(github_problem)?;

    let mut tx = state.db.begin().await?;
    let owner = store::user_of(&mut tx, github_user.id).await?;
    let (user_id, action, created) = match (pending.link_user_id, owner) {
        (Some(link), Some(owner)) if owner != link => {
            return Err(Error::Conflict(
                "this GitHub account is linked to another berth account".into(),
            ))
        }
        (Some(link), _) => (link, "auth.github_linked", false),
        (None, Some(owner)) => (owner, "auth.github_login", false),
        (None, None) => (
            create_user(&mut tx, &github_user).await?,
            "auth.github_login",
            true,
        ),
    };
    // Sealed for the user it is linked to: it opens for nobody else.
    let sealed = state.key.seal(
        &Binding::github_token(user_id),
        token.access_token.as_bytes(),
    );
    let account = Account {
        user_id,
        github_id: github_user.id,
        login: &github_user.login,
        token: &sealed,
        scopes: &token.scope,
    };
    store::upsert_account(&mut tx, account).await?;
    let tokens = auth::new_session(state, &mut tx, user_id).await?;
    let details = serde_json::json!({"github_login": github_user.login, "created": created});
    let event = Event::new(user_id, action, "user", user_id, source).details(details);
    audit::record(&mut tx, event).await?;
    tx.commit().await?;
    tracing::info!(%user_id, github_login = %github_user.login, action, created, "signed in with GitHub");
    Ok(tokens)
}

fn github_problem(error: GitHubError) -> Error {
    match error {
        GitHubError::Unavailable(reason) => Error::Unavailable(reason),
        GitHubError::NotConfigured => {
            Error::NotFound("GitHub sign-in: it is not configured on this server")
        }
        _ => Error::BadRequest("GitHub refused the authorization code; start again".into()),
    }
}

/// A new password-less user named after the GitHub login.
async fn create_user(conn: &mut PgConnection, github: &GitHubUser) -> Result<Uuid> {
    let email = github
        .email
        .clone()
        .unwrap_or_else(|| format!("{}+{}@users.noreply.github.com", github.id, github.login));
    let base = username_base(&github.login);
    let mut username = base.clone();
    for n in 2.. {
        if !store::username_taken(conn, &username).await? {
            break;
        }
        let suffix = format!("-{n}");
        let keep = validate::MAX_USERNAME_LEN - suffix.len();
        username = format!(
            "{}{suffix}",
            base[..base.len().min(keep)].trim_end_matches('-')
        );
    }
    let user = auth::store::insert_user(conn, &username, &email, None)
        .await
        .map_err(|error| match error {
            Error::Conflict(_) | Error::Taken(_) => Error::Conflict(
                "a berth account already uses this GitHub account's email; sign in to it and link GitHub"
                    .into(),
            ),
            other => other,
        })?;
    Ok(user.id)
}

/// A DNS-1123 label from a GitHub login (`Octo_Cat` → `octo-cat`).
pub fn username_base(login: &str) -> String {
    let mapped: String = login
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .collect();
    let mut label = mapped.trim_matches('-').to_owned();
    label.truncate(validate::MAX_USERNAME_LEN);
    let label = label.trim_end_matches('-').to_owned();
    if validate::dns_label(&label, validate::MAX_USERNAME_LEN).is_ok() {
        label
    } else {
        "github-user".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_dns_labels() {
        assert_eq!(username_base("Codertocat"), "codertocat");
        assert_eq!(username_base("Octo_Cat-"), "octo-cat");
        assert_eq!(username_base("---"), "github-user");
        assert_eq!(
            username_base(&"a".repeat(60)).len(),
            validate::MAX_USERNAME_LEN
        );
    }

    #[test]
    fn the_challenge_is_the_verifiers_sha256_in_base64url() {
        // BASE64URL(SHA256(verifier)) without padding, computed elsewhere.
        assert_eq!(
            challenge("dBjftJeZ4CVP-mJ92K9ekaWNmO6xdbZ5F1gUg9nYpR0"),
            "O3Y7VaMzP5MlwZuD6eeYgo3WWGAoz35-3EBOCHofB64"
        );
    }
}
