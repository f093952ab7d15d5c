//! One client connection: protocol header, handshake (start/tune/open) with
//! timeouts, heartbeats, reading and batching frames, dispatching them to
//! channels, and handling events from queues (deliveries, cancels, confirms).

use crate::admission::Ticket;
use crate::alarm::{Active, Alarms};
use crate::channel::{Channel, ConnCtx};
use crate::error::{AmqpError, ReplyCode};
use crate::event::ConnEvent;
use crate::frame::{decode, InFrame, Out};
use crate::message::{short, QueuedMessage};
use crate::queue::{Delivery, Queue};
use crate::shared::Shared;
use crate::shutdown::Shutdown;
use crate::store::ConfirmSink;
use handshake::HandshakeError;

mod handshake;
use amq_protocol::protocol::{basic, channel, connection, AMQPClass};
use bytes::BytesMut;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch, Notify, OwnedSemaphorePermit};
use tokio::time::Instant;

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
/// Read buffer of an open connection.
const READ_BUF: usize = 16 * 1024;
/// How long we wait for close-ok after sending connection.close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Writer backlog above which we stop taking deliveries from queues.
const WRITE_BACKLOG: usize = 4 << 20;
/// Largest body we accept (RabbitMQ 3.x default `max_message_size`).
const MAX_BODY: u64 = 128 * 1024 * 1024;

struct Conn {
    id: u64,
    shared: Arc<Shared>,
    rbuf: BytesMut,
    out: Out,
    wtx: mpsc::UnboundedSender<Vec<u8>>,
    /// Bytes handed to the writer task and not yet written.
    pending_write: Arc<AtomicUsize>,
    /// Signalled when the writer's backlog drops below the limit.
    write_drained: Arc<Notify>,
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
    /// Publishers are blocked while any of the broker's alarms is on.
    block: Block,
    last_read: Instant,
    /// Set once we sent connection.close: the deadline for close-ok.
    closing: Option<Instant>,
    done: bool,
    /// The pending-handshake slot, until the client authenticates.
    ticket: Option<Ticket>,
    /// The established-connection slot, once it has.
    permit: Option<OwnedSemaphorePermit>,
}

/// A connection's side of the resource alarms (memory, disk), as RabbitMQ applies
/// them: while any alarm is on, a connection that publishes is told
/// `connection.blocked` (if it announced the capability) and, once it sends message
/// content, is no longer read from (after that frame) until every alarm clears; then
/// it is told `connection.unblocked`. Connections that only consume go on.
struct Block {
    /// The alarms (their current state) and a receiver for their changes; the
    /// alarms own the sender, so the receiver never sees it closed.
    alarms: Arc<Alarms>,
    alarm: watch::Receiver<Active>,
    /// The client announced the `connection.blocked` capability.
    notify: bool,
    /// The connection has published at least once.
    publisher: bool,
    /// `connection.blocked` was sent and not yet followed by `unblocked`.
    told: bool,
    /// We stopped reading the socket.
    reads_paused: bool,
}

impl Block {
    fn new(alarms: Arc<Alarms>) -> Self {
        Self {
            alarm: alarms.subscribe(),
            alarms,
            notify: false,
            publisher: false,
            told: false,
            reads_paused: false,
        }
    }

    fn tell(&mut self, out: &mut Out, blocked: bool) {
        if !self.notify || self.told == blocked {
            return;
        }
        self.told = blocked;
        let method = if blocked {
            connection::AMQPMethod::Blocked(connection::Blocked {
                reason: short(self.alarms.active().reason()),
            })
        } else {
            connection::AMQPMethod::Unblocked(connection::Unblocked {})
        };
        out.method(0, AMQPClass::Connection(method));
    }

    /// A basic.publish arrived.
    fn published(&mut self, out: &mut Out) {
        self.publisher = true;
        if self.alarms.any() {
            self.tell(out, true);
        }
    }

    /// A frame of message content (a body frame, or the header of an empty
    /// body) was read: stop reading while the alarm is on.
    fn content_read(&mut self) {
        if self.alarms.any() {
            self.reads_paused = true;
        }
    }

    /// The set of active alarms changed.
    fn alarm_changed(&mut self, active: Active, out: &mut Out) {
        if !active.is_clear() {
            if self.publisher {
                self.tell(out, true);
            }
        } else {
            self.reads_paused = false;
            self.tell(out, false);
        }
    }
}

/// Serve one accepted socket until it closes. `ticket` is its pending-handshake slot;
/// `evicted` fires if the accept loop takes that slot for a newer socket.
pub(crate) async fn serve(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    shared: Arc<Shared>,
    id: u64,
    mut shutdown: Shutdown,
    ticket: Ticket,
    mut evicted: oneshot::Receiver<()>,
) {
    let _ = stream.set_nodelay(true);
    let (mut rd, wr) = stream.into_split();
    let (wtx, wrx) = mpsc::unbounded_channel();
    let pending_write = Arc::new(AtomicUsize::new(0));
    let write_drained = Arc::new(Notify::new());
    let writer = tokio::spawn(write_loop(
        wr,
        wrx,
        pending_write.clone(),
        write_drained.clone(),
    ));
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let block = Block::new(shared.alarms.clone());
    let mut conn = Conn {
        id,
        shared,
        rbuf: BytesMut::with_capacity(HANDSHAKE_READ_BUF),
        out: Out::new(0),
        wtx,
        pending_write,
        write_drained,
        confirms: Arc::new(events_tx.clone()),
        events_tx,
        events_rx,
        channels: HashMap::new(),
        unsent: Vec::new(),
        frame_max: 0,
        channel_max: 0,
        heartbeat: 0,
        cancel_notify: false,
        block,
        last_read: Instant::now(),
        closing: None,
        done: false,
        ticket: Some(ticket),
        permit: None,
    };
    let handshake_timeout = conn.shared.config.handshake_timeout;
    let hs = tokio::select! {
        r = tokio::time::timeout(handshake_timeout, conn.handshake(&mut rd)) => r,
        Ok(()) = &mut evicted => Ok(Err(HandshakeError::Evicted)),
        _ = shutdown.recv() => Ok(Err(HandshakeError::Eof)),
    };
    match hs {
        Ok(Ok(())) => {
            tracing::info!(conn = id, %peer, "connection opened");
            let end = conn.run(&mut rd, &mut shutdown).await;
            if matches!(end, End::Closed) && conn.closing.is_none() {
                // The client closed: like RabbitMQ, let it close the socket first after
                // our close-ok, so it never sees EOF before it has read close-ok.
                conn.flush();
                linger(&mut rd).await;
            }
            tracing::info!(conn = id, %peer, ?end, "connection closed");
        }
        Ok(Err(HandshakeError::Evicted)) => {
            tracing::debug!(conn = id, %peer, "pending handshake evicted for a newer socket");
            // Reset rather than close: a flood must not fill the table with TIME_WAITs.
            let _ = rd.as_ref().set_zero_linger();
        }
        Ok(Err(e)) => {
            tracing::debug!(conn = id, %peer, error = %e, "handshake failed");
            conn.flush();
        }
        Err(_) => tracing::debug!(conn = id, %peer, "handshake timed out"),
    }
    conn.cleanup();
    drop(conn);
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
}

/// Waits (bounded) for the peer to close its end of the socket.
async fn linger(rd: &mut OwnedReadHalf) {
    let mut sink = [0u8; 512];
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        while let Ok(n) = rd.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// Writes batches to the socket; `pending` counts bytes handed over but not
/// yet written (the connection stops taking deliveries while it is high).
async fn write_loop(
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    pending: Arc<AtomicUsize>,
    drained: Arc<Notify>,
) {
    while let Some(mut buf) = rx.recv().await {
        while buf.len() < (1 << 20) {
            match rx.try_recv() {
                Ok(more) => buf.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        let ok = wr.write_all(&buf).await.is_ok();
        let before = pending.fetch_sub(buf.len(), Ordering::SeqCst);
        if before > WRITE_BACKLOG && before.saturating_sub(buf.len()) <= WRITE_BACKLOG {
            drained.notify_one();
        }
        if !ok {
            break;
        }
    }
    let _ = wr.shutdown().await;
}

impl Conn {
    fn flush(&mut self) {
        if !self.out.is_empty() {
            let buf = self.out.take();
            self.pending_write.fetch_add(buf.len(), Ordering::SeqCst);
            if self.wtx.send(buf).is_err() {
                self.pending_write.store(0, Ordering::SeqCst);
            }
        }
    }

    /// Whether the writer has fallen behind (the socket is not draining).
    fn write_backlogged(&self) -> bool {
        self.pending_write.load(Ordering::SeqCst) > WRITE_BACKLOG
    }

    fn send_close(&mut self, e: &AmqpError) {
        self.out.method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
                reply_code: e.code.code(),
                reply_text: short(e.reply_text()),
                class_id: e.class_id,
                method_id: e.method_id,
            })),
        );
    }

    async fn run(&mut self, rd: &mut OwnedReadHalf, shutdown: &mut Shutdown) -> End {
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
                _ = self.write_drained.notified(), if self.write_backlogged() => {}
                Ok(()) = self.block.alarm.changed() => {
                    let active = *self.block.alarm.borrow_and_update();
                    self.block.alarm_changed(active, &mut self.out);
                }
                Some(ev) = self.events_rx.recv(), if !self.write_backlogged() => {
                    self.handle_event(ev);
                    for _ in 0..1024 {
                        if self.out.buf.len() > (1 << 20) {
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
        self.send_close(&e);
        self.closing = Some(Instant::now() + CLOSE_TIMEOUT);
        self.release_channels();
    }

    /// Splits the connection into its channels and the context a channel works with
    /// (disjoint borrows, so a channel can be driven while the context is in use).
    fn split(&mut self) -> (&mut HashMap<u16, Channel>, ConnCtx<'_>) {
        let Conn {
            channels,
            out,
            shared,
            events_tx,
            confirms,
            id,
            unsent,
            ..
        } = self;
        let ctx = ConnCtx {
            conn_id: *id,
            vhost: &shared.vhost,
            tx: events_tx,
            confirms,
            out,
            max_body: MAX_BODY,
            user: &shared.config.username,
            unsent,
        };
        (channels, ctx)
    }

    fn release_channels(&mut self) {
        let (channels, mut ctx) = self.split();
        for (_, mut ch) in channels.drain() {
            ch.release(&mut ctx);
        }
    }

    fn channel_error(&mut self, ch_id: u16, e: AmqpError) {
        tracing::debug!(conn = self.id, channel = ch_id, error = %e, "channel error");
        let (channels, mut ctx) = self.split();
        if let Some(ch) = channels.get_mut(&ch_id) {
            ch.release(&mut ctx);
            ch.closing = true;
        }
        ctx.out.method(
            ch_id,
            AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
                reply_code: e.code.code(),
                reply_text: short(e.reply_text()),
                class_id: e.class_id,
                method_id: e.method_id,
            })),
        );
    }

    fn handle_frame(&mut self, f: InFrame) -> Result<(), AmqpError> {
        if let InFrame::Method(ch, m) = &f {
            tracing::debug!(conn = self.id, channel = ch, method = ?m, "received method");
        }
        if let Some(_deadline) = self.closing {
            // Only close / close-ok matter now.
            match f {
                InFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::CloseOk(_))) => {
                    self.done = true;
                }
                InFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Close(_))) => {
                    self.out.method(
                        0,
                        AMQPClass::Connection(connection::AMQPMethod::CloseOk(
                            connection::CloseOk {},
                        )),
                    );
                    self.done = true;
                }
                _ => {}
            }
            return Ok(());
        }
        match f {
            InFrame::Heartbeat => Ok(()),
            InFrame::Method(0, AMQPClass::Connection(m)) => match m {
                connection::AMQPMethod::Close(c) => {
                    tracing::debug!(conn = self.id, code = c.reply_code, text = %c.reply_text, "client closed connection");
                    self.release_channels();
                    self.out.method(
                        0,
                        AMQPClass::Connection(connection::AMQPMethod::CloseOk(
                            connection::CloseOk {},
                        )),
                    );
                    self.done = true;
                    Ok(())
                }
                connection::AMQPMethod::Blocked(_) | connection::AMQPMethod::Unblocked(_) => Ok(()),
                connection::AMQPMethod::UpdateSecret(_) => {
                    self.out.method(
                        0,
                        AMQPClass::Connection(connection::AMQPMethod::UpdateSecretOk(
                            connection::UpdateSecretOk {},
                        )),
                    );
                    Ok(())
                }
                other => Err(AmqpError::command_invalid("unexpected connection method")
                    .with_method(10, other_method_id(&other))),
            },
            InFrame::Method(0, c) => Err(AmqpError::channel_error(
                "expected 'channel.open' on channel 0",
            )
            .with_method(c.get_amqp_class_id(), c.get_amqp_method_id())),
            InFrame::Method(_, AMQPClass::Connection(m)) => Err(AmqpError::command_invalid(
                "connection method on a non-zero channel",
            )
            .with_method(10, other_method_id(&m))),
            InFrame::Method(ch, AMQPClass::Channel(m)) => self.channel_method(ch, m),
            InFrame::Method(ch, class) => {
                if matches!(class, AMQPClass::Basic(basic::AMQPMethod::Publish(_))) {
                    self.block.published(&mut self.out);
                }
                let ids = (class.get_amqp_class_id(), class.get_amqp_method_id());
                let r = self.with_channel(ch, |chan, ctx| chan.handle_method(ctx, class));
                self.scoped(ch, r.map_err(|e| e.with_method(ids.0, ids.1)))
            }
            InFrame::Header { channel: 0, .. } | InFrame::Body(0, _) => {
                Err(AmqpError::unexpected_frame("content frame on channel 0"))
            }
            InFrame::Header {
                channel,
                class_id,
                body_size,
                props,
                raw_props,
            } => {
                if body_size == 0 {
                    self.block.content_read();
                }
                let r = self.with_channel(channel, |chan, ctx| {
                    chan.handle_header(ctx, class_id, body_size, props, raw_props)
                });
                self.scoped(channel, r)
            }
            InFrame::Body(channel, data) => {
                self.block.content_read();
                let r = self.with_channel(channel, |chan, ctx| chan.handle_body(ctx, data));
                self.scoped(channel, r)
            }
        }
    }

    /// Turn a channel-level error into channel.close; pass others up.
    fn scoped(&mut self, ch: u16, r: Result<(), AmqpError>) -> Result<(), AmqpError> {
        match r {
            Err(e) if !e.is_connection_level() => {
                self.channel_error(ch, e);
                Ok(())
            }
            other => other,
        }
    }

    /// Run `f` on an open channel (504 if not open; ignored while closing).
    fn with_channel(
        &mut self,
        ch_id: u16,
        f: impl FnOnce(&mut Channel, &mut ConnCtx<'_>) -> Result<(), AmqpError>,
    ) -> Result<(), AmqpError> {
        let (channels, mut ctx) = self.split();
        let Some(chan) = channels.get_mut(&ch_id) else {
            return Err(AmqpError::channel_error(format!(
                "expected 'channel.open' on channel {ch_id}"
            )));
        };
        if chan.closing {
            return Ok(());
        }
        f(chan, &mut ctx)
    }

    fn channel_method(&mut self, ch: u16, m: channel::AMQPMethod) -> Result<(), AmqpError> {
        use channel::AMQPMethod as C;
        match m {
            C::Open(_) => {
                if ch > self.channel_max {
                    return Err(AmqpError::not_allowed(format!(
                        "channel {ch} exceeds channel_max {}",
                        self.channel_max
                    ))
                    .with_method(20, 10));
                }
                if self.channels.contains_key(&ch) {
                    return Err(
                        AmqpError::channel_error("second 'channel.open' seen").with_method(20, 10)
                    );
                }
                self.channels.insert(ch, Channel::new(ch));
                self.out
                    .method(ch, AMQPClass::Channel(C::OpenOk(channel::OpenOk {})));
                Ok(())
            }
            C::Close(_) => {
                let (channels, mut ctx) = self.split();
                let Some(mut chan) = channels.remove(&ch) else {
                    return Err(
                        AmqpError::channel_error("expected 'channel.open'").with_method(20, 40)
                    );
                };
                {
                    chan.release(&mut ctx);
                }
                self.out
                    .method(ch, AMQPClass::Channel(C::CloseOk(channel::CloseOk {})));
                Ok(())
            }
            C::CloseOk(_) => match self.channels.get(&ch).map(|c| c.closing) {
                Some(true) => {
                    self.channels.remove(&ch);
                    Ok(())
                }
                Some(false) => Ok(()),
                None => {
                    Err(AmqpError::channel_error("expected 'channel.open'").with_method(20, 41))
                }
            },
            C::Flow(f) => {
                let open = self.channels.get(&ch).map(|c| c.closing);
                match open {
                    None => Err(AmqpError::channel_error(format!(
                        "expected 'channel.open' on channel {ch}"
                    ))
                    .with_method(20, 20)),
                    Some(true) => Ok(()),
                    // Like RabbitMQ 3.x: consumers cannot pause delivery this way.
                    Some(false) if !f.active => {
                        Err(AmqpError::not_implemented("active=false").with_method(20, 20))
                    }
                    Some(false) => {
                        self.out.method(
                            ch,
                            AMQPClass::Channel(C::FlowOk(channel::FlowOk { active: f.active })),
                        );
                        Ok(())
                    }
                }
            }
            C::FlowOk(_) => Ok(()),
            C::OpenOk(_) => {
                Err(AmqpError::command_invalid("unexpected channel.open-ok").with_method(20, 11))
            }
        }
    }

    fn handle_event(&mut self, ev: ConnEvent) {
        let notify = self.cancel_notify;
        let (channels, mut ctx) = self.split();
        match ev {
            ConnEvent::Deliver(Delivery {
                channel,
                consumer_tag,
                queue,
                msg,
            }) => match channels.get_mut(&channel) {
                Some(ch) => ch.deliver(&mut ctx, consumer_tag, queue, msg),
                None => ctx.unsent.push((queue, msg)),
            },
            ConnEvent::DirectReply {
                channel,
                consumer_tag,
                msg,
            } => {
                if let Some(ch) = channels.get_mut(&channel) {
                    ch.deliver_reply(&mut ctx, consumer_tag, msg);
                }
            }
            ConnEvent::ConsumerCancelled {
                channel,
                consumer_tag,
            } => {
                if let Some(ch) = channels.get_mut(&channel) {
                    ch.consumer_cancelled(&mut ctx, consumer_tag, notify);
                }
            }
            ConnEvent::Confirm { channel, seq, ack } => {
                if let Some(ch) = channels.get_mut(&channel) {
                    ch.confirm_ready(&mut ctx, seq, ack);
                }
            }
        }
    }

    /// Put deliveries that never reached a consumer back on their queues.
    fn unsend_all(&mut self) {
        let unsent = std::mem::take(&mut self.unsent);
        for (q, fallout) in crate::queue::unsend_all(unsent) {
            self.shared.vhost.settle(&q, fallout);
        }
    }

    /// Release all resources: channels, exclusive queues, in-flight deliveries.
    fn cleanup(&mut self) {
        self.release_channels();
        self.shared.vhost.delete_exclusive(self.id);
        self.events_rx.close();
        while let Ok(ev) = self.events_rx.try_recv() {
            if let ConnEvent::Deliver(Delivery { queue, msg, .. }) = ev {
                self.unsent.push((queue, msg));
            }
        }
        self.unsend_all();
        self.out.take();
        // Give the established-connection slot back (if it authenticated).
        drop(self.permit.take());
    }
}

fn other_method_id(m: &connection::AMQPMethod) -> u16 {
    AMQPClass::Connection(m.clone()).get_amqp_method_id()
}
