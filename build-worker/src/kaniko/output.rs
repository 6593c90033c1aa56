//! Kaniko's log lines: cleaned for the build log, and remembered for the
//! failure reason (the step that failed, the last lines it printed, the
//! error Kaniko ended with).

use crate::docker::truncate;
use crate::error::BuildError;
use std::collections::VecDeque;

/// Lines of output a failure reason quotes.
const RECENT: usize = 3;
const MAX_QUOTE: usize = 240;

/// Dockerfile instructions, as Kaniko logs a step it runs: `INFO[0005] RUN x`.
const INSTRUCTIONS: [&str; 16] = [
    "RUN",
    "COPY",
    "ADD",
    "WORKDIR",
    "ENV",
    "ARG",
    "USER",
    "EXPOSE",
    "CMD",
    "ENTRYPOINT",
    "LABEL",
    "VOLUME",
    "SHELL",
    "HEALTHCHECK",
    "STOPSIGNAL",
    "ONBUILD",
];

#[derive(Debug, Default)]
pub struct KanikoOutput {
    step: Option<String>,
    recent: VecDeque<String>,
    error: Option<String>,
}

impl KanikoOutput {
    /// Cleans one line of the Pod's log (colour codes, line ends, the
    /// padding Kaniko puts after its messages) and notes what it says.
    pub fn line(&mut self, raw: &str) -> String {
        let line = strip_ansi(raw).trim_end().to_owned();
        self.observe(&line);
        line
    }

    fn observe(&mut self, line: &str) {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            return;
        }
        if let Some((level, message)) = kaniko_message(trimmed) {
            let instruction = message.split_whitespace().next().unwrap_or("");
            if level == "INFO" && INSTRUCTIONS.contains(&instruction) {
                self.step = Some(truncate(message, 80));
                self.recent.clear();
                self.error = None;
            } else if matches!(level, "ERRO" | "FATA" | "PANI") {
                self.remember(message);
            }
            // Kaniko's own progress (INFO, WARN, DEBU) is no failure detail.
            return;
        }
        if let Some(error) = trimmed
            .strip_prefix("error building image: ")
            .or_else(|| trimmed.strip_prefix("Error: "))
        {
            self.error = Some(error_cause(error));
            return;
        }
        self.remember(trimmed);
    }

    fn remember(&mut self, line: &str) {
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(truncate(line, MAX_QUOTE));
    }

    /// The step Kaniko was running, e.g. `RUN pip install -r requirements.txt`.
    pub fn step(&self) -> Option<&str> {
        self.step.as_deref()
    }

    fn step_description(&self) -> String {
        match &self.step {
            Some(step) => format!("`{step}`"),
            None => "the start, before any step ran".to_owned(),
        }
    }

    /// The failure reason for Kaniko exiting with `exit_code`.
    pub fn failure(&self, exit_code: i32) -> BuildError {
        let cause = self
            .error
            .clone()
            .unwrap_or_else(|| format!("Kaniko exited with status {exit_code}"));
        self.failed_with(cause)
    }

    /// The failure reason for a build stopped from outside (out of memory,
    /// evicted): `cause` in words, after the last lines.
    pub fn failed_with(&self, cause: String) -> BuildError {
        let cause = truncate(&cause, MAX_QUOTE);
        let quoted: Vec<&str> = self
            .recent
            .iter()
            .map(String::as_str)
            .filter(|line| *line != cause)
            .collect();
        let detail = if quoted.is_empty() {
            cause
        } else {
            format!("{} ({cause})", quoted.join(" | "))
        };
        BuildError::BuildFailed {
            step: self.step_description(),
            detail,
        }
    }
}

/// `INFO[0005] message` (or with a timestamp in the brackets) → level and message.
fn kaniko_message(line: &str) -> Option<(&str, &str)> {
    let (level, rest) = line.split_once('[')?;
    if level.len() != 4 || !level.chars().all(|c| c.is_ascii_uppercase()) {
        return None;
    }
    let (_, message) = rest.split_once("] ")?;
    Some((level, message.trim()))
}

/// `error building stage: failed to execute command: waiting for process to
/// exit: exit status 1` → `exit status 1`; other errors lose only Kaniko's
/// wrapping.
fn error_cause(error: &str) -> String {
    let error = error.trim();
    if let Some((_, last)) = error.rsplit_once(": ") {
        if last.starts_with("exit status ") {
            return last.to_owned();
        }
    }
    error
        .strip_prefix("error building stage: ")
        .unwrap_or(error)
        .to_owned()
}

/// Removes ANSI escape sequences (Kaniko colours its level names).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'[') {
            chars.next();
            // Parameters and intermediates, up to the final byte (@ to ~).
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else {
            chars.next();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_and_padding_go_and_steps_are_noted() {
        let mut output = KanikoOutput::default();
        let line =
            output.line("\u{1b}[36mINFO\u{1b}[0m[0003] RUN pip install -r requirements.txt   \r\n");
        assert_eq!(line, "INFO[0003] RUN pip install -r requirements.txt");
        assert_eq!(output.step(), Some("RUN pip install -r requirements.txt"));
        output.line("INFO[0003] Running: [/bin/sh -c pip install -r requirements.txt]");
        output.line("INFO[0001] Retrieving image manifest python:3.12");
        assert_eq!(output.step(), Some("RUN pip install -r requirements.txt"));
        assert_eq!(strip_ansi("\u{1b}[1;31mred\u{1b}[0m plain"), "red plain");
    }

    #[test]
    fn a_failed_run_step_quotes_its_last_lines_and_the_exit_status() {
        let mut output = KanikoOutput::default();
        for line in [
            "INFO[0000] Retrieving image manifest python:3.12-slim",
            "INFO[0002] COPY requirements.txt .",
            "INFO[0003] RUN pip install -r requirements.txt",
            "INFO[0003] Cmd: /bin/sh",
            "Collecting flaskk",
            "ERROR: No matching distribution found for flaskk",
            "error building image: error building stage: failed to execute command: waiting for process to exit: exit status 1",
        ] {
            output.line(line);
        }
        assert_eq!(
            output.failure(1).to_string(),
            "the build failed at `RUN pip install -r requirements.txt`: Collecting flaskk | \
             ERROR: No matching distribution found for flaskk (exit status 1)"
        );
    }

    #[test]
    fn failures_before_any_step_and_without_an_error_line() {
        let mut output = KanikoOutput::default();
        output.line("Error: unknown flag: --frobnicate");
        assert_eq!(
            output.failure(1).to_string(),
            "the build failed at the start, before any step ran: unknown flag: --frobnicate"
        );
        let mut output = KanikoOutput::default();
        output.line("error building image: error building stage: failed to get filesystem from image: chown /bin: operation not permitted");
        assert_eq!(
            output.failure(1).to_string(),
            "the build failed at the start, before any step ran: failed to get filesystem from \
             image: chown /bin: operation not permitted"
        );
        let mut output = KanikoOutput::default();
        output.line("INFO[0001] RUN make");
        output.line("\u{1b}[31mERRO\u{1b}[0m[0002] something broke");
        assert_eq!(
            output.failure(137).to_string(),
            "the build failed at `RUN make`: something broke (Kaniko exited with status 137)"
        );
    }

    #[test]
    fn only_the_last_lines_of_the_step_are_quoted() {
        let mut output = KanikoOutput::default();
        output.line("INFO[0001] RUN ./build.sh");
        for i in 0..10 {
            output.line(&format!("line {i}"));
        }
        output.line("INFO[0009] Taking snapshot of full filesystem...");
        let BuildError::BuildFailed { detail, .. } =
            output.failed_with("the build ran out of memory".into())
        else {
            panic!()
        };
        assert_eq!(
            detail,
            "line 7 | line 8 | line 9 (the build ran out of memory)"
        );
    }
}
