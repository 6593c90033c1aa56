//! Test support: the local stack's connection settings and per-test
//! isolation. Tests talk to the real services `infra/local/stack.sh up`
//! started; each test gets its own RabbitMQ vhost so parallel tests and
//! leftovers from earlier runs never see each other's messages.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use uuid::Uuid;

/// The repository root (two levels above any crate's manifest dir).
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
            let value = value.trim_matches(|c| c == '"' || c == '\'');
            (!key.starts_with('#')).then(|| (key.to_owned(), value.to_owned()))
        })
        .collect()
}

/// One stack setting; panics with the missing name.
pub fn setting(key: &str) -> String {
    stack_env()
        .remove(key)
        .unwrap_or_else(|| panic!("{key} is not in the stack's env file"))
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

/// A fresh, empty vhost; returns an AMQP URL for it.
pub fn fresh_amqp_url() -> String {
    let vhost = format!("berth-test-{}", Uuid::new_v4().simple());
    rabbitmqctl(&["add_vhost", &vhost]);
    rabbitmqctl(&["set_permissions", "-p", &vhost, "berth", ".*", ".*", ".*"]);
    let base = setting("BERTH_AMQP_URL");
    let root = base.rsplit_once('/').map(|(root, _)| root).unwrap_or(&base);
    format!("{root}/{vhost}")
}
