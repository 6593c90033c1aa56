//! The only contract between berth's processes.
//!
//! Everything that crosses a process boundary is defined here: the message
//! envelope and payloads, the exchange, queue and topic names, the log record
//! and the deployment state machine. This crate performs no I/O.

pub mod binding;
pub mod envelope;
pub mod labels;
pub mod logs;
pub mod messages;
pub mod names;
pub mod sealed;
pub mod state;

pub use binding::Binding;
pub use envelope::{DecodeError, Envelope, Message, Payload};
pub use logs::{LogRecord, LogSource, LogStream};
pub use messages::{
    AppHealth, AppRef, AppRemovalRequested, AppScaleRequested, AppStatus, BuildRequested,
    Cancellation, DeployRequested, DeploymentProgress, DeploymentWaiting, DesiredApp, DesiredState,
    InstanceHealth, KnownImage, LiveRelease, Release, ReleaseConfig, ReleaseFailing, Resources,
    RuntimeStatus, Source,
};
pub use sealed::{Sealed, SealedError, SecretKey};
pub use state::{DeploymentState, TransitionError};
