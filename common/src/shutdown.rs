//! Graceful shutdown on SIGTERM (what Kubernetes and `make down` send) or
//! Ctrl-C.

use tokio_util::sync::CancellationToken;

/// Resolves when the process is asked to stop.
pub async fn signalled() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}

/// A token that is cancelled when the process is asked to stop.
pub fn on_signal() -> CancellationToken {
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    tokio::spawn(async move {
        signalled().await;
        tracing::info!("shutting down");
        token.cancel();
    });
    shutdown
}
