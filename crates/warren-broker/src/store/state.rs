//! The log's records, and the durable state (exchanges, queues, bindings,
//! messages) they rebuild when applied in order.

use amq_protocol::types::FieldTable;
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};

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

/// The encoded size of a Publish record for `m` on `queue`.
pub(super) fn stored_size(queue: &str, m: &StoredMessage) -> u64 {
    let payload = 1
        + (4 + queue.len())
        + 8
        + (4 + m.exchange.len())
        + (4 + m.routing_key.len())
        + (4 + m.raw_props.len())
        + (4 + m.body.len());
    (8 + payload) as u64
}

pub(super) fn apply(rec: &mut Recovered, r: Record, max_id: &mut u64) {
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

pub(super) fn snapshot(rec: &Recovered) -> Vec<Record> {
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
