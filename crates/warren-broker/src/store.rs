//! The durable store: an append-only log of length + CRC32 framed records
//! (declares, bindings, persistent publishes, removals), written by one
//! background thread that groups fsyncs across publishers. On open the log
//! is replayed (a torn final record is discarded) and compacted. An exclusive
//! lock on `LOCK` in the data directory keeps a second broker from writing the
//! same log; the kernel releases it when the process dies, even by `kill -9`.

use crate::connection::ConnEvent;
use crate::error::BrokerError;
use crate::message::Message;
use amq_protocol::types::FieldTable;
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use tokio::sync::mpsc::UnboundedSender;

mod codec;

use codec::{decode_all, encode_record};

const LOG_FILE: &str = "warren.log";
const LOCK_FILE: &str = "LOCK";
/// Default log size before online compaction is considered.
const COMPACT_MIN: u64 = 64 << 20;

/// A log record.
#[derive(Debug, Clone)]
pub(crate) enum Record {
    /// A durable exchange was declared.
    DeclareExchange {
        /// Name.
        name: String,
        /// Type name.
        kind: String,
        /// Auto-delete flag.
        auto_delete: bool,
        /// Internal flag.
        internal: bool,
        /// Arguments.
        arguments: FieldTable,
    },
    /// A durable exchange was deleted.
    DeleteExchange {
        /// Name.
        name: String,
    },
    /// A durable queue was declared.
    DeclareQueue {
        /// Name.
        name: String,
        /// Auto-delete flag.
        auto_delete: bool,
        /// Arguments.
        arguments: FieldTable,
    },
    /// A durable queue was deleted.
    DeleteQueue {
        /// Name.
        name: String,
    },
    /// A binding between durable objects was added.
    Bind {
        /// Exchange.
        exchange: String,
        /// Destination queue (or exchange if `to_exchange`).
        queue: String,
        /// Destination is an exchange.
        to_exchange: bool,
        /// Binding key.
        routing_key: String,
        /// Arguments.
        arguments: FieldTable,
    },
    /// A binding was removed.
    Unbind {
        /// Exchange.
        exchange: String,
        /// Destination queue (or exchange if `to_exchange`).
        queue: String,
        /// Destination is an exchange.
        to_exchange: bool,
        /// Binding key.
        routing_key: String,
        /// Arguments.
        arguments: FieldTable,
    },
    /// A persistent message was enqueued on a durable queue.
    Publish {
        /// Queue.
        queue: String,
        /// Message id.
        id: u64,
        /// Exchange published to.
        exchange: String,
        /// Routing key.
        routing_key: String,
        /// Raw properties.
        raw_props: Bytes,
        /// Body.
        body: Bytes,
    },
    /// A message was acked or dropped.
    Remove {
        /// Queue.
        queue: String,
        /// Message id.
        id: u64,
    },
}

enum Cmd {
    Append(Record),
    Sync(UnboundedSender<ConnEvent>, ConnEvent),
    /// Write and fsync what is buffered, answer, then stop (releasing the lock).
    Close(mpsc::SyncSender<()>),
}

/// Handle to the store writer thread.
#[derive(Debug)]
pub(crate) struct Store {
    tx: mpsc::Sender<Cmd>,
    next_id: AtomicU64,
}

/// A persisted message as stored in the log (properties kept raw).
#[derive(Debug, Clone)]
pub(crate) struct StoredMessage {
    /// Exchange it was published to.
    pub(crate) exchange: String,
    /// Routing key.
    pub(crate) routing_key: String,
    /// Raw encoded properties.
    pub(crate) raw_props: Bytes,
    /// Body.
    pub(crate) body: Bytes,
}

/// The live durable state: what was recovered from the log, and what the
/// writer thread keeps up to date for online compaction.
#[derive(Debug, Default, Clone)]
pub(crate) struct Recovered {
    /// Exchanges: name -> (kind, auto_delete, internal, args).
    pub(crate) exchanges: BTreeMap<String, (String, bool, bool, FieldTable)>,
    /// Queues: name -> (auto_delete, args).
    pub(crate) queues: BTreeMap<String, (bool, FieldTable)>,
    /// Bindings: (exchange, destination, key, args, destination is an exchange).
    pub(crate) bindings: Vec<(String, String, String, FieldTable, bool)>,
    /// Messages per queue, in id order.
    pub(crate) messages: HashMap<String, BTreeMap<u64, StoredMessage>>,
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cmd")
    }
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
        let path = dir.join(LOG_FILE);
        let mut data = Vec::new();
        if path.exists() {
            File::open(&path)?.read_to_end(&mut data)?;
        }
        let (records, _good) = decode_all(&data);
        drop(data);
        let mut rec = Recovered::default();
        let mut max_id = 0;
        for r in records {
            apply(&mut rec, r, &mut max_id);
        }
        let (file, len) = write_snapshot(dir, &path, &rec)?;
        let w = Writer {
            _lock: lock,
            file,
            dir: dir.to_path_buf(),
            path,
            state: rec.clone(),
            len,
            live: len,
            compact_min,
        };
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("warren-store".into())
            .spawn(move || w.run(rx))?;
        Ok((
            Arc::new(Store {
                tx,
                next_id: AtomicU64::new(max_id + 1),
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

    /// Log a persistent message for a queue; returns its id.
    pub(crate) fn publish(&self, queue: &str, msg: &Message) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        self.append(Record::Publish {
            queue: queue.to_owned(),
            id,
            exchange: msg.exchange.clone(),
            routing_key: msg.routing_key.clone(),
            raw_props: msg.raw_props.clone(),
            body: msg.body.clone(),
        });
        id
    }

    /// Send `ev` to `tx` once everything appended so far is fsynced.
    pub(crate) fn sync_then(&self, tx: UnboundedSender<ConnEvent>, ev: ConnEvent) {
        self.send(Cmd::Sync(tx, ev));
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

/// Rewrite the live state as a fresh log (tmp file + fsync + rename) and
/// open it for appending. Returns the file and its length.
fn write_snapshot(dir: &Path, path: &Path, rec: &Recovered) -> std::io::Result<(File, u64)> {
    let tmp = dir.join(format!("{LOG_FILE}.tmp"));
    let mut buf = Vec::new();
    for r in snapshot(rec) {
        encode_record(&r, &mut buf);
    }
    {
        let mut f = File::create(&tmp)?;
        f.write_all(&buf)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    let file = OpenOptions::new().append(true).open(path)?;
    Ok((file, buf.len() as u64))
}

/// The writer thread's state.
struct Writer {
    /// Held for the writer's lifetime: the data directory's exclusive lock.
    _lock: File,
    file: File,
    dir: PathBuf,
    path: PathBuf,
    /// Live state, kept current for compaction.
    state: Recovered,
    /// Current log length.
    len: u64,
    /// Bytes of the log that still describe live state.
    live: u64,
    /// Never compact a log smaller than this.
    compact_min: u64,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Cmd>) {
        let mut buf = Vec::with_capacity(1 << 16);
        let mut waiters = Vec::new();
        let mut max_id = 0;
        let mut closers = Vec::new();
        while closers.is_empty() {
            let Ok(first) = rx.recv() else { break };
            let mut next = Some(first);
            while let Some(cmd) = next.take() {
                match cmd {
                    Cmd::Append(rec) => {
                        let before = buf.len();
                        encode_record(&rec, &mut buf);
                        self.account(&rec, (buf.len() - before) as u64);
                        apply(&mut self.state, rec, &mut max_id);
                    }
                    Cmd::Sync(tx, ev) => waiters.push((tx, ev)),
                    Cmd::Close(tx) => closers.push(tx),
                }
                if buf.len() < (4 << 20) {
                    next = rx.try_recv().ok();
                }
            }
            if !buf.is_empty() {
                if let Err(e) = self.file.write_all(&buf) {
                    tracing::error!(error = %e, path = %self.path.display(), "store write failed");
                }
                self.len += buf.len() as u64;
                buf.clear();
            }
            if !waiters.is_empty() || !closers.is_empty() {
                if let Err(e) = self.file.sync_data() {
                    tracing::error!(error = %e, "store fsync failed");
                }
                for (tx, ev) in waiters.drain(..) {
                    let _ = tx.send(ev);
                }
            }
            // Compact once the log is big and at least half of it is garbage.
            if self.len >= self.compact_min && self.len >= self.live.saturating_mul(2) {
                self.compact();
            }
        }
        let _ = self.file.sync_data();
        // Release the file and the lock before telling the closers, so that a
        // broker restarted on this directory right away can take it.
        drop(rx);
        drop(self);
        for c in closers {
            let _ = c.send(());
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
        match write_snapshot(&self.dir, &self.path, &self.state) {
            Ok((file, len)) => {
                self.file = file;
                self.len = len;
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

/// The encoded size of a Publish record for `m` on `queue`.
fn stored_size(queue: &str, m: &StoredMessage) -> u64 {
    let payload = 1
        + (4 + queue.len())
        + 8
        + (4 + m.exchange.len())
        + (4 + m.routing_key.len())
        + (4 + m.raw_props.len())
        + (4 + m.body.len());
    (8 + payload) as u64
}

fn apply(rec: &mut Recovered, r: Record, max_id: &mut u64) {
    match r {
        Record::DeclareExchange {
            name,
            kind,
            auto_delete,
            internal,
            arguments,
        } => {
            rec.exchanges
                .insert(name, (kind, auto_delete, internal, arguments));
        }
        Record::DeleteExchange { name } => {
            rec.exchanges.remove(&name);
            rec.bindings
                .retain(|b| b.0 != name && !(b.4 && b.1 == name));
        }
        Record::DeclareQueue {
            name,
            auto_delete,
            arguments,
        } => {
            rec.queues.insert(name, (auto_delete, arguments));
        }
        Record::DeleteQueue { name } => {
            rec.queues.remove(&name);
            rec.messages.remove(&name);
            rec.bindings.retain(|b| b.4 || b.1 != name);
        }
        Record::Bind {
            exchange,
            queue,
            to_exchange,
            routing_key,
            arguments,
        } => {
            let b = (exchange, queue, routing_key, arguments, to_exchange);
            if !rec.bindings.contains(&b) {
                rec.bindings.push(b);
            }
        }
        Record::Unbind {
            exchange,
            queue,
            to_exchange,
            routing_key,
            arguments,
        } => {
            let b = (exchange, queue, routing_key, arguments, to_exchange);
            rec.bindings.retain(|x| *x != b);
        }
        Record::Publish {
            queue,
            id,
            exchange,
            routing_key,
            raw_props,
            body,
        } => {
            *max_id = (*max_id).max(id);
            if !rec.queues.contains_key(&queue) {
                return;
            }
            let msg = StoredMessage {
                exchange,
                routing_key,
                raw_props,
                body,
            };
            rec.messages.entry(queue).or_default().insert(id, msg);
        }
        Record::Remove { queue, id } => {
            if let Some(m) = rec.messages.get_mut(&queue) {
                m.remove(&id);
            }
        }
    }
}

fn snapshot(rec: &Recovered) -> Vec<Record> {
    let mut out = Vec::new();
    for (name, (kind, auto_delete, internal, arguments)) in &rec.exchanges {
        out.push(Record::DeclareExchange {
            name: name.clone(),
            kind: kind.clone(),
            auto_delete: *auto_delete,
            internal: *internal,
            arguments: arguments.clone(),
        });
    }
    for (name, (auto_delete, arguments)) in &rec.queues {
        out.push(Record::DeclareQueue {
            name: name.clone(),
            auto_delete: *auto_delete,
            arguments: arguments.clone(),
        });
    }
    for (exchange, queue, routing_key, arguments, to_exchange) in &rec.bindings {
        out.push(Record::Bind {
            exchange: exchange.clone(),
            queue: queue.clone(),
            to_exchange: *to_exchange,
            routing_key: routing_key.clone(),
            arguments: arguments.clone(),
        });
    }
    for (queue, msgs) in &rec.messages {
        for (id, m) in msgs {
            out.push(Record::Publish {
                queue: queue.clone(),
                id: *id,
                exchange: m.exchange.clone(),
                routing_key: m.routing_key.clone(),
                raw_props: m.raw_props.clone(),
                body: m.body.clone(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::protocol::basic::AMQPProperties;

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
