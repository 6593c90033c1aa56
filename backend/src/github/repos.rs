//! The signed-in user's GitHub repositories and branches, read with their
//! linked token (every page, up to `github_api::pages::MAX_PAGES`).

use super::store;
use crate::auth::CurrentUser;
use crate::error::{Error, Result};
use crate::extract::{Json, Path};
use crate::github_api::{Branch, GitHubError, Repo};
use crate::state::AppState;
use axum::extract::State;
use berth_proto::Binding;

/// The user's GitHub token, opened.
async fn token(state: &AppState, user: CurrentUser) -> Result<String> {
    let mut conn = state.db.acquire().await?;
    let sealed = store::token_of(&mut conn, user.id).await?.ok_or_else(|| {
        Error::Conflict("connect GitHub first: sign in with GitHub from your account".into())
    })?;
    String::from_utf8(state.key.open(&Binding::github_token(user.id), &sealed)?)
        .map_err(|_| Error::internal("a sealed GitHub token is not text"))
}

fn github_problem(error: GitHubError) -> Error {
    match error {
        GitHubError::BadToken => Error::Conflict(
            "GitHub no longer accepts your token (it was revoked or has expired): sign in with GitHub again"
                .into(),
        ),
        GitHubError::NoAccess => Error::NotFound("repository on GitHub"),
        GitHubError::Unavailable(reason) => Error::Unavailable(reason),
        other => Error::Unavailable(other.to_string()),
    }
}

/// The repositories your linked GitHub account can see, most recently pushed first.
#[utoipa::path(get, path = "/api/v1/github/repos", tag = "github", security(("bearer" = [])),
    responses((status = 200, body = [Repo]), (status = 409, body = crate::error::Problem)))]
pub async fn list_repos(
    State(state): State<AppState>,
    user: CurrentUser,
) -> Result<Json<Vec<Repo>>> {
    let token = token(&state, user).await?;
    let repos = state.github.repos(&token).await.map_err(github_problem)?;
    Ok(Json(repos))
}

/// The branches of one of those repositories.
#[utoipa::path(get, path = "/api/v1/github/repos/{owner}/{repo}/branches", tag = "github",
    security(("bearer" = [])),
    params(("owner" = String, Path), ("repo" = String, Path)),
    responses((status = 200, body = [Branch]), (status = 404, body = crate::error::Problem),
              (status = 409, body = crate::error::Problem)))]
pub async fn list_branches(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((owner, repo)): Path<(String, String)>,
) -> Result<Json<Vec<Branch>>> {
    let valid = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    if !valid(&owner) || !valid(&repo) {
        return Err(Error::NotFound("repository on GitHub"));
    }
    let token = token(&state, user).await?;
    let branches = state
        .github
        .branches(&owner, &repo, &token)
        .await
        .map_err(github_problem)?;
    Ok(Json(branches))
}
