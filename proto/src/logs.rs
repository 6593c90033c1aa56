//! One line of an app's log, as stored in `berth.logs.<app-id>`. The record
//! key is the deployment id (or the container's when no deployment is known).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogSource {
    /// Output of the image build.
    Build,
    /// Output of the running app.
    App,
    /// Something berth or the runtime did (started, stopped, crashed).
    Event,
    /// A request the edge router answered for the app (its access log).
    Router,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogStream {
    Stdout,
    Stderr,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    pub ts: DateTime<Utc>,
    pub source: LogSource,
    /// Which build or container wrote it.
    pub instance: String,
    pub stream: LogStream,
    pub line: String,
}

impl LogRecord {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("log records serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_shape_is_the_documented_one() {
        let record = LogRecord {
            ts: "2026-11-22T02:13:18.123Z".parse().unwrap(),
            source: LogSource::Build,
            instance: "build-1".into(),
            stream: LogStream::Stderr,
            line: "Step 1/4".into(),
        };
        let json: serde_json::Value = serde_json::from_slice(&record.to_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"ts": "2026-11-22T02:13:18.123Z", "source": "build",
                "instance": "build-1", "stream": "stderr", "line": "Step 1/4"})
        );
    }
}
