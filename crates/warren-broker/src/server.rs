//! The listeners (plain and TLS) and their accept loops: admits each socket into the pending-handshake
//! budget (see [`crate::admission`]), spawns one task per connection and propagates
//! the shutdown broadcast.

use crate::admission::Admission;
use crate::connection::Accepted;
use crate::error::BrokerError;
use crate::shared::Shared;
use crate::shutdown::{Notifier, Shutdown};
use crate::tls::Acceptor;
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

/// Binds a listening socket (with `SO_REUSEADDR`, as `TcpListener::bind` does).
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
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

/// The broker's listening sockets: plain AMQP, TLS, or both.
pub(crate) struct Listeners {
    plain: Option<TcpListener>,
    tls: Option<(TcpListener, Acceptor)>,
}

impl Listeners {
    /// Binds the plain listener on `plain` and the TLS one on `tls`'s address.
    pub(crate) fn bind(
        plain: Option<SocketAddr>,
        tls: Option<(SocketAddr, Acceptor)>,
    ) -> Result<Self, BrokerError> {
        let bind_at =
            |addr: SocketAddr| bind(addr).map_err(|source| BrokerError::Bind { addr, source });
        let plain = plain.map(bind_at).transpose()?;
        let tls = match tls {
            Some((addr, acceptor)) => Some((bind_at(addr)?, acceptor)),
            None => None,
        };
        Ok(Listeners { plain, tls })
    }

    /// The plain listener's address.
    pub(crate) fn plain_addr(&self) -> Option<SocketAddr> {
        self.plain.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The TLS listener's address.
    pub(crate) fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }
}

/// Accepts on every listener until shutdown. The listeners share one admission
/// budget: `max_connections` and `max_pending_handshakes` are the broker's.
pub(crate) async fn accept_loops(
    listeners: Listeners,
    shared: Arc<Shared>,
    notify: Arc<Notifier>,
    done_tx: mpsc::Sender<()>,
) {
    let admission = Admission::new(
        shared.config.max_connections,
        shared.config.max_pending_handshakes,
    );
    let mut loops = Vec::new();
    let all = listeners.plain.map(|l| (l, None)).into_iter();
    for (listener, tls) in all.chain(listeners.tls.map(|(l, a)| (l, Some(a)))) {
        let ctx = (
            shared.clone(),
            notify.clone(),
            done_tx.clone(),
            admission.clone(),
        );
        loops.push(tokio::spawn(accept_loop(listener, tls, ctx)));
    }
    for l in loops {
        let _ = l.await;
    }
    tracing::info!("accept loops stopped");
}

/// Accept connections on one listener until shutdown.
async fn accept_loop(
    listener: TcpListener,
    tls: Option<Acceptor>,
    (shared, notify, done_tx, admission): (
        Arc<Shared>,
        Arc<Notifier>,
        mpsc::Sender<()>,
        Arc<Admission>,
    ),
) {
    let mut stop = Shutdown::new(&notify);
    loop {
        tokio::select! {
            biased;
            _ = stop.recv() => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let admitted = admission.admit();
                let id = CONN_IDS.fetch_add(1, Ordering::Relaxed);
                let accepted = Accepted { stream, peer, id, admitted };
                let (shared, tls) = (shared.clone(), tls.clone());
                let shutdown = Shutdown::new(&notify);
                let done = done_tx.clone();
                tokio::spawn(async move {
                    crate::connection::serve(accepted, tls, shared, shutdown).await;
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
