//! A registry of a test's own: Debian's `docker-registry serve` (the same
//! Distribution 2.8 the stack runs) on a random 127.0.0.1 port with
//! temporary storage and token authentication, its realm served either
//! in-process by berth's own token service (worker tests) or by a backend
//! the test starts (end-to-end tests). The stack's registry answers only to
//! the backend on :8080, which tests do not run.
//!
//! Podman reaches such a registry over plain http because the stack's
//! `registries.conf` marks `127.0.0.1` insecure without a port, which
//! Podman 4.3 (containers/image) applies to every port of that host.

use super::free_port;
use crate::registry_auth::{
    router, GrantKey, Grants, IssuerSettings, RepositoryLayout, TokenIssuer,
};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The registry's `auth.token.service` in tests (and the stack).
pub const SERVICE: &str = "berth-registry";
/// The registry's `auth.token.issuer` in tests (and the stack).
pub const ISSUER: &str = "berth";

/// A P-256 key (PKCS#8 PEM) and its self-signed certificate, as the stack
/// makes them, written into `dir` by openssl.
#[derive(Debug, Clone)]
pub struct SigningFiles {
    pub key: PathBuf,
    pub certificate: PathBuf,
}

impl SigningFiles {
    pub fn generate(dir: &Path) -> Self {
        let files = Self {
            key: dir.join("registry-token.key"),
            certificate: dir.join("registry-token.crt"),
        };
        let run = |args: &[&str]| {
            let output = Command::new("openssl")
                .args(args)
                .output()
                .expect("openssl runs");
            assert!(
                output.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        let key = files.key.to_str().expect("a UTF-8 path");
        let certificate = files.certificate.to_str().expect("a UTF-8 path");
        run(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            key,
        ]);
        run(&[
            "req",
            "-new",
            "-x509",
            "-key",
            key,
            "-out",
            certificate,
            "-days",
            "30",
            "-subj",
            "/CN=berth registry token issuer (test)",
        ]);
        files
    }

    /// A token service for these files, granting what `secret_key` (a
    /// `BERTH_SECRET_KEY`) minted.
    pub fn issuer(&self, secret_key: &str) -> TokenIssuer {
        TokenIssuer::from_files(
            GrantKey::from_secret_key(secret_key).expect("a valid BERTH_SECRET_KEY"),
            &self.key,
            &self.certificate,
            IssuerSettings {
                issuer: ISSUER.into(),
                service: SERVICE.into(),
                layout: RepositoryLayout::with_prefix(""),
                token_ttl: Duration::from_secs(300),
            },
        )
        .expect("the generated key and certificate make a token issuer")
    }
}

/// A running registry; stopped (and its storage deleted) when dropped, or
/// when the test process ends, whichever comes first: it may live in a
/// `static` shared by a test binary's tests.
pub struct TestRegistry {
    /// `127.0.0.1:<port>`: what `BERTH_REGISTRY` is set to.
    pub address: String,
    /// The token endpoint the registry sends clients to.
    pub realm: String,
    pub signing: SigningFiles,
    /// The wrapper that runs the registry while its stdin stays open.
    child: Child,
    stdin: Option<ChildStdin>,
    /// Stops the in-process realm, if there is one.
    stop_realm: Option<tokio::sync::oneshot::Sender<()>>,
    dir: tempfile::TempDir,
}

/// Runs the registry (`$1` its config, `$2` its log) until this script's
/// stdin closes, which it does when the test process ends however it ends;
/// then stops it and deletes `$3`. Exits when the registry does.
const WRAPPER: &str = r#"docker-registry serve "$1" >>"$2" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$3"' EXIT
while kill -0 $pid 2>/dev/null; do
  read -r -t 1 _; rc=$?
  if [ $rc -ne 0 ] && [ $rc -le 128 ]; then exit 0; fi
done
exit 1"#;

impl TestRegistry {
    /// A registry whose realm berth's token service serves in this process
    /// (on a thread of its own, so it outlives the caller's runtime), with
    /// grants of `secret_key` (a `BERTH_SECRET_KEY`).
    pub async fn start(secret_key: &str) -> Self {
        let dir = tempdir();
        let signing = SigningFiles::generate(dir.path());
        let issuer = Arc::new(signing.issuer(secret_key));
        let app = axum::Router::new().nest("/api/v1", router(issuer));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (bound, address) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the realm");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("a port for the realm");
                let _ = bound.send(listener.local_addr().expect("a bound address"));
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await;
            });
        });
        let address = address.recv().expect("the realm binds a port");
        let realm = format!(
            "http://{address}/api/v1{}",
            crate::registry_auth::TOKEN_PATH
        );
        let mut registry = Self::launch(dir, signing, &realm).await;
        registry.stop_realm = Some(stop);
        registry
    }

    /// A registry whose realm is `realm` (a backend's
    /// `/api/v1/registry/token`, which may not run yet), trusting tokens
    /// signed with `signing`'s key.
    pub async fn start_with_realm(realm: &str, signing: &SigningFiles) -> Self {
        let dir = tempdir();
        let copy = SigningFiles {
            key: signing.key.clone(),
            certificate: dir.path().join("registry-token.crt"),
        };
        std::fs::copy(&signing.certificate, &copy.certificate).expect("the certificate copies");
        Self::launch(dir, copy, realm).await
    }

    async fn launch(dir: tempfile::TempDir, signing: SigningFiles, realm: &str) -> Self {
        let mut last_log = String::new();
        // A port picked free may be taken before the registry binds it.
        for _ in 0..3 {
            let address = format!("127.0.0.1:{}", free_port());
            let config = dir.path().join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\n\
                     log:\n  level: warn\n  accesslog:\n    disabled: true\n\
                     storage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\n\
                     http:\n  addr: {address}\n  secret: {secret}\n\
                     auth:\n  token:\n    realm: {realm}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {cert}\n",
                    data = dir.path().join("data").display(),
                    secret = uuid::Uuid::new_v4().simple(),
                    cert = signing.certificate.display(),
                ),
            )
            .expect("the registry config writes");
            let log = dir.path().join("registry.log");
            let mut child = Command::new("bash")
                .args(["-c", WRAPPER, "test-registry"])
                .arg(&config)
                .arg(&log)
                .arg(dir.path())
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("bash runs");
            let stdin = child.stdin.take();
            if wait_ready(&mut child, &address).await {
                return Self {
                    address,
                    realm: realm.to_owned(),
                    signing,
                    child,
                    stdin,
                    stop_realm: None,
                    dir,
                };
            }
            last_log = std::fs::read_to_string(&log).unwrap_or_default();
            drop(stdin);
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("the test registry (Debian's docker-registry) did not start: {last_log}");
    }

    /// Grants of `secret_key` that live 15 minutes (the registry accepts
    /// them only when its realm checks grants of the same key).
    pub fn grants(secret_key: &str) -> Grants {
        Grants::from_secret_key(secret_key).expect("a valid BERTH_SECRET_KEY")
    }

    /// The tags `repository` (`<tenant>/<app>`) has, read from the
    /// registry's storage: what a test asserts was (or was not) pushed.
    pub fn tags(&self, repository: &str) -> Vec<String> {
        let dir = self
            .dir
            .path()
            .join("data/docker/registry/v2/repositories")
            .join(repository)
            .join("_manifests/tags");
        let mut tags: Vec<String> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(|entry| entry.ok())
                    .map(|entry| entry.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        tags.sort();
        tags
    }

    /// What the registry logged so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        // Closing stdin stops the registry within a second.
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(stop) = self.stop_realm.take() {
            let _ = stop.send(());
        }
    }
}

/// `GET /v2/` answers 401 (token auth) once the registry serves.
async fn wait_ready(child: &mut Child, address: &str) -> bool {
    let client = reqwest::Client::new();
    let url = format!("http://{address}/v2/");
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return false;
        }
        if let Ok(response) = client.get(&url).send().await {
            return response.status() == reqwest::StatusCode::UNAUTHORIZED;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("berth-test-registry-")
        .tempdir()
        .expect("a temporary folder")
}
