//! One instance's log: `GET …/pods/{pod}/log?container=…&timestamps=true`
//! with `follow=true` for the container's current instance, `previous=true`
//! (no follow) for the one before it, and `sinceTime` = the checkpoint's
//! second. The kubelet stamps each line RFC 3339 to the nanosecond; the
//! follower's [`crate::checkpoint::Resume`] skips what was delivered.

use berth_proto::LogStream;
use futures::io::{AsyncBufRead, AsyncBufReadExt};
use futures::stream::{self, BoxStream};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, LogParams};
use kube::Client;

use super::pods::Location;
use crate::error::StreamError;
use crate::frames::stamped;
use crate::source::LogLine;

/// The query for `location`'s log from the UNIX second `since` (0: from
/// the start).
pub fn params(location: &Location, since: i64) -> LogParams {
    LogParams {
        container: Some(location.container.clone()),
        follow: !location.previous,
        previous: location.previous,
        since_time: (since > 0)
            .then(|| Timestamp::from_second(since).ok())
            .flatten(),
        timestamps: true,
        ..LogParams::default()
    }
}

/// A line as the kubelet writes it with timestamps. The logs API mixes
/// stdout and stderr into one stream without saying which is which: all
/// lines are shipped as stdout.
pub fn parse_line(raw: &[u8]) -> LogLine {
    let raw = String::from_utf8_lossy(raw);
    let raw = raw.strip_suffix('\n').unwrap_or(&raw);
    let raw = raw.strip_suffix('\r').unwrap_or(raw);
    let (ts, text) = stamped(raw);
    LogLine {
        ts,
        stream: LogStream::Stdout,
        line: text.to_owned(),
    }
}

/// The instance's lines from `since`, following a running instance until
/// its stream ends. An instance the kubelet no longer has a log for (400,
/// 404: deleted, not started, previous one gone) has no more lines.
pub fn stream(
    client: Client,
    location: Location,
    since: i64,
) -> BoxStream<'static, Result<LogLine, StreamError>> {
    let params = params(&location, since);
    stream::once(async move {
        let pods: Api<Pod> = Api::namespaced(client, &location.namespace);
        match pods.log_stream(&location.pod, &params).await {
            Ok(reader) => lines(Box::pin(reader)),
            Err(kube::Error::Api(status)) if matches!(status.code, 400 | 404) => {
                tracing::debug!(
                    pod = location.pod,
                    container = location.container,
                    reason = status.message,
                    "no log to read"
                );
                stream::empty().boxed()
            }
            Err(error) => stream::iter([Err(StreamError::from(error))]).boxed(),
        }
    })
    .flatten()
    .boxed()
}

/// Reads lines as bytes (an app may print invalid UTF-8; it must not stop
/// the stream), each with its timestamp.
fn lines<R>(reader: R) -> BoxStream<'static, Result<LogLine, StreamError>>
where
    R: AsyncBufRead + Unpin + Send + 'static,
{
    stream::unfold(Some(reader), |reader| async move {
        let mut reader = reader?;
        let mut raw = Vec::new();
        match reader.read_until(b'\n', &mut raw).await {
            Ok(0) => None,
            Ok(_) => Some((Ok(parse_line(&raw)), Some(reader))),
            Err(error) => {
                let error = StreamError::Kubernetes(format!("reading a log: {error}"));
                Some((Err(error), None))
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(previous: bool) -> Location {
        Location {
            namespace: "berth-acme".into(),
            pod: "web-1".into(),
            container: "web".into(),
            previous,
            running: !previous,
        }
    }

    #[test]
    fn lines_carry_the_kubelets_nanosecond_timestamp() {
        let line = parse_line(b"2026-11-22T02:13:18.123456789Z GET / 200\n");
        assert_eq!(line.ts.timestamp(), 1_795_313_598);
        assert_eq!(line.ts.timestamp_subsec_nanos(), 123_456_789);
        assert_eq!(line.line, "GET / 200");
        assert_eq!(line.stream, LogStream::Stdout);
        assert_eq!(
            parse_line(b"2026-11-22T02:13:18Z  two spaces\r\n").line,
            " two spaces"
        );
        assert_eq!(parse_line(b"2026-11-22T02:13:18.5Z\n").line, "");
        assert_eq!(
            parse_line(b"2026-11-22T02:13:18Z caf\xc3").line,
            "caf\u{fffd}"
        );
    }

    #[test]
    fn the_current_instance_is_followed_and_the_previous_one_read() {
        let current = params(&location(false), 1_795_313_598);
        assert!(current.follow && current.timestamps && !current.previous);
        assert_eq!(current.container.as_deref(), Some("web"));
        assert_eq!(
            current.since_time.map(|time| time.to_string()).as_deref(),
            Some("2026-11-22T02:13:18Z")
        );
        let previous = params(&location(true), 0);
        assert!(previous.previous && !previous.follow);
        assert_eq!(previous.since_time, None, "from the start");
    }
}
