//! An edge router (Caddy, as the stack runs it) of a test's own: its admin
//! socket and its port in a temporary folder and a free port, so tests
//! never see one another's routes.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct TestRouter {
    child: Child,
    /// The admin API: what `BERTH_ROUTER_ADMIN_SOCKET` is set to.
    pub socket: PathBuf,
    /// Apps' traffic: `BERTH_ROUTER_LISTEN` is `127.0.0.1:<port>`.
    pub port: u16,
    /// HTTPS, when a test turns it on: `BERTH_ROUTER_TLS_LISTEN` is
    /// `127.0.0.1:<tls_port>`.
    pub tls_port: u16,
    dir: tempfile::TempDir,
}

impl TestRouter {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = super::free_port();
        let socket = dir.path().join("admin.sock");
        let child = spawn(&dir, &socket).await;
        Self {
            child,
            socket,
            port,
            tls_port: super::free_port(),
            dir,
        }
    }

    /// `BERTH_ROUTER_LISTEN` for berth.
    pub fn listen(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `BERTH_ROUTER_TLS_LISTEN` for berth.
    pub fn tls_listen(&self) -> String {
        format!("127.0.0.1:{}", self.tls_port)
    }

    /// Kills the router and starts it again with no configuration but its
    /// admin endpoint: every route berth made is gone.
    pub async fn restart_empty(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
        self.child = spawn(&self.dir, &self.socket).await;
    }

    /// `GET http://<host><path>` through the router: status and body.
    pub async fn get(&self, host: &str, path: &str) -> Result<(u16, String), reqwest::Error> {
        let response = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{}{path}", self.port))
            .header(reqwest::header::HOST, host)
            .timeout(Duration::from_secs(10))
            .send()
            .await?;
        let status = response.status().as_u16();
        Ok((status, response.text().await?))
    }
}

async fn spawn(dir: &tempfile::TempDir, socket: &std::path::Path) -> Child {
    let config = dir.path().join("caddy.json");
    let admin = serde_json::json!({
        "admin": {"listen": format!("unix/{}", socket.display()), "config": {"persist": false}},
        "storage": {"module": "file_system", "root": dir.path().join("data")},
    });
    std::fs::write(&config, admin.to_string()).unwrap();
    let child = Command::new("caddy")
        .arg("run")
        .arg("--config")
        .arg(&config)
        .env("HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path().join("config"))
        .env("XDG_DATA_HOME", dir.path().join("data"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("caddy runs (the stack installs it)");
    for _ in 0..100 {
        if tokio::net::UnixStream::connect(socket).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child
}

impl Drop for TestRouter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
