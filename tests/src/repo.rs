//! Git repositories the tests make: a small Python HTTP app with no
//! Dockerfile, so berth has to detect the stack.

use anyhow::Result;
use git2::{IndexAddOption, Repository, Signature};
use std::path::Path;
use tempfile::TempDir;

/// Serves `GREETING + " " + version.txt` and logs a line per request.
const APP_PY: &str = r#"import http.server, os, sys

PORT = int(os.environ["PORT"])
with open(os.path.join(os.path.dirname(__file__), "version.txt")) as f:
    VERSION = f.read().strip()
BODY = (os.environ.get("GREETING", "hello") + " " + VERSION).encode()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        # Logged before answering, in one write: requests made one after
        # another log in that order, each line whole (print() writes the
        # line and its newline apart, which threads interleave).
        sys.stdout.write(f"served {self.path} with {VERSION}\n")
        sys.stdout.flush()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args):
        pass

"#;

/// Starts [`APP_PY`]'s server. Its first line is one write, like every
/// other line, so that a [`TICKER_PY`] thread cannot cut into it.
const SERVE_PY: &str = r#"
sys.stdout.write(f"listening on {PORT} with {VERSION}\n")
sys.stdout.flush()
http.server.ThreadingHTTPServer(("0.0.0.0", PORT), Handler).serve_forever()
"#;

/// Prints `tick <run> <n>` every second from a thread, where `run` is new
/// for every start of the process and `n` counts from 0: a lost or
/// repeated log line shows as a gap or a repeat in the numbers.
const TICKER_PY: &str = r#"
import threading, time, uuid

RUN = uuid.uuid4().hex[:12]


def tick():
    n = 0
    while True:
        sys.stdout.write(f"tick {RUN} {n}\n")
        sys.stdout.flush()
        n += 1
        time.sleep(1)


threading.Thread(target=tick, daemon=True).start()
"#;

/// On SIGTERM (a stop), prints `farewell <version> <n>` for n in 0..1000,
/// then exits: the last lines of a container that is being replaced.
const FAREWELL_PY: &str = r#"
import signal


def farewell(*_):
    sys.stdout.write("".join(f"farewell {VERSION} {n}\n" for n in range(1000)))
    sys.stdout.flush()
    os._exit(0)


signal.signal(signal.SIGTERM, farewell)
"#;

/// Takes 3 s before it listens (an app that is slow to become healthy),
/// and answers `/slow` after 2 s: a request a swap must not cut.
const SLOW_PY: &str = r#"
import time

time.sleep(3)
_get = Handler.do_GET


def slow_get(self):
    if self.path == "/slow":
        time.sleep(2)
    _get(self)


Handler.do_GET = slow_get
"#;

/// Exits with code 1 after `CRASH_AFTER` seconds (an app that goes live,
/// then crash-loops: each restart lives as long).
const CRASH_PY: &str = r#"
import threading


def crash():
    sys.stdout.write("fatal: lost the database connection\n")
    sys.stdout.flush()
    os._exit(1)


threading.Timer(CRASH_AFTER, crash).start()
"#;

pub struct AppRepo {
    pub dir: TempDir,
    repo: Repository,
}

impl AppRepo {
    /// A repository on branch `main` with the app at `version`.
    pub fn python(version: &str) -> Result<Self> {
        Self::with_app(version, &format!("{APP_PY}{SERVE_PY}"))
    }

    /// Like [`python`](Self::python), with an app that also prints a
    /// numbered line every second (`tick <run> <n>`).
    pub fn python_ticking(version: &str) -> Result<Self> {
        Self::with_app(version, &format!("{APP_PY}{TICKER_PY}{SERVE_PY}"))
    }

    /// Like [`python`](Self::python), with an app that prints 1000
    /// numbered lines when it is stopped (`farewell <version> <n>`).
    pub fn python_farewell(version: &str) -> Result<Self> {
        Self::with_app(version, &format!("{APP_PY}{FAREWELL_PY}{SERVE_PY}"))
    }

    /// Like [`python`](Self::python), with an app that starts listening
    /// only after 3 s and answers `/slow` after 2 s.
    pub fn python_slow(version: &str) -> Result<Self> {
        Self::with_app(version, &format!("{APP_PY}{SLOW_PY}{SERVE_PY}"))
    }

    /// The app of [`python`](Self::python) that exits with code 1 `secs`
    /// seconds after each start, for [`AppRepo::write`] and a commit.
    pub fn crashing_app_py(secs: u32) -> String {
        format!("{APP_PY}CRASH_AFTER = {secs}\n{CRASH_PY}{SERVE_PY}")
    }

    fn with_app(version: &str, app_py: &str) -> Result<Self> {
        // Inside the stack's BERTH_LOCAL_REPO_ROOT: the only folder the
        // platform builds local repositories from.
        let dir = tempfile::Builder::new()
            .prefix("berth-app-")
            .tempdir_in(berth_common::testing::local_repo_root())?;
        let repo = Repository::init_opts(
            dir.path(),
            git2::RepositoryInitOptions::new().initial_head("main"),
        )?;
        let app = Self { dir, repo };
        app.write("app.py", app_py)?;
        app.write("requirements.txt", "# no dependencies\n")?;
        app.write("Procfile", "web: python3 app.py\n")?;
        app.write("version.txt", version)?;
        app.commit(&format!("app {version}"))?;
        Ok(app)
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.dir.path().display())
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, path: &str, contents: &str) -> Result<()> {
        let file = self.dir.path().join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(file, contents)?;
        Ok(())
    }

    /// The contents of `path` at `commit` (a full SHA).
    pub fn file_at(&self, commit: &str, path: &str) -> Result<String> {
        let commit = self.repo.find_commit(git2::Oid::from_str(commit)?)?;
        let entry = commit.tree()?.get_path(Path::new(path))?;
        let blob = entry.to_object(&self.repo)?.peel_to_blob()?;
        Ok(String::from_utf8_lossy(blob.content()).into_owned())
    }

    /// Commits everything in the work tree; returns the commit SHA.
    pub fn commit(&self, message: &str) -> Result<String> {
        let mut index = self.repo.index()?;
        index.add_all(["*"], IndexAddOption::DEFAULT, None)?;
        // Files removed from the work tree leave the index too.
        index.update_all(["*"], None)?;
        index.write()?;
        let tree = self.repo.find_tree(index.write_tree()?)?;
        let signature = Signature::now("berth tests", "tests@berth.test")?;
        let parent = self.repo.head().ok().and_then(|h| h.peel_to_commit().ok());
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        let oid = self.repo.commit(
            Some("HEAD"),
            &signature,
            &signature,
            message,
            &tree,
            &parents,
        )?;
        Ok(oid.to_string())
    }
}
