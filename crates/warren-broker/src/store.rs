//! The durable store: an append-only log of length + CRC32 framed records
//! (declares, bindings, persistent publishes, removals), written by one
//! background thread that groups fsyncs across publishers. On open the log
//! is replayed (a torn final record is discarded) and compacted.

use crate::connection::ConnEvent;
use crate::error::BrokerError;
use crate::message::Message;
use amq_protocol::frame::WriteContext;
use amq_protocol::protocol::basic::parse_properties;
use amq_protocol::types::generation::gen_field_table;
use amq_protocol::types::parsing::parse_field_table;
use amq_protocol::types::FieldTable;
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use tokio::sync::mpsc::UnboundedSender;

const LOG_FILE: &str = "warren.log";

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
    Write(Vec<u8>),
    Sync(UnboundedSender<ConnEvent>, ConnEvent),
    Flush(mpsc::SyncSender<()>),
}

/// Handle to the store writer thread.
#[derive(Debug)]
pub(crate) struct Store {
    tx: Mutex<mpsc::Sender<Cmd>>,
    next_id: AtomicU64,
}

/// What was recovered from the log.
#[derive(Debug, Default)]
pub(crate) struct Recovered {
    /// Exchanges: name -> (kind, auto_delete, internal, args).
    pub(crate) exchanges: BTreeMap<String, (String, bool, bool, FieldTable)>,
    /// Queues: name -> (auto_delete, args).
    pub(crate) queues: BTreeMap<String, (bool, FieldTable)>,
    /// Bindings: (exchange, destination, key, args, destination is an exchange).
    pub(crate) bindings: Vec<(String, String, String, FieldTable, bool)>,
    /// Messages per queue, in id order.
    pub(crate) messages: HashMap<String, BTreeMap<u64, Message>>,
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
        std::fs::create_dir_all(dir)?;
        let path = dir.join(LOG_FILE);
        let mut data = Vec::new();
        if path.exists() {
            File::open(&path)?.read_to_end(&mut data)?;
        }
        let (records, _good) = decode_all(&data);
        let mut rec = Recovered::default();
        let mut max_id = 0;
        for r in records {
            apply(&mut rec, r, &mut max_id);
        }
        // Compact: rewrite the live state to a new file and rename it over.
        let tmp = dir.join(format!("{LOG_FILE}.tmp"));
        {
            let mut f = File::create(&tmp)?;
            let mut buf = Vec::new();
            for r in snapshot(&rec) {
                encode_record(&r, &mut buf);
            }
            f.write_all(&buf)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        let file = OpenOptions::new().append(true).open(&path)?;
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("warren-store".into())
            .spawn(move || writer(file, rx, path))?;
        Ok((
            Arc::new(Store {
                tx: Mutex::new(tx),
                next_id: AtomicU64::new(max_id + 1),
            }),
            rec,
        ))
    }

    fn send(&self, cmd: Cmd) {
        let tx = match self.tx.lock() {
            Ok(t) => t,
            Err(p) => p.into_inner(),
        };
        if tx.send(cmd).is_err() {
            tracing::error!("store writer is gone");
        }
    }

    /// Append a record (written promptly, fsynced with the next sync).
    pub(crate) fn append(&self, rec: Record) {
        let mut buf = Vec::new();
        encode_record(&rec, &mut buf);
        self.send(Cmd::Write(buf));
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

    /// Block until everything appended so far is fsynced.
    pub(crate) fn flush(&self) {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Cmd::Flush(tx));
        let _ = rx.recv_timeout(std::time::Duration::from_secs(10));
    }
}

fn writer(mut file: File, rx: mpsc::Receiver<Cmd>, path: PathBuf) {
    let mut buf = Vec::with_capacity(1 << 16);
    let mut waiters = Vec::new();
    let mut flushers = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(cmd) = next.take() {
            match cmd {
                Cmd::Write(b) => buf.extend_from_slice(&b),
                Cmd::Sync(tx, ev) => waiters.push((tx, ev)),
                Cmd::Flush(tx) => flushers.push(tx),
            }
            if buf.len() < (4 << 20) {
                next = rx.try_recv().ok();
            }
        }
        if !buf.is_empty() {
            if let Err(e) = file.write_all(&buf) {
                tracing::error!(error = %e, path = %path.display(), "store write failed");
            }
            buf.clear();
        }
        if !waiters.is_empty() || !flushers.is_empty() {
            if let Err(e) = file.sync_data() {
                tracing::error!(error = %e, "store fsync failed");
            }
            for (tx, ev) in waiters.drain(..) {
                let _ = tx.send(ev);
            }
            for f in flushers.drain(..) {
                let _ = f.send(());
            }
        }
    }
    let _ = file.sync_data();
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
            let Ok((_, props)) = parse_properties(&raw_props[..]) else {
                return;
            };
            let msg = Message::new(exchange, routing_key, props, raw_props, body);
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

// ---- encoding ----

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

fn put_table(out: &mut Vec<u8>, t: &FieldTable) {
    let ctx = WriteContext::from(Vec::new());
    let bytes = match gen_field_table(t)(ctx) {
        Ok(c) => c.into_inner().0,
        Err(_) => {
            // An empty table: 4-byte zero length.
            vec![0, 0, 0, 0]
        }
    };
    put_bytes(out, &bytes);
}

/// Encode one record with its length + CRC32 frame.
pub(crate) fn encode_record(r: &Record, out: &mut Vec<u8>) {
    let mut p = Vec::new();
    match r {
        Record::DeclareExchange {
            name,
            kind,
            auto_delete,
            internal,
            arguments,
        } => {
            p.push(1);
            put_bytes(&mut p, name.as_bytes());
            put_bytes(&mut p, kind.as_bytes());
            p.push(u8::from(*auto_delete));
            p.push(u8::from(*internal));
            put_table(&mut p, arguments);
        }
        Record::DeleteExchange { name } => {
            p.push(2);
            put_bytes(&mut p, name.as_bytes());
        }
        Record::DeclareQueue {
            name,
            auto_delete,
            arguments,
        } => {
            p.push(3);
            put_bytes(&mut p, name.as_bytes());
            p.push(u8::from(*auto_delete));
            put_table(&mut p, arguments);
        }
        Record::DeleteQueue { name } => {
            p.push(4);
            put_bytes(&mut p, name.as_bytes());
        }
        Record::Bind {
            exchange,
            queue,
            to_exchange,
            routing_key,
            arguments,
        }
        | Record::Unbind {
            exchange,
            queue,
            to_exchange,
            routing_key,
            arguments,
        } => {
            p.push(if matches!(r, Record::Bind { .. }) {
                5
            } else {
                6
            });
            put_bytes(&mut p, exchange.as_bytes());
            put_bytes(&mut p, queue.as_bytes());
            put_bytes(&mut p, routing_key.as_bytes());
            put_table(&mut p, arguments);
            p.push(u8::from(*to_exchange));
        }
        Record::Publish {
            queue,
            id,
            exchange,
            routing_key,
            raw_props,
            body,
        } => {
            p.push(7);
            put_bytes(&mut p, queue.as_bytes());
            p.extend_from_slice(&id.to_be_bytes());
            put_bytes(&mut p, exchange.as_bytes());
            put_bytes(&mut p, routing_key.as_bytes());
            put_bytes(&mut p, raw_props);
            put_bytes(&mut p, body);
        }
        Record::Remove { queue, id } => {
            p.push(8);
            put_bytes(&mut p, queue.as_bytes());
            p.extend_from_slice(&id.to_be_bytes());
        }
    }
    out.extend_from_slice(&(p.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32(&p).to_be_bytes());
    out.extend_from_slice(&p);
}

struct Cursor<'a> {
    data: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.data.split_first()?;
        self.data = rest;
        Some(b)
    }
    fn u64(&mut self) -> Option<u64> {
        let b = self.data.get(..8)?;
        let v = u64::from_be_bytes(b.try_into().ok()?);
        self.data = &self.data[8..];
        Some(v)
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let l = self.data.get(..4)?;
        let len = u32::from_be_bytes(l.try_into().ok()?) as usize;
        let b = self.data.get(4..4 + len)?;
        self.data = &self.data[4 + len..];
        Some(b)
    }
    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }
    fn table(&mut self) -> Option<FieldTable> {
        let b = self.bytes()?;
        parse_field_table(b).ok().map(|(_, t)| t)
    }
}

fn decode_record(p: &[u8]) -> Option<Record> {
    let mut c = Cursor { data: p };
    let r = match c.u8()? {
        1 => Record::DeclareExchange {
            name: c.string()?,
            kind: c.string()?,
            auto_delete: c.u8()? != 0,
            internal: c.u8()? != 0,
            arguments: c.table()?,
        },
        2 => Record::DeleteExchange { name: c.string()? },
        3 => Record::DeclareQueue {
            name: c.string()?,
            auto_delete: c.u8()? != 0,
            arguments: c.table()?,
        },
        4 => Record::DeleteQueue { name: c.string()? },
        t @ (5 | 6) => {
            let exchange = c.string()?;
            let queue = c.string()?;
            let routing_key = c.string()?;
            let arguments = c.table()?;
            let to_exchange = c.u8()? != 0;
            if t == 5 {
                Record::Bind {
                    exchange,
                    queue,
                    to_exchange,
                    routing_key,
                    arguments,
                }
            } else {
                Record::Unbind {
                    exchange,
                    queue,
                    to_exchange,
                    routing_key,
                    arguments,
                }
            }
        }
        7 => Record::Publish {
            queue: c.string()?,
            id: c.u64()?,
            exchange: c.string()?,
            routing_key: c.string()?,
            raw_props: Bytes::copy_from_slice(c.bytes()?),
            body: Bytes::copy_from_slice(c.bytes()?),
        },
        8 => Record::Remove {
            queue: c.string()?,
            id: c.u64()?,
        },
        _ => return None,
    };
    Some(r)
}

/// Decode records until the end or the first torn/corrupt one. Returns the
/// records and the length of the valid prefix.
pub(crate) fn decode_all(data: &[u8]) -> (Vec<Record>, usize) {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 8 <= data.len() {
        let len =
            u32::from_be_bytes([data[pos], data[pos + 1], data[pos + 2], data[pos + 3]]) as usize;
        let crc = u32::from_be_bytes([data[pos + 4], data[pos + 5], data[pos + 6], data[pos + 7]]);
        let Some(p) = data.get(pos + 8..pos + 8 + len) else {
            break;
        };
        if crc32(p) != crc {
            break;
        }
        match decode_record(p) {
            Some(r) => out.push(r),
            None => break,
        }
        pos += 8 + len;
    }
    (out, pos)
}

/// CRC-32 (IEEE 802.3, reflected, poly 0xEDB88320).
pub(crate) fn crc32(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, slot) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *slot = c;
        }
        t
    });
    let mut crc = !0u32;
    for &b in data {
        crc = table[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_known_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn torn_tail_is_ignored() {
        let mut buf = Vec::new();
        encode_record(&Record::DeleteQueue { name: "a".into() }, &mut buf);
        let good = buf.len();
        encode_record(&Record::DeleteQueue { name: "b".into() }, &mut buf);
        buf.truncate(buf.len() - 1);
        let (recs, len) = decode_all(&buf);
        assert_eq!(recs.len(), 1);
        assert_eq!(len, good);
    }
}
