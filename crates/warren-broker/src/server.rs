//! The accept loop: enforces the connection limit, spawns one task per
//! connection and propagates the shutdown broadcast.

use crate::shutdown::{Notifier, Shutdown};
use crate::Shared;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Semaphore};

static CONN_IDS: AtomicU64 = AtomicU64::new(1);

/// Accept connections until shutdown.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    notify: Arc<Notifier>,
    mut stop: Shutdown,
    done_tx: mpsc::Sender<()>,
) {
    let limit = Arc::new(Semaphore::new(shared.config.max_connections));
    loop {
        tokio::select! {
            biased;
            _ = stop.recv() => break,
            accepted = listener.accept() => {
                let (stream, addr) = match accepted {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = limit.clone().try_acquire_owned() else {
                    tracing::warn!(%addr, "connection limit reached, refusing connection");
                    drop(stream);
                    continue;
                };
                let id = CONN_IDS.fetch_add(1, Ordering::Relaxed);
                let shared = shared.clone();
                let shutdown = Shutdown::new(&notify);
                let done = done_tx.clone();
                tokio::spawn(async move {
                    crate::connection::serve(stream, shared, id, shutdown).await;
                    drop(permit);
                    drop(done);
                });
            }
        }
    }
    tracing::info!("accept loop stopped");
}

/// Periodic vhost maintenance (TTL expiry, queue expiry).
pub(crate) async fn ticker(shared: Arc<Shared>, mut stop: Shutdown) {
    let mut interval = tokio::time::interval(std::time::Duration::from_millis(50));
    loop {
        tokio::select! {
            _ = stop.recv() => break,
            _ = interval.tick() => {
                shared.vhost.tick();
                shared.vhost.memory.check();
            }
        }
    }
}
