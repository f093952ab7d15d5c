//! The connection handshake: protocol header, connection.start/start-ok
//! (PLAIN and AMQPLAIN authentication), tune/tune-ok negotiation and open.

use super::Conn;
use crate::admission::Refused;
use crate::error::AmqpError;
use crate::frame::{decode, InFrame, PROTOCOL_HEADER};
use crate::message::{short, value_as_str};
use amq_protocol::protocol::{connection, AMQPClass};
use amq_protocol::types::parsing::parse_field_table;
use amq_protocol::types::{AMQPValue, FieldTable, LongString};
use bytes::Buf;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;

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

impl Conn {
    async fn read_more(&mut self, rd: &mut OwnedReadHalf) -> Result<(), HandshakeError> {
        match rd.read_buf(&mut self.rbuf).await {
            Ok(0) | Err(_) => Err(HandshakeError::Eof),
            Ok(_) => Ok(()),
        }
    }

    async fn next_frame(&mut self, rd: &mut OwnedReadHalf) -> Result<InFrame, HandshakeError> {
        // Before tune-ok we accept frames up to 128 KiB.
        let limit = if self.frame_max == 0 {
            128 * 1024
        } else {
            self.frame_max
        };
        loop {
            match decode(&mut self.rbuf, limit) {
                Ok(Some(f)) => return Ok(f),
                Ok(None) => self.read_more(rd).await?,
                Err(e) => return Err(self.hs_fail(e)),
            }
        }
    }

    /// Send connection.close for a handshake failure.
    fn hs_fail(&mut self, e: AmqpError) -> HandshakeError {
        self.send_close(&e);
        HandshakeError::Protocol(e)
    }

    async fn expect_method(
        &mut self,
        rd: &mut OwnedReadHalf,
    ) -> Result<connection::AMQPMethod, HandshakeError> {
        loop {
            match self.next_frame(rd).await? {
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

    pub(super) async fn handshake(&mut self, rd: &mut OwnedReadHalf) -> Result<(), HandshakeError> {
        while self.rbuf.len() < 8 {
            self.read_more(rd).await?;
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
        let shared = self.shared.clone();
        let cfg = &shared.config;
        self.out.method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Start(connection::Start {
                version_major: 0,
                version_minor: 9,
                server_properties: server_properties(),
                mechanisms: LongString::from("PLAIN AMQPLAIN"),
                locales: LongString::from("en_US"),
            })),
        );
        self.flush();
        let start_ok = match self.expect_method(rd).await? {
            connection::AMQPMethod::StartOk(s) => s,
            _ => {
                return Err(self.hs_fail(
                    AmqpError::command_invalid("expected connection.start-ok").with_method(10, 11),
                ))
            }
        };
        let mech = start_ok.mechanism.as_str().to_owned();
        let creds = parse_credentials(&mech, start_ok.response.as_bytes());
        let ok = creds
            .as_ref()
            .is_some_and(|(u, p)| *u == cfg.username && *p == cfg.password);
        if !ok {
            let e = AmqpError::access_refused(format!(
                "Login was refused using authentication mechanism {mech}. For details see the broker logfile."
            ))
            .with_method(10, 11)
            .connection_level();
            let err = self.hs_fail(e);
            self.flush();
            // Give the client a moment to read the close before we hang up.
            let _ = tokio::time::timeout(Duration::from_millis(200), self.expect_method(rd)).await;
            return Err(err);
        }
        self.take_established_slot(rd).await?;
        self.cancel_notify = capability(&start_ok.client_properties, "consumer_cancel_notify");
        self.block.notify = capability(&start_ok.client_properties, "connection.blocked");
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
        let tune_ok = match self.expect_method(rd).await? {
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
        self.frame_max = frame_max;
        self.out.frame_max = frame_max;
        self.channel_max = match (tune_ok.channel_max, server_channel_max) {
            (0, s) => s,
            (c, 0) => c,
            (c, s) => c.min(s),
        };
        if self.channel_max == 0 {
            self.channel_max = u16::MAX;
        }
        self.heartbeat = tune_ok.heartbeat;
        let open = match self.expect_method(rd).await? {
            connection::AMQPMethod::Open(o) => o,
            _ => {
                return Err(self.hs_fail(
                    AmqpError::command_invalid("expected connection.open").with_method(10, 40),
                ))
            }
        };
        if open.virtual_host.as_str() != self.shared.vhost.name {
            let e = AmqpError::not_allowed(format!("vhost {} not found", open.virtual_host))
                .with_method(10, 40);
            let err = self.hs_fail(e);
            self.flush();
            let _ = tokio::time::timeout(Duration::from_millis(200), self.expect_method(rd)).await;
            return Err(err);
        }
        self.out.method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::OpenOk(connection::OpenOk {})),
        );
        self.flush();
        Ok(())
    }
}

impl Conn {
    /// The client authenticated: trade its pending-handshake slot for an established
    /// one, or refuse it (530, like RabbitMQ's node connection limit) when all
    /// `max_connections` are taken.
    async fn take_established_slot(
        &mut self,
        rd: &mut OwnedReadHalf,
    ) -> Result<(), HandshakeError> {
        let Some(ticket) = self.ticket.take() else {
            return Err(HandshakeError::Evicted);
        };
        match ticket.authenticate() {
            Ok(permit) => {
                self.permit = Some(permit);
                Ok(())
            }
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
                let _ =
                    tokio::time::timeout(Duration::from_millis(200), self.expect_method(rd)).await;
                Err(err)
            }
        }
    }
}

/// The server-properties table, with RabbitMQ's capabilities.
fn server_properties() -> FieldTable {
    let mut caps = FieldTable::default();
    for c in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "authentication_failure_close",
        "per_consumer_qos",
        "direct_reply_to",
        "consumer_priorities",
    ] {
        caps.insert(short(c), AMQPValue::Boolean(true));
    }
    let mut t = FieldTable::default();
    t.insert(short("capabilities"), AMQPValue::FieldTable(caps));
    let s = |v: &str| AMQPValue::LongString(LongString::from(v));
    t.insert(short("product"), s("Warren broker"));
    t.insert(short("version"), s(env!("CARGO_PKG_VERSION")));
    t.insert(short("platform"), s("Rust"));
    t.insert(short("cluster_name"), s("warren"));
    t.insert(short("copyright"), s("Warren contributors"));
    t.insert(short("information"), s("Embedded AMQP 0-9-1 broker"));
    t
}

/// Whether a client-properties table announces a capability.
fn capability(props: &FieldTable, name: &str) -> bool {
    match props.inner().get("capabilities") {
        Some(AMQPValue::FieldTable(caps)) => {
            matches!(caps.inner().get(name), Some(AMQPValue::Boolean(true)))
        }
        _ => false,
    }
}

/// Extract (user, password) from a PLAIN or AMQPLAIN response.
fn parse_credentials(mechanism: &str, response: &[u8]) -> Option<(String, String)> {
    match mechanism {
        "PLAIN" => {
            let mut parts = response.split(|b| *b == 0);
            let _authzid = parts.next()?;
            let user = parts.next()?;
            let pass = parts.next()?;
            Some((
                String::from_utf8(user.to_vec()).ok()?,
                String::from_utf8(pass.to_vec()).ok()?,
            ))
        }
        "AMQPLAIN" => {
            let mut buf = Vec::with_capacity(response.len() + 4);
            buf.extend_from_slice(&(response.len() as u32).to_be_bytes());
            buf.extend_from_slice(response);
            let (_, t) = parse_field_table(&buf[..]).ok()?;
            let user = t.inner().get("LOGIN").and_then(value_as_str)?;
            let pass = t.inner().get("PASSWORD").and_then(value_as_str)?;
            Some((user, pass))
        }
        _ => None,
    }
}
