//! What can stop the log-streamer from shipping a line, worded for the
//! operator who reads it in the streamer's own logs.

use berth_common::logs::LogError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("the container engine is unavailable: {0}")]
    Engine(String),

    #[error("the Kubernetes API failed or refused: {0}")]
    Kubernetes(String),

    #[error("the log broker failed: {0}")]
    Log(#[from] LogError),

    #[error("the checkpoint {} cannot be written: {source}; is BERTH_LOG_STREAMER_STATE_DIR writable?", path.display())]
    Checkpoint {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl From<bollard::errors::Error> for StreamError {
    fn from(error: bollard::errors::Error) -> Self {
        Self::Engine(error.to_string())
    }
}

impl From<kube::Error> for StreamError {
    fn from(error: kube::Error) -> Self {
        Self::Kubernetes(error.to_string())
    }
}

impl From<kube::runtime::watcher::Error> for StreamError {
    fn from(error: kube::runtime::watcher::Error) -> Self {
        Self::Kubernetes(error.to_string())
    }
}
