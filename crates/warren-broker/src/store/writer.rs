//! The store's writer thread: appends records in batches and fsyncs once per batch
//! for all the publishers waiting on it (group commit), at least once a second
//! while anything is unsynced, and compacts the log online.
//!
//! On a failed write or fsync it undoes everything since the last good fsync: the
//! log is cut back to that length (`set_len`), so no torn record stays in front of
//! later ones; the publishes in the cut are dropped from the live state and every
//! publish waiting is nacked (see [`Waiter`]); the other records
//! (declares, bindings, removals) are kept and written again before anything else.
//! The store then reports itself not writable until a write and fsync succeed again:
//! the next batch, or a probe file written every [`PROBE_EVERY`] while idle.

use super::codec::encode_record;
use super::recover::{write_snapshot, Opened};
use super::{apply, stored_size, Cmd, Health, Record, Recovered, Waiter};
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// A batch stops taking records at this many bytes.
const BATCH_MAX: usize = 4 << 20;
/// Fsync without a waiter once this much is unsynced.
const SYNC_EVERY: u64 = 8 << 20;
/// Fsync without a waiter once nothing new came for this long.
const IDLE_SYNC: Duration = Duration::from_secs(1);
/// While not writable: try again this often.
const PROBE_EVERY: Duration = Duration::from_millis(250);
/// The probe file, and how much it writes.
const PROBE_FILE: &str = "warren.probe";
const PROBE_BYTES: usize = 256 << 10;

/// A record written since the last fsync, as much of it as a failure needs.
enum Unsynced {
    /// A publish: dropped if the fsync fails.
    Publish(String, u64),
    /// Anything else: written again if the fsync fails.
    Other(Record),
}

/// The writer thread's state.
pub(super) struct Writer {
    /// Held for the writer's lifetime: the data directory's exclusive lock.
    _lock: File,
    file: File,
    dir: PathBuf,
    /// Live state, kept current for compaction: everything written so far.
    state: Recovered,
    /// Log length as written.
    len: u64,
    /// Log length known to be on disk.
    synced: u64,
    /// The file may be longer than `synced` (a failed write): cut before writing.
    torn: bool,
    /// Bytes of the log that still describe live state.
    live: u64,
    /// Never compact a log smaller than this.
    compact_min: u64,
    /// Records written since the last fsync, in order.
    unsynced: Vec<Unsynced>,
    /// Records a failure cut from the log, to write again first (never publishes).
    retry: Vec<Record>,
    health: Arc<Health>,
}

impl Writer {
    /// A writer appending to the log `opened`.
    pub(super) fn new(
        lock: File,
        dir: PathBuf,
        opened: Opened,
        compact_min: u64,
        health: Arc<Health>,
    ) -> Self {
        Writer {
            _lock: lock,
            file: opened.file,
            dir,
            state: opened.state,
            len: opened.len,
            synced: opened.len,
            torn: false,
            live: opened.len,
            compact_min,
            unsynced: Vec::new(),
            retry: Vec::new(),
            health,
        }
    }

    fn writable(&self) -> bool {
        self.health.writable.load(Ordering::Acquire)
    }

    /// How long to wait for a command before doing idle work (None: forever).
    fn idle_timeout(&self) -> Option<Duration> {
        if !self.writable() {
            Some(PROBE_EVERY)
        } else if self.len > self.synced {
            Some(IDLE_SYNC)
        } else {
            None
        }
    }

    /// Serve commands until closed (or every handle is gone), then fsync and stop.
    pub(super) fn run(mut self, rx: mpsc::Receiver<Cmd>) {
        let mut buf = Vec::with_capacity(1 << 16);
        let mut batch = Vec::new();
        let mut waiters: Vec<Waiter> = Vec::new();
        let mut closers = Vec::new();
        let mut max_id = 0;
        let mut open = true;
        while open && closers.is_empty() {
            let first = match self.idle_timeout() {
                None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
                Some(t) => rx.recv_timeout(t),
            };
            let idle = match &first {
                Err(mpsc::RecvTimeoutError::Timeout) => true,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    open = false;
                    false
                }
                Ok(_) => false,
            };
            let mut next = first.ok();
            while let Some(cmd) = next.take() {
                match cmd {
                    Cmd::Append(rec) => self.take(rec, &mut buf, &mut batch, &mut max_id),
                    Cmd::Publish(records, confirm) => {
                        for rec in records {
                            self.take(rec, &mut buf, &mut batch, &mut max_id);
                        }
                        if let Some(confirm) = confirm {
                            let failures = self.health.failures.load(Ordering::SeqCst);
                            waiters.push(Waiter { confirm, failures });
                        }
                    }
                    Cmd::Close(tx) => closers.push(tx),
                }
                if buf.len() < BATCH_MAX {
                    next = rx.try_recv().ok();
                }
            }
            let was_writable = self.writable();
            let wrote = self.write(&buf, std::mem::take(&mut batch));
            buf.clear();
            let sync = !waiters.is_empty()
                || !closers.is_empty()
                || idle
                || !was_writable
                || self.len - self.synced >= SYNC_EVERY;
            if wrote && sync {
                self.sync();
            }
            // With records to retry, writing them is the probe.
            if idle && !self.writable() && self.retry.is_empty() && self.len == self.synced {
                self.probe();
            }
            let failures = self.health.failures.load(Ordering::SeqCst);
            for w in waiters.drain(..) {
                w.confirm.answer(w.failures == failures);
            }
            // Compact once the log is big, at least half of it is garbage, and all of
            // it is on disk.
            if self.writable()
                && self.len == self.synced
                && self.retry.is_empty()
                && self.len >= self.compact_min
                && self.len >= self.live.saturating_mul(2)
            {
                self.compact();
            }
        }
        if !self.writable() || self.len > self.synced {
            self.write(&[], Vec::new());
            self.sync();
        }
        if !self.retry.is_empty() {
            tracing::error!(
                records = self.retry.len(),
                "the store stopped with records it could not write (acks may come back after a restart)"
            );
        }
        // Release the file and the lock before telling the closers, so that a
        // broker restarted on this directory right away can take it.
        drop(rx);
        drop(self);
        for c in closers {
            let _ = c.send(());
        }
    }

    /// Take a record into the batch being built: encode it, account for it and apply
    /// it to the live state.
    fn take(
        &mut self,
        rec: Record,
        buf: &mut Vec<u8>,
        batch: &mut Vec<Unsynced>,
        max_id: &mut u64,
    ) {
        let before = buf.len();
        encode_record(&rec, buf);
        self.account(&rec, (buf.len() - before) as u64);
        batch.push(match &rec {
            Record::Publish { queue, id, .. } => Unsynced::Publish(queue.clone(), *id),
            other => Unsynced::Other(other.clone()),
        });
        apply(&mut self.state, rec, max_id);
    }

    /// Write the records to retry, then `buf` (encoding `batch`). Returns false if
    /// the write failed (and was undone).
    fn write(&mut self, buf: &[u8], batch: Vec<Unsynced>) -> bool {
        let mut again = Vec::new();
        for r in &self.retry {
            encode_record(r, &mut again);
        }
        let retry = std::mem::take(&mut self.retry);
        self.unsynced.extend(retry.into_iter().map(Unsynced::Other));
        self.unsynced.extend(batch);
        if again.is_empty() && buf.is_empty() {
            return true;
        }
        let written = self
            .cut_torn()
            .and_then(|()| self.file.write_all(&again))
            .and_then(|()| self.file.write_all(buf));
        match written {
            Ok(()) => {
                self.len += (again.len() + buf.len()) as u64;
                true
            }
            Err(e) => {
                self.torn = true;
                self.fail("write", &e);
                false
            }
        }
    }

    /// Fsync what was written; undo it all on failure.
    fn sync(&mut self) {
        if self.len == self.synced {
            return;
        }
        match self.file.sync_data() {
            Ok(()) => {
                self.synced = self.len;
                self.unsynced.clear();
                self.set_writable();
            }
            Err(e) => {
                self.torn = true;
                self.fail("fsync", &e);
            }
        }
    }

    /// Cut the log back to its fsynced length if a failure may have left more.
    fn cut_torn(&mut self) -> std::io::Result<()> {
        if self.torn {
            self.file.set_len(self.synced)?;
            self.len = self.synced;
            self.torn = false;
        }
        Ok(())
    }

    /// A write or fsync failed: undo everything since the last fsync (see the module
    /// doc) and stop taking persistent messages.
    fn fail(&mut self, what: &str, e: &std::io::Error) {
        self.health.failures.fetch_add(1, Ordering::SeqCst);
        let mut dropped = 0usize;
        for u in std::mem::take(&mut self.unsynced) {
            match u {
                Unsynced::Publish(queue, id) => {
                    let gone = self
                        .state
                        .messages
                        .get_mut(&queue)
                        .and_then(|m| m.remove(&id));
                    if let Some(m) = gone {
                        self.live = self.live.saturating_sub(stored_size(&queue, &m));
                    }
                    dropped += 1;
                }
                Unsynced::Other(r) => self.retry.push(r),
            }
        }
        self.len = self.synced;
        if let Err(cut) = self.cut_torn() {
            tracing::error!(error = %cut, "cannot cut the store log back; retrying before the next write");
        }
        let path = self.dir.join(super::LOG_FILE);
        if self.health.writable.swap(false, Ordering::AcqRel) {
            tracing::error!(
                error = %e,
                path = %path.display(),
                publishes_dropped = dropped,
                "store {what} failed: publishes waiting on it are nacked, and persistent \
                 messages are refused until a write succeeds again"
            );
        } else {
            tracing::debug!(error = %e, what, publishes_dropped = dropped, "store still cannot write");
        }
    }

    fn set_writable(&self) {
        if !self.health.writable.swap(true, Ordering::AcqRel) {
            tracing::info!("store writes succeed again: taking persistent messages");
        }
    }

    /// While not writable and idle: does a small write and fsync succeed now?
    fn probe(&mut self) {
        let path = self.dir.join(PROBE_FILE);
        let probed = File::create(&path).and_then(|mut f| {
            f.write_all(&vec![0u8; PROBE_BYTES])?;
            f.sync_data()
        });
        let _ = std::fs::remove_file(&path);
        match probed {
            Ok(()) => self.set_writable(),
            Err(e) => tracing::debug!(error = %e, "store probe write failed"),
        }
    }

    /// Track how many bytes of the log are still live.
    fn account(&mut self, rec: &Record, size: u64) {
        match rec {
            Record::Publish { queue, .. } => {
                if self.state.queues.contains_key(queue) {
                    self.live += size;
                }
            }
            Record::Remove { queue, id } => {
                if let Some(m) = self.state.messages.get(queue).and_then(|m| m.get(id)) {
                    self.live = self.live.saturating_sub(stored_size(queue, m));
                }
            }
            Record::DeleteQueue { name } => {
                let dead: u64 = self
                    .state
                    .messages
                    .get(name)
                    .map(|msgs| msgs.values().map(|m| stored_size(name, m)).sum())
                    .unwrap_or(0);
                self.live = self.live.saturating_sub(dead);
            }
            _ => self.live += size,
        }
    }

    fn compact(&mut self) {
        let before = self.len;
        match write_snapshot(&self.dir, &self.state) {
            Ok((file, len)) => {
                self.file = file;
                self.len = len;
                self.synced = len;
                self.live = len;
                tracing::info!(before, after = len, "compacted the store log");
            }
            Err(e) => {
                tracing::error!(error = %e, "store compaction failed");
                // Do not retry on every batch.
                self.live = self.len;
            }
        }
    }
}
