//! A virtual host: the exchange and queue tables, the durable-store hooks, and
//! [`VHost::settle`], which finishes what queue operations hand back (store
//! removals, dead letters, new deadlines). Declares (`declare.rs`, `equivalence.rs`),
//! routing (`routing.rs`), dead-lettering (`dead_letter.rs`) and expiry
//! (`expiry.rs`) have their own files.

use crate::deadline::Deadlines;
use crate::error::AmqpError;
use crate::exchange::{Exchange, ExchangeKind, ExchangeOptions};
use crate::memory::Gauge;
use crate::message::QueuedMessage;
use crate::queue::{Fallout, Queue};
use crate::reply_to::ReplyRegistry;
use crate::stats::counters::MessageCounters;
use crate::stats::rpc::RpcCalls;
use crate::store::{Record, Store};
use amq_protocol::types::FieldTable;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use tokio::sync::Notify;

mod dead_letter;
mod declare;
mod equivalence;
mod expiry;
mod routing;

pub(crate) use routing::Confirm;

/// Exchanges pre-declared in every vhost, as in RabbitMQ.
const DEFAULT_EXCHANGES: &[(&str, ExchangeKind)] = &[
    ("", ExchangeKind::Direct),
    ("amq.direct", ExchangeKind::Direct),
    ("amq.fanout", ExchangeKind::Fanout),
    ("amq.topic", ExchangeKind::Topic),
    ("amq.headers", ExchangeKind::Headers),
    ("amq.match", ExchangeKind::Headers),
];

/// Parameters of a queue declaration.
#[derive(Debug, Clone)]
pub(crate) struct QueueDecl {
    /// Requested name ("" for server-named).
    pub(crate) name: String,
    /// Passive (check only).
    pub(crate) passive: bool,
    /// Durable.
    pub(crate) durable: bool,
    /// Exclusive to the declaring connection.
    pub(crate) exclusive: bool,
    /// Auto-delete.
    pub(crate) auto_delete: bool,
    /// Arguments.
    pub(crate) arguments: FieldTable,
}

/// Parameters of an exchange declaration.
#[derive(Debug, Clone)]
pub(crate) struct ExchangeDecl {
    /// Name.
    pub(crate) name: String,
    /// Type name.
    pub(crate) kind: String,
    /// Passive.
    pub(crate) passive: bool,
    /// Durable.
    pub(crate) durable: bool,
    /// Auto-delete.
    pub(crate) auto_delete: bool,
    /// Internal.
    pub(crate) internal: bool,
    /// Arguments.
    pub(crate) arguments: FieldTable,
}

/// A virtual host.
#[derive(Debug)]
pub(crate) struct VHost {
    /// The vhost name.
    pub(crate) name: String,
    exchanges: RwLock<HashMap<String, Arc<Exchange>>>,
    queues: RwLock<HashMap<String, Arc<Queue>>>,
    /// Direct reply-to consumers.
    pub(crate) reply_to: ReplyRegistry,
    /// The durable store, if enabled.
    pub(crate) store: Option<Arc<Store>>,
    /// Bytes held by messages, and the memory alarm.
    pub(crate) memory: Arc<Gauge>,
    /// Queues by their next deadline (message TTL, `x-expires`).
    deadlines: Mutex<Deadlines<String>>,
    /// Wakes the expiry task when a deadline earlier than all others is added.
    deadline_added: Notify,
    /// Message counters (see [`crate::stats`]).
    pub(crate) stats: MessageCounters,
    /// Set when the vhost is deleted: its expiry task ends.
    deleted: AtomicBool,
    /// Requests and replies seen, timed per request queue.
    pub(crate) rpc: RpcCalls,
}

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    match l.read() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// The default exchange takes no declare, delete or bind (403, as RabbitMQ).
fn refuse_default_exchange(name: &str) -> Result<(), AmqpError> {
    if name.is_empty() {
        return Err(AmqpError::access_refused(
            "operation not permitted on the default exchange",
        ));
    }
    Ok(())
}

/// 405 for someone else's exclusive queue (or a change of exclusivity).
fn locked_queue(name: &str, vhost: &str) -> AmqpError {
    AmqpError::resource_locked(format!(
        "cannot obtain exclusive access to locked queue '{name}' in vhost '{vhost}'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration."
    ))
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    match l.write() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl VHost {
    /// A vhost with the default exchanges.
    pub(crate) fn new(name: String, store: Option<Arc<Store>>, memory: Arc<Gauge>) -> Arc<Self> {
        let mut exchanges = HashMap::new();
        let durable = ExchangeOptions {
            durable: true,
            ..ExchangeOptions::default()
        };
        for (n, k) in DEFAULT_EXCHANGES {
            exchanges.insert(
                (*n).to_owned(),
                Arc::new(Exchange::new(
                    (*n).to_owned(),
                    *k,
                    durable,
                    FieldTable::default(),
                )),
            );
        }
        Arc::new(VHost {
            name,
            exchanges: RwLock::new(exchanges),
            queues: RwLock::new(HashMap::new()),
            reply_to: ReplyRegistry::default(),
            store,
            memory,
            deadlines: Mutex::new(Deadlines::default()),
            deadline_added: Notify::new(),
            stats: MessageCounters::default(),
            deleted: AtomicBool::new(false),
            rpc: RpcCalls::default(),
        })
    }

    /// The vhost was deleted: stop its expiry task.
    pub(crate) fn shut_down(&self) {
        self.deleted.store(true, Ordering::Release);
        self.deadline_added.notify_one();
    }

    /// Whether [`VHost::shut_down`] was called.
    fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    fn log(&self, rec: Record) {
        if let Some(s) = &self.store {
            s.append(rec);
        }
    }

    /// Finish what a queue operation dropped: remove its messages that left for
    /// good from the store, and dead-letter those that died (or forget them, when
    /// the queue has no dead-letter exchange).
    pub(crate) fn settle(&self, q: &Arc<Queue>, fallout: Fallout) {
        if fallout.is_empty() {
            return;
        }
        if let Some(at) = fallout.wake_at {
            self.schedule(&q.name, at);
        }
        for id in fallout.forgotten {
            self.store_remove(&q.name, id);
        }
        for (m, reason) in fallout.dead {
            match &q.args.dlx {
                Some(dlx) => self.dead_letter(q, dlx, m, reason),
                None => self.forget(q, &m),
            }
        }
    }

    /// A message left `q` for good (acked, or dropped): remove it from the store.
    pub(crate) fn forget(&self, q: &Queue, m: &QueuedMessage) {
        if let Some(id) = m.store_id {
            self.store_remove(&q.name, id);
        }
    }

    /// Remove a persisted message from the store.
    fn store_remove(&self, queue: &str, id: u64) {
        self.log(Record::Remove {
            queue: queue.to_owned(),
            id,
        });
    }

    /// Every queue (for stats snapshots).
    pub(crate) fn all_queues(&self) -> Vec<Arc<Queue>> {
        read(&self.queues).values().cloned().collect()
    }

    /// Every exchange (for stats snapshots).
    pub(crate) fn all_exchanges(&self) -> Vec<Arc<Exchange>> {
        read(&self.exchanges).values().cloned().collect()
    }

    /// Look up an exchange.
    pub(crate) fn exchange(&self, name: &str) -> Option<Arc<Exchange>> {
        read(&self.exchanges).get(name).cloned()
    }

    fn no_exchange(&self, name: &str) -> AmqpError {
        AmqpError::not_found(format!("no exchange '{name}' in vhost '{}'", self.name))
    }

    fn no_queue(&self, name: &str) -> AmqpError {
        AmqpError::not_found(format!("no queue '{name}' in vhost '{}'", self.name))
    }

    /// Look up a queue, enforcing exclusivity (404 / 405).
    pub(crate) fn queue(&self, name: &str, conn_id: u64) -> Result<Arc<Queue>, AmqpError> {
        let q = read(&self.queues)
            .get(name)
            .cloned()
            .ok_or_else(|| self.no_queue(name))?;
        if let Some(owner) = q.owner {
            if owner != conn_id {
                return Err(locked_queue(name, &self.name));
            }
        }
        Ok(q)
    }
}
