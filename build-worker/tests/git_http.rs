//! The git fetcher over git's smart HTTP protocol, the way hosted forges
//! serve it: `git http-backend` behind basic auth (tests/git_http_server.py).
//! Exercises what file:// cannot: shallow fetches, tokens, 401 and 404.
//! Skipped, with a message, where python3 or git-http-backend is missing.

mod support;

use berth_build_worker::{BuildError, GitFetcher, RepoSpec, SourceFetcher};
use berth_proto::{SecretKey, Source};
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
        let source = Source {
            repo_url: self.url(),
            git_ref: git_ref.into(),
            commit: commit.map(str::to_owned),
            subdirectory: None,
            token: token.map(|t| self.key.seal(t.as_bytes())),
        };
        // Plain http is a "local" URL: allowed only with local repositories on.
        RepoSpec::new(&source, &self.key, true).unwrap()
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
