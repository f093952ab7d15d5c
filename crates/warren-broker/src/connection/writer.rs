//! The writer task of one connection: it takes encoded frame batches from the
//! connection task and writes them to the socket, joining what queued up meanwhile
//! into one vectored write (the batches' parts are not copied).
//! The connection stops taking deliveries while the writer's backlog is high.

use crate::frame::{Batch, Out};
use bytes::{Buf, Bytes};
use std::io::IoSlice;
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
    tx: mpsc::UnboundedSender<Batch>,
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
        let batch = out.take();
        self.pending.fetch_add(batch.len, Ordering::SeqCst);
        if self.tx.send(batch).is_err() {
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

/// Parts given to one `writev` at most.
const MAX_IOVECS: usize = 64;

/// Writes batches to the socket; `pending` counts bytes handed over but not
/// yet written.
async fn write_loop<W: AsyncWrite + Unpin>(
    mut wr: W,
    mut rx: mpsc::UnboundedReceiver<Batch>,
    pending: Arc<AtomicUsize>,
    drained: Arc<Notify>,
) {
    while let Some(mut batch) = rx.recv().await {
        while batch.len < COALESCE {
            match rx.try_recv() {
                Ok(more) => batch.append(more),
                Err(_) => break,
            }
        }
        let len = batch.len;
        let ok = write_all(&mut wr, batch.parts).await.is_ok();
        let before = pending.fetch_sub(len, Ordering::SeqCst);
        if before > WRITE_BACKLOG && before.saturating_sub(len) <= WRITE_BACKLOG {
            drained.notify_one();
        }
        if !ok {
            break;
        }
    }
    let _ = wr.shutdown().await;
}

/// Write every part, in order, with vectored writes.
async fn write_all<W: AsyncWrite + Unpin>(
    wr: &mut W,
    mut parts: Vec<Bytes>,
) -> std::io::Result<()> {
    if let [one] = &parts[..] {
        return wr.write_all(one).await;
    }
    let mut first = 0;
    while first < parts.len() {
        let slices: Vec<IoSlice<'_>> = parts[first..]
            .iter()
            .take(MAX_IOVECS)
            .map(|p| IoSlice::new(p))
            .collect();
        let mut n = wr.write_vectored(&slices).await?;
        drop(slices);
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while n > 0 {
            let part = &mut parts[first];
            if n >= part.len() {
                n -= part.len();
                first += 1;
            } else {
                part.advance(n);
                n = 0;
            }
        }
    }
    Ok(())
}
