//! GitHub sign-in: the OAuth authorization-code flow with `state` and PKCE
//! (S256). `start` answers the URL to send the browser to; GitHub sends it
//! back to `callback`, which signs the GitHub account's berth user in or
//! creates one. Linking GitHub to a signed-in account starts elsewhere
//! (`linking`) and ends here too.
//!
//! The `state` alone would be a bearer secret: whoever holds it could
//! finish the flow in their own browser, or send the callback link to
//! someone else's ("login CSRF": the victim ends up signed in to the
//! sender's account). So the flow is bound to the browser that started it:
//! `start` gives it a cookie holding a random nonce (HttpOnly,
//! SameSite=Lax, so the top-level return from GitHub carries it; `__Host-`
//! prefixed over https), the state's row keeps the nonce's SHA-256, and the
//! callback wants the cookie back before it asks GitHub anything.

use super::new_user::create_user;
use super::store::{self, Account, NewState, PendingSignIn};
use crate::audit::{self, Event, SourceAddr};
use crate::auth::{self, cookie, TokenResponse};
use crate::credentials::tokens::{hash_token, random_token};
use crate::error::{Error, Result};
use crate::extract::{Json, Query};
use crate::github_api::{GitHubError, GitHubUser, OAuthApp, OAuthToken};
use crate::state::{ApiSettings, AppState};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use berth_proto::Binding;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// `repo` covers cloning private repositories and reporting deployments
/// (`repo_deployment`, `repo:status`) on them.
pub const SCOPES: &str = "repo read:user user:email";
const CALLBACK_PATH: &str = "/api/v1/auth/github/callback";
/// The cookie binding a flow to its browser (`__Host-berth_oauth` over https).
pub const FLOW_COOKIE: &str = "berth_oauth";
const FLOW_COOKIE_PATH: &str = "/api/v1/auth/github";

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
pub(super) fn configured(state: &AppState) -> Result<(&OAuthApp, String)> {
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

fn flow_cookie(settings: &ApiSettings, nonce: String) -> Cookie<'static> {
    let mut cookie = cookie::scoped(
        settings,
        FLOW_COOKIE,
        FLOW_COOKIE_PATH,
        SameSite::Lax,
        nonce,
    );
    cookie.set_max_age(::cookie::time::Duration::seconds(
        store::STATE_TTL.as_secs() as i64,
    ));
    cookie
}

/// Starts a flow (a sign-in, or a link for `link_user_id`): stores its
/// state, gives the browser its nonce cookie, and answers the authorize URL.
pub(super) async fn begin(
    state: &AppState,
    jar: CookieJar,
    link_user_id: Option<Uuid>,
    browser: bool,
) -> Result<(CookieJar, Json<StartResponse>)> {
    let (app, redirect_uri) = configured(state)?;
    let oauth_state = random_token();
    let nonce = random_token();
    let verifier = random_token();
    let binding = Binding::pkce_verifier(&hash_token(&oauth_state));
    let sealed = state.key.seal(&binding, verifier.as_bytes());
    let new = NewState {
        state: &oauth_state,
        nonce: &nonce,
        verifier: &sealed,
        link_user_id,
        browser,
    };
    store::insert_state(&state.db, new).await?;
    let mut url = url::Url::parse(&format!("{}/login/oauth/authorize", app.web_url))
        .map_err(|e| Error::internal(format!("BERTH_GITHUB_URL: {e}")))?;
    url.query_pairs_mut()
        .append_pair("client_id", &app.client_id)
        .append_pair("redirect_uri", &redirect_uri)
        .append_pair("scope", SCOPES)
        .append_pair("state", &oauth_state)
        .append_pair("code_challenge", &challenge(&verifier))
        .append_pair("code_challenge_method", "S256");
    let jar = jar.add(flow_cookie(&state.settings, nonce));
    Ok((jar, Json(StartResponse { url: url.into() })))
}

/// Start signing in with GitHub. Answers JSON (not a redirect) so that a
/// web UI can navigate to `url` itself; the answer also sets the cookie
/// the callback needs, so the callback must come back to the same browser
/// (or HTTP client, with its cookies). To link GitHub to a signed-in
/// account, use `POST /auth/github/link`.
#[utoipa::path(get, path = "/api/v1/auth/github/start", tag = "auth", params(StartQuery),
    responses((status = 200, body = StartResponse,
               description = "sets the `berth_oauth` cookie (`__Host-berth_oauth` over https)"),
              (status = 400, body = crate::error::Problem,
               description = "sent with an access token: linking is POST /auth/github/link"),
              (status = 404, body = crate::error::Problem)))]
pub async fn start(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    Query(query): Query<StartQuery>,
) -> Result<(CookieJar, Json<StartResponse>)> {
    if auth::extractor::bearer_token(&headers)?.is_some() {
        return Err(Error::BadRequest(
            "this starts a sign-in; to link GitHub to your account, use \
             POST /api/v1/auth/github/link (it asks for your password)"
                .into(),
        ));
    }
    begin(&state, jar, None, query.browser).await
}

/// GitHub sends the browser back here. The state must be one berth made,
/// unexpired and unused, and the browser must hold the cookie its start
/// set. A sign-in answers the same tokens as a login; one the web UI
/// started (`browser=true`) sets the session cookie and redirects to the
/// UI, or to `/sign-in?error=...` when it failed. A link issues no session:
/// it answers `{github_login}`, or redirects to `/account?github=linked`
/// (or `/account?github_error=...`).
#[utoipa::path(get, path = "/api/v1/auth/github/callback", tag = "auth", params(CallbackQuery),
    responses((status = 200, body = TokenResponse,
               description = "a sign-in: its tokens (a link answers `LinkedResponse`)"),
              (status = 303, description = "a flow the web UI started: back to the UI"),
              (status = 400, body = crate::error::Problem,
               description = "unknown, expired or used state, or not the browser that started"),
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
    let nonce = cookie::scoped_value(&state.settings, &jar, FLOW_COOKIE);
    if !pending.started_with(nonce.as_deref()) {
        tracing::warn!(
            link = pending.link_user_id.is_some(),
            "a GitHub callback came without the cookie of the browser that started it"
        );
        return Err(Error::BadRequest(
            "this GitHub sign-in was started in another browser (or its cookie is gone); \
             start again from berth"
                .into(),
        ));
    }
    let jar = jar.remove(flow_cookie(&state.settings, String::new()));
    if let Some(user_id) = pending.link_user_id {
        return super::linking::finish(&state, source, &query, &pending, user_id, jar).await;
    }
    let browser = pending.browser;
    let signed_in = sign_in(&state, source, &query, &pending, &redirect_uri).await;
    let ui = state.settings.public_url.as_deref().unwrap_or("");
    match (signed_in, browser) {
        (Ok(tokens), false) => Ok((jar, Json(tokens)).into_response()),
        (Ok(tokens), true) => {
            let token = tokens.refresh_token.unwrap_or_default();
            let jar = cookie::with_session(jar, &state.settings, token);
            Ok((jar, Redirect::to(&format!("{ui}/"))).into_response())
        }
        (Err(error), false) => Err(error),
        (Err(error), true) => {
            let detail = url_encoded(&error.to_problem().detail);
            Ok((jar, Redirect::to(&format!("{ui}/sign-in?error={detail}"))).into_response())
        }
    }
}

pub(super) fn url_encoded(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Trades the code for a token and reads whose it is.
pub(super) async fn authorized(
    state: &AppState,
    query: &CallbackQuery,
    pending: &PendingSignIn,
    redirect_uri: &str,
) -> Result<(GitHubUser, OAuthToken)> {
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
    Ok((github_user, token))
}

/// Signs the GitHub account's user in (making one on the first sign-in).
async fn sign_in(
    state: &AppState,
    source: SourceAddr,
    query: &CallbackQuery,
    pending: &PendingSignIn,
    redirect_uri: &str,
) -> Result<TokenResponse> {
    let (github_user, token) = authorized(state, query, pending, redirect_uri).await?;
    let mut tx = state.db.begin().await?;
    let (user_id, created) = match store::user_of(&mut tx, github_user.id).await? {
        Some(owner) => (owner, false),
        None => (create_user(&mut tx, &github_user).await?, true),
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
    let event = Event::new(user_id, "auth.github_login", "user", user_id, source).details(details);
    audit::record(&mut tx, event).await?;
    tx.commit().await?;
    tracing::info!(%user_id, github_login = %github_user.login, created, "signed in with GitHub");
    Ok(tokens)
}

pub(super) fn github_problem(error: GitHubError) -> Error {
    match error {
        GitHubError::Unavailable(reason) => Error::Unavailable(reason),
        GitHubError::NotConfigured => {
            Error::NotFound("GitHub sign-in: it is not configured on this server")
        }
        _ => Error::BadRequest("GitHub refused the authorization code; start again".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_challenge_is_the_verifiers_sha256_in_base64url() {
        // BASE64URL(SHA256(verifier)) without padding, computed elsewhere.
        assert_eq!(
            challenge("dBjftJeZ4CVP-mJ92K9ekaWNmO6xdbZ5F1gUg9nYpR0"),
            "O3Y7VaMzP5MlwZuD6eeYgo3WWGAoz35-3EBOCHofB64"
        );
    }

    #[test]
    fn the_flow_cookie_is_lax_http_only_and_host_prefixed_over_https() {
        let https = ApiSettings {
            public_url: Some("https://berth.example.com".into()),
            ..ApiSettings::default()
        };
        let set = format!("{};", flow_cookie(&https, "n0nce".into()));
        for part in [
            "__Host-berth_oauth=n0nce;",
            "HttpOnly",
            "SameSite=Lax",
            "Secure",
            "Path=/;",
            "Max-Age=600",
        ] {
            assert!(set.contains(part), "{part} in {set}");
        }
        let plain = flow_cookie(&ApiSettings::default(), "n".into()).to_string();
        assert!(plain.starts_with("berth_oauth=n;"), "{plain}");
        assert!(plain.contains("Path=/api/v1/auth/github"), "{plain}");
    }
}
