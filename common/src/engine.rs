//! Connecting to a Docker Engine API (Docker, or Podman's compatible socket).

use bollard::Docker;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Per-request timeout of the engine client. Builds stream for longer than
/// this; their own deadlines bound them.
const REQUEST_TIMEOUT_SECS: u64 = 600;

/// Why the engine could not be reached; names the setting to check.
#[derive(Debug, thiserror::Error)]
#[error("BERTH_DOCKER_HOST={host}: {error}")]
pub struct EngineUnreachable {
    pub host: String,
    pub error: bollard::errors::Error,
}

/// Connects to `host` (`unix:///path/to.sock` or a bare path, `tcp://` or
/// `http://`) and settles on an API version both sides speak.
pub async fn connect(host: &str) -> Result<Docker, EngineUnreachable> {
    let unreachable = |error| EngineUnreachable {
        host: host.to_owned(),
        error,
    };
    let docker = if host.starts_with("tcp://") || host.starts_with("http://") {
        let address = host.replacen("tcp://", "http://", 1);
        Docker::connect_with_http(&address, REQUEST_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
    } else {
        let path = host.strip_prefix("unix://").unwrap_or(host);
        Docker::connect_with_socket(path, REQUEST_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
    }
    .map_err(unreachable)?;
    docker.negotiate_version().await.map_err(unreachable)
}

/// Connects, retrying with backoff while the engine is down (it may start
/// after this process); `None` if `shutdown` comes first.
pub async fn connect_until_up(host: &str, shutdown: &CancellationToken) -> Option<Docker> {
    let mut backoff = Duration::from_millis(500);
    loop {
        match connect(host).await {
            Ok(docker) => return Some(docker),
            Err(error) => {
                tracing::warn!(%error, ?backoff, "the container engine is not reachable yet")
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}
