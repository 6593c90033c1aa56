//! What a repository URL says about GitHub: which `owner/repo` it names on
//! the GitHub host berth talks to, and whether a build of it may carry the
//! owner's GitHub token. Push hooks, status reports and clone tokens all
//! start here.

/// `owner` and `repo` of a repository URL on `host`
/// (`https://github.com/o/r.git` → `("o", "r")`).
pub fn repository(repo_url: &str, host: &str) -> Option<(String, String)> {
    let url = url::Url::parse(repo_url.trim()).ok()?;
    if !url.host_str()?.eq_ignore_ascii_case(host) {
        return None;
    }
    let parts: Vec<&str> = url.path_segments()?.filter(|s| !s.is_empty()).collect();
    let [owner, repo] = parts.as_slice() else {
        return None;
    };
    let repo = repo.strip_suffix(".git").unwrap_or(repo);
    (!repo.is_empty()).then(|| ((*owner).to_owned(), repo.to_owned()))
}

/// Whether a build of `repo_url` may carry a token for GitHub at `host`:
/// a repository on that host, over https (http only on loopback, for tests).
pub fn takes_token(repo_url: &str, host: &str) -> bool {
    let Ok(url) = url::Url::parse(repo_url.trim()) else {
        return false;
    };
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    let secure = url.scheme() == "https" || (url.scheme() == "http" && loopback);
    secure && url.username().is_empty() && repository(repo_url, host).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_on_the_host_are_recognised() {
        let repo = |url| repository(url, "github.com");
        let expected = Some(("Codertocat".to_owned(), "Hello-World".to_owned()));
        assert_eq!(
            repo("https://github.com/Codertocat/Hello-World.git"),
            expected
        );
        assert_eq!(repo("https://GitHub.com/Codertocat/Hello-World/"), expected);
        assert_eq!(repo("https://gitlab.com/Codertocat/Hello-World"), None);
        assert_eq!(repo("https://github.com/Codertocat"), None);
        assert_eq!(repo("https://github.com/o/r/tree/main"), None);
        assert_eq!(repo("file:///srv/repo"), None);
    }

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
