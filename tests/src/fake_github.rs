//! The GitHub the web UI signs in with: the sign-in fake shared with the
//! backend's tests (`berth_common::testing::fake_github`: the OAuth web
//! flow with PKCE, `/user`, `/user/emails`, `/user/repos`, branches), with
//! this suite's user and repositories. It remembers every call.

use anyhow::Result;
use berth_common::testing::fake_github::Account;

pub use berth_common::testing::fake_github::FakeGitHubOAuth as FakeGitHub;

pub const GITHUB_ID: i64 = 1_296_269;
pub const LOGIN: &str = "octo-dev";
/// Private on the profile: berth has to read it from `/user/emails`.
pub const EMAIL: &str = "octo-dev@example.com";
/// The user's repositories, as (name, private); the first has branches.
pub const REPOS: [(&str, bool); 2] = [("hello-berth", false), ("billing-api", true)];
pub const BRANCHES: [&str; 2] = ["main", "release"];
const TOKEN: &str = "gho_e2eFakeToken0123456789abcdefABCDEF";

/// Serves the fake on a local port: everything on one page.
pub async fn start() -> Result<FakeGitHub> {
    FakeGitHub::start(Account {
        id: GITHUB_ID,
        login: LOGIN,
        email: EMAIL,
        repo_pages: vec![REPOS.to_vec()],
        branch_pages: vec![BRANCHES.to_vec()],
        token: TOKEN.into(),
    })
    .await
}
