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

use crate::registry_auth::{
    router, GrantKey, Grants, IssuerSettings, RepositoryLayout, TokenIssuer,
};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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

/// A running registry; stopped (and its storage deleted) when dropped.
pub struct TestRegistry {
    /// `127.0.0.1:<port>`: what `BERTH_REGISTRY` is set to.
    pub address: String,
    /// The token endpoint the registry sends clients to.
    pub realm: String,
    pub signing: SigningFiles,
    child: Child,
    realm_server: Option<tokio::task::JoinHandle<()>>,
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free local port")
}

impl TestRegistry {
    /// A registry whose realm is served in this process by berth's token
    /// service, with grants of `secret_key` (a `BERTH_SECRET_KEY`). Needs a
    /// Tokio runtime.
    pub async fn start(secret_key: &str) -> Self {
        let dir = tempdir();
        let signing = SigningFiles::generate(dir.path());
        let issuer = Arc::new(signing.issuer(secret_key));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port for the realm");
        let realm = format!(
            "http://{}/api/v1{}",
            listener.local_addr().expect("a bound address"),
            crate::registry_auth::TOKEN_PATH
        );
        let app = axum::Router::new().nest("/api/v1", router(issuer));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let mut registry = Self::launch(dir, signing, &realm).await;
        registry.realm_server = Some(server);
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
            let output = std::fs::File::create(&log).expect("a log file");
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .stdout(Stdio::from(output.try_clone().expect("a log file")))
                .stderr(Stdio::from(output))
                .spawn()
                .expect("docker-registry (Debian's docker-registry package) runs");
            if wait_ready(&mut child, &address).await {
                return Self {
                    address,
                    realm: realm.to_owned(),
                    signing,
                    child,
                    realm_server: None,
                    dir,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            last_log = std::fs::read_to_string(&log).unwrap_or_default();
        }
        panic!("the test registry did not start: {last_log}");
    }

    /// Grants of `secret_key` that live 15 minutes (the registry accepts
    /// them only when its realm checks grants of the same key).
    pub fn grants(secret_key: &str) -> Grants {
        Grants::from_secret_key(secret_key).expect("a valid BERTH_SECRET_KEY")
    }

    /// What the registry logged so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(server) = self.realm_server.take() {
            server.abort();
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
