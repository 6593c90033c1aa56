//! The git fetcher over git's smart HTTP protocol, the way hosted forges
//! serve it: `git http-backend` behind basic auth (tests/git_http_server.py).
//! Exercises what file:// cannot: shallow fetches, tokens, 401 and 404.
//! Skipped, with a message, where python3 or git-http-backend is missing.

mod support;

use berth_build_worker::{BuildError, GitFetcher, RepoSpec, SourceFetcher, SourcePolicy};
use berth_common::repo_policy::RepoPolicy;
use berth_proto::{AppRef, Binding, SecretKey, Source};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use support::TestRepo;

const USER: &str = "x-access-token";
const TOKEN: &str = "ghp_berth_test_token";

/// The HTTP git server, stopped when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn server(root: &Path) -> Option<Server> {
    if !Path::new("/usr/lib/git-core/git-http-backend").exists() {
        eprintln!("skipped: /usr/lib/git-core/git-http-backend is missing (Debian package git)");
        return None;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/git_http_server.py");
    let mut child = match Command::new("python3")
        .arg(script)
        .args([root.to_str().unwrap(), USER, TOKEN])
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(error) => {
            eprintln!("skipped: python3 cannot run: {error}");
            return None;
        }
    };
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().parse().expect("the server prints its port");
    Some(Server { child, port })
}

struct Fixture {
    repo: TestRepo,
    server: Server,
    key: SecretKey,
}

impl Fixture {
    fn new() -> Option<Self> {
        let repo = TestRepo::new();
        let server = server(repo.path().parent().unwrap())?;
        Some(Self {
            repo,
            server,
            key: SecretKey::from_base64(&SecretKey::generate_base64()).unwrap(),
        })
    }

    fn url(&self) -> String {
        let name = self.repo.path().file_name().unwrap().to_str().unwrap();
        format!("http://127.0.0.1:{}/{name}", self.server.port)
    }

    fn spec(&self, git_ref: &str, commit: Option<&str>, token: Option<&str>) -> RepoSpec {
        self.spec_at(&self.url(), &self.url(), git_ref, commit, token)
    }

    /// A spec for `url` whose token is for the GitHub at `github`.
    fn spec_at(
        &self,
        url: &str,
        github: &str,
        git_ref: &str,
        commit: Option<&str>,
        token: Option<&str>,
    ) -> RepoSpec {
        let app = AppRef {
            id: uuid::Uuid::now_v7(),
            name: "web".into(),
            tenant: "acme".into(),
        };
        let binding = Binding::build_token(&app.tenant, app.id);
        let source = Source {
            repo_url: url.to_owned(),
            git_ref: git_ref.into(),
            commit: commit.map(str::to_owned),
            subdirectory: None,
            token: token.map(|t| self.key.seal(&binding, t.as_bytes())),
        };
        // Plain http on 127.0.0.1 is allowed only with local repositories on;
        // the token goes to the server only because it is "the GitHub".
        let policy = SourcePolicy {
            repos: RepoPolicy {
                allow_local: true,
                local_root: Some(self.repo.path().parent().unwrap().to_path_buf()),
            },
            github: url::Url::parse(github).unwrap(),
        };
        RepoSpec::new(&source, &app, &self.key, &policy).unwrap()
    }
}

async fn fetch(spec: &RepoSpec) -> Result<(tempfile::TempDir, String), BuildError> {
    let resolved = GitFetcher.resolve(spec).await?;
    let dest = tempfile::tempdir().unwrap();
    let commit = GitFetcher
        .checkout(
            spec,
            resolved.as_ref(),
            dest.path(),
            Arc::new(AtomicBool::new(false)),
        )
        .await?
        .commit;
    if let Some(resolved) = resolved {
        assert_eq!(resolved.commit, commit);
    }
    Ok((dest, commit))
}

fn is_shallow(checkout: &Path) -> bool {
    checkout.join(".git/shallow").exists()
}

#[tokio::test]
async fn a_branch_is_fetched_shallow_with_the_token() {
    let Some(fx) = Fixture::new() else { return };
    fx.repo.commit("one", &[("index.html", "one\n")]);
    let tip = fx.repo.commit("two", &[("index.html", "two\n")]);
    let (checkout, commit) = fetch(&fx.spec("main", None, Some(TOKEN))).await.unwrap();
    assert_eq!(commit, tip);
    assert_eq!(
        std::fs::read_to_string(checkout.path().join("index.html")).unwrap(),
        "two\n"
    );
    assert!(
        is_shallow(checkout.path()),
        "only the one commit was fetched"
    );
}

#[tokio::test]
async fn an_annotated_tag_resolves_to_its_commit() {
    let Some(fx) = Fixture::new() else { return };
    let tagged = fx.repo.commit("release", &[("index.html", "v1\n")]);
    fx.repo.tag("v1.0.0");
    fx.repo.commit("later", &[("index.html", "v2\n")]);
    let (checkout, commit) = fetch(&fx.spec("v1.0.0", None, Some(TOKEN))).await.unwrap();
    assert_eq!(commit, tagged);
    assert_eq!(
        std::fs::read_to_string(checkout.path().join("index.html")).unwrap(),
        "v1\n"
    );
}

#[tokio::test]
async fn an_older_commit_is_fetched_by_id_or_else_from_the_full_history() {
    let Some(fx) = Fixture::new() else { return };
    let old = fx.repo.commit("old", &[("index.html", "old\n")]);
    fx.repo.commit("new", &[("index.html", "new\n")]);

    // A server that hands out reachable commits by id (as GitHub does).
    fx.repo
        .git()
        .config()
        .unwrap()
        .set_bool("uploadpack.allowReachableSHA1InWant", true)
        .unwrap();
    let (checkout, commit) = fetch(&fx.spec("main", Some(&old), Some(TOKEN)))
        .await
        .unwrap();
    assert_eq!(commit, old);
    assert!(is_shallow(checkout.path()));
    assert_eq!(
        std::fs::read_to_string(checkout.path().join("index.html")).unwrap(),
        "old\n"
    );

    // One that does not: the fetcher falls back to every branch and tag.
    fx.repo
        .git()
        .config()
        .unwrap()
        .set_bool("uploadpack.allowReachableSHA1InWant", false)
        .unwrap();
    let (checkout, commit) = fetch(&fx.spec("main", Some(&old), Some(TOKEN)))
        .await
        .unwrap();
    assert_eq!(commit, old);
    assert!(!is_shallow(checkout.path()));

    // An abbreviated SHA needs the history too.
    let (_, commit) = fetch(&fx.spec("main", Some(&old[..8]), Some(TOKEN)))
        .await
        .unwrap();
    assert_eq!(commit, old);
}

#[tokio::test]
async fn credentials_problems_say_what_to_fix_and_never_show_the_token() {
    let Some(fx) = Fixture::new() else { return };
    fx.repo.commit("one", &[("index.html", "one\n")]);
    let url = fx.url();

    let error = fetch(&fx.spec("main", None, None)).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("repository {url} was not found, or it is private: check the URL, or give berth a token that can read it")
    );

    let error = fetch(&fx.spec("main", None, Some("wrong-token")))
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("authentication to {url} failed: check that the token is valid and can read the repository")
    );
    assert!(!format!("{error:?}").contains("wrong-token"));

    let mut missing = fx.spec("main", None, Some(TOKEN));
    missing.url = format!("http://127.0.0.1:{}/no-such-repo", fx.server.port);
    let error = fetch(&missing).await.unwrap_err();
    assert!(
        matches!(error, BuildError::RepositoryNotFound { .. }),
        "{error}"
    );

    let error = fetch(&fx.spec("no-such-branch", None, Some(TOKEN)))
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("branch or tag `no-such-branch` was not found in {url}")
    );
}

/// Answers every request with a redirect to `target` + the same path: a
/// repository host that sends the client elsewhere.
async fn redirector(target: String) -> u16 {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader as TokioBufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                let mut stream = TokioBufReader::new(stream);
                let mut request_line = String::new();
                if stream.read_line(&mut request_line).await.is_err() {
                    return;
                }
                let path = request_line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("/")
                    .to_owned();
                let mut line = String::new();
                while stream.read_line(&mut line).await.is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let answer = format!(
                    "HTTP/1.1 302 Found\r\nLocation: {target}{path}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = stream.get_mut().write_all(answer.as_bytes()).await;
            });
        }
    });
    port
}

/// S4: the token is for the repository's own host; a redirect elsewhere
/// never gets it. Before: libgit2 followed the redirect on the first
/// request and the credentials callback answered any URL, so the clone
/// succeeded with the token sent to the other server.
#[tokio::test]
async fn a_redirect_to_another_host_never_gets_the_token() {
    let Some(fx) = Fixture::new() else { return };
    fx.repo.commit("one", &[("index.html", "one\n")]);
    let name = fx.repo.path().file_name().unwrap().to_str().unwrap();

    // Same host name, another port: libgit2 follows it (not off-site for
    // it), and the credentials callback refuses the other origin.
    let port = redirector(format!("http://127.0.0.1:{}", fx.server.port)).await;
    let github = format!("http://127.0.0.1:{port}");
    let url = format!("{github}/{name}");
    let spec = fx.spec_at(&url, &github, "main", None, Some(TOKEN));
    assert!(spec.token.is_some(), "the token is for this host");
    let error = fetch(&spec).await.unwrap_err();
    assert!(
        matches!(error, BuildError::AuthenticationFailed { .. }),
        "{error}"
    );

    // Another host name: the redirect itself is refused.
    let port = redirector(format!("http://localhost:{}", fx.server.port)).await;
    let github = format!("http://127.0.0.1:{port}");
    let url = format!("{github}/{name}");
    let error = fetch(&fx.spec_at(&url, &github, "main", None, Some(TOKEN)))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("cannot redirect"), "{error}");
}

/// A token that came with a repository off the configured GitHub is not
/// used at all: the private repository answers as not found.
#[tokio::test]
async fn a_repository_off_the_configured_github_gets_no_token() {
    let Some(fx) = Fixture::new() else { return };
    fx.repo.commit("one", &[("index.html", "one\n")]);
    let spec = fx.spec_at(&fx.url(), "http://127.0.0.1:1", "main", None, Some(TOKEN));
    assert!(spec.token.is_none());
    assert!(matches!(
        fetch(&spec).await.unwrap_err(),
        BuildError::RepositoryNotFound { .. }
    ));
}
