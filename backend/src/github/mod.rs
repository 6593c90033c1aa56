//! GitHub accounts: sign-in with GitHub (`oauth`; the account a first
//! sign-in makes, `new_user`), linking GitHub to a signed-in account
//! (`linking`), the linked account and its sealed token (`store`), the
//! user's repositories and branches (`repos`), and the token a private
//! repository's build clones with (`clone_token`). GitHub itself is called
//! through `crate::github_api`.

pub mod linking;
pub mod new_user;
pub mod oauth;
pub mod repos;
pub mod store;

use crate::apps_store::AppRow;
use crate::error::Result;
use crate::github_api::repo_url;
use crate::state::AppState;
use axum::routing::{get, post};
use axum::Router;
use berth_proto::{Binding, Sealed, SecretKey};
use sqlx::PgConnection;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/github/start", get(oauth::start))
        .route("/auth/github/callback", get(oauth::callback))
        .route("/auth/github/link", post(linking::link))
        .route("/github/repos", get(repos::list_repos))
        .route(
            "/github/repos/{owner}/{repo}/branches",
            get(repos::list_branches),
        )
}

/// The owner's GitHub token for a build of `app`, sealed for that app's
/// builds ([`Binding::build_token`]): the stored value is bound to its user
/// and opens nowhere else, and what the message carries opens only in a
/// build of this app.
pub async fn clone_token(
    conn: &mut PgConnection,
    key: &SecretKey,
    app: &AppRow,
    host: &str,
) -> Result<Option<Sealed>> {
    if !repo_url::takes_token(&app.repo_url, host) {
        return Ok(None);
    }
    let Some(stored) = store::token_of(conn, app.owner_id).await? else {
        return Ok(None);
    };
    let token = key.open(&Binding::github_token(app.owner_id), &stored)?;
    Ok(Some(
        key.seal(&Binding::build_token(&app.tenant, app.id), &token),
    ))
}
