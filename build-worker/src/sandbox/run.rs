//! Running one podman process and turning its output into build log lines.

use crate::buildlog::BuildLog;
use crate::docker::BuildOutput;
use std::process::{ExitStatus, Stdio};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// How a podman run ended: its status, the step it was in, the output it
/// ended with.
pub struct Finished {
    pub status: ExitStatus,
    pub output: BuildOutput,
    /// The last line podman wrote on stderr: its own error message.
    pub last_error: Option<String>,
}

/// Runs `command`, sending every line it prints (stdout and stderr) to
/// `log` as it comes.
pub async fn run_logged(mut command: Command, log: &BuildLog) -> std::io::Result<Finished> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn()?;
    let mut stdout = BufReader::new(child.stdout.take().expect("piped")).lines();
    let mut stderr = BufReader::new(child.stderr.take().expect("piped")).lines();
    let mut output = BuildOutput::default();
    let mut last_error = None;
    let (mut out_open, mut err_open) = (true, true);
    while out_open || err_open {
        tokio::select! {
            line = stdout.next_line(), if out_open => match line? {
                Some(line) => for line in output.push(&format!("{line}\n")) {
                    log.line(line).await;
                },
                None => out_open = false,
            },
            line = stderr.next_line(), if err_open => match line? {
                // podman's own error is the failure's cause, not output of
                // the step to quote.
                Some(line) if line.starts_with("Error: ") => {
                    log.line(line.clone()).await;
                    last_error = Some(line);
                }
                Some(line) => for line in output.push(&format!("{line}\n")) {
                    log.line(line).await;
                },
                None => err_open = false,
            },
        }
    }
    let status = child.wait().await?;
    Ok(Finished {
        status,
        output,
        last_error,
    })
}
