//! From the Docker logs endpoint's frames to lines.
//!
//! With `timestamps=true` every frame is `<RFC 3339 timestamp> <text>`. A
//! frame usually holds one line with its newline, but the engine splits
//! long output into partial frames without one: Podman's log file stores
//! what conmon read from the pipe in one go (a line can be cut after 8 KiB
//! or wherever a burst of output crossed a read), Docker cuts at 16 KiB.
//! [`LineJoiner`] glues the pieces of a stream back together. A joined line
//! carries the timestamp of its last piece: a resumed read `since` a second
//! returns at least that piece, so the line is counted at the same second
//! both times (see [`crate::checkpoint`]).

use berth_proto::LogStream;
use bollard::container::LogOutput;
use chrono::{DateTime, Utc};

use crate::source::LogLine;

/// One frame: its stream, time, text, and whether it ends a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    pub stream: LogStream,
    pub ts: DateTime<Utc>,
    pub text: String,
    pub ends_line: bool,
}

/// Reads a frame; `None` for stdin frames, which berth does not ship.
pub fn fragment(output: LogOutput) -> Option<Fragment> {
    let (stream, message) = match output {
        LogOutput::StdErr { message } => (LogStream::Stderr, message),
        LogOutput::StdOut { message } | LogOutput::Console { message } => {
            (LogStream::Stdout, message)
        }
        LogOutput::StdIn { .. } => return None,
    };
    let raw = String::from_utf8_lossy(&message);
    let (ts, text) = stamped(&raw);
    Some(Fragment {
        stream,
        ts,
        ends_line: text.ends_with('\n'),
        text: text.to_owned(),
    })
}

/// Splits `<RFC 3339 timestamp> <text>` (what a log endpoint asked for
/// timestamps writes, to the second or the nanosecond) into its time and
/// text. A stamped empty line is the timestamp alone (and its newline, if
/// `raw` has one); text without a timestamp is stamped now.
pub fn stamped(raw: &str) -> (DateTime<Utc>, &str) {
    let (stamp, text) = match raw.split_once(' ') {
        Some((stamp, text)) => (stamp, text),
        None => {
            let stamp = raw.trim_end_matches('\n');
            (stamp, &raw[stamp.len()..])
        }
    };
    match DateTime::parse_from_rfc3339(stamp) {
        Ok(ts) => (ts.with_timezone(&Utc), text),
        Err(_) => (Utc::now(), raw),
    }
}

/// Joins partial frames per stream into whole lines.
#[derive(Debug, Default)]
pub struct LineJoiner {
    stdout: String,
    stderr: String,
}

impl LineJoiner {
    /// The lines `fragment` completes, in order.
    pub fn push(&mut self, fragment: Fragment) -> Vec<LogLine> {
        let pending = match fragment.stream {
            LogStream::Stdout => &mut self.stdout,
            LogStream::Stderr => &mut self.stderr,
        };
        pending.push_str(&fragment.text);
        let Some(last_newline) = pending.rfind('\n') else {
            return Vec::new();
        };
        let rest = pending.split_off(last_newline + 1);
        let complete = std::mem::replace(pending, rest);
        complete
            .strip_suffix('\n')
            .unwrap_or(&complete)
            .split('\n')
            .map(|line| LogLine {
                ts: fragment.ts,
                stream: fragment.stream,
                line: line.strip_suffix('\r').unwrap_or(line).to_owned(),
            })
            .collect()
    }

    /// What is left when the stream ends: a last line without its newline
    /// (the container stopped in the middle of it).
    pub fn finish(&mut self, ts: DateTime<Utc>) -> Vec<LogLine> {
        [
            (LogStream::Stdout, std::mem::take(&mut self.stdout)),
            (LogStream::Stderr, std::mem::take(&mut self.stderr)),
        ]
        .into_iter()
        .filter(|(_, text)| !text.is_empty())
        .map(|(stream, line)| LogLine { ts, stream, line })
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(text: &str) -> Fragment {
        fragment(LogOutput::StdOut {
            message: text.to_owned().into(),
        })
        .unwrap()
    }

    fn err(text: &str) -> Fragment {
        fragment(LogOutput::StdErr {
            message: text.to_owned().into(),
        })
        .unwrap()
    }

    fn lines(lines: Vec<LogLine>) -> Vec<String> {
        lines.into_iter().map(|line| line.line).collect()
    }

    #[test]
    fn frames_become_stamped_lines() {
        let fragment = err("2026-11-22T02:13:18Z boom: it broke\n");
        assert_eq!(fragment.stream, LogStream::Stderr);
        assert_eq!(fragment.ts.timestamp(), 1_795_313_598);
        assert!(fragment.ends_line);
        let precise = out("2026-11-22T02:13:18.123456789Z  indented\n");
        assert_eq!(precise.ts.timestamp_subsec_nanos(), 123_456_789);
        let mut joiner = LineJoiner::default();
        assert_eq!(lines(joiner.push(precise)), [" indented"]);
        assert_eq!(lines(joiner.push(out("2026-11-22T02:13:18Z\n"))), [""]);
        assert_eq!(
            lines(joiner.push(out("2026-11-22T02:13:18Z a\r\nb\n"))),
            ["a", "b"]
        );
    }

    #[test]
    fn a_timestamp_prefix_is_split_off() {
        let (ts, text) = stamped("2026-11-22T02:13:18.000000001Z hello world");
        assert_eq!(ts.timestamp(), 1_795_313_598);
        assert_eq!(ts.timestamp_subsec_nanos(), 1);
        assert_eq!(text, "hello world");
        assert_eq!(stamped("2026-11-22T02:13:18Z").1, "");
        assert_eq!(stamped("2026-11-22T02:13:18Z\n").1, "\n");
        let before = Utc::now();
        let (ts, text) = stamped("no stamp here");
        assert_eq!(text, "no stamp here");
        assert!(ts >= before);
    }

    #[test]
    fn partial_frames_are_joined_per_stream_with_the_last_pieces_time() {
        let mut joiner = LineJoiner::default();
        assert!(joiner
            .push(out("2026-11-22T02:13:18Z run 1 out 93"))
            .is_empty());
        assert_eq!(
            lines(joiner.push(err("2026-11-22T02:13:18Z run 1 err 92\n"))),
            ["run 1 err 92"]
        );
        let joined = joiner.push(out("2026-11-22T02:13:19Z 3\nrun 1 out 934\nrun"));
        assert_eq!(lines(joined.clone()), ["run 1 out 933", "run 1 out 934"]);
        assert_eq!(joined[0].ts.timestamp(), 1_795_313_599);
        assert_eq!(lines(joiner.finish(Utc::now())), ["run"]);
        assert!(joiner.finish(Utc::now()).is_empty());
    }
}
