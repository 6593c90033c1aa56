//! Getting the source: which URLs are allowed, resolving a branch or tag to
//! a commit without downloading anything (`ls-remote`), and fetching just
//! that commit (depth 1 where the transport allows) into a folder.
//!
//! git2 is blocking, so every call runs on `spawn_blocking`; a cancel flag
//! checked in the transfer callbacks stops a clone that outlived its deadline.

use crate::error::BuildError;
use async_trait::async_trait;
use berth_proto::{SecretKey, Source};
use git2::build::CheckoutBuilder;
use git2::{
    AutotagOption, Cred, CredentialType, Direction, ErrorClass, ErrorCode, FetchOptions, Oid,
    RemoteCallbacks, Repository,
};
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Set to stop a running clone.
pub type CancelFlag = Arc<AtomicBool>;

/// A repository token; never printed.
#[derive(Clone)]
pub struct Token(String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(..)")
    }
}

/// What to fetch: a checked URL, the ref or commit, the opened token.
#[derive(Debug, Clone)]
pub struct RepoSpec {
    pub url: String,
    /// A `file://` URL or a path (allowed only with `allow_local_repos`).
    pub local: bool,
    pub git_ref: String,
    pub commit: Option<String>,
    pub token: Option<Token>,
}

impl RepoSpec {
    pub fn new(source: &Source, key: &SecretKey, allow_local: bool) -> Result<Self, BuildError> {
        let url = source.repo_url.trim().to_owned();
        let local = check_url(&url, allow_local)?;
        let token = match &source.token {
            None => None,
            Some(sealed) => {
                let bytes = key.open(sealed).map_err(|_| BuildError::TokenUnreadable)?;
                let token = String::from_utf8(bytes).map_err(|_| BuildError::TokenUnreadable)?;
                let token = token.trim().to_owned();
                (!token.is_empty()).then_some(Token(token))
            }
        };
        let commit = source
            .commit
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(|c| c.to_ascii_lowercase());
        if let Some(commit) = &commit {
            if !(4..=40).contains(&commit.len()) || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(BuildError::CommitNotFound {
                    commit: commit.clone(),
                    url: redact(&url),
                });
            }
        }
        Ok(Self {
            url,
            local,
            git_ref: source.git_ref.trim().to_owned(),
            commit,
            token,
        })
    }

    /// The URL without any credentials in it, for logs and messages.
    pub fn display_url(&self) -> String {
        redact(&self.url)
    }

    /// What was asked for: the commit if given, else the ref.
    pub fn wanted(&self) -> &str {
        self.commit
            .as_deref()
            .unwrap_or(if self.git_ref.is_empty() {
                "HEAD"
            } else {
                &self.git_ref
            })
    }

    /// Removes the token and any credentials in the URL from `text`.
    fn scrub(&self, text: &str) -> String {
        let mut text = text.replace(&self.url, &self.display_url());
        if let Some(Token(token)) = &self.token {
            text = text.replace(token.as_str(), "***");
        }
        text
    }
}

/// Checks a repository URL against the policy; returns whether it is local.
/// `https://` is always allowed; `http://`, `file://` and paths only when
/// local repositories are allowed (development and tests).
pub fn check_url(url: &str, allow_local: bool) -> Result<bool, BuildError> {
    let refuse = |reason: &str| BuildError::UrlRefused {
        url: redact(url),
        reason: reason.to_owned(),
    };
    let lower = url.to_ascii_lowercase();
    let local_hint = "local repositories (file:// URLs and paths) are disabled on this server \
                      (BERTH_ALLOW_LOCAL_REPOS)";
    if lower.starts_with("https://") {
        let parsed = url::Url::parse(url).map_err(|_| refuse("it is not a valid URL"))?;
        if parsed.host_str().unwrap_or("").is_empty() {
            return Err(refuse("it has no host"));
        }
        Ok(false)
    } else if lower.starts_with("file://") || url.starts_with('/') {
        if allow_local {
            Ok(true)
        } else {
            Err(refuse(local_hint))
        }
    } else if lower.starts_with("http://") {
        if allow_local {
            Ok(false)
        } else {
            Err(refuse("plain http is not allowed; use an https:// URL"))
        }
    } else if lower.starts_with("ssh://") || lower.starts_with("git://") || url.contains('@') {
        Err(refuse("only https:// URLs are supported"))
    } else {
        Err(refuse("use an https:// URL"))
    }
}

/// `https://user:token@host/x` → `https://host/x`.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// The remote ref `wanted` names, among the advertised `heads` (name, SHA):
/// a branch, else a tag (peeled to its commit), else a full ref name; the
/// default branch for `HEAD` or nothing. Returns the ref to fetch and its SHA.
pub fn find_ref(heads: &[(String, String)], wanted: &str) -> Option<(String, String)> {
    let lookup = |name: &str| {
        heads
            .iter()
            .find(|(head, _)| head == name)
            .map(|(_, sha)| sha.clone())
    };
    let wanted = wanted.trim();
    if wanted.is_empty() || wanted == "HEAD" {
        let sha = lookup("HEAD")?;
        // Fetch the branch HEAD points at, when one does.
        let branch = heads
            .iter()
            .find(|(name, oid)| name.starts_with("refs/heads/") && *oid == sha)
            .map(|(name, _)| name.clone())
            .unwrap_or_else(|| "HEAD".to_owned());
        return Some((branch, sha));
    }
    let candidates = if wanted.starts_with("refs/") {
        vec![wanted.to_owned()]
    } else {
        vec![
            format!("refs/heads/{wanted}"),
            format!("refs/tags/{wanted}"),
        ]
    };
    candidates.into_iter().find_map(|name| {
        let sha = lookup(&format!("{name}^{{}}")).or_else(|| lookup(&name))?;
        Some((name, sha))
    })
}

/// A ref resolved to a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Full 40-character SHA.
    pub commit: String,
    /// The remote ref that points at it, when known: fetching it is cheap.
    pub ref_name: Option<String>,
}

/// The source seam: git today, maybe an archive download later.
#[async_trait]
pub trait SourceFetcher: Send + Sync + 'static {
    /// The commit to build, without downloading the repository when
    /// possible; `None` when only a fetch can tell (an abbreviated SHA).
    async fn resolve(&self, spec: &RepoSpec) -> Result<Option<Resolved>, BuildError>;

    /// Fetches the commit and checks it out into the empty folder `dest`.
    async fn checkout(
        &self,
        spec: &RepoSpec,
        resolved: Option<&Resolved>,
        dest: &Path,
        cancel: CancelFlag,
    ) -> Result<CheckedOut, BuildError>;
}

/// The commit a checkout holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedOut {
    /// The full SHA.
    pub commit: String,
    /// The first line of its message, as people read it in a history.
    pub summary: Option<String>,
}

/// [`SourceFetcher`] over git2 (https, and local repositories if allowed).
#[derive(Debug, Clone, Default)]
pub struct GitFetcher;

#[async_trait]
impl SourceFetcher for GitFetcher {
    async fn resolve(&self, spec: &RepoSpec) -> Result<Option<Resolved>, BuildError> {
        if let Some(commit) = &spec.commit {
            return Ok((commit.len() == 40).then(|| Resolved {
                commit: commit.clone(),
                ref_name: None,
            }));
        }
        let spec = spec.clone();
        blocking(move || {
            let heads = ls_remote(&spec)?;
            let (ref_name, commit) =
                find_ref(&heads, &spec.git_ref).ok_or_else(|| BuildError::RefNotFound {
                    git_ref: spec.wanted().to_owned(),
                    url: spec.display_url(),
                })?;
            Ok(Some(Resolved {
                commit,
                ref_name: Some(ref_name),
            }))
        })
        .await
    }

    async fn checkout(
        &self,
        spec: &RepoSpec,
        resolved: Option<&Resolved>,
        dest: &Path,
        cancel: CancelFlag,
    ) -> Result<CheckedOut, BuildError> {
        let (spec, resolved, dest) = (spec.clone(), resolved.cloned(), dest.to_path_buf());
        blocking(move || checkout_blocking(&spec, resolved.as_ref(), &dest, &cancel)).await
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, BuildError> + Send + 'static,
) -> Result<T, BuildError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| BuildError::Internal(format!("the git task failed: {e}")))?
}

fn callbacks<'a>(spec: &'a RepoSpec, cancel: Option<&'a CancelFlag>) -> RemoteCallbacks<'a> {
    let mut callbacks = RemoteCallbacks::new();
    let mut asked = false;
    callbacks.credentials(move |_url, username, allowed| {
        let refuse =
            |message: &str| Err(git2::Error::new(ErrorCode::Auth, ErrorClass::Http, message));
        if asked {
            return refuse("the credentials were refused");
        }
        asked = true;
        match &spec.token {
            Some(Token(token)) if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) => {
                Cred::userpass_plaintext(username.unwrap_or("x-access-token"), token)
            }
            _ => refuse("the repository asks for credentials"),
        }
    });
    if let Some(cancel) = cancel {
        callbacks.transfer_progress(move |_| !cancel.load(Ordering::Relaxed));
        callbacks.sideband_progress(move |_| !cancel.load(Ordering::Relaxed));
    }
    callbacks
}

fn ls_remote(spec: &RepoSpec) -> Result<Vec<(String, String)>, BuildError> {
    let mut remote =
        git2::Remote::create_detached(spec.url.as_str()).map_err(|e| classify(&e, spec))?;
    let connection = remote
        .connect_auth(Direction::Fetch, Some(callbacks(spec, None)), None)
        .map_err(|e| classify(&e, spec))?;
    let heads = connection
        .list()
        .map_err(|e| classify(&e, spec))?
        .iter()
        .map(|head| (head.name().to_owned(), head.oid().to_string()))
        .collect();
    Ok(heads)
}

fn fetch(
    repo: &Repository,
    spec: &RepoSpec,
    refspecs: &[&str],
    depth: i32,
    cancel: &CancelFlag,
) -> Result<(), git2::Error> {
    let mut remote = repo.remote_anonymous(&spec.url)?;
    let mut options = FetchOptions::new();
    options
        .remote_callbacks(callbacks(spec, Some(cancel)))
        .download_tags(AutotagOption::None)
        .update_fetchhead(false)
        .depth(depth);
    remote.fetch(refspecs, Some(&mut options), None)
}

fn checkout_blocking(
    spec: &RepoSpec,
    resolved: Option<&Resolved>,
    dest: &Path,
    cancel: &CancelFlag,
) -> Result<CheckedOut, BuildError> {
    let error = |e: git2::Error| classify(&e, spec);
    // The cheap way first: the one ref (or commit) at depth 1. The local
    // transport cannot fetch shallow, so it fetches the whole history.
    if let Some(resolved) = resolved {
        let repo = Repository::init(dest).map_err(error)?;
        let oid = Oid::from_str(&resolved.commit).map_err(error)?;
        let refspec = match &resolved.ref_name {
            Some(name) => format!("+{name}:refs/berth/source"),
            None => resolved.commit.clone(),
        };
        let depth = if spec.local { 0 } else { 1 };
        match fetch(&repo, spec, &[refspec.as_str()], depth, cancel) {
            Ok(()) if repo.find_commit(oid).is_ok() => return check_out(&repo, oid, spec),
            Ok(()) => {}
            Err(e) if e.code() == ErrorCode::Auth || cancel.load(Ordering::Relaxed) => {
                return Err(error(e))
            }
            Err(e) => {
                tracing::debug!(error = %spec.scrub(e.message()), "narrow fetch failed; fetching all branches and tags");
            }
        }
        drop(repo);
        std::fs::remove_dir_all(dest.join(".git"))
            .map_err(|e| BuildError::Internal(format!("cannot reset the clone: {e}")))?;
    }
    // Every branch and tag, full history: needed for an abbreviated SHA, or
    // a commit the server will not hand out by id.
    let repo = Repository::init(dest).map_err(error)?;
    fetch(
        &repo,
        spec,
        &[
            "+refs/heads/*:refs/remotes/origin/*",
            "+refs/tags/*:refs/tags/*",
        ],
        0,
        cancel,
    )
    .map_err(error)?;
    let not_found = || BuildError::CommitNotFound {
        commit: spec.wanted().to_owned(),
        url: spec.display_url(),
    };
    let oid = match resolved {
        Some(resolved) => Oid::from_str(&resolved.commit).map_err(error)?,
        None => repo
            .revparse_single(spec.wanted())
            .and_then(|object| object.peel_to_commit())
            .map_err(|_| not_found())?
            .id(),
    };
    if repo.find_commit(oid).is_err() {
        return Err(not_found());
    }
    check_out(&repo, oid, spec)
}

fn check_out(repo: &Repository, oid: Oid, spec: &RepoSpec) -> Result<CheckedOut, BuildError> {
    let error = |e: git2::Error| classify(&e, spec);
    let commit = repo.find_commit(oid).map_err(error)?;
    repo.checkout_tree(commit.as_object(), Some(CheckoutBuilder::new().force()))
        .map_err(error)?;
    repo.set_head_detached(oid).map_err(error)?;
    Ok(CheckedOut {
        commit: oid.to_string(),
        // Not UTF-8: shown lossily rather than not at all.
        summary: commit
            .summary_bytes()
            .map(|bytes| String::from_utf8_lossy(bytes).into_owned()),
    })
}

/// Turns a git2 error into the reason a user reads.
fn classify(error: &git2::Error, spec: &RepoSpec) -> BuildError {
    let url = spec.display_url();
    let message = spec.scrub(error.message());
    let lower = message.to_ascii_lowercase();
    let has_token = spec.token.is_some();
    if error.code() == ErrorCode::Auth
        || lower.contains("401")
        || lower.contains("403")
        || lower.contains("authentication")
    {
        return if has_token {
            BuildError::AuthenticationFailed { url }
        } else {
            BuildError::RepositoryNotFound { url }
        };
    }
    if lower.contains("404")
        || lower.contains("could not find repository")
        || lower.contains("not a git repository")
        || lower.contains("repository not found")
        || (spec.local && error.code() == ErrorCode::NotFound)
    {
        return BuildError::RepositoryNotFound { url };
    }
    BuildError::Clone { url, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SecretKey {
        SecretKey::from_base64(&SecretKey::generate_base64()).unwrap()
    }

    fn source(url: &str) -> Source {
        Source {
            repo_url: url.into(),
            git_ref: "main".into(),
            commit: None,
            subdirectory: None,
            token: None,
        }
    }

    #[test]
    fn https_is_allowed_and_local_repositories_only_when_enabled() {
        assert!(!check_url("https://github.com/a/b.git", false).unwrap());
        for url in ["file:///srv/git/app", "/srv/git/app"] {
            let error = check_url(url, false).unwrap_err();
            assert!(
                error
                    .to_string()
                    .contains("local repositories (file:// URLs and paths) are disabled"),
                "{error}"
            );
            assert!(check_url(url, true).unwrap());
        }
        let error = check_url("http://example.com/a.git", false).unwrap_err();
        assert!(error.to_string().contains("use an https:// URL"), "{error}");
        for url in [
            "git@github.com:a/b.git",
            "ssh://git@github.com/a/b",
            "git://x/y",
        ] {
            let error = check_url(url, true).unwrap_err();
            assert!(
                error.to_string().contains("only https:// URLs"),
                "{url}: {error}"
            );
        }
        assert!(check_url("relative/path", true).is_err());
        assert!(check_url("https://", false).is_err());
    }

    #[test]
    fn credentials_in_urls_are_never_shown() {
        assert_eq!(
            redact("https://bob:s3cret@git.example.com/a/b.git"),
            "https://git.example.com/a/b.git"
        );
        assert_eq!(redact("file:///srv/app"), "file:///srv/app");
        let error = check_url("http://bob:s3cret@example.com/a.git", false).unwrap_err();
        assert!(!error.to_string().contains("s3cret"), "{error}");
    }

    #[test]
    fn the_token_is_opened_with_the_key_and_hidden_from_debug_output() {
        let key = key();
        let mut src = source("https://github.com/a/b");
        src.token = Some(key.seal(b"ghp_secret\n"));
        let spec = RepoSpec::new(&src, &key, false).unwrap();
        assert!(matches!(&spec.token, Some(Token(t)) if t == "ghp_secret"));
        assert!(!format!("{spec:?}").contains("ghp_secret"));
        assert_eq!(spec.scrub("failed for ghp_secret"), "failed for ***");

        let error = RepoSpec::new(&src, &self::key(), false).unwrap_err();
        assert!(matches!(error, BuildError::TokenUnreadable));
    }

    #[test]
    fn a_commit_must_look_like_a_sha() {
        let key = key();
        let mut src = source("https://github.com/a/b");
        src.commit = Some("  ABCDEF1 ".into());
        let spec = RepoSpec::new(&src, &key, false).unwrap();
        assert_eq!(spec.commit.as_deref(), Some("abcdef1"));
        assert_eq!(spec.wanted(), "abcdef1");
        src.commit = Some("main; rm -rf /".into());
        let error = RepoSpec::new(&src, &key, false).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("commit `main; rm -rf /` was not found"),
            "{error}"
        );
    }

    fn heads() -> Vec<(String, String)> {
        [
            ("HEAD", "1111"),
            ("refs/heads/main", "1111"),
            ("refs/heads/dev", "2222"),
            ("refs/tags/v1", "3333"),
            ("refs/tags/v1^{}", "4444"),
            ("refs/tags/light", "5555"),
            ("refs/pull/7/head", "6666"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect()
    }

    #[test]
    fn refs_resolve_to_branches_then_peeled_tags() {
        let heads = heads();
        let found = |wanted: &str| find_ref(&heads, wanted);
        assert_eq!(found("dev"), Some(("refs/heads/dev".into(), "2222".into())));
        assert_eq!(
            found("v1"),
            Some(("refs/tags/v1".into(), "4444".into())),
            "annotated tags peel"
        );
        assert_eq!(
            found("light"),
            Some(("refs/tags/light".into(), "5555".into()))
        );
        assert_eq!(
            found("refs/pull/7/head"),
            Some(("refs/pull/7/head".into(), "6666".into()))
        );
        assert_eq!(found(""), Some(("refs/heads/main".into(), "1111".into())));
        assert_eq!(
            found("HEAD"),
            Some(("refs/heads/main".into(), "1111".into()))
        );
        assert_eq!(found("nope"), None);
        assert_eq!(
            found("main:refs/heads/x"),
            None,
            "only advertised names match"
        );
    }

    #[test]
    fn git_errors_become_reasons_a_user_can_act_on() {
        let key = key();
        let spec = RepoSpec::new(&source("https://github.com/a/b"), &key, false).unwrap();
        let auth = git2::Error::new(ErrorCode::Auth, ErrorClass::Http, "asked for credentials");
        assert!(matches!(
            classify(&auth, &spec),
            BuildError::RepositoryNotFound { .. }
        ));
        let mut with_token = source("https://github.com/a/b");
        with_token.token = Some(key.seal(b"t0ken"));
        let spec_t = RepoSpec::new(&with_token, &key, false).unwrap();
        assert_eq!(
            classify(&auth, &spec_t).to_string(),
            "authentication to https://github.com/a/b failed: check that the token is valid and can read the repository"
        );
        let missing = git2::Error::new(
            ErrorCode::GenericError,
            ErrorClass::Http,
            "unexpected http status code: 404",
        );
        assert!(matches!(
            classify(&missing, &spec),
            BuildError::RepositoryNotFound { .. }
        ));
        let other = git2::Error::new(ErrorCode::GenericError, ErrorClass::Net, "t0ken reset");
        assert_eq!(
            classify(&other, &spec_t).to_string(),
            "cloning https://github.com/a/b failed: *** reset"
        );
    }
}
