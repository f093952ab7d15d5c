//! The writer task of one connection: it takes encoded frame batches from the
//! connection task and writes them to the socket, coalescing what queued up meanwhile.
//! The connection stops taking deliveries while the writer's backlog is high.

use crate::frame::Out;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::futures::Notified;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

/// Writer backlog above which we stop taking deliveries from queues.
const WRITE_BACKLOG: usize = 4 << 20;
/// Batches queued behind the one being written are joined up to this size.
const COALESCE: usize = 1 << 20;

/// The connection task's handle on its writer task.
#[derive(Debug)]
pub(super) struct Writer {
    tx: mpsc::UnboundedSender<Vec<u8>>,
    /// Bytes handed to the writer task and not yet written.
    pending: Arc<AtomicUsize>,
    /// Signalled when the writer's backlog drops below the limit.
    drained: Arc<Notify>,
}

impl Writer {
    /// Start the writer task on the stream's write half (a socket's, or a TLS stream's).
    pub(super) fn spawn<W>(wr: W) -> (Self, JoinHandle<()>)
    where
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (tx, rx) = mpsc::unbounded_channel();
        let pending = Arc::new(AtomicUsize::new(0));
        let drained = Arc::new(Notify::new());
        let task = tokio::spawn(write_loop(wr, rx, pending.clone(), drained.clone()));
        let writer = Self {
            tx,
            pending,
            drained,
        };
        (writer, task)
    }

    /// Hand what `out` holds to the writer task.
    pub(super) fn send(&self, out: &mut Out) {
        if out.is_empty() {
            return;
        }
        let buf = out.take();
        self.pending.fetch_add(buf.len(), Ordering::SeqCst);
        if self.tx.send(buf).is_err() {
            self.pending.store(0, Ordering::SeqCst);
        }
    }

    /// Whether the writer has fallen behind (the socket is not draining).
    pub(super) fn backlogged(&self) -> bool {
        self.pending.load(Ordering::SeqCst) > WRITE_BACKLOG
    }

    /// Resolves when the backlog drops below the limit.
    pub(super) fn drained(&self) -> Notified<'_> {
        self.drained.notified()
    }
}

/// Writes batches to the socket; `pending` counts bytes handed over but not
/// yet written.
async fn write_loop<W: AsyncWrite + Unpin>(
    mut wr: W,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    pending: Arc<AtomicUsize>,
    drained: Arc<Notify>,
) {
    while let Some(mut buf) = rx.recv().await {
        while buf.len() < COALESCE {
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
