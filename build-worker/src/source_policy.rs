//! Which repositories a build may fetch, and where a repository token may
//! go. The repository rules are the backend's ([`RepoPolicy`], checked
//! again here because a message is only as trustworthy as whoever could
//! publish it). The token rule is the build-worker's own: the owner's GitHub
//! token is sent only to the configured GitHub (scheme, host and port, over
//! https except in local development), never to whatever URL a message
//! names, and never to the host a redirect points at.

use crate::error::BuildError;
use berth_common::repo_policy::{RepoPolicy, RepoRefusal, RepoSource, SystemResolver};

/// The rules a build's source follows.
#[derive(Debug, Clone)]
pub struct SourcePolicy {
    pub repos: RepoPolicy,
    /// The GitHub the backend's tokens belong to (BERTH_GITHUB_URL).
    pub github: url::Url,
}

impl Default for SourcePolicy {
    fn default() -> Self {
        Self {
            repos: RepoPolicy::default(),
            github: url::Url::parse("https://github.com").expect("a valid URL"),
        }
    }
}

fn refused(url: &str, refusal: RepoRefusal) -> BuildError {
    let url = crate::git::redact(url);
    match refusal {
        RepoRefusal::Unresolvable { .. } => BuildError::Clone {
            url,
            message: refusal.to_string(),
        },
        other => BuildError::UrlRefused {
            url,
            reason: other.to_string(),
        },
    }
}

impl SourcePolicy {
    /// The repository, if the policy allows it (no name resolution).
    pub fn check(&self, url: &str) -> Result<RepoSource, BuildError> {
        self.repos.check(url).map_err(|r| refused(url, r))
    }

    /// Right before a fetch: the host must not resolve to an internal
    /// address (nor be unresolvable).
    pub async fn check_resolved(&self, url: &str) -> Result<RepoSource, BuildError> {
        self.repos
            .check_resolved(url, &SystemResolver)
            .await
            .map_err(|r| refused(url, r))
    }

    /// Whether a token may be sent to `url`: the configured GitHub's
    /// scheme, host and port exactly, https unless local repositories are
    /// allowed, no credentials in the URL.
    pub fn token_may_go_to(&self, url: &str) -> bool {
        let Ok(url) = url::Url::parse(url.trim()) else {
            return false;
        };
        let secure = url.scheme() == "https" || self.repos.allow_local;
        secure
            && url.username().is_empty()
            && url.password().is_none()
            && url.origin().is_tuple()
            && url.origin() == self.github.origin()
    }
}

/// Whether `asked` (the URL libgit2 wants credentials for, after any
/// redirect) is on the same scheme, host and port as `repo`.
pub fn same_origin(asked: &str, repo: &str) -> bool {
    match (url::Url::parse(asked), url::Url::parse(repo)) {
        (Ok(asked), Ok(repo)) => asked.origin().is_tuple() && asked.origin() == repo.origin(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn github(url: &str, allow_local: bool) -> SourcePolicy {
        SourcePolicy {
            repos: RepoPolicy {
                allow_local,
                local_root: None,
            },
            github: url::Url::parse(url).unwrap(),
        }
    }

    #[test]
    fn the_token_goes_only_to_the_configured_github_over_https() {
        let policy = github("https://github.com", false);
        assert!(policy.token_may_go_to("https://github.com/o/r.git"));
        assert!(policy.token_may_go_to("https://GitHub.com:443/o/r"));
        for url in [
            "https://evil.example/r.git",
            "https://github.com.evil.example/o/r",
            "https://github.com:8443/o/r",
            "http://github.com/o/r",
            "https://x:y@github.com/o/r",
            "file:///srv/o/r",
            "/srv/o/r",
        ] {
            assert!(!policy.token_may_go_to(url), "{url}");
        }
        // A GitHub on a local port (tests) in local development.
        let local = github("http://127.0.0.1:4000", true);
        assert!(local.token_may_go_to("http://127.0.0.1:4000/o/r"));
        assert!(!local.token_may_go_to("http://127.0.0.1:4001/o/r"));
        assert!(
            !github("http://127.0.0.1:4000", false).token_may_go_to("http://127.0.0.1:4000/o/r")
        );
    }

    #[test]
    fn credentials_are_given_only_to_the_repositorys_own_origin() {
        let repo = "https://github.com/o/r.git";
        assert!(same_origin("https://github.com/o/r.git/info/refs", repo));
        assert!(same_origin("https://github.com/other/place", repo));
        for asked in [
            "https://evil.example/o/r.git",
            "http://github.com/o/r.git",
            "https://github.com:444/o/r.git",
            "not a url",
        ] {
            assert!(!same_origin(asked, repo), "{asked}");
        }
    }
}
