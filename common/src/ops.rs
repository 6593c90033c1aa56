//! Logging setup and the ops endpoints every process serves.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use tracing_subscriber::EnvFilter;

/// Structured logs to stderr; JSON when `BERTH_LOG_FORMAT=json`.
pub fn init_tracing() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,lapin=warn,sqlx=warn,rdkafka=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("BERTH_LOG_FORMAT").as_deref() == Ok("json") {
        let _ = builder.json().try_init();
    } else {
        let _ = builder.try_init();
    }
}

/// The process-wide Prometheus recorder, installed on first use.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .install_recorder()
                .expect("no other metrics recorder is installed")
        })
        .clone()
}

/// Answers whether the process can do its work now (e.g. its broker is up).
pub type Readiness = Arc<dyn Fn() -> bool + Send + Sync>;

/// `/healthz` (the process runs), `/readyz` (it can work), `/metrics`.
pub fn router(ready: Readiness) -> Router {
    let handle = metrics_handle();
    health_router(ready).route("/metrics", get(move || async move { handle.render() }))
}

/// `/healthz` and `/readyz` alone: what a public listener may serve too.
pub fn health_router(ready: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(ready): State<Readiness>| async move {
                if ready() {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not ready")
                }
            }),
        )
        .with_state(ready)
}

/// Serves [`router`] on `addr` in the background; returns the bound address.
pub async fn serve(addr: SocketAddr, ready: Readiness) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router(ready)).await {
            tracing::error!(%error, "ops endpoint stopped");
        }
    });
    tracing::info!(%bound, "ops endpoints on /healthz, /readyz, /metrics");
    Ok(bound)
}
