//! One client connection. `serve.rs` takes an accepted socket through the TLS
//! handshake (`transport.rs`, which also makes plain and TLS streams look alike) and
//! the AMQP handshake (`handshake.rs`, with the SASL mechanisms in `mechanism.rs`,
//! which returns the tuned values), then builds the connection, whose select loop is
//! here: reading and batching frames, heartbeats, the close deadline, the writer's
//! backpressure and the alarms. Frame dispatch (`dispatch.rs`), the channel table
//! (`channels.rs`), events from below (`events.rs`), the writer task (`writer.rs`)
//! and the alarm state machine (`block.rs`) each have their own file.

use crate::access::grant::Grant;
use crate::channel::{Channel, ConnCtx};
use crate::error::{AmqpError, ReplyCode};
use crate::event::ConnEvent;
use crate::frame::{decode, Out};
use crate::message::{short, QueuedMessage};
use crate::queue::Queue;
use crate::shared::Shared;
use crate::shutdown::Shutdown;
use crate::stats::registry::{ConnEntry, Registered};
use crate::store::ConfirmSink;
use crate::vhost::VHost;
use handshake::Tuned;
pub(crate) use serve::{serve, Accepted};
use transport::ReadHalf;

mod block;
mod channels;
mod dispatch;
mod events;
mod handshake;
mod login;
mod mechanism;
mod properties;
mod serve;
mod transport;
mod writer;

use amq_protocol::protocol::{connection, AMQPClass};
use block::Block;
use bytes::BytesMut;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio::time::Instant;
use writer::Writer;

/// Why the connection loop ended.
#[derive(Debug)]
enum End {
    /// Peer closed the socket or an I/O error happened.
    Io,
    /// Clean close handshake completed (or our close timed out).
    Closed,
}

/// Read buffer of a connection in the handshake (it grows to `READ_BUF` once open):
/// pending handshakes are many and cheap under a flood.
const HANDSHAKE_READ_BUF: usize = 1024;
/// Largest frame accepted before tune-ok settles frame_max.
const HANDSHAKE_FRAME_MAX: u32 = 128 * 1024;
/// Read buffer of an open connection.
const READ_BUF: usize = 16 * 1024;
/// How long we wait for close-ok after sending connection.close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Largest body we accept (RabbitMQ 3.x default `max_message_size`).
const MAX_BODY: u64 = 128 * 1024 * 1024;

struct Conn {
    id: u64,
    rbuf: BytesMut,
    out: Out,
    writer: Writer,
    events_tx: mpsc::UnboundedSender<ConnEvent>,
    /// The same inbox, as the store sees it (for publisher confirms).
    confirms: Arc<dyn ConfirmSink>,
    events_rx: mpsc::UnboundedReceiver<ConnEvent>,
    channels: HashMap<u16, Channel>,
    /// Deliveries that reached us for a consumer that is gone; put back in
    /// order after each batch.
    unsent: Vec<(Arc<Queue>, QueuedMessage)>,
    frame_max: u32,
    channel_max: u16,
    heartbeat: u16,
    cancel_notify: bool,
    /// Some channel has publisher acks to write at the end of the batch.
    confirms_due: bool,
    /// Publishers are blocked while any of the broker's alarms is on.
    block: Block,
    last_read: Instant,
    /// Set once we sent connection.close: the deadline for close-ok.
    closing: Option<Instant>,
    done: bool,
    /// What the user may do on the vhost.
    grant: Grant,
    /// The vhost the connection opened.
    vhost: Arc<VHost>,
    /// The established-connection slot, given back at the client's connection.close or
    /// when the connection is dropped.
    permit: Option<OwnedSemaphorePermit>,
    /// Listed in the management API's connections while this lives.
    _registered: Registered,
}

impl Conn {
    /// The connection after a successful handshake.
    fn new(
        id: u64,
        shared: Arc<Shared>,
        rbuf: BytesMut,
        mut out: Out,
        writer: Writer,
        tuned: Tuned,
        (peer, local): (SocketAddr, SocketAddr),
    ) -> Self {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let registered = shared.connections.register(ConnEntry {
            id,
            peer,
            local,
            user: tuned.grant.user().to_owned(),
            vhost: tuned.vhost.name.clone(),
            connected_at: std::time::SystemTime::now(),
            frame_max: tuned.frame_max,
            channel_max: tuned.channel_max,
            heartbeat: tuned.heartbeat,
            client_properties: crate::stats::args::table(&tuned.client_properties),
            inbox: events_tx.clone(),
        });
        let mut block = Block::new(shared.alarms.clone());
        block.notify = tuned.blocked_notify;
        out.frame_max = tuned.frame_max;
        Conn {
            id,
            rbuf,
            out,
            writer,
            confirms: Arc::new(events_tx.clone()),
            events_tx,
            events_rx,
            channels: HashMap::new(),
            unsent: Vec::new(),
            frame_max: tuned.frame_max,
            channel_max: tuned.channel_max,
            heartbeat: tuned.heartbeat,
            cancel_notify: tuned.cancel_notify,
            confirms_due: false,
            block,
            last_read: Instant::now(),
            closing: None,
            done: false,
            permit: Some(tuned.permit),
            _registered: registered,
            grant: tuned.grant,
            vhost: tuned.vhost,
        }
    }

    fn flush(&mut self) {
        self.write_confirms();
        self.writer.send(&mut self.out);
    }

    /// Write the publisher acks the channels gathered in this batch (coalesced).
    fn write_confirms(&mut self) {
        if std::mem::take(&mut self.confirms_due) {
            for ch in self.channels.values_mut() {
                ch.write_confirms(&mut self.out);
            }
        }
    }

    fn write_backlogged(&self) -> bool {
        self.writer.backlogged()
    }

    async fn run(&mut self, rd: &mut impl ReadHalf, shutdown: &mut Shutdown) -> End {
        let hb = if self.heartbeat > 0 {
            Some(Duration::from_millis(u64::from(self.heartbeat) * 500))
        } else {
            None
        };
        let mut ticker = tokio::time::interval(hb.unwrap_or(Duration::from_secs(3600)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.last_read = Instant::now();
        self.rbuf.reserve(READ_BUF);
        loop {
            self.process_buffered();
            self.flush();
            if self.done {
                return End::Closed;
            }
            let close_deadline = self
                .closing
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                _ = shutdown.recv(), if self.closing.is_none() && !shutdown.is_shutdown() => {
                    let e = AmqpError::new(ReplyCode::ConnectionForced, "broker shutdown");
                    self.close_connection(e);
                }
                r = rd.read_buf(&mut self.rbuf), if !self.block.reads_paused || self.closing.is_some() => {
                    match r {
                        Ok(0) | Err(_) => return End::Io,
                        Ok(_) => self.last_read = Instant::now(),
                    }
                }
                _ = self.writer.drained(), if self.write_backlogged() => {}
                Ok(()) = self.block.alarm.changed() => {
                    let active = *self.block.alarm.borrow_and_update();
                    self.block.alarm_changed(active, &mut self.out);
                }
                Some(ev) = self.events_rx.recv(), if !self.write_backlogged() => {
                    self.handle_event(ev);
                    for _ in 0..1024 {
                        if self.out.len() > (1 << 20) {
                            break;
                        }
                        match self.events_rx.try_recv() {
                            Ok(ev) => self.handle_event(ev),
                            Err(_) => break,
                        }
                    }
                    self.unsend_all();
                }
                _ = ticker.tick(), if hb.is_some() => {
                    if self.block.reads_paused {
                        // Like RabbitMQ, no heartbeat monitoring while we do not read.
                        self.last_read = Instant::now();
                    }
                    let limit = Duration::from_secs(u64::from(self.heartbeat) * 2);
                    if self.last_read.elapsed() > limit {
                        tracing::info!(conn = self.id, "missed heartbeats from client, closing");
                        return End::Io;
                    }
                    self.out.heartbeat();
                }
                _ = tokio::time::sleep_until(close_deadline), if self.closing.is_some() => {
                    return End::Closed;
                }
            }
        }
    }

    fn process_buffered(&mut self) {
        while !self.done {
            match decode(&mut self.rbuf, self.frame_max) {
                Ok(Some(f)) => {
                    if let Err(e) = self.handle_frame(f) {
                        self.error(e);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    if self.closing.is_some() {
                        // Stream is unusable; stop waiting for close-ok.
                        self.done = true;
                    } else {
                        self.close_connection(e);
                        self.rbuf.clear();
                    }
                    break;
                }
            }
        }
    }

    /// Route an error to channel or connection scope.
    fn error(&mut self, e: AmqpError) {
        if e.is_connection_level() {
            self.close_connection(e);
        }
    }

    /// Start closing the connection with an error (or shutdown).
    fn close_connection(&mut self, e: AmqpError) {
        if self.closing.is_some() {
            return;
        }
        tracing::info!(conn = self.id, error = %e, "closing connection");
        self.write_confirms();
        send_close(&mut self.out, &e);
        self.closing = Some(Instant::now() + CLOSE_TIMEOUT);
        self.release_channels();
    }

    /// Splits the connection into its channels and the context a channel works with
    /// (disjoint borrows, so a channel can be driven while the context is in use).
    fn split(&mut self) -> (&mut HashMap<u16, Channel>, ConnCtx<'_>) {
        let Conn {
            channels,
            out,
            events_tx,
            confirms,
            confirms_due,
            id,
            unsent,
            grant,
            vhost,
            ..
        } = self;
        let ctx = ConnCtx {
            conn_id: *id,
            vhost,
            tx: events_tx,
            confirms,
            confirms_due,
            out,
            max_body: MAX_BODY,
            grant,
            unsent,
        };
        (channels, ctx)
    }
}

/// Queue connection.close for `e`.
fn send_close(out: &mut Out, e: &AmqpError) {
    out.method(
        0,
        AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
            reply_code: e.code.code(),
            reply_text: short(e.reply_text()),
            class_id: e.class_id,
            method_id: e.method_id,
        })),
    );
}
