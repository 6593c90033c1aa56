//! Getting the source: which URLs are allowed, resolving a branch or tag to
//! a commit without downloading anything (`ls-remote`), and fetching just
//! that commit (depth 1 where the transport allows) into a folder.
//!
//! git2 is blocking, so every call runs on `spawn_blocking`; a cancel flag
//! checked in the transfer callbacks stops a clone that outlived its deadline.
//!
//! What may be fetched and where the token may go is [`SourcePolicy`]'s:
//! the URL is checked when the spec is made and its host resolved again
//! right before each network step; redirects to another host are not
//! followed, and the credentials callback answers only the repository's
//! own scheme, host and port.

use crate::error::BuildError;
use crate::source_policy::{same_origin, SourcePolicy};
use async_trait::async_trait;
use berth_common::repo_policy::RepoSource;
use berth_proto::{AppRef, Binding, SecretKey, Source};
use git2::build::CheckoutBuilder;
use git2::{
    AutotagOption, Cred, CredentialType, Direction, ErrorClass, ErrorCode, FetchOptions, Oid,
    RemoteCallbacks, RemoteRedirect, Repository,
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
    /// The URL as the app names it.
    pub url: String,
    /// For a local repository, its real path inside the root: what is
    /// fetched, so a symlink swapped in later cannot lead elsewhere.
    local_path: Option<String>,
    /// A `file://` URL or a path (allowed only with local repositories).
    pub local: bool,
    pub git_ref: String,
    pub commit: Option<String>,
    /// Only for a repository on the configured GitHub.
    pub token: Option<Token>,
    policy: SourcePolicy,
}

impl RepoSpec {
    /// Checks the source of a build of `app` against `policy`; opens the
    /// token (sealed for this app's builds) and keeps it only when the
    /// repository is on the configured GitHub.
    pub fn new(
        source: &Source,
        app: &AppRef,
        key: &SecretKey,
        policy: &SourcePolicy,
    ) -> Result<Self, BuildError> {
        let given = source.repo_url.trim();
        let url = given.to_owned();
        let local_path = match policy.check(given)? {
            RepoSource::Remote(_) => None,
            RepoSource::Local(path) if path.is_dir() => Some(path.display().to_string()),
            RepoSource::Local(_) => {
                return Err(BuildError::RepositoryNotFound { url: redact(given) })
            }
        };
        let token = match &source.token {
            None => None,
            Some(sealed) => {
                let binding = Binding::build_token(&app.tenant, app.id);
                let bytes = key
                    .open(&binding, sealed)
                    .map_err(|_| BuildError::TokenUnreadable)?;
                let token = String::from_utf8(bytes).map_err(|_| BuildError::TokenUnreadable)?;
                let token = token.trim().to_owned();
                if !policy.token_may_go_to(&url) {
                    tracing::warn!(url = %redact(&url), github = %policy.github,
                        "a token came with a repository that is not on the configured GitHub; not using it");
                    None
                } else {
                    (!token.is_empty()).then_some(Token(token))
                }
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
            local: local_path.is_some(),
            local_path,
            git_ref: source.git_ref.trim().to_owned(),
            commit,
            token,
            policy: policy.clone(),
        })
    }

    /// Right before fetching: the host must (still) resolve to public
    /// addresses only.
    async fn check_host(&self) -> Result<(), BuildError> {
        self.policy.check_resolved(&self.url).await.map(drop)
    }

    /// What libgit2 fetches.
    fn fetch_url(&self) -> &str {
        self.local_path.as_deref().unwrap_or(&self.url)
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
        spec.check_host().await?;
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
        spec.check_host().await?;
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
    callbacks.credentials(move |url, username, allowed| {
        let refuse =
            |message: &str| Err(git2::Error::new(ErrorCode::Auth, ErrorClass::Http, message));
        if asked {
            return refuse("the credentials were refused");
        }
        asked = true;
        match credentials_for(spec, url, username, allowed) {
            Ok((user, token)) => Cred::userpass_plaintext(user, token),
            Err(message) => refuse(message),
        }
    });
    if let Some(cancel) = cancel {
        callbacks.transfer_progress(move |_| !cancel.load(Ordering::Relaxed));
        callbacks.sideband_progress(move |_| !cancel.load(Ordering::Relaxed));
    }
    callbacks
}

/// What to answer libgit2 when `url` asks for credentials: the user name
/// and the token, only when the repository has one and `url` (the URL
/// asking, after any redirect) is the repository's own scheme, host and port.
fn credentials_for<'s>(
    spec: &'s RepoSpec,
    url: &str,
    username: Option<&'s str>,
    allowed: CredentialType,
) -> Result<(&'s str, &'s str), &'static str> {
    match &spec.token {
        Some(_) if !same_origin(url, &spec.url) => Err("another host asks for the credentials"),
        Some(Token(token)) if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) => {
            Ok((username.unwrap_or("x-access-token"), token))
        }
        _ => Err("the repository asks for credentials"),
    }
}

fn ls_remote(spec: &RepoSpec) -> Result<Vec<(String, String)>, BuildError> {
    // A remote without a repository follows redirects to other hosts
    // (libgit2's default); one in a scratch repository reads this setting.
    let scratch = tempfile::tempdir()
        .map_err(|e| BuildError::Internal(format!("cannot make a scratch folder: {e}")))?;
    let repo = Repository::init_bare(scratch.path()).map_err(|e| classify(&e, spec))?;
    no_offsite_redirects(&repo).map_err(|e| classify(&e, spec))?;
    let mut remote = repo
        .remote_anonymous(spec.fetch_url())
        .map_err(|e| classify(&e, spec))?;
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
    let mut remote = repo.remote_anonymous(spec.fetch_url())?;
    let mut options = FetchOptions::new();
    options
        .follow_redirects(RemoteRedirect::None)
        .remote_callbacks(callbacks(spec, Some(cancel)))
        .download_tags(AutotagOption::None)
        .update_fetchhead(false)
        .depth(depth);
    remote.fetch(refspecs, Some(&mut options), None)
}

/// `http.followRedirects = false`: libgit2 then follows redirects on the
/// same host only, so a repository cannot send the fetch (or the token)
/// elsewhere.
fn no_offsite_redirects(repo: &Repository) -> Result<(), git2::Error> {
    repo.config()?.set_str("http.followRedirects", "false")
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
#[path = "git_tests.rs"]
mod tests;
