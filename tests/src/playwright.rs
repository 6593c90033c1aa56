//! Runs the web UI's Playwright suite (`frontend/e2e/`) as a child process
//! against a running platform, in Debian's headless Chromium.

use anyhow::{bail, Context, Result};
use berth_common::testing::repo_root;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

/// Longer than the suite's own `globalTimeout` (playwright.config.ts), so
/// that Playwright reports a slow run itself, with the step it was on.
const HARD_LIMIT: Duration = Duration::from_secs(9 * 60 + 30);

/// How a run ended, with everything it printed (stdout and stderr,
/// interleaved as they arrived).
pub struct Run {
    pub success: bool,
    pub output: String,
}

pub fn frontend_dir() -> PathBuf {
    repo_root().join("frontend")
}

/// Runs `npx playwright test` in `frontend/` with `env` (the `BERTH_E2E_*`
/// settings the specs read). Lines are echoed to stderr as they come, so a
/// `--no-capture` run shows the journey's progress.
pub async fn run(env: &[(&str, String)]) -> Result<Run> {
    let dir = frontend_dir();
    if !dir.join("node_modules/.bin/playwright").exists() {
        bail!(
            "Playwright is not installed in {}: run `npm ci` there (or `make frontend`)",
            dir.display()
        );
    }
    let mut child = Command::new("npx")
        .args(["--no-install", "playwright", "test"])
        .current_dir(&dir)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        // Colour codes would clutter the failure message.
        .env("FORCE_COLOR", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting npx playwright test")?;
    let (lines, mut collected) = tokio::sync::mpsc::unbounded_channel();
    let stdout = child.stdout.take().context("stdout")?;
    let stderr = child.stderr.take().context("stderr")?;
    let readers = [echo(stdout, lines.clone()), echo(stderr, lines)];
    let status = tokio::time::timeout(HARD_LIMIT, child.wait())
        .await
        .with_context(|| format!("the Playwright suite ran longer than {HARD_LIMIT:?}"))??;
    for reader in readers {
        reader.await?;
    }
    let mut output = String::new();
    while let Ok(line) = collected.try_recv() {
        output.push_str(&line);
        output.push('\n');
    }
    Ok(Run {
        success: status.success(),
        output,
    })
}

fn echo(
    from: impl AsyncRead + Unpin + Send + 'static,
    to: tokio::sync::mpsc::UnboundedSender<String>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(from).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("[playwright] {line}");
            let _ = to.send(line);
        }
    })
}
