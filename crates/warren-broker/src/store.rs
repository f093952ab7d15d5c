//! The durable store: an append-only log of length + CRC32 framed records
//! (declares, bindings, persistent publishes, removals), written by one
//! background thread that groups fsyncs across publishers.
//!
//! What it guarantees:
//! - A publisher confirm is an ack only once the message's record, and every record
//!   logged before it, is written and fsynced. A write or fsync that fails nacks every
//!   publish waiting on it (`writer.rs`).
//! - A failed write never leaves torn bytes in front of later records: the writer cuts
//!   the log back to its last fsynced length (`set_len`) before it writes again, and
//!   writes again the records other than publishes (declares, bindings, removals) that
//!   the cut took. The publishes it took were nacked, and do not come back.
//! - Until a write succeeds again (tried on the next batch, or a probe every 250 ms),
//!   the store is not writable and persistent publishes to durable queues from
//!   publishers in confirm mode are nacked at once ([`Store::writable`]).
//! - Recovery skips past damage instead of stopping at it (`codec.rs`): the cut above
//!   keeps the broker's own writes from leaving damage, and the skip keeps damage
//!   from any other cause (a disk, an edit, an old log) from hiding later records.
//! - At open (`recover.rs`), bytes that cannot be read are kept aside in a file, never
//!   overwritten; if the compacting rewrite fails (a full disk), the broker goes on
//!   appending to the log as it is.
//!
//! An exclusive lock on `LOCK` in the data directory keeps a second broker from
//! writing the same log; the kernel releases it when the process dies, even by
//! `kill -9`.

use crate::error::BrokerError;
use crate::message::Message;
use std::fs::{File, OpenOptions};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

mod codec;
mod recover;
mod state;
mod writer;

use state::{apply, snapshot, stored_size};
pub(crate) use state::{Record, Recovered};

/// The log's file name in its directory.
pub(crate) const LOG_FILE: &str = "warren.log";
const LOCK_FILE: &str = "LOCK";
/// Default log size before online compaction is considered.
const COMPACT_MIN: u64 = 64 << 20;

enum Cmd {
    Append(Record),
    /// A publish's records, with the publisher waiting for its confirm if any: one
    /// command, so that the records and the waiter are always in the same batch.
    Publish(Vec<Record>, Option<ConfirmTo>),
    /// Write and fsync what is buffered, answer, then stop (releasing the lock).
    Close(mpsc::SyncSender<()>),
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cmd")
    }
}

/// Who is told when a publish's records are fsynced (or dropped): the publisher's
/// connection implements this, so the store names no connection.
pub(crate) trait ConfirmSink: Send + Sync {
    /// The publish `seq` on `channel` is settled: basic.ack if `ack`, else basic.nack.
    fn confirmed(&self, channel: u16, seq: u64, ack: bool);
}

/// Where a publish's confirm goes: the connection, channel and delivery tag.
pub(crate) struct ConfirmTo {
    /// The publisher's connection.
    pub(crate) sink: Arc<dyn ConfirmSink>,
    /// Its channel.
    pub(crate) channel: u16,
    /// The publish's sequence number (the confirm's delivery tag).
    pub(crate) seq: u64,
}

impl ConfirmTo {
    /// Send the confirm: basic.ack if `ack`, else basic.nack.
    fn answer(self, ack: bool) {
        self.sink.confirmed(self.channel, self.seq, ack);
    }
}

/// A publisher waiting for its records to be fsynced.
struct Waiter {
    confirm: ConfirmTo,
    /// The store's failure count when the writer took the publish's records into a
    /// batch: the publish is confirmed only if no write or fsync failed since (a
    /// failure drops everything not yet fsynced), so a confirm never covers a record
    /// that is not in the log, and a nack never covers one that is.
    failures: u64,
}

/// What the writer thread tells the broker about the store's health.
#[derive(Debug)]
struct Health {
    /// The last write (or probe) succeeded: persistent messages are taken.
    writable: AtomicBool,
    /// Failed writes and fsyncs so far.
    failures: AtomicU64,
}

/// Handle to the store writer thread.
#[derive(Debug)]
pub(crate) struct Store {
    tx: mpsc::Sender<Cmd>,
    next_id: AtomicU64,
    health: Arc<Health>,
}

impl Store {
    /// Open (creating if needed) the log in `dir`, replay and compact it,
    /// and start the writer thread.
    pub(crate) fn open(dir: &Path) -> Result<(Arc<Store>, Recovered), BrokerError> {
        Self::open_with(dir, COMPACT_MIN)
    }

    /// Like [`Store::open`], compacting online once the log exceeds
    /// `compact_min` bytes and at least half of it is garbage.
    pub(crate) fn open_with(
        dir: &Path,
        compact_min: u64,
    ) -> Result<(Arc<Store>, Recovered), BrokerError> {
        std::fs::create_dir_all(dir)?;
        let lock = lock_dir(dir)?;
        let opened = recover::open_log(dir)?;
        let health = Arc::new(Health {
            // A rewrite that failed at open: wait for a probe before taking messages.
            writable: AtomicBool::new(opened.compacted),
            failures: AtomicU64::new(0),
        });
        let rec = opened.state.clone();
        let next_id = opened.max_id + 1;
        let w = writer::Writer::new(lock, dir.to_path_buf(), opened, compact_min, health.clone());
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("warren-store".into())
            .spawn(move || w.run(rx))?;
        Ok((
            Arc::new(Store {
                tx,
                next_id: AtomicU64::new(next_id),
                health,
            }),
            rec,
        ))
    }

    fn send(&self, cmd: Cmd) {
        if self.tx.send(cmd).is_err() {
            tracing::debug!("the store is closed; a late record was not written");
        }
    }

    /// Append a record (written promptly, fsynced with the next sync).
    pub(crate) fn append(&self, rec: Record) {
        self.send(Cmd::Append(rec));
    }

    /// Whether the store takes persistent messages: false from a failed write or
    /// fsync until a write succeeds again.
    pub(crate) fn writable(&self) -> bool {
        self.health.writable.load(Ordering::Acquire)
    }

    /// Log a persistent message for a queue; returns its id (tests: the broker logs a
    /// publish's records with [`Store::log_publish`]).
    #[cfg(test)]
    pub(crate) fn publish(&self, queue: &str, msg: &Message) -> u64 {
        let (id, rec) = self.publish_record(queue, msg);
        self.append(rec);
        id
    }

    /// The record of a persistent message enqueued on `queue`, with a new id; give it
    /// to [`Store::log_publish`].
    pub(crate) fn publish_record(&self, queue: &str, msg: &Message) -> (u64, Record) {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let rec = Record::Publish {
            queue: queue.to_owned(),
            id,
            exchange: msg.exchange.clone(),
            routing_key: msg.routing_key.clone(),
            raw_props: msg.raw_props.clone(),
            body: msg.body.clone(),
        };
        (id, rec)
    }

    /// Log one publish's records; with `confirm`, answer it once they are fsynced
    /// (basic.ack), or once a write or fsync failed before that (basic.nack).
    pub(crate) fn log_publish(&self, records: Vec<Record>, confirm: Option<ConfirmTo>) {
        self.send(Cmd::Publish(records, confirm));
    }

    /// Write and fsync everything sent so far, then stop the writer thread,
    /// which releases the data directory's lock. Later records are dropped.
    pub(crate) fn close(&self) {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Cmd::Close(tx));
        let _ = rx.recv_timeout(std::time::Duration::from_secs(10));
    }
}

/// Take the exclusive lock on `dir`, or say which directory is in use.
fn lock_dir(dir: &Path) -> Result<File, BrokerError> {
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(LOCK_FILE))?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => Err(BrokerError::DataDirLocked {
            dir: dir.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::protocol::basic::AMQPProperties;
    use amq_protocol::types::FieldTable;
    use bytes::Bytes;

    #[test]
    fn online_compaction_keeps_only_live_state() {
        let dir = std::env::temp_dir().join(format!("warren-compact-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (store, rec) = Store::open_with(&dir, 16 * 1024).unwrap();
        assert!(rec.queues.is_empty());
        store.append(Record::DeclareQueue {
            name: "q".into(),
            auto_delete: false,
            arguments: FieldTable::default(),
        });
        let msg = Message::new(
            "".into(),
            "q".into(),
            AMQPProperties::default(),
            crate::message::encode_props(&AMQPProperties::default()),
            Bytes::from(vec![1u8; 100]),
        );
        let mut ids = Vec::new();
        for _ in 0..2000 {
            ids.push(store.publish("q", &msg));
        }
        for id in &ids[..1990] {
            store.append(Record::Remove {
                queue: "q".into(),
                id: *id,
            });
        }
        // Answered once everything is written, compacted and the lock released.
        store.close();
        // 2000 publishes of ~130 bytes were written; compaction shrank the log.
        let len = std::fs::metadata(dir.join(LOG_FILE)).unwrap().len();
        assert!(len < 64 * 1024, "log not compacted: {len} bytes");
        let (_store, rec) = Store::open_with(&dir, 16 * 1024).unwrap();
        let live: Vec<u64> = rec.messages["q"].keys().copied().collect();
        assert_eq!(live, ids[1990..].to_vec());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_second_store_on_the_same_directory_is_refused_until_the_first_closes() {
        let dir = std::env::temp_dir().join(format!("warren-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (first, _) = Store::open(&dir).unwrap();
        match Store::open(&dir) {
            Err(BrokerError::DataDirLocked { dir: locked }) => assert_eq!(locked, dir),
            other => panic!("expected DataDirLocked, got {other:?}"),
        }
        first.close();
        let (second, _) = Store::open(&dir).unwrap();
        second.close();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
