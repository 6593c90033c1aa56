//! Test support: the local stack's connection settings and per-test
//! isolation. Tests talk to the real services `infra/local/stack.sh up`
//! started; each test gets its own RabbitMQ vhost so parallel tests and
//! leftovers from earlier runs never see each other's messages.

pub mod acme;
pub mod fake_github;
pub mod mailbox;
pub mod memory_log;
pub mod registry;
pub mod registry_client;
pub mod router;
pub mod tansu;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use uuid::Uuid;

/// The repository root (two levels above any crate's manifest dir).
/// A local TCP port nothing listens on right now.
/// A local port free now, for a server a test starts. Picked below the
/// kernel's ephemeral range (32768 and up), where the ports of outgoing
/// connections and of the engine's published containers come from: a port
/// picked there may be taken by one of them before the server binds it
/// (the backend of an end-to-end platform failed so, "address already in
/// use"). Here only another test's pick can take it, one in 12,000.
pub fn free_port() -> u16 {
    const FROM: u16 = 20_000;
    const SPAN: u128 = 12_000;
    for _ in 0..100 {
        let port = FROM + (uuid::Uuid::new_v4().as_u128() % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free local port")
}

pub fn repo_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .find(|dir| dir.join(".git").exists() || dir.join("Makefile").exists())
        .unwrap_or(&manifest)
        .to_path_buf()
}

/// Settings the stack wrote to `.berth/berth.env` (or `BERTH_ENV_FILE`).
pub fn stack_env() -> HashMap<String, String> {
    let path = std::env::var("BERTH_ENV_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join(".berth/berth.env"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}. Start the local stack first: `infra/local/stack.sh up` (or `make test`).",
            path.display()
        )
    });
    text.lines()
        .filter_map(|line| {
            let line = line.trim().strip_prefix("export ").unwrap_or(line.trim());
            let (key, value) = line.split_once('=')?;
            let value = unescape(value.trim_matches(|c| c == '"' || c == '\''));
            (!key.starts_with('#')).then(|| (key.to_owned(), value))
        })
        .collect()
}

/// Undoes the backslashes bash's `printf %q` puts before spaces and
/// other special characters (the env file is written that way).
fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

/// One stack setting; panics with the missing name.
pub fn setting(key: &str) -> String {
    stack_env()
        .remove(key)
        .unwrap_or_else(|| panic!("{key} is not in the stack's env file"))
}

/// The folder local repositories must be in (`BERTH_LOCAL_REPO_ROOT` of
/// the stack's env file), created if missing: tests make their
/// repositories here so that the processes they start accept them.
pub fn local_repo_root() -> PathBuf {
    let root = PathBuf::from(
        stack_env()
            .remove("BERTH_LOCAL_REPO_ROOT")
            .unwrap_or_else(|| {
                panic!(
            "BERTH_LOCAL_REPO_ROOT is not in the stack's env file: re-run `infra/local/stack.sh up`"
        )
            }),
    );
    std::fs::create_dir_all(&root)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", root.display()));
    root
}

/// Runs `rabbitmqctl` against the stack's node.
pub fn rabbitmqctl(args: &[&str]) -> String {
    let env = stack_env();
    let output = Command::new("rabbitmqctl")
        .args(args)
        .envs(
            env.iter()
                .filter(|(k, _)| k.starts_with("RABBITMQ_") || k == &"HOME"),
        )
        .output()
        .expect("rabbitmqctl runs");
    assert!(
        output.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A fresh, empty RabbitMQ vhost that is deleted when dropped. Every vhost
/// holds its quorum queues' file handles on the node, so tests must not
/// leave theirs behind.
pub struct TestVhost {
    pub name: String,
    /// An AMQP URL for the vhost.
    pub url: String,
}

impl TestVhost {
    /// The vhost, with all rights for the tests' user, and for each berth
    /// process's own user the rights the stack gives it on the platform's
    /// vhost (so end-to-end tests run with the real permissions).
    pub fn new() -> Self {
        let name = format!("berth-test-{}", Uuid::new_v4().simple());
        rabbitmqctl(&["add_vhost", &name]);
        rabbitmqctl(&["set_permissions", "-p", &name, "berth", ".*", ".*", ".*"]);
        let env = stack_env();
        for (key, read) in env
            .iter()
            .filter(|(k, _)| k.starts_with("BERTH_AMQP_READ_"))
        {
            let url_key = key.replace("_READ_", "_URL_");
            let Some(user) = env.get(&url_key).and_then(|url| amqp_user(url)) else {
                continue;
            };
            rabbitmqctl(&[
                "set_permissions",
                "-p",
                &name,
                user,
                &env["BERTH_AMQP_CONFIGURE"],
                &env["BERTH_AMQP_WRITE"],
                read,
            ]);
        }
        let url = on_vhost(&setting("BERTH_AMQP_URL"), &name);
        Self { name, url }
    }

    /// The URL of this vhost as `process` (`berth-build-worker`, ...) logs
    /// in; the tests' user's when the stack has no user for it.
    pub fn url_for(&self, process: &str) -> String {
        let key = format!(
            "BERTH_AMQP_URL_{}",
            process
                .trim_start_matches("berth-")
                .replace('-', "_")
                .to_uppercase()
        );
        match stack_env().get(&key) {
            Some(url) => on_vhost(url, &self.name),
            None => self.url.clone(),
        }
    }
}

/// `amqp://user:pass@host:port/vhost` on another vhost.
fn on_vhost(url: &str, vhost: &str) -> String {
    let root = url.rsplit_once('/').map(|(root, _)| root).unwrap_or(url);
    format!("{root}/{vhost}")
}

fn amqp_user(url: &str) -> Option<&str> {
    let (credentials, _) = url.split_once("://")?.1.split_once('@')?;
    credentials.split(':').next()
}

impl Default for TestVhost {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestVhost {
    /// Best effort and bounded: a stuck node must not hang the test run.
    fn drop(&mut self) {
        let env = stack_env();
        let child = Command::new("rabbitmqctl")
            .args(["delete_vhost", &self.name])
            .envs(
                env.iter()
                    .filter(|(k, _)| k.starts_with("RABBITMQ_") || k == &"HOME"),
            )
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        let Ok(mut child) = child else { return };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while matches!(child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        if matches!(child.try_wait(), Ok(None)) {
            eprintln!(
                "rabbitmqctl delete_vhost {} is stuck; leaving it",
                self.name
            );
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn values_written_with_printf_q_read_back_as_they_were() {
        assert_eq!(
            super::unescape(r"berth\ \<berth@localhost\>"),
            "berth <berth@localhost>"
        );
        assert_eq!(super::unescape("plain/value:1"), "plain/value:1");
    }
}
