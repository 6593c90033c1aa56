//! What to build: the repository's own Dockerfile, or one generated for the
//! detected stack. Pure: the input is the app folder's file names plus the
//! contents of the few files detection reads ([`AppFiles::WANTED`]).
//!
//! Rules, first match wins:
//!
//! 1. `Dockerfile` (or `Containerfile`) → used as is.
//! 2. `go.mod` → Go: `go build`, run the binary.
//! 3. `Cargo.toml` → Rust: `cargo build --release`, run the binary (the first
//!    `[[bin]]`, else the package name).
//! 4. `requirements.txt` or `pyproject.toml` → Python: a venv in /opt/venv,
//!    `pip install -r requirements.txt` (preferred) or `pip install .`.
//! 5. `package.json` → Node.js: `npm ci` with a lockfile (`package-lock.json`
//!    or `npm-shrinkwrap.json`), else `npm install`; `npm run build
//!    --if-present`; start with `npm start`.
//! 6. `index.html` → static site, served by busybox httpd.
//!
//! Go and Rust come first because their manifests are unambiguous, while a
//! `package.json` often sits next to apps in other languages for front-end
//! tooling. The start command is a `Procfile`'s `web:` line when there is
//! one (run with `sh -c`, as on Heroku), else the stack's default; for
//! Python the default is `python app.py`, else `python main.py`, and a
//! Python app with neither (and no Procfile) is refused with a hint.
//! Generated images get `ENV PORT=<port>` and `EXPOSE <port>`. In their
//! build context the app's files are under [`APP_IN_CONTEXT`].

use crate::repofile::{self, Links, UnsafeFile};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Where the extra CA bundle sits in the build context.
pub const CA_IN_CONTEXT: &str = ".berth-ca.crt";
/// Where the app's files sit in the context of a generated Dockerfile, apart
/// from berth's own files (the Dockerfile, the CA bundle), so that `COPY`
/// takes exactly the app and a static site never serves berth's files.
pub const APP_IN_CONTEXT: &str = "app";
/// Where the extra CA bundle goes in the image.
pub const CA_IN_IMAGE: &str = "/etc/ssl/certs/berth-extra-ca.crt";
/// Env vars pointed at the extra CA bundle in generated images.
pub const CA_ENV_VARS: [&str; 6] = [
    "SSL_CERT_FILE",
    "PIP_CERT",
    "REQUESTS_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "CARGO_HTTP_CAINFO",
    "GIT_SSL_CAINFO",
];

/// The app folder as detection sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppFiles {
    names: BTreeSet<String>,
    contents: BTreeMap<String, String>,
}

impl AppFiles {
    /// Files whose contents detection reads (when present).
    pub const WANTED: [&'static str; 2] = ["Procfile", "Cargo.toml"];
    /// Larger wanted files are not read (they are not what we expect).
    pub const MAX_READ: u64 = 256 * 1024;

    pub fn new<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Self {
        Self {
            names: names.into_iter().map(Into::into).collect(),
            contents: BTreeMap::new(),
        }
    }

    /// Adds a file and its contents.
    pub fn with(mut self, name: &str, contents: &str) -> Self {
        self.names.insert(name.to_owned());
        self.contents.insert(name.to_owned(), contents.to_owned());
        self
    }

    pub fn has(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    pub fn contents(&self, name: &str) -> Option<&str> {
        self.contents.get(name).map(String::as_str)
    }

    /// Lists `dir`'s top-level entries and reads the [`WANTED`](Self::WANTED)
    /// ones, following links only inside the checkout `root`. A wanted file
    /// that is larger than [`MAX_READ`](Self::MAX_READ) is listed unread; one
    /// that leads out of the repository refuses the build.
    pub fn read_dir(root: &Path, dir: &Path) -> Result<Self, ReadError> {
        let mut files = Self::default();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if Self::WANTED.contains(&name.as_str()) {
                match repofile::read(root, dir, &name, Links::Inside, Self::MAX_READ) {
                    Ok(Some(bytes)) => {
                        let text = String::from_utf8_lossy(&bytes).into_owned();
                        files.contents.insert(name.clone(), text);
                    }
                    Ok(None) | Err(UnsafeFile::TooLarge { .. } | UnsafeFile::NotAFile { .. }) => {}
                    Err(unsafe_file) => return Err(ReadError::Unsafe(unsafe_file)),
                }
            }
            files.names.insert(name);
        }
        Ok(files)
    }
}

/// Why an app folder could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Unsafe(#[from] UnsafeFile),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Base images, one per stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackImages {
    pub python: String,
    pub node: String,
    pub go: String,
    pub rust: String,
    pub static_site: String,
}

/// How generated Dockerfiles are made.
#[derive(Debug, Clone)]
pub struct Recipe<'a> {
    pub images: &'a StackImages,
    /// The port the app gets in `PORT`.
    pub port: u16,
    /// Whether the context carries an extra CA bundle at [`CA_IN_CONTEXT`].
    pub extra_ca: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stack {
    Python,
    Node,
    Go,
    Rust,
    Static,
}

impl Stack {
    /// How the build log names it: "Detected Python app (requirements.txt)".
    pub fn label(self) -> &'static str {
        match self {
            Self::Python => "Python app",
            Self::Node => "Node.js app",
            Self::Go => "Go app",
            Self::Rust => "Rust app",
            Self::Static => "static site",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Python => "Python",
            Self::Node => "Node.js",
            Self::Go => "Go",
            Self::Rust => "Rust",
            Self::Static => "static site",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Build with the repository's own Dockerfile, at this path in the app folder.
    RepoDockerfile { path: String },
    /// Build with a generated Dockerfile.
    Generated {
        stack: Stack,
        /// The file that decided it, e.g. `requirements.txt`.
        marker: String,
        dockerfile: String,
    },
}

impl Plan {
    /// "Python (requirements.txt)", or "Dockerfile".
    pub fn description(&self) -> String {
        match self {
            Self::RepoDockerfile { path } => path.clone(),
            Self::Generated { stack, marker, .. } => format!("{} ({marker})", stack.name()),
        }
    }

    /// The line the build log shows.
    pub fn log_line(&self) -> String {
        match self {
            Self::RepoDockerfile { .. } => "Using the repository's Dockerfile".to_owned(),
            Self::Generated { stack, marker, .. } => {
                format!("Detected {} ({marker})", stack.label())
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DetectError {
    #[error(
        "no Dockerfile and no app berth recognises: add a Dockerfile, or one of requirements.txt, \
         pyproject.toml, package.json, go.mod, Cargo.toml or index.html"
    )]
    NothingRecognised,
    #[error("the {stack} has no start command: add a Procfile with a `web:` line{hint}")]
    NoStartCommand {
        stack: &'static str,
        hint: &'static str,
    },
}

/// Decides how to build the app in `files`.
pub fn plan(files: &AppFiles, recipe: &Recipe<'_>) -> Result<Plan, DetectError> {
    for name in ["Dockerfile", "Containerfile"] {
        if files.has(name) {
            return Ok(Plan::RepoDockerfile {
                path: name.to_owned(),
            });
        }
    }
    let web = files.contents("Procfile").and_then(web_command);
    let (stack, marker, steps, default_start) = if files.has("go.mod") {
        (
            Stack::Go,
            "go.mod",
            go(files),
            "/usr/local/bin/app".to_owned(),
        )
    } else if files.has("Cargo.toml") {
        let binary = files
            .contents("Cargo.toml")
            .and_then(cargo_binary_name)
            .filter(|name| is_safe_name(name));
        let start = match (&binary, &web) {
            (Some(bin), _) => format!("/usr/local/bin/{bin}"),
            (None, Some(_)) => String::new(),
            (None, None) => {
                return Err(DetectError::NoStartCommand {
                    stack: "Rust app",
                    hint: " (or give Cargo.toml a [package] name)",
                })
            }
        };
        (Stack::Rust, "Cargo.toml", rust(binary.as_deref()), start)
    } else if files.has("requirements.txt") || files.has("pyproject.toml") {
        let marker = if files.has("requirements.txt") {
            "requirements.txt"
        } else {
            "pyproject.toml"
        };
        let start = if files.has("app.py") {
            "python app.py"
        } else if files.has("main.py") {
            "python main.py"
        } else if web.is_none() {
            return Err(DetectError::NoStartCommand {
                stack: "Python app",
                hint: ", or an app.py or main.py",
            });
        } else {
            ""
        };
        (Stack::Python, marker, python(marker), start.to_owned())
    } else if files.has("package.json") {
        (
            Stack::Node,
            "package.json",
            node(files),
            "npm start".to_owned(),
        )
    } else if files.has("index.html") {
        let start = "exec busybox httpd -f -p \"$PORT\" -h /site".to_owned();
        (
            Stack::Static,
            "index.html",
            "COPY app/ /site/\n".to_owned(),
            start,
        )
    } else {
        return Err(DetectError::NothingRecognised);
    };
    let marker = marker.to_owned();
    let start = web.unwrap_or(default_start);
    let dockerfile = render(stack, &marker, recipe, &steps, &start);
    Ok(Plan::Generated {
        stack,
        marker,
        dockerfile,
    })
}

/// The `web:` command of a Procfile, if it has one.
pub fn web_command(procfile: &str) -> Option<String> {
    procfile.lines().find_map(|line| {
        let line = line.trim();
        if line.starts_with('#') {
            return None;
        }
        let (name, command) = line.split_once(':')?;
        let command = command.trim();
        (name.trim() == "web" && !command.is_empty()).then(|| command.to_owned())
    })
}

/// The binary `cargo build --release` makes for the app: the first `[[bin]]`
/// with a name, else the `[package]` name. A line-based reading of the
/// simple manifests apps have; a workspace root without a package has none.
pub fn cargo_binary_name(manifest: &str) -> Option<String> {
    let mut section = String::new();
    let mut package_name = None;
    for line in manifest.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.starts_with('[') {
            section = line.to_owned();
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if key.trim() != "name" {
            continue;
        }
        let value = value
            .trim()
            .trim_matches(|c| c == '"' || c == '\'')
            .to_owned();
        match section.as_str() {
            "[[bin]]" => return Some(value),
            "[package]" if package_name.is_none() => package_name = Some(value),
            _ => {}
        }
    }
    package_name
}

fn is_safe_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `CMD` running `command` with `sh -c`, so `$PORT` and `&&` work. A
/// simple command replaces the shell (`exec`): the stop signal then reaches
/// the app itself and its shutdown handler runs. With a shell in between,
/// the shell dies of the SIGTERM the container's init forwards to it, and
/// the app is killed outright, mid-request and without its last log lines.
fn shell_cmd(command: &str) -> String {
    let command = if is_simple_command(command) {
        format!("exec {command}")
    } else {
        command.to_owned()
    };
    let json = serde_json::to_string(&["sh", "-c", &command]).expect("strings serialize");
    format!("CMD {json}")
}

/// One program with its arguments: no lists, pipes, redirections,
/// subshells or leading variable assignments (which `exec` cannot take).
fn is_simple_command(command: &str) -> bool {
    let first = command.split_whitespace().next().unwrap_or_default();
    !first.is_empty()
        && first != "exec"
        && !first.contains('=')
        && !command.contains(|c: char| ";&|()<>`\n".contains(c))
}

fn python(marker: &str) -> String {
    let install = if marker == "requirements.txt" {
        "COPY app/requirements.txt ./\nRUN pip install -r requirements.txt\nCOPY app/ .\n"
    } else {
        "COPY app/ .\nRUN pip install .\n"
    };
    format!(
        "ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1\n\
         RUN python3 -m venv /opt/venv\n\
         ENV VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH\n\
         {install}"
    )
}

fn node(files: &AppFiles) -> String {
    let lockfile = ["package-lock.json", "npm-shrinkwrap.json"]
        .into_iter()
        .find(|name| files.has(name));
    let (copy, install) = match lockfile {
        Some(lock) => (format!("COPY app/package.json app/{lock} ./"), "npm ci"),
        None => ("COPY app/package.json ./".to_owned(), "npm install"),
    };
    format!(
        "{copy}\n\
         RUN {install}\n\
         COPY app/ .\n\
         RUN npm run build --if-present\n\
         ENV NODE_ENV=production\n"
    )
}

fn go(files: &AppFiles) -> String {
    let sums = if files.has("go.sum") {
        " app/go.sum"
    } else {
        ""
    };
    format!(
        "COPY app/go.mod{sums} ./\n\
         RUN go mod download\n\
         COPY app/ .\n\
         RUN CGO_ENABLED=0 go build -o /usr/local/bin/app .\n"
    )
}

fn rust(binary: Option<&str>) -> String {
    let mut steps =
        "COPY app/ .\nRUN cargo build --release --locked || cargo build --release\n".to_owned();
    if let Some(bin) = binary {
        steps.push_str(&format!(
            "RUN cp target/release/{bin} /usr/local/bin/{bin} && rm -rf target\n"
        ));
    }
    steps
}

fn render(stack: Stack, marker: &str, recipe: &Recipe<'_>, steps: &str, start: &str) -> String {
    let images = recipe.images;
    let (image, workdir) = match stack {
        Stack::Python => (&images.python, "/app"),
        Stack::Node => (&images.node, "/app"),
        Stack::Go => (&images.go, "/src"),
        Stack::Rust => (&images.rust, "/src"),
        Stack::Static => (&images.static_site, "/site"),
    };
    let mut out = format!(
        "# Generated by berth for a {} ({marker}).\nFROM {image}\n",
        stack.name()
    );
    if recipe.extra_ca {
        out.push_str(&format!("COPY {CA_IN_CONTEXT} {CA_IN_IMAGE}\n"));
        let vars: Vec<String> = CA_ENV_VARS
            .iter()
            .map(|var| format!("{var}={CA_IN_IMAGE}"))
            .collect();
        out.push_str(&format!("ENV {}\n", vars.join(" \\\n    ")));
    }
    out.push_str(&format!("WORKDIR {workdir}\n"));
    out.push_str(steps);
    out.push_str(&format!("ENV PORT={0}\nEXPOSE {0}\n", recipe.port));
    out.push_str(&shell_cmd(start));
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn simple_start_commands_replace_the_shell() {
        use super::is_simple_command as simple;
        assert!(simple("python3 app.py"));
        assert!(simple("gunicorn app:app --bind 0.0.0.0:$PORT"));
        assert!(!simple("exec busybox httpd"), "already");
        assert!(!simple("FLASK_ENV=prod flask run"));
        assert!(!simple("npm run migrate && npm start"));
        assert!(!simple("python app.py | tee log"));
        assert!(!simple("python app.py > log"));
        assert!(!simple("(cd web; python app.py)"));
        assert!(!simple(""));
    }

    use super::*;

    fn images() -> StackImages {
        StackImages {
            python: "py:1".into(),
            node: "node:1".into(),
            go: "go:1".into(),
            rust: "rust:1".into(),
            static_site: "static:1".into(),
        }
    }

    fn plan_for(files: AppFiles) -> Result<Plan, DetectError> {
        plan(
            &files,
            &Recipe {
                images: &images(),
                port: 5000,
                extra_ca: false,
            },
        )
    }

    fn dockerfile(plan: &Plan) -> &str {
        match plan {
            Plan::Generated { dockerfile, .. } => dockerfile,
            other => panic!("expected a generated Dockerfile, got {other:?}"),
        }
    }

    #[test]
    fn the_repositorys_dockerfile_wins_over_any_stack() {
        let plan = plan_for(AppFiles::new(["Dockerfile", "requirements.txt", "app.py"])).unwrap();
        assert_eq!(
            plan,
            Plan::RepoDockerfile {
                path: "Dockerfile".into()
            }
        );
        assert_eq!(plan.log_line(), "Using the repository's Dockerfile");
        let plan = plan_for(AppFiles::new(["Containerfile", "index.html"])).unwrap();
        assert_eq!(plan.description(), "Containerfile");
    }

    #[test]
    fn python_with_requirements_installs_into_a_venv_and_runs_app_py() {
        let plan = plan_for(AppFiles::new(["requirements.txt", "app.py", "main.py"])).unwrap();
        assert_eq!(plan.description(), "Python (requirements.txt)");
        assert_eq!(plan.log_line(), "Detected Python app (requirements.txt)");
        let text = dockerfile(&plan);
        assert!(text.contains("FROM py:1\n"), "{text}");
        assert!(text.contains("RUN python3 -m venv /opt/venv\n"), "{text}");
        assert!(text.contains("PATH=/opt/venv/bin:$PATH"), "{text}");
        let install = text.find("RUN pip install -r requirements.txt").unwrap();
        let copy_all = text.find("COPY app/ .\n").unwrap();
        assert!(install < copy_all, "dependencies first, for layer caching");
        assert!(text.contains("ENV PORT=5000\nEXPOSE 5000\n"), "{text}");
        assert!(
            text.ends_with("CMD [\"sh\",\"-c\",\"exec python app.py\"]\n"),
            "{text}"
        );
        assert!(!text.contains("berth-extra-ca"), "no CA unless configured");
    }

    #[test]
    fn python_falls_back_to_main_py_then_refuses_without_a_start_command() {
        let plan = plan_for(AppFiles::new(["pyproject.toml", "main.py"])).unwrap();
        assert_eq!(plan.description(), "Python (pyproject.toml)");
        assert!(dockerfile(&plan).contains("RUN pip install .\n"));
        assert!(dockerfile(&plan).contains("\"exec python main.py\""));

        let error = plan_for(AppFiles::new(["requirements.txt", "server.py"])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the Python app has no start command: add a Procfile with a `web:` line, or an app.py or main.py"
        );
    }

    #[test]
    fn a_procfile_web_line_is_the_start_command() {
        let files = AppFiles::new(["requirements.txt"]).with(
            "Procfile",
            "# processes\nworker: celery -A app worker\nweb: gunicorn app:app --bind 0.0.0.0:$PORT\n",
        );
        let text = plan_for(files).unwrap();
        assert!(dockerfile(&text)
            .ends_with("CMD [\"sh\",\"-c\",\"exec gunicorn app:app --bind 0.0.0.0:$PORT\"]\n"));
    }

    #[test]
    fn procfile_parsing() {
        assert_eq!(
            web_command("web: npm run serve -- --port \"$PORT\""),
            Some("npm run serve -- --port \"$PORT\"".into())
        );
        assert_eq!(
            web_command("  web :  ./bin/server  \r\n"),
            Some("./bin/server".into())
        );
        assert_eq!(web_command("worker: x\n#web: y\nweb:\n"), None);
        assert_eq!(web_command("webhook: x"), None);
        assert_eq!(web_command(""), None);
    }

    #[test]
    fn node_uses_npm_ci_with_a_lockfile_and_npm_install_without() {
        let plan = plan_for(AppFiles::new([
            "package.json",
            "package-lock.json",
            "index.html",
        ]))
        .unwrap();
        assert_eq!(plan.log_line(), "Detected Node.js app (package.json)");
        let text = dockerfile(&plan);
        assert!(
            text.contains("COPY app/package.json app/package-lock.json ./\nRUN npm ci\n"),
            "{text}"
        );
        assert!(text.contains("RUN npm run build --if-present\n"));
        assert!(text.ends_with("CMD [\"sh\",\"-c\",\"exec npm start\"]\n"));

        let plan = plan_for(AppFiles::new(["package.json", "yarn.lock"])).unwrap();
        assert!(dockerfile(&plan).contains("COPY app/package.json ./\nRUN npm install\n"));
    }

    #[test]
    fn go_builds_the_module_and_runs_the_binary() {
        let plan = plan_for(AppFiles::new([
            "go.mod",
            "go.sum",
            "main.go",
            "package.json",
        ]))
        .unwrap();
        assert_eq!(plan.description(), "Go (go.mod)");
        let text = dockerfile(&plan);
        assert!(text.contains("FROM go:1\n"));
        assert!(text.contains("COPY app/go.mod app/go.sum ./\n"));
        assert!(text.contains("go build -o /usr/local/bin/app .\n"));
        assert!(text.ends_with("CMD [\"sh\",\"-c\",\"exec /usr/local/bin/app\"]\n"));
        let plan = plan_for(AppFiles::new(["go.mod", "main.go"])).unwrap();
        assert!(dockerfile(&plan).contains("COPY app/go.mod ./\n"));
    }

    #[test]
    fn rust_builds_release_and_runs_the_binary_named_in_cargo_toml() {
        let manifest = "[package]\nname = \"hello-web\" # the app\nversion = \"0.1.0\"\n\n[dependencies]\nname = \"not-this\"\n";
        let plan = plan_for(AppFiles::new(["src"]).with("Cargo.toml", manifest)).unwrap();
        assert_eq!(plan.log_line(), "Detected Rust app (Cargo.toml)");
        let text = dockerfile(&plan);
        assert!(text.contains("cargo build --release"), "{text}");
        assert!(text.contains("cp target/release/hello-web /usr/local/bin/hello-web"));
        assert!(text.ends_with("CMD [\"sh\",\"-c\",\"exec /usr/local/bin/hello-web\"]\n"));
    }

    #[test]
    fn cargo_binary_names() {
        assert_eq!(
            cargo_binary_name("[package]\nname='a'\n[[bin]]\nname = \"server\"\npath = \"x.rs\"\n"),
            Some("server".into())
        );
        assert_eq!(cargo_binary_name("[workspace]\nmembers = [\"a\"]\n"), None);
        let error = plan_for(AppFiles::new(["x"]).with("Cargo.toml", "[workspace]\n")).unwrap_err();
        assert!(matches!(error, DetectError::NoStartCommand { .. }));
        // A name that would inject into the Dockerfile is not used.
        let error = plan_for(
            AppFiles::new(["x"]).with("Cargo.toml", "[package]\nname = \"a && rm -rf /\"\n"),
        )
        .unwrap_err();
        assert!(matches!(error, DetectError::NoStartCommand { .. }));
    }

    #[test]
    fn a_static_site_is_served_by_busybox_httpd_on_port() {
        let plan = plan_for(AppFiles::new(["index.html", "style.css"])).unwrap();
        assert_eq!(plan.log_line(), "Detected static site (index.html)");
        assert_eq!(plan.description(), "static site (index.html)");
        let text = dockerfile(&plan);
        assert!(text.contains("FROM static:1\n"));
        assert!(text.contains("COPY app/ /site/\n"));
        assert!(text.contains("ENV PORT=5000\nEXPOSE 5000\n"));
        assert!(text.ends_with(
            "CMD [\"sh\",\"-c\",\"exec busybox httpd -f -p \\\"$PORT\\\" -h /site\"]\n"
        ));
    }

    #[test]
    fn nothing_recognised_says_what_would_be() {
        let error = plan_for(AppFiles::new(["README.md", "src"])).unwrap_err();
        assert!(error.to_string().contains("add a Dockerfile"), "{error}");
    }

    #[test]
    fn python_wins_over_a_frontend_package_json_and_static_html() {
        let plan = plan_for(AppFiles::new([
            "package.json",
            "requirements.txt",
            "app.py",
            "index.html",
        ]))
        .unwrap();
        assert_eq!(plan.description(), "Python (requirements.txt)");
    }

    #[test]
    fn an_extra_ca_is_copied_in_and_every_tool_is_pointed_at_it() {
        let plan = plan(
            &AppFiles::new(["requirements.txt", "app.py"]),
            &Recipe {
                images: &images(),
                port: 8080,
                extra_ca: true,
            },
        )
        .unwrap();
        let text = dockerfile(&plan);
        assert!(
            text.contains(&format!("COPY {CA_IN_CONTEXT} {CA_IN_IMAGE}\n")),
            "{text}"
        );
        for var in CA_ENV_VARS {
            assert!(
                text.contains(&format!("{var}={CA_IN_IMAGE}")),
                "{var} in {text}"
            );
        }
        // Set before anything is installed.
        assert!(text.find("SSL_CERT_FILE").unwrap() < text.find("pip install").unwrap());
        assert!(
            text.contains("GIT_SSL_CAINFO=/etc/ssl/certs/berth-extra-ca.crt\nWORKDIR /app\n"),
            "{text}"
        );
    }

    #[test]
    fn files_are_read_from_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Procfile"), "web: ./run\n").unwrap();
        std::fs::write(dir.path().join("index.html"), "<p>hi").unwrap();
        std::fs::create_dir(dir.path().join("assets")).unwrap();
        let files = AppFiles::read_dir(dir.path(), dir.path()).unwrap();
        assert!(files.has("index.html") && files.has("assets") && files.has("Procfile"));
        assert_eq!(files.contents("Procfile"), Some("web: ./run\n"));
        assert_eq!(
            files.contents("index.html"),
            None,
            "only wanted files are read"
        );
    }

    #[test]
    fn a_wanted_file_that_leads_out_of_the_repository_is_never_read() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        std::fs::create_dir(&repo).unwrap();
        std::fs::write(dir.path().join("host-file"), "web: leak\n").unwrap();
        std::os::unix::fs::symlink(dir.path().join("host-file"), repo.join("Procfile")).unwrap();
        let error = AppFiles::read_dir(&repo, &repo).unwrap_err();
        assert!(
            error.to_string().contains("Procfile leads outside"),
            "{error}"
        );
        // Before, the link was followed and `leak` became the start command.
        std::fs::remove_file(repo.join("Procfile")).unwrap();
        std::fs::write(repo.join("Procfile.real"), "web: ok\n").unwrap();
        std::os::unix::fs::symlink("Procfile.real", repo.join("Procfile")).unwrap();
        let files = AppFiles::read_dir(&repo, &repo).unwrap();
        assert_eq!(files.contents("Procfile"), Some("web: ok\n"));
    }
}
