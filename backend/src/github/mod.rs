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

use crate::error::Result;
use crate::state::AppState;
use axum::routing::{get, post};
use axum::Router;
use berth_proto::Sealed;
use sqlx::PgConnection;
use uuid::Uuid;

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

/// The owner's GitHub token, still sealed, for a build of `repo_url`.
/// The backend and the build-worker share the key, so the stored sealed
/// value is what the message carries: the token is never opened here.
pub async fn clone_token(
    conn: &mut PgConnection,
    owner_id: Uuid,
    repo_url: &str,
    host: &str,
) -> Result<Option<Sealed>> {
    if !takes_token(repo_url, host) {
        return Ok(None);
    }
    store::token_of(conn, owner_id).await
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
