//! GitHub accounts: sign-in with GitHub (`oauth`; the account a first
//! sign-in makes, `new_user`), linking GitHub to a signed-in account
//! (`linking`), the linked account and its sealed token (`store`), the
//! user's repositories and branches (`repos`), and the token a private
//! repository's build clones with (`clone_token`). The HTTP client is
//! `webhooks::github::ReqwestGitHub`, extended here (`client`).

pub mod client;
pub mod link;
pub mod linking;
pub mod new_user;
pub mod oauth;
pub mod repos;
pub mod store;
pub mod types;

use crate::apps::store::AppRow;
use crate::error::Result;
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

/// Whether a build of `repo_url` may carry a token for GitHub at `host`:
/// a repository on that host, over https (http only on loopback, for tests).
pub fn takes_token(repo_url: &str, host: &str) -> bool {
    let Ok(url) = url::Url::parse(repo_url.trim()) else {
        return false;
    };
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    let secure = url.scheme() == "https" || (url.scheme() == "http" && loopback);
    secure
        && url.username().is_empty()
        && crate::webhooks::github::repository(repo_url, host).is_some()
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
    if !takes_token(&app.repo_url, host) {
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

#[cfg(test)]
mod tests {
    use super::takes_token;

    #[test]
    fn only_repositories_on_the_github_host_take_the_token() {
        assert!(takes_token("https://github.com/o/r.git", "github.com"));
        assert!(!takes_token("http://github.com/o/r.git", "github.com"));
        assert!(!takes_token("https://gitlab.com/o/r.git", "github.com"));
        assert!(!takes_token("https://x:y@github.com/o/r.git", "github.com"));
        assert!(takes_token("http://127.0.0.1:9/o/r.git", "127.0.0.1"));
        assert!(!takes_token("file:///srv/o/r", "github.com"));
    }
}
