//! The connection handshake: protocol header, connection.start/start-ok (PLAIN,
//! AMQPLAIN or EXTERNAL authentication, see `mechanism.rs`), tune/tune-ok
//! negotiation and open.

use super::login::{login, login_external, open_vhost};
use super::mechanism::{self, Login};
use super::properties::{capability, server_properties};
use super::transport::ReadHalf;
use super::writer::Writer;
use super::{send_close, HANDSHAKE_FRAME_MAX};
use crate::access::grant::Grant;
use crate::admission::{Refused, Ticket};
use crate::error::AmqpError;
use crate::frame::Out;
use crate::frame::{decode, InFrame, PROTOCOL_HEADER};
use crate::shared::Shared;
use crate::tls::PeerCert;
use crate::vhost::VHost;
use amq_protocol::protocol::{connection, AMQPClass};
use amq_protocol::types::{FieldTable, LongString};
use bytes::{Buf, BytesMut};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::sync::OwnedSemaphorePermit;

/// Errors ending the handshake.
#[derive(Debug, thiserror::Error)]
pub(super) enum HandshakeError {
    #[error("peer closed the socket")]
    Eof,
    #[error("bad protocol header")]
    BadHeader,
    #[error("protocol error: {0}")]
    Protocol(AmqpError),
    #[error("evicted from the pending-handshake budget")]
    Evicted,
}

/// What the handshake settled, from which the connection is built.
#[derive(Debug)]
pub(super) struct Tuned {
    /// Negotiated frame_max (0 = unlimited).
    pub(super) frame_max: u32,
    /// Negotiated channel_max (never 0: 0 from both sides means u16::MAX).
    pub(super) channel_max: u16,
    /// Negotiated heartbeat in seconds (0 = off).
    pub(super) heartbeat: u16,
    /// The client announced `consumer_cancel_notify`.
    pub(super) cancel_notify: bool,
    /// The client announced `connection.blocked`.
    pub(super) blocked_notify: bool,
    /// The established-connection slot the client now holds.
    pub(super) permit: OwnedSemaphorePermit,
    /// The client's properties from connection.start-ok.
    pub(super) client_properties: FieldTable,
    /// The user's permissions on the vhost it opened.
    pub(super) grant: Grant,
    /// The vhost it opened.
    pub(super) vhost: Arc<VHost>,
}

/// How long a failed login waits before the broker answers it, so guessing
/// passwords costs a second a try per connection.
const FAILED_LOGIN_DELAY: Duration = Duration::from_secs(1);

/// One socket's handshake: the framed I/O it runs on and what it needs to decide.
pub(super) struct Handshake<'a, R> {
    /// Connection id (for logs).
    pub(super) id: u64,
    /// Broker state (credentials, limits, vhost).
    pub(super) shared: &'a Shared,
    /// The stream's read half.
    pub(super) rd: &'a mut R,
    /// Bytes read and not yet decoded.
    pub(super) rbuf: &'a mut BytesMut,
    /// Frames to write.
    pub(super) out: &'a mut Out,
    /// The socket's writer task.
    pub(super) writer: &'a Writer,
    /// The pending-handshake slot, traded for an established one after login.
    pub(super) ticket: Option<Ticket>,
    /// The client's address (loopback-only users).
    pub(super) peer: SocketAddr,
    /// The client certificate (EXTERNAL).
    pub(super) cert: PeerCert,
}

impl<R: ReadHalf> Handshake<'_, R> {
    fn flush(&mut self) {
        self.writer.send(self.out);
    }

    async fn read_more(&mut self) -> Result<(), HandshakeError> {
        match self.rd.read_buf(self.rbuf).await {
            Ok(0) | Err(_) => Err(HandshakeError::Eof),
            Ok(_) => Ok(()),
        }
    }

    async fn next_frame(&mut self, limit: u32) -> Result<InFrame, HandshakeError> {
        loop {
            match decode(self.rbuf, limit) {
                Ok(Some(f)) => return Ok(f),
                Ok(None) => self.read_more().await?,
                Err(e) => return Err(self.hs_fail(e)),
            }
        }
    }

    /// Send connection.close for a handshake failure.
    fn hs_fail(&mut self, e: AmqpError) -> HandshakeError {
        send_close(self.out, &e);
        HandshakeError::Protocol(e)
    }

    /// The next connection method, in frames of at most `limit` bytes (before
    /// tune-ok: [`HANDSHAKE_FRAME_MAX`]).
    async fn expect_method(
        &mut self,
        limit: u32,
    ) -> Result<connection::AMQPMethod, HandshakeError> {
        loop {
            match self.next_frame(limit).await? {
                InFrame::Heartbeat => continue,
                InFrame::Method(0, AMQPClass::Connection(m)) => return Ok(m),
                InFrame::Method(_, c) => {
                    let e =
                        AmqpError::command_invalid("expected a connection method during handshake")
                            .with_method(c.get_amqp_class_id(), c.get_amqp_method_id());
                    return Err(self.hs_fail(e));
                }
                _ => {
                    return Err(self.hs_fail(AmqpError::unexpected_frame(
                        "content frame during handshake",
                    )))
                }
            }
        }
    }

    /// Run the handshake: protocol header, start/start-ok (login), tune/tune-ok, open.
    pub(super) async fn run(mut self) -> Result<Tuned, HandshakeError> {
        let limit = HANDSHAKE_FRAME_MAX;
        while self.rbuf.len() < 8 {
            self.read_more().await?;
            if self.rbuf.len() < 8 && !PROTOCOL_HEADER.starts_with(&self.rbuf[..]) {
                break;
            }
        }
        if self.rbuf.len() < 8 || &self.rbuf[..8] != PROTOCOL_HEADER {
            self.out.buf.extend_from_slice(PROTOCOL_HEADER);
            self.flush();
            return Err(HandshakeError::BadHeader);
        }
        self.rbuf.advance(8);
        if let Some(ticket) = self.ticket.as_mut() {
            ticket.progress();
        }
        let shared: &Shared = self.shared;
        let cfg = &shared.config;
        self.out.method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Start(connection::Start {
                version_major: 0,
                version_minor: 9,
                server_properties: server_properties(),
                mechanisms: LongString::from(mechanism::offered(&self.cert)),
                locales: LongString::from("en_US"),
            })),
        );
        self.flush();
        let start_ok = match self.expect_method(limit).await? {
            connection::AMQPMethod::StartOk(s) => s,
            _ => {
                return Err(self.hs_fail(
                    AmqpError::command_invalid("expected connection.start-ok").with_method(10, 11),
                ))
            }
        };
        let mech = start_ok.mechanism.as_str().to_owned();
        let user = match mechanism::parse(&mech, start_ok.response.as_bytes(), &self.cert) {
            Login::Password(u, p) => login(self.shared, (self.id, self.peer), &u, &p),
            Login::External => login_external(self.shared, (self.id, self.peer), &self.cert),
            Login::Malformed => None,
            Login::NotOffered => {
                let e = AmqpError::command_invalid(format!(
                    "invalid authentication mechanism '{mech}'"
                ));
                return Err(self.hs_fail(e.with_method(10, 11).connection_level()));
            }
        };
        let Some(user) = user else {
            // Answer late: guessing passwords costs a second a try.
            tokio::time::sleep(FAILED_LOGIN_DELAY).await;
            let e = AmqpError::access_refused(format!(
                "Login was refused using authentication mechanism {mech}. For details see the broker logfile."
            ))
            .with_method(10, 11)
            .connection_level();
            let err = self.hs_fail(e);
            self.flush();
            // Give the client a moment to read the close before we hang up.
            let _ =
                tokio::time::timeout(Duration::from_millis(200), self.expect_method(limit)).await;
            return Err(err);
        };
        let permit = self.take_established_slot().await?;
        let cancel_notify = capability(&start_ok.client_properties, "consumer_cancel_notify");
        let blocked_notify = capability(&start_ok.client_properties, "connection.blocked");
        let (server_channel_max, server_frame_max, server_heartbeat) =
            (cfg.channel_max, cfg.frame_max, cfg.heartbeat);
        self.out.method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Tune(connection::Tune {
                channel_max: server_channel_max,
                frame_max: server_frame_max,
                heartbeat: server_heartbeat,
            })),
        );
        self.flush();
        let tune_ok = match self.expect_method(limit).await? {
            connection::AMQPMethod::TuneOk(t) => t,
            _ => {
                return Err(self.hs_fail(
                    AmqpError::command_invalid("expected connection.tune-ok").with_method(10, 31),
                ))
            }
        };
        if server_frame_max != 0 && (tune_ok.frame_max == 0 || tune_ok.frame_max > server_frame_max)
        {
            return Err(self.hs_fail(
                AmqpError::not_allowed(format!(
                    "frame_max={} > {server_frame_max} max size",
                    tune_ok.frame_max
                ))
                .with_method(10, 31),
            ));
        }
        if server_channel_max != 0
            && (tune_ok.channel_max == 0 || tune_ok.channel_max > server_channel_max)
        {
            return Err(self.hs_fail(
                AmqpError::not_allowed(format!(
                    "channel_max={} > {server_channel_max} max channels",
                    tune_ok.channel_max
                ))
                .with_method(10, 31),
            ));
        }
        let frame_max = match (tune_ok.frame_max, server_frame_max) {
            (0, s) => s,
            (c, 0) => c,
            (c, s) => c.min(s),
        };
        if frame_max != 0 && frame_max < 4096 {
            return Err(self.hs_fail(
                AmqpError::not_allowed(format!("frame_max {frame_max} below minimum 4096"))
                    .with_method(10, 31),
            ));
        }
        self.out.frame_max = frame_max;
        let channel_max = match (tune_ok.channel_max, server_channel_max) {
            (0, 0) => u16::MAX,
            (0, s) => s,
            (c, 0) => c,
            (c, s) => c.min(s),
        };
        let limit = if frame_max == 0 { limit } else { frame_max };
        let open = match self.expect_method(limit).await? {
            connection::AMQPMethod::Open(o) => o,
            _ => {
                return Err(self.hs_fail(
                    AmqpError::command_invalid("expected connection.open").with_method(10, 40),
                ))
            }
        };
        let (grant, vhost) = match open_vhost(self.shared, &user, open.virtual_host.as_str()) {
            Ok(g) => g,
            Err(e) => {
                let err = self.hs_fail(e.with_method(10, 40));
                self.flush();
                let _ = tokio::time::timeout(Duration::from_millis(200), self.expect_method(limit))
                    .await;
                return Err(err);
            }
        };
        let tuned = Tuned {
            frame_max,
            channel_max,
            heartbeat: tune_ok.heartbeat,
            cancel_notify,
            blocked_notify,
            permit,
            grant,
            vhost,
            client_properties: start_ok.client_properties.clone(),
        };
        self.out.method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::OpenOk(connection::OpenOk {})),
        );
        self.flush();
        Ok(tuned)
    }
    /// The client authenticated: trade its pending-handshake slot for an established
    /// one, or refuse it (530, like RabbitMQ's node connection limit) when all
    /// `max_connections` are taken.
    async fn take_established_slot(&mut self) -> Result<OwnedSemaphorePermit, HandshakeError> {
        let Some(ticket) = self.ticket.take() else {
            return Err(HandshakeError::Evicted);
        };
        match ticket.authenticate() {
            Ok(permit) => Ok(permit),
            Err(Refused::Evicted) => Err(HandshakeError::Evicted),
            Err(refused @ Refused::Full(_)) => {
                tracing::warn!(
                    conn = self.id,
                    "{refused}, refusing an authenticated client"
                );
                let e = AmqpError::not_allowed(format!("connection refused: {refused}"))
                    .with_method(10, 11);
                let err = self.hs_fail(e);
                self.flush();
                let _ = tokio::time::timeout(
                    Duration::from_millis(200),
                    self.expect_method(HANDSHAKE_FRAME_MAX),
                )
                .await;
                Err(err)
            }
        }
    }
}
