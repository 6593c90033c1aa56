//! A tansu broker of a test's own, for what must not touch the stack's
//! shared one (deleting topics: tansu 0.6 deletes every topic when asked to
//! delete one).

use super::setting;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A tansu broker on a free port with its storage in a temporary folder.
pub struct PrivateTansu {
    child: Child,
    /// `127.0.0.1:<port>`: what `BERTH_KAFKA_BROKERS` is set to.
    pub brokers: String,
    _dir: tempfile::TempDir,
}

impl PrivateTansu {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = super::free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(setting("BERTH_TANSU_BIN"))
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the stack's tansu binary runs");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self {
            child,
            brokers: format!("127.0.0.1:{port}"),
            _dir: dir,
        }
    }
}

impl Drop for PrivateTansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
