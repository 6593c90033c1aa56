//! The seam between the streamer and what runs the workloads: the `docker`
//! driver ([`crate::docker::DockerLogSource`]) and the `kubernetes` driver
//! ([`crate::kubernetes::KubeLogSource`], a Pod watcher with a log stream per
//! container instance).

use async_trait::async_trait;
use berth_proto::LogStream;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use uuid::Uuid;

use crate::error::StreamError;

/// One container berth runs for an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// The runtime's id; checkpoints are kept per id.
    pub id: String,
    /// The name users see as the record's `instance`.
    pub name: String,
    pub app_id: Uuid,
    /// The record key: the deployment id label, or the container id.
    pub key: String,
    pub running: bool,
}

/// What happened to a workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lifecycle {
    /// Started, or restarted by its restart policy.
    Started,
    Died {
        exit_code: Option<i64>,
    },
    OutOfMemory,
    Removed,
    /// The workload was removed before its log was read to its end (while
    /// the streamer was down, or cutting its stream short): its lines
    /// after the second `after` (Unix time; 0: all of them) may be lost.
    /// The streamer's own finding, not the runtime's.
    LinesLost {
        after: i64,
    },
    /// Something the runtime reported about the workload (a Kubernetes
    /// Event: `BackOff`, `Unhealthy`, `FailedScheduling`…), shipped as is.
    Reported {
        reason: String,
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadEvent {
    pub workload: Workload,
    pub kind: Lifecycle,
    pub at: DateTime<Utc>,
    /// Orders events; what the events checkpoint stores (nanoseconds).
    /// The streamer's own findings ([`Lifecycle::LinesLost`]) have none
    /// and leave the checkpoint alone (see [`Self::is_the_runtimes`]).
    pub cursor: i64,
}

impl WorkloadEvent {
    /// Whether the runtime reported it (and it moves the events
    /// checkpoint), rather than the streamer found it.
    pub fn is_the_runtimes(&self) -> bool {
        !matches!(self.kind, Lifecycle::LinesLost { .. })
    }
}

/// One line a workload printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub ts: DateTime<Utc>,
    pub stream: LogStream,
    pub line: String,
}

#[async_trait]
pub trait LogSource: Send + Sync + 'static {
    /// Every workload berth labelled, running or not.
    async fn workloads(&self) -> Result<Vec<Workload>, StreamError>;

    /// Whether the workload runs now; `None` once it is gone. Asked when
    /// its log stream ended; a source may wait a moment for the runtime's
    /// state to catch up.
    async fn is_running(&self, id: &str) -> Result<Option<bool>, StreamError>;

    /// Lifecycle events of berth's workloads from `since` (nanoseconds;
    /// events of that whole second on may repeat) or from now, then live.
    fn events(&self, since: Option<i64>) -> BoxStream<'static, Result<WorkloadEvent, StreamError>>;

    /// The workload's lines stamped at or after the second `since`, in the
    /// order it printed them, following until it stops.
    fn logs(&self, id: &str, since: i64) -> BoxStream<'static, Result<LogLine, StreamError>>;
}
