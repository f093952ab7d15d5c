//! The listener and the accept loop: admits each socket into the pending-handshake
//! budget (see [`crate::admission`]), spawns one task per connection and propagates
//! the shutdown broadcast.

use crate::admission::Admission;
use crate::shared::Shared;
use crate::shutdown::{Notifier, Shutdown};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::mpsc;

static CONN_IDS: AtomicU64 = AtomicU64::new(1);

/// Listen backlog asked for (the kernel caps it at `net.core.somaxconn`). Under a
/// flood the accept queue holds the attacker's sockets as well as real clients';
/// when it overflows, Linux drops new SYNs and a real client waits a 1 s
/// retransmission, so ask for a deep one (tokio's default is 1024).
const BACKLOG: u32 = 4096;

/// Binds the listening socket (with `SO_REUSEADDR`, as `TcpListener::bind` does).
pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Accept connections until shutdown.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    notify: Arc<Notifier>,
    mut stop: Shutdown,
    done_tx: mpsc::Sender<()>,
) {
    let admission = Admission::new(
        shared.config.max_connections,
        shared.config.max_pending_handshakes,
    );
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
                let (ticket, evicted) = admission.admit();
                let id = CONN_IDS.fetch_add(1, Ordering::Relaxed);
                let shared = shared.clone();
                let shutdown = Shutdown::new(&notify);
                let done = done_tx.clone();
                tokio::spawn(async move {
                    crate::connection::serve(stream, addr, shared, id, shutdown, ticket, evicted).await;
                    drop(done);
                });
                // One admission per scheduler tick: the handshakes already admitted get
                // to run (read their header, answer) before the next socket can evict
                // one of them. Without this, under a flood the accept loop outruns them
                // and evicts real clients that are merely waiting to be polled.
                tokio::task::yield_now().await;
            }
        }
    }
    tracing::info!("accept loop stopped");
}

/// Samples memory use for the memory alarm (message TTL and queue expiry run by
/// deadline, in the vhost's expiry task).
pub(crate) async fn memory_sampler(shared: Arc<Shared>, mut stop: Shutdown) {
    let mut interval = tokio::time::interval(std::time::Duration::from_millis(50));
    loop {
        tokio::select! {
            _ = stop.recv() => break,
            _ = interval.tick() => {
                shared.memory.check();
            }
        }
    }
}
