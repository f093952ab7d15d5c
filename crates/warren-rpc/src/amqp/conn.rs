//! The connection task: one task owns a connection's socket (plain TCP or TLS). It reads
//! whatever has arrived, handles every frame of it (sync replies, deliveries, returns,
//! confirms, closes, `connection.blocked`, heartbeats), takes every command the
//! connection's handles queued meanwhile, and writes all that is due with one write.
//!
//! Handles ([`Connection`], [`super::Channel`]) submit commands through one unbounded
//! channel: that hand-off is the only one between a caller and the socket. A publish's
//! frames are encoded by the caller, so the task only copies bytes.
//!
//! The task ends when the broker closes the connection, the socket fails, nothing has
//! come from the broker for two heartbeat intervals, or a `connection.close` it sent
//! is confirmed; every call waiting on it then fails with the reason
//! ([`Connection::failure`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use amq_protocol::protocol::channel;
use amq_protocol::protocol::connection::{self, Close};
use amq_protocol::protocol::AMQPClass;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::debug;

use super::chan::Chan;
use super::cmd::{CloseReply, Cmd};
use super::content::Assembler;
use super::framing::FrameReader;
use super::handshake::Tuned;
use super::writer::FrameBuf;
use super::RawError;

mod inbound;

/// How long a connection whose handles were all dropped waits for its `close-ok`.
const DROP_GRACE: Duration = Duration::from_secs(1);
/// Commands taken per turn before the batch is written.
const BATCH: usize = 512;
/// Bytes batched before they are written.
const BATCH_BYTES: usize = 256 * 1024;
/// Messages handed to consumers and publishes taken in one turn of the loop from which
/// the turn waits a turn of the scheduler for more before it writes. Below it (one call
/// in flight) every write goes out at once, with no extra turn.
const GATHER_AFTER: usize = 2;

/// Connection tasks running in this process (for tests that check nothing lingers).
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// How many connection tasks are running in this process right now.
pub fn live_connections() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// What the handles and the task share.
pub(crate) struct Shared {
    /// Why the connection ended, once it has.
    pub(crate) closed: watch::Sender<Option<RawError>>,
    /// Whether the broker has publishing blocked (`connection.blocked`).
    pub(crate) blocked: watch::Sender<bool>,
    next_channel: AtomicU16,
    /// What the handshake agreed on.
    pub(crate) tuned: Tuned,
}

/// A handle on an open connection. Clones share it; when the last one is dropped the
/// task closes the connection (waiting [`DROP_GRACE`] at most for the broker).
#[derive(Clone)]
pub(crate) struct Connection {
    pub(crate) tx: mpsc::UnboundedSender<Cmd>,
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("tuned", &self.shared.tuned)
            .field("closed", &self.shared.closed.borrow().is_some())
            .finish()
    }
}

impl Connection {
    /// Starts the task for a connection whose handshake is done.
    pub(crate) fn start<S>(stream: S, reader: FrameReader, out: FrameBuf, tuned: Tuned) -> Self
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            closed: watch::channel(None).0,
            blocked: watch::channel(false).0,
            next_channel: AtomicU16::new(1),
            tuned,
        });
        let task = Task {
            stream,
            reader,
            out,
            asm: Assembler::new(),
            rx,
            shared: Arc::clone(&shared),
            chans: HashMap::new(),
            closing: None,
            last_read: Instant::now(),
            last_write: Instant::now(),
            ending: None,
            turn: 0,
        };
        LIVE.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(task.run());
        Connection { tx, shared }
    }

    /// Why the connection ended (or a generic reason if it has not said yet).
    pub(crate) fn failure(&self) -> RawError {
        self.shared
            .closed
            .borrow()
            .clone()
            .unwrap_or_else(|| RawError::Gone("the connection task ended".to_owned()))
    }

    /// Queues `cmd`, failing with the connection's end if it has ended.
    pub(crate) fn send(&self, cmd: Cmd) -> Result<(), RawError> {
        self.tx.send(cmd).map_err(|_| self.failure())
    }

    /// A fresh channel number.
    pub(crate) fn next_channel(&self) -> Result<u16, RawError> {
        let id = self.shared.next_channel.fetch_add(1, Ordering::Relaxed);
        let max = match self.shared.tuned.channel_max {
            0 => u16::MAX,
            n => n,
        };
        if id == 0 || id > max {
            return Err(RawError::Gone("no channel number left".to_owned()));
        }
        Ok(id)
    }

    /// Whether the broker blocks publishing right now, and its changes.
    pub(crate) fn blocked(&self) -> watch::Receiver<bool> {
        self.shared.blocked.subscribe()
    }

    /// Whether the connection has ended.
    pub(crate) fn is_closed(&self) -> bool {
        self.shared.closed.borrow().is_some() || self.tx.is_closed()
    }

    /// Sends `connection.close` and waits for the broker's `close-ok`.
    pub(crate) async fn close(&self, code: u16, text: &str) -> Result<(), RawError> {
        let (reply, rx) = oneshot::channel();
        self.send(Cmd::Close {
            code,
            text: text.to_owned(),
            reply,
        })?;
        rx.await.unwrap_or_else(|_| Err(self.failure()))
    }
}

/// The task's state.
struct Task<S> {
    stream: S,
    reader: FrameReader,
    out: FrameBuf,
    asm: Assembler,
    rx: mpsc::UnboundedReceiver<Cmd>,
    shared: Arc<Shared>,
    chans: HashMap<u16, Chan>,
    /// A `connection.close` sent: who waits for its `close-ok`, and until when.
    closing: Option<(Option<CloseReply>, Option<Instant>)>,
    last_read: Instant,
    last_write: Instant,
    /// The broker closed the connection: end once its close-ok is written.
    ending: Option<RawError>,
    /// Messages handed to consumers and publishes taken this turn of the loop.
    turn: usize,
}

/// How a turn of the loop ended the connection.
enum Done {
    /// Our close was confirmed.
    Closed,
    /// Anything else.
    Failed(RawError),
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Task<S> {
    async fn run(mut self) {
        let done = match self.serve().await {
            Ok(()) => Done::Closed,
            Err(e) => Done::Failed(e),
        };
        let reason = match &done {
            Done::Closed => RawError::Gone("closed by this client".to_owned()),
            Done::Failed(e) => e.clone(),
        };
        debug!(reason = %reason, "AMQP connection ended");
        self.shared.closed.send_replace(Some(reason.clone()));
        if let Some((Some(reply), _)) = self.closing.take() {
            let _ = reply.send(match done {
                Done::Closed => Ok(()),
                Done::Failed(e) => Err(e),
            });
        }
        for (_, chan) in self.chans.drain() {
            chan.fail(&reason);
        }
        self.rx.close();
        while let Ok(cmd) = self.rx.try_recv() {
            fail_cmd(cmd, &reason);
        }
        LIVE.fetch_sub(1, Ordering::Relaxed);
    }

    /// The loop: read, handle, take commands, write; until the connection ends.
    async fn serve(&mut self) -> Result<(), RawError> {
        let heartbeat = Duration::from_secs(u64::from(self.shared.tuned.heartbeat));
        let tick_every = if heartbeat.is_zero() {
            Duration::from_secs(3600)
        } else {
            heartbeat / 2
        };
        let mut tick = tokio::time::interval(tick_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let grace = self.closing.as_ref().and_then(|c| c.1);
            tokio::select! {
                biased;
                read = self.reader.fill(&mut self.stream) => {
                    read?;
                    self.last_read = Instant::now();
                    if self.handle_frames()? {
                        return Ok(());
                    }
                    if let Some(e) = self.ending.take() {
                        let _ = self.flush(heartbeat).await;
                        return Err(e);
                    }
                }
                cmd = self.rx.recv(), if self.closing.is_none() => match cmd {
                    Some(cmd) => self.command(cmd)?,
                    None => self.dropped(),
                },
                _ = tick.tick(), if !heartbeat.is_zero() => {
                    if self.last_read.elapsed() > heartbeat * 2 {
                        return Err(RawError::MissedHeartbeats(heartbeat));
                    }
                    if self.last_write.elapsed() >= tick_every {
                        self.out.heartbeat();
                    }
                }
                _ = sleep_until(grace), if grace.is_some() => {
                    return Err(RawError::Gone("the broker did not confirm connection.close".to_owned()));
                }
            }
            self.take_commands()?;
            if std::mem::take(&mut self.turn) >= GATHER_AFTER && self.closing.is_none() {
                // Several calls are in flight: the tasks woken just now (consumers that
                // answer with publishes and acks, callers that send their next call) run
                // first (a yield lets every task ready on this thread run), so that what
                // they send goes out in this write, not in one write each.
                tokio::task::yield_now().await;
                self.take_commands()?;
            }
            self.flush(heartbeat).await?;
        }
    }

    /// Takes the commands queued meanwhile, up to a batch, whatever branch ran: a
    /// steady stream of frames from the broker must not starve the callers.
    fn take_commands(&mut self) -> Result<(), RawError> {
        let mut n = 0;
        while self.closing.is_none() && n < BATCH && self.out.len() < BATCH_BYTES {
            match self.rx.try_recv() {
                Ok(cmd) => self.command(cmd)?,
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => self.dropped(),
            }
            n += 1;
        }
        Ok(())
    }

    /// Every handle is gone: close politely, briefly.
    fn dropped(&mut self) {
        self.send_close(200, "the client was dropped");
        self.closing = Some((None, Some(Instant::now() + DROP_GRACE)));
    }

    /// Writes the batch, within two heartbeat intervals when heartbeats are on.
    async fn flush(&mut self, heartbeat: Duration) -> Result<(), RawError> {
        if self.out.is_empty() {
            return Ok(());
        }
        if heartbeat.is_zero() {
            self.out.flush(&mut self.stream).await?;
        } else {
            tokio::time::timeout(heartbeat * 2, self.out.flush(&mut self.stream))
                .await
                .map_err(|_| RawError::MissedHeartbeats(heartbeat))??;
        }
        self.last_write = Instant::now();
        Ok(())
    }

    fn send_close(&mut self, code: u16, text: &str) {
        let close = Close {
            reply_code: code,
            reply_text: text.into(),
            class_id: 0,
            method_id: 0,
        };
        let _ = self.out.method(
            0,
            &AMQPClass::Connection(connection::AMQPMethod::Close(close)),
        );
    }

    fn command(&mut self, cmd: Cmd) -> Result<(), RawError> {
        match cmd {
            Cmd::Sync {
                channel,
                method,
                reply,
                sink,
            } => {
                if matches!(method, AMQPClass::Channel(channel::AMQPMethod::Open(_))) {
                    self.chans.insert(channel, Chan::default());
                }
                let Some(chan) = self.chans.get_mut(&channel) else {
                    let _ = reply.send(Err(RawError::Gone(format!("channel {channel} is closed"))));
                    return Ok(());
                };
                if let Err(e) = self.out.method(channel, &method) {
                    let _ = reply.send(Err(e));
                    return Ok(());
                }
                if sink.is_some() {
                    chan.waiting_consumer = sink;
                }
                chan.syncs.push_back(reply);
            }
            Cmd::Publish {
                channel,
                frames,
                body,
                confirm,
            } => match self.chans.get_mut(&channel) {
                Some(chan) => {
                    self.turn += 1;
                    chan.published(confirm);
                    self.out.append(frames);
                    if let Some(body) = body {
                        self.out.append_body(body);
                    }
                }
                None => {
                    if let Some(c) = confirm {
                        let _ = c.send(Err(RawError::Gone(format!("channel {channel} is closed"))));
                    }
                }
            },
            Cmd::Frames(frames) => self.out.append(frames),
            Cmd::Close { code, text, reply } => {
                self.send_close(code, &text);
                self.closing = Some((Some(reply), None));
            }
        }
        Ok(())
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Fails a command that the task never took.
fn fail_cmd(cmd: Cmd, reason: &RawError) {
    match cmd {
        Cmd::Sync { reply, .. } => {
            let _ = reply.send(Err(reason.clone()));
        }
        Cmd::Publish {
            confirm: Some(c), ..
        } => {
            let _ = c.send(Err(reason.clone()));
        }
        Cmd::Close { reply, .. } => {
            let _ = reply.send(Err(reason.clone()));
        }
        Cmd::Publish { .. } | Cmd::Frames(_) => {}
    }
}
