//! `--metrics-listen`: serves a Prometheus registry at `/metrics` (OpenMetrics text,
//! which Prometheus scrapes as is) on a small axum server.
//!
//! The registry is shared: whatever registers into it (Warren's call metrics, and the
//! embedded broker's own when it has them) shows on the same page.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::registry::Registry;
use tokio::task::JoinHandle;

/// The content type of prometheus-client's text encoding.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A running `/metrics` server; dropping it does not stop it, [`MetricsServer::stop`] does.
pub struct MetricsServer {
    task: JoinHandle<()>,
    /// The address it listens on (the port chosen when 0 was asked for).
    pub addr: SocketAddr,
}

impl MetricsServer {
    /// Stops serving.
    pub fn stop(self) {
        self.task.abort();
    }
}

/// Starts serving `registry` at `http://{addr}/metrics`.
pub async fn serve(addr: SocketAddr, registry: Arc<Registry>) -> Result<MetricsServer, String> {
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let registry = Arc::clone(&registry);
            async move { render(&registry) }
        }),
    );
    serve_app(addr, app).await
}

/// Starts serving the text `page()` returns, as `content_type`, at `http://{addr}/metrics`
/// (the embedded broker's page, rendered from a stats snapshot per scrape).
pub async fn serve_text<F, Fut>(
    addr: SocketAddr,
    content_type: &'static str,
    page: F,
) -> Result<MetricsServer, String>
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = String> + Send + 'static,
{
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let page = page.clone();
            async move { ([(header::CONTENT_TYPE, content_type)], page().await) }
        }),
    );
    serve_app(addr, app).await
}

async fn serve_app(addr: SocketAddr, app: Router) -> Result<MetricsServer, String> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("--metrics-listen {addr}: cannot listen: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("--metrics-listen {addr}: {e}"))?;
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "the /metrics server stopped");
        }
    });
    Ok(MetricsServer { task, addr })
}

fn render(registry: &Registry) -> axum::response::Response {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, registry) {
        Ok(()) => ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding the metrics failed: {e}\n"),
        )
            .into_response(),
    }
}
