//! Where repositories may come from: one policy for the backend (when an
//! app is created or changed) and the build-worker (again, right before
//! every fetch).
//!
//! * `https://` on a public host. A host that is an internal address
//!   (loopback, private, link-local and the cloud metadata addresses, CGNAT,
//!   reserved) or an internal name, or a name that resolves to such an
//!   address, is refused: berth is not a way into its own network (SSRF).
//! * Local development only (`BERTH_ALLOW_LOCAL_REPOS`): plain `http://`,
//!   internal hosts, and `file://` URLs or paths inside the one folder
//!   `BERTH_LOCAL_REPO_ROOT` (after following symlinks), never elsewhere on
//!   the machine.
//!
//! A name is resolved when it is checked, and libgit2 resolves it again when
//! it connects: a DNS answer that changes in between (rebinding) is not
//! caught here. On Kubernetes the workers' NetworkPolicies are the second
//! fence (infra/kubernetes).

mod address;

pub use address::{internal_ip, internal_name};
use async_trait::async_trait;
use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

/// How long resolving a repository's host may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// What is allowed; see the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepoPolicy {
    /// Development and tests: local folders, plain http, internal hosts.
    pub allow_local: bool,
    /// The only folder local repositories may be in (with `allow_local`).
    pub local_root: Option<PathBuf>,
}

/// A repository location that passed the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoSource {
    /// An `https://` (or, locally, `http://`) URL.
    Remote(url::Url),
    /// A folder inside the local root: the real path once it exists, so a
    /// symlink swapped in later cannot lead the fetch elsewhere.
    Local(PathBuf),
}

/// Why a repository location is refused, in words its owner can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepoRefusal {
    #[error("use an https:// URL of a Git repository")]
    NotAUrl,
    #[error("only https:// URLs are supported (not {0}://)")]
    Scheme(String),
    #[error("plain http:// is allowed only for local development (BERTH_ALLOW_LOCAL_REPOS); use an https:// URL")]
    PlainHttp,
    #[error("the URL has no host")]
    NoHost,
    #[error("credentials do not belong in the URL")]
    Credentials,
    #[error("local repositories are not allowed on this server (BERTH_ALLOW_LOCAL_REPOS); use an https:// URL")]
    LocalDisabled,
    #[error("local repositories are allowed only inside BERTH_LOCAL_REPO_ROOT, which is not set on this server")]
    NoLocalRoot,
    #[error("local repositories must be inside {root} (BERTH_LOCAL_REPO_ROOT)")]
    OutsideRoot { root: String },
    #[error("{host} is {why}; repositories must be on public hosts")]
    InternalHost { host: String, why: &'static str },
    #[error("{host} resolves to {address}, {why}; repositories must be on public hosts")]
    ResolvesInternal {
        host: String,
        address: IpAddr,
        why: &'static str,
    },
    #[error("the host name {host} does not resolve")]
    Unresolvable { host: String },
}

/// Name resolution, the policy's one I/O seam (tests answer for it).
#[async_trait]
pub trait Resolver: Send + Sync {
    async fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<IpAddr>>;
}

/// The system's resolver, as libgit2 will use it.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

#[async_trait]
impl Resolver for SystemResolver {
    async fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<IpAddr>> {
        let found = tokio::net::lookup_host((host, port)).await?;
        Ok(found.map(|addr| addr.ip()).collect())
    }
}

impl RepoPolicy {
    /// Every check that needs no name resolution: the scheme, credentials,
    /// a host that is an internal address or name, the local folder.
    pub fn check(&self, value: &str) -> Result<RepoSource, RepoRefusal> {
        let value = value.trim();
        if value.starts_with('/') {
            return self.local(Path::new(value)).map(RepoSource::Local);
        }
        let url = url::Url::parse(value).map_err(|_| RepoRefusal::NotAUrl)?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_local => {}
            "http" => return Err(RepoRefusal::PlainHttp),
            "file" => {
                if url
                    .host_str()
                    .is_some_and(|h| !h.is_empty() && h != "localhost")
                {
                    return Err(RepoRefusal::NotAUrl);
                }
                let path = url.to_file_path().map_err(|_| RepoRefusal::NotAUrl)?;
                return self.local(&path).map(RepoSource::Local);
            }
            other => return Err(RepoRefusal::Scheme(other.to_owned())),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(RepoRefusal::Credentials);
        }
        let host = match url.host() {
            None => return Err(RepoRefusal::NoHost),
            Some(url::Host::Domain("")) => return Err(RepoRefusal::NoHost),
            Some(host) => host,
        };
        if !self.allow_local {
            let why = match &host {
                url::Host::Domain(name) => internal_name(name),
                url::Host::Ipv4(ip) => internal_ip(IpAddr::V4(*ip)),
                url::Host::Ipv6(ip) => internal_ip(IpAddr::V6(*ip)),
            };
            if let Some(why) = why {
                return Err(RepoRefusal::InternalHost {
                    host: host.to_string(),
                    why,
                });
            }
        }
        Ok(RepoSource::Remote(url))
    }

    /// [`check`](Self::check), then every address the host's name resolves
    /// to must be public. A name that does not resolve is
    /// [`RepoRefusal::Unresolvable`]: the backend lets it pass (the
    /// build-worker checks again), the build-worker does not.
    pub async fn check_resolved(
        &self,
        value: &str,
        resolver: &dyn Resolver,
    ) -> Result<RepoSource, RepoRefusal> {
        let source = self.check(value)?;
        let RepoSource::Remote(url) = &source else {
            return Ok(source);
        };
        let Some(url::Host::Domain(name)) = url.host() else {
            return Ok(source);
        };
        if self.allow_local {
            return Ok(source);
        }
        let unresolvable = || RepoRefusal::Unresolvable {
            host: name.to_owned(),
        };
        let port = url.port_or_known_default().unwrap_or(443);
        let addresses = tokio::time::timeout(RESOLVE_TIMEOUT, resolver.resolve(name, port))
            .await
            .map_err(|_| unresolvable())?
            .map_err(|_| unresolvable())?;
        if addresses.is_empty() {
            return Err(unresolvable());
        }
        for address in addresses {
            if let Some(why) = internal_ip(address) {
                return Err(RepoRefusal::ResolvesInternal {
                    host: name.to_owned(),
                    address,
                    why,
                });
            }
        }
        Ok(source)
    }

    /// A local folder: only with local repositories allowed, only inside
    /// the root, judged by its real path when it exists (symlinks followed)
    /// and by its spelling otherwise (no `..`).
    fn local(&self, path: &Path) -> Result<PathBuf, RepoRefusal> {
        if !self.allow_local {
            return Err(RepoRefusal::LocalDisabled);
        }
        let root = self
            .local_root
            .as_deref()
            .filter(|root| !root.as_os_str().is_empty())
            .ok_or(RepoRefusal::NoLocalRoot)?;
        let outside = || RepoRefusal::OutsideRoot {
            root: root.display().to_string(),
        };
        if !path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
            return Err(outside());
        }
        let real_root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
        let real = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        if real.starts_with(&real_root) && real != real_root {
            Ok(real)
        } else {
            Err(outside())
        }
    }
}

#[cfg(test)]
mod tests;
