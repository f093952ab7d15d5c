//! The stream a connection runs on: a plain TCP socket, or TLS over it. The TLS
//! handshake runs here, inside the connection's handshake deadline; after it the
//! stream is split into a read half (read by the connection task) and a write half
//! (written by the writer task), so the AMQP code above is the same for both.

use crate::shutdown::Shutdown;
use crate::tls::{Acceptor, PeerCert};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;

/// The read half of a connection's stream.
pub(crate) trait ReadHalf: AsyncRead + Unpin + Send {
    /// Make the socket's close a reset (no TIME_WAIT), for evicted handshakes. Only
    /// a plain socket can; a TLS stream's socket is shared with its write half.
    fn reset(&self) {}
}

impl ReadHalf for OwnedReadHalf {
    fn reset(&self) {
        let _ = self.as_ref().set_zero_linger();
    }
}

impl<S: AsyncRead + AsyncWrite + Send> ReadHalf for tokio::io::ReadHalf<S> {}

/// Runs the TLS handshake on `tcp` until `deadline` (the connection's handshake
/// timeout). `None` when it fails, times out, is evicted for a newer socket or the
/// broker shuts down meanwhile; each is logged, and the socket is closed.
pub(super) async fn tls_handshake(
    tcp: TcpStream,
    acceptor: &Acceptor,
    deadline: Instant,
    evicted: &mut oneshot::Receiver<()>,
    shutdown: &mut Shutdown,
    (id, peer): (u64, SocketAddr),
) -> Option<(TlsStream<TcpStream>, PeerCert)> {
    let mut accept = acceptor.acceptor.accept(tcp);
    tokio::select! {
        r = tokio::time::timeout_at(deadline, &mut accept) => match r {
            Ok(Ok(stream)) => {
                let cert = PeerCert::of(stream.get_ref().1, acceptor.verify_peer);
                Some((stream, cert))
            }
            Ok(Err(e)) => {
                tracing::warn!(conn = id, %peer, error = %e, "TLS handshake failed");
                None
            }
            Err(_) => {
                tracing::info!(conn = id, %peer, "TLS handshake timed out");
                None
            }
        },
        Ok(()) = &mut *evicted => {
            tracing::debug!(conn = id, %peer, "pending TLS handshake evicted for a newer socket");
            if let Some(tcp) = accept.get_ref() {
                let _ = tcp.set_zero_linger();
            }
            None
        }
        _ = shutdown.recv() => None,
    }
}

/// How long we wait for the peer to close its end after our close-ok.
const LINGER: Duration = Duration::from_secs(1);

/// Waits (bounded) for the peer to close its end of the socket.
pub(super) async fn linger(rd: &mut impl ReadHalf) {
    let mut sink = [0u8; 512];
    let _ = tokio::time::timeout(LINGER, async {
        while let Ok(n) = rd.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}
