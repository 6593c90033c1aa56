//! Property-based tests of the Docker log frame codec: any frame reads
//! without panicking, and lines cut into frames anywhere, on both streams
//! interleaved, are joined back into exactly those lines.

use crate::frames::{fragment, stamped, LineJoiner};
use berth_proto::LogStream;
use bollard::container::LogOutput;
use proptest::prelude::*;

/// A line as an app prints it: anything but a newline, not ending in `\r`
/// (a `\r\n` ending is read as the newline).
fn line() -> impl Strategy<Value = String> {
    "[^\n]{0,40}".prop_filter("no trailing CR", |line| !line.ends_with('\r'))
}

fn frame(stream: LogStream, text: &str) -> LogOutput {
    let message = format!("2026-12-05T08:00:00.123456789Z {text}")
        .into_bytes()
        .into();
    match stream {
        LogStream::Stdout => LogOutput::StdOut { message },
        LogStream::Stderr => LogOutput::StdErr { message },
    }
}

/// `text` cut at the given (sorted, deduplicated) char positions.
fn cut(text: &str, mut at: Vec<usize>) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    at.retain(|i| *i > 0 && *i < chars.len());
    at.sort_unstable();
    at.dedup();
    let mut pieces = Vec::new();
    let mut start = 0;
    for end in at.into_iter().chain([chars.len()]) {
        pieces.push(chars[start..end].iter().collect());
        start = end;
    }
    pieces
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_frame_reads_without_panicking(bytes in prop::collection::vec(any::<u8>(), 0..256), err in any::<bool>()) {
        let message = bytes.clone().into();
        let output = if err { LogOutput::StdErr { message } } else { LogOutput::StdOut { message } };
        let mut joiner = LineJoiner::default();
        if let Some(fragment) = fragment(output) {
            let _ = joiner.push(fragment);
        }
        let _ = stamped(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn lines_cut_into_frames_are_joined_back(
        out_lines in prop::collection::vec(line(), 0..8),
        err_lines in prop::collection::vec(line(), 0..8),
        out_cuts in prop::collection::vec(0usize..400, 0..12),
        err_cuts in prop::collection::vec(0usize..400, 0..12),
        order in prop::collection::vec(any::<bool>(), 0..40),
    ) {
        let text = |lines: &[String]| lines.iter().map(|l| format!("{l}\n")).collect::<String>();
        let mut out = cut(&text(&out_lines), out_cuts).into_iter();
        let mut err = cut(&text(&err_lines), err_cuts).into_iter();
        let mut joiner = LineJoiner::default();
        let (mut got_out, mut got_err) = (Vec::new(), Vec::new());
        let mut feed = |stream: LogStream, piece: String, joiner: &mut LineJoiner| {
            let fragment = fragment(frame(stream, &piece)).unwrap();
            for line in joiner.push(fragment) {
                match line.stream {
                    LogStream::Stdout => got_out.push(line.line),
                    LogStream::Stderr => got_err.push(line.line),
                }
            }
        };
        // Interleave the two streams in a random order, then the rest.
        for from_out in order {
            let (stream, piece) = if from_out {
                (LogStream::Stdout, out.next())
            } else {
                (LogStream::Stderr, err.next())
            };
            if let Some(piece) = piece {
                feed(stream, piece, &mut joiner);
            }
        }
        for piece in out.by_ref() {
            feed(LogStream::Stdout, piece, &mut joiner);
        }
        for piece in err.by_ref() {
            feed(LogStream::Stderr, piece, &mut joiner);
        }
        prop_assert!(joiner.finish(chrono::Utc::now()).is_empty(), "every line ended");
        prop_assert_eq!(got_out, out_lines);
        prop_assert_eq!(got_err, err_lines);
    }
}
