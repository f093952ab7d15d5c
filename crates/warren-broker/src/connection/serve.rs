//! From an accepted socket to a running connection: the TLS handshake when the
//! listener has one, the AMQP handshake, both within the broker's handshake timeout,
//! then the connection loop and the close.

use super::handshake::{Handshake, HandshakeError};
use super::transport::{self, ReadHalf};
use super::writer::Writer;
use super::{Conn, End, HANDSHAKE_READ_BUF};
use crate::admission::Ticket;
use crate::frame::Out;
use crate::shared::Shared;
use crate::shutdown::Shutdown;
use crate::tls::{Acceptor, PeerCert};
use bytes::BytesMut;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// One accepted socket, before its handshakes.
pub(crate) struct Accepted {
    /// The socket.
    pub(crate) stream: TcpStream,
    /// The client's address.
    pub(crate) peer: SocketAddr,
    /// Connection id (for logs and the management API).
    pub(crate) id: u64,
    /// Its pending-handshake slot, and the signal that fires if the accept loop takes
    /// that slot for a newer socket.
    pub(crate) admitted: (Ticket, oneshot::Receiver<()>),
}

/// Serve one accepted socket until it closes: TLS first when the listener has an
/// acceptor, then AMQP. From accept to `connection.open`, TLS handshake included, the
/// client has the broker's handshake timeout.
pub(crate) async fn serve(
    accepted: Accepted,
    tls: Option<Acceptor>,
    shared: Arc<Shared>,
    mut shutdown: Shutdown,
) {
    let Accepted {
        stream,
        peer,
        id,
        admitted: (mut ticket, mut evicted),
    } = accepted;
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().unwrap_or(shared.config.listen);
    let deadline = Instant::now() + shared.config.handshake_timeout;
    let Some(acceptor) = tls else {
        let (rd, wr) = stream.into_split();
        let ends = Ends {
            id,
            peer,
            local,
            deadline,
            ticket,
            cert: PeerCert::NotOffered,
        };
        return serve_stream(rd, wr, ends, shared, shutdown, evicted).await;
    };
    let hs = transport::tls_handshake(
        stream,
        &acceptor,
        deadline,
        &mut evicted,
        &mut shutdown,
        (id, peer),
    );
    let Some((stream, cert)) = hs.await else {
        return;
    };
    ticket.progress();
    let (rd, wr) = tokio::io::split(stream);
    let ends = Ends {
        id,
        peer,
        local,
        deadline,
        ticket,
        cert,
    };
    serve_stream(rd, wr, ends, shared, shutdown, evicted).await;
}

/// What [`serve_stream`] needs to know of its connection besides the stream.
struct Ends {
    id: u64,
    peer: SocketAddr,
    local: SocketAddr,
    /// When the AMQP handshake must be done.
    deadline: Instant,
    ticket: Ticket,
    /// The client certificate, for EXTERNAL.
    cert: PeerCert,
}

/// The AMQP handshake and then the connection, on a plain or TLS stream's halves.
async fn serve_stream<R, W>(
    mut rd: R,
    wr: W,
    ends: Ends,
    shared: Arc<Shared>,
    mut shutdown: Shutdown,
    mut evicted: oneshot::Receiver<()>,
) where
    R: ReadHalf,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let Ends {
        id,
        peer,
        local,
        deadline,
        ticket,
        cert,
    } = ends;
    let (writer, writer_task) = Writer::spawn(wr);
    let mut rbuf = BytesMut::with_capacity(HANDSHAKE_READ_BUF);
    let mut out = Out::new(0);
    let handshake = Handshake {
        id,
        shared: &shared,
        rd: &mut rd,
        rbuf: &mut rbuf,
        out: &mut out,
        writer: &writer,
        ticket: Some(ticket),
        peer,
        cert,
    };
    let hs = tokio::select! {
        r = tokio::time::timeout_at(deadline, handshake.run()) => r,
        Ok(()) = &mut evicted => Ok(Err(HandshakeError::Evicted)),
        _ = shutdown.recv() => Ok(Err(HandshakeError::Eof)),
    };
    match hs {
        Ok(Ok(tuned)) => {
            tracing::info!(conn = id, %peer, "connection opened");
            let mut conn = Conn::new(id, shared, rbuf, out, writer, tuned, (peer, local));
            let end = conn.run(&mut rd, &mut shutdown).await;
            if matches!(end, End::Closed) && conn.closing.is_none() {
                // The client closed: like RabbitMQ, let it close the socket first after
                // our close-ok, so it never sees EOF before it has read close-ok.
                conn.flush();
                transport::linger(&mut rd).await;
            }
            tracing::info!(conn = id, %peer, ?end, "connection closed");
            conn.cleanup();
            drop(conn);
        }
        Ok(Err(HandshakeError::Evicted)) => {
            tracing::debug!(conn = id, %peer, "pending handshake evicted for a newer socket");
            // Reset rather than close: a flood must not fill the table with TIME_WAITs.
            rd.reset();
            drop(writer);
        }
        Ok(Err(e)) => {
            tracing::debug!(conn = id, %peer, error = %e, "handshake failed");
            writer.send(&mut out);
            drop(writer);
        }
        Err(_) => {
            tracing::debug!(conn = id, %peer, "handshake timed out");
            drop(writer);
        }
    }
    // The writer task ends (and shuts the socket down) once its handle is dropped.
    let _ = tokio::time::timeout(Duration::from_secs(5), writer_task).await;
}
