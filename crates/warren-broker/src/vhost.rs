//! A virtual host: the exchange, queue and binding tables, routing of
//! published messages, dead-lettering and the durable-store hooks.

use crate::error::AmqpError;
use crate::exchange::{Dest, Exchange, ExchangeKind, ExchangeOptions};
use crate::memory::Gauge;
use crate::message::{value_as_str, Message, QueuedMessage};
use crate::queue::{Counts, Fallout, Queue, QueueArgs, QueueOptions};
use crate::reply_to::ReplyRegistry;
use crate::store::{ConfirmTo, Record, Store};
use amq_protocol::types::FieldTable;
use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

mod dead_letter;

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
}

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    match l.read() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
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
        })
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

    /// exchange.declare.
    pub(crate) fn declare_exchange(&self, d: ExchangeDecl) -> Result<(), AmqpError> {
        if d.name.is_empty() {
            return Err(AmqpError::access_refused(
                "operation not permitted on the default exchange",
            ));
        }
        let kind = ExchangeKind::parse(&d.kind);
        if let Some(x) = self.exchange(&d.name) {
            if d.passive {
                return Ok(());
            }
            if Some(x.kind) != kind {
                return Err(AmqpError::precondition(format!(
                    "inequivalent arg 'type' for exchange '{}' in vhost '{}': received '{}' but current is '{}'",
                    d.name, self.name, d.kind, x.kind.name()
                )));
            }
            if x.durable != d.durable {
                return Err(AmqpError::precondition(format!(
                    "inequivalent arg 'durable' for exchange '{}' in vhost '{}': received '{}' but current is '{}'",
                    d.name, self.name, d.durable, x.durable
                )));
            }
            if x.auto_delete != d.auto_delete {
                return Err(AmqpError::precondition(format!(
                    "inequivalent arg 'auto_delete' for exchange '{}' in vhost '{}': received '{}' but current is '{}'",
                    d.name, self.name, d.auto_delete, x.auto_delete
                )));
            }
            if x.internal != d.internal {
                return Err(AmqpError::precondition(format!(
                    "inequivalent arg 'internal' for exchange '{}' in vhost '{}': received '{}' but current is '{}'",
                    d.name, self.name, d.internal, x.internal
                )));
            }
            if x.arguments != d.arguments {
                let key = d
                    .arguments
                    .inner()
                    .keys()
                    .chain(x.arguments.inner().keys())
                    .find(|k| {
                        d.arguments.inner().get(k.as_str()) != x.arguments.inner().get(k.as_str())
                    })
                    .map(|k| k.as_str().to_owned())
                    .unwrap_or_default();
                return Err(AmqpError::precondition(format!(
                    "inequivalent arg '{key}' for exchange '{}' in vhost '{}'",
                    d.name, self.name
                )));
            }
            return Ok(());
        }
        if d.passive {
            return Err(self.no_exchange(&d.name));
        }
        let Some(kind) = kind else {
            return Err(AmqpError::command_invalid(format!(
                "invalid exchange type '{}'",
                d.kind
            )));
        };
        if d.name.starts_with("amq.") {
            return Err(AmqpError::access_refused(format!(
                "exchange name '{}' contains reserved prefix 'amq.*'",
                d.name
            )));
        }
        let options = ExchangeOptions {
            durable: d.durable,
            auto_delete: d.auto_delete,
            internal: d.internal,
        };
        let x = Arc::new(Exchange::new(
            d.name.clone(),
            kind,
            options,
            d.arguments.clone(),
        ));
        let mut map = write(&self.exchanges);
        if map.contains_key(&d.name) {
            return Ok(());
        }
        map.insert(d.name.clone(), x);
        drop(map);
        if d.durable {
            self.log(Record::DeclareExchange {
                name: d.name,
                kind: kind.name().to_owned(),
                auto_delete: d.auto_delete,
                internal: d.internal,
                arguments: d.arguments,
            });
        }
        Ok(())
    }

    /// exchange.delete.
    pub(crate) fn delete_exchange(&self, name: &str, if_unused: bool) -> Result<(), AmqpError> {
        if name.is_empty() {
            return Err(AmqpError::access_refused(
                "operation not permitted on the default exchange",
            ));
        }
        if name.starts_with("amq.") {
            return Err(AmqpError::access_refused(format!(
                "deletion of system exchange '{name}' in vhost '{}'",
                self.name
            )));
        }
        let mut map = write(&self.exchanges);
        let Some(x) = map.get(name).cloned() else {
            return Ok(());
        };
        if if_unused && x.binding_count() > 0 {
            return Err(AmqpError::precondition(format!(
                "exchange '{name}' in vhost '{}' in use",
                self.name
            )));
        }
        map.remove(name);
        let others: Vec<Arc<Exchange>> = map.values().cloned().collect();
        drop(map);
        for o in others {
            o.unbind_exchange(name);
        }
        if x.durable {
            self.log(Record::DeleteExchange {
                name: name.to_owned(),
            });
        }
        Ok(())
    }

    /// Look up a queue, enforcing exclusivity (404 / 405).
    pub(crate) fn queue(&self, name: &str, conn_id: u64) -> Result<Arc<Queue>, AmqpError> {
        let q = read(&self.queues)
            .get(name)
            .cloned()
            .ok_or_else(|| self.no_queue(name))?;
        if let Some(owner) = q.owner {
            if owner != conn_id {
                return Err(AmqpError::resource_locked(format!(
                    "cannot obtain exclusive access to locked queue '{name}' in vhost '{}'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.",
                    self.name
                )));
            }
        }
        Ok(q)
    }

    /// queue.declare.
    pub(crate) fn declare_queue(&self, conn_id: u64, d: QueueDecl) -> Result<Declared, AmqpError> {
        let name = if d.name.is_empty() {
            format!("amq.gen-{}", crate::message::random_token(22))
        } else {
            d.name.clone()
        };
        if name == crate::reply_to::REPLY_TO && d.passive {
            // RabbitMQ lets clients check the direct reply-to pseudo-queue.
            let queue = Arc::new(Queue::new(
                name,
                QueueOptions::default(),
                FieldTable::default(),
                QueueArgs::default(),
            ));
            return Ok(Declared {
                queue,
                counts: Counts::default(),
            });
        }
        if let Ok(q) = self.queue(&name, conn_id) {
            if !d.passive {
                check_equivalent(&q, &d, &self.name)?;
            }
            q.touch();
            let counts = q.counts();
            return Ok(Declared { queue: q, counts });
        }
        // Propagate 405 for someone else's exclusive queue.
        if read(&self.queues).contains_key(&name) {
            self.queue(&name, conn_id)?;
        }
        if d.passive {
            return Err(self.no_queue(&name));
        }
        if name.starts_with("amq.") && !d.name.is_empty() {
            return Err(AmqpError::access_refused(format!(
                "queue name '{name}' contains reserved prefix 'amq.*'"
            )));
        }
        let args = QueueArgs::parse(&d.arguments).map_err(|mut e| {
            e.text = e.text.replacen(
                "for queue:",
                &format!("for queue '{name}' in vhost '{}':", self.name),
                1,
            );
            e
        })?;
        let options = QueueOptions {
            durable: d.durable,
            owner: d.exclusive.then_some(conn_id),
            auto_delete: d.auto_delete,
        };
        let q = Arc::new(Queue::new(name.clone(), options, d.arguments.clone(), args));
        {
            let mut map = write(&self.queues);
            if let Some(existing) = map.get(&name) {
                return Ok(Declared {
                    queue: existing.clone(),
                    counts: existing.counts(),
                });
            }
            map.insert(name.clone(), q.clone());
        }
        if d.durable && !d.exclusive {
            self.log(Record::DeclareQueue {
                name: name.clone(),
                auto_delete: d.auto_delete,
                arguments: d.arguments,
            });
        }
        Ok(Declared {
            queue: q,
            counts: Counts::default(),
        })
    }

    /// Insert a recovered durable queue.
    pub(crate) fn recover_queue(
        &self,
        name: String,
        auto_delete: bool,
        arguments: FieldTable,
    ) -> Arc<Queue> {
        let args = QueueArgs::parse(&arguments).unwrap_or_default();
        let options = QueueOptions {
            durable: true,
            owner: None,
            auto_delete,
        };
        let q = Arc::new(Queue::new(name.clone(), options, arguments, args));
        write(&self.queues).insert(name, q.clone());
        q
    }

    /// Insert a recovered durable exchange.
    pub(crate) fn recover_exchange(
        &self,
        name: String,
        kind: &str,
        auto_delete: bool,
        internal: bool,
        arguments: FieldTable,
    ) {
        if let Some(kind) = ExchangeKind::parse(kind) {
            let options = ExchangeOptions {
                durable: true,
                auto_delete,
                internal,
            };
            let x = Exchange::new(name.clone(), kind, options, arguments);
            write(&self.exchanges).insert(name, Arc::new(x));
        }
    }

    /// queue.bind.
    pub(crate) fn bind(
        &self,
        conn_id: u64,
        queue: &str,
        exchange: &str,
        routing_key: &str,
        arguments: FieldTable,
    ) -> Result<(), AmqpError> {
        if exchange.is_empty() {
            return Err(AmqpError::access_refused(
                "operation not permitted on the default exchange",
            ));
        }
        let q = self.queue(queue, conn_id)?;
        let x = self
            .exchange(exchange)
            .ok_or_else(|| self.no_exchange(exchange))?;
        let added = x.bind(Dest::Queue(q.clone()), routing_key, arguments.clone());
        if added && q.durable && x.durable && q.owner.is_none() {
            self.log(Record::Bind {
                exchange: exchange.to_owned(),
                queue: queue.to_owned(),
                to_exchange: false,
                routing_key: routing_key.to_owned(),
                arguments,
            });
        }
        Ok(())
    }

    /// exchange.bind / exchange.unbind (`bind` = false unbinds).
    pub(crate) fn bind_exchange(
        &self,
        destination: &str,
        source: &str,
        routing_key: &str,
        arguments: FieldTable,
        bind: bool,
    ) -> Result<(), AmqpError> {
        if destination.is_empty() || source.is_empty() {
            return Err(AmqpError::access_refused(
                "operation not permitted on the default exchange",
            ));
        }
        let dst = self
            .exchange(destination)
            .ok_or_else(|| self.no_exchange(destination))?;
        let src = self
            .exchange(source)
            .ok_or_else(|| self.no_exchange(source))?;
        let dest = Dest::Exchange(destination.to_owned());
        let changed = if bind {
            src.bind(dest, routing_key, arguments.clone())
        } else {
            src.unbind(&dest, routing_key, &arguments)
        };
        if changed && src.durable && dst.durable {
            let (exchange, queue, routing_key) = (
                source.to_owned(),
                destination.to_owned(),
                routing_key.to_owned(),
            );
            self.log(if bind {
                Record::Bind {
                    exchange,
                    queue,
                    to_exchange: true,
                    routing_key,
                    arguments,
                }
            } else {
                Record::Unbind {
                    exchange,
                    queue,
                    to_exchange: true,
                    routing_key,
                    arguments,
                }
            });
        }
        Ok(())
    }

    /// queue.unbind.
    pub(crate) fn unbind(
        &self,
        conn_id: u64,
        queue: &str,
        exchange: &str,
        routing_key: &str,
        arguments: FieldTable,
    ) -> Result<(), AmqpError> {
        if exchange.is_empty() {
            return Err(AmqpError::access_refused(
                "operation not permitted on the default exchange",
            ));
        }
        // Like RabbitMQ 3.x, unbinding something that does not exist is a no-op.
        let q = match self.queue(queue, conn_id) {
            Ok(q) => q,
            Err(e) if e.code == crate::error::ReplyCode::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let Some(x) = self.exchange(exchange) else {
            return Ok(());
        };
        let removed = x.unbind(&Dest::Queue(q.clone()), routing_key, &arguments);
        if removed && q.durable && x.durable {
            self.log(Record::Unbind {
                exchange: exchange.to_owned(),
                queue: queue.to_owned(),
                to_exchange: false,
                routing_key: routing_key.to_owned(),
                arguments,
            });
        }
        if x.auto_delete && x.binding_count() == 0 {
            let _ = self.delete_exchange(exchange, false);
        }
        Ok(())
    }

    /// queue.delete by name (406 for if-unused / if-empty violations).
    pub(crate) fn delete_queue(
        &self,
        conn_id: u64,
        name: &str,
        if_unused: bool,
        if_empty: bool,
    ) -> Result<u32, AmqpError> {
        let q = match self.queue(name, conn_id) {
            Ok(q) => q,
            Err(e) if e.code == crate::error::ReplyCode::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let Counts {
            messages: m,
            consumers: c,
        } = q.counts();
        if if_unused && c > 0 {
            return Err(AmqpError::precondition(format!(
                "queue '{name}' in vhost '{}' in use",
                self.name
            )));
        }
        if if_empty && m > 0 {
            return Err(AmqpError::precondition(format!(
                "queue '{name}' in vhost '{}' is not empty",
                self.name
            )));
        }
        Ok(self.remove_queue(&q))
    }

    /// Delete a queue: unbind it everywhere, notify its consumers.
    pub(crate) fn remove_queue(&self, q: &Arc<Queue>) -> u32 {
        {
            let mut map = write(&self.queues);
            if map.get(&q.name).is_some_and(|x| Arc::ptr_eq(x, q)) {
                map.remove(&q.name);
            }
        }
        let exchanges: Vec<Arc<Exchange>> = read(&self.exchanges).values().cloned().collect();
        for x in exchanges {
            let had = x.binding_count();
            x.unbind_queue(q);
            if x.auto_delete && had > 0 && x.binding_count() == 0 {
                let _ = self.delete_exchange(&x.name, false);
            }
        }
        let deleted = q.mark_deleted();
        self.settle(q, deleted.fallout);
        for c in deleted.consumers {
            c.sink.cancelled(c.channel, c.tag.clone());
        }
        let count = deleted.messages;
        if q.durable && q.owner.is_none() {
            self.log(Record::DeleteQueue {
                name: q.name.clone(),
            });
        }
        count
    }

    /// Delete all exclusive queues owned by a connection.
    pub(crate) fn delete_exclusive(&self, conn_id: u64) {
        let owned: Vec<Arc<Queue>> = read(&self.queues)
            .values()
            .filter(|q| q.owner == Some(conn_id))
            .cloned()
            .collect();
        for q in owned {
            self.remove_queue(&q);
        }
    }

    /// Find the queues a message routes to. 404 if the exchange does not
    /// exist, 403 if it is internal.
    pub(crate) fn route(
        &self,
        exchange: &str,
        routing_key: &str,
        headers: Option<&FieldTable>,
    ) -> Result<Vec<Arc<Queue>>, AmqpError> {
        let mut out = Vec::new();
        if exchange.is_empty() {
            if let Some(q) = read(&self.queues).get(routing_key) {
                out.push(q.clone());
            }
            return Ok(out);
        }
        let x = self
            .exchange(exchange)
            .ok_or_else(|| self.no_exchange(exchange))?;
        if x.internal {
            return Err(AmqpError::access_refused(format!(
                "cannot publish to internal exchange '{exchange}' in vhost '{}'",
                self.name
            )));
        }
        let mut visited = Vec::new();
        let mut current = Some(x);
        while let Some(x) = current.take() {
            self.route_from(&x, routing_key, headers, &mut out, &mut visited);
            if !out.is_empty() {
                break;
            }
            // Unroutable: try the exchange's alternate-exchange, if any.
            current = x
                .arguments
                .inner()
                .get("alternate-exchange")
                .and_then(value_as_str)
                .filter(|ae| !visited.contains(ae))
                .and_then(|ae| self.exchange(&ae));
        }
        Ok(out)
    }

    /// Route through `x` and, transitively, the exchanges bound to it
    /// (each exchange visited once).
    fn route_from(
        &self,
        x: &Arc<Exchange>,
        routing_key: &str,
        headers: Option<&FieldTable>,
        out: &mut Vec<Arc<Queue>>,
        visited: &mut Vec<String>,
    ) {
        let mut pending = Vec::new();
        visited.push(x.name.clone());
        x.route(routing_key, headers, out, &mut pending);
        while let Some(name) = pending.pop() {
            if visited.contains(&name) {
                continue;
            }
            if let Some(x) = self.exchange(&name) {
                x.route(routing_key, headers, out, &mut pending);
            }
            visited.push(name);
        }
    }

    /// Enqueue a routed message on each queue, persisting it on durable
    /// queues when it is persistent, and say how its publisher's `confirm` (if any)
    /// is answered. With [`Confirm::Store`] the store answers it once the records are
    /// fsynced.
    ///
    /// While the store cannot write, a durable queue refuses a persistent message
    /// whose publisher waits for a `confirm` (it is nacked at once); without a confirm
    /// the message is kept in memory and logged as best the store can.
    pub(crate) fn enqueue(
        &self,
        queues: &[Arc<Queue>],
        msg: Arc<Message>,
        confirm: Option<ConfirmTo>,
    ) -> Confirm {
        let mut records = Vec::new();
        let mut refused = false;
        for q in queues {
            if q.refuses_new() {
                refused = true;
                continue;
            }
            let store_id = match &self.store {
                Some(store) if q.durable && q.owner.is_none() && msg.is_persistent() => {
                    if confirm.is_some() && !store.writable() {
                        refused = true;
                        continue;
                    }
                    let (id, rec) = store.publish_record(&q.name, &msg);
                    records.push(rec);
                    Some(id)
                }
                _ => None,
            };
            let fallout = q.enqueue(msg.clone(), store_id);
            self.settle(q, fallout);
        }
        match &self.store {
            Some(store) if !records.is_empty() => {
                if refused {
                    store.log_publish(records, None);
                    Confirm::Nack
                } else {
                    store.log_publish(records, confirm);
                    Confirm::Store
                }
            }
            _ if refused => Confirm::Nack,
            _ => Confirm::Ack,
        }
    }

    /// Periodic work: message TTL expiry and queue expiry.
    pub(crate) fn tick(&self) {
        let now = Instant::now();
        let queues: Vec<Arc<Queue>> = read(&self.queues).values().cloned().collect();
        for q in queues {
            if !q.needs_tick() {
                continue;
            }
            let expired = q.expire(now);
            self.settle(&q, expired.fallout);
            if expired.queue_expired {
                tracing::debug!(queue = %q.name, "queue expired");
                self.remove_queue(&q);
            }
        }
    }
}

/// What queue.declare found or made.
#[derive(Debug)]
pub(crate) struct Declared {
    /// The queue.
    pub(crate) queue: Arc<Queue>,
    /// Its counts, for declare-ok.
    pub(crate) counts: Counts,
}

/// How a publish's `confirm` is answered, as [`VHost::enqueue`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Confirm {
    /// basic.ack now: nothing was written to the store.
    Ack,
    /// basic.nack now: a queue refused the message.
    Nack,
    /// The store answers once the message's records are fsynced (or fail).
    Store,
}

/// Check a redeclaration against the existing queue (406 on mismatch).
fn check_equivalent(q: &Queue, d: &QueueDecl, vhost: &str) -> Result<(), AmqpError> {
    let mismatch = |arg: &str, got: String, cur: String| {
        Err(AmqpError::precondition(format!(
            "inequivalent arg '{arg}' for queue '{}' in vhost '{vhost}': received '{got}' but current is '{cur}'",
            q.name
        )))
    };
    if q.durable != d.durable {
        return mismatch("durable", d.durable.to_string(), q.durable.to_string());
    }
    if q.owner.is_some() != d.exclusive {
        // RabbitMQ answers a change of exclusivity with 405, even to the owner.
        return Err(AmqpError::resource_locked(format!(
            "cannot obtain exclusive access to locked queue '{}' in vhost '{vhost}'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.",
            q.name
        )));
    }
    if q.auto_delete != d.auto_delete {
        return mismatch(
            "auto_delete",
            d.auto_delete.to_string(),
            q.auto_delete.to_string(),
        );
    }
    for key in [
        "x-message-ttl",
        "x-expires",
        "x-max-length",
        "x-max-length-bytes",
        "x-dead-letter-exchange",
        "x-dead-letter-routing-key",
        "x-max-priority",
        "x-single-active-consumer",
        "x-queue-type",
        "x-overflow",
    ] {
        let a = d.arguments.inner().get(key);
        let b = q.arguments.inner().get(key);
        let equal = match (a, b) {
            (None, None) => true,
            (Some(x), Some(y)) => {
                x == y
                    || matches!((crate::message::value_as_i64(x), crate::message::value_as_i64(y)), (Some(i), Some(j)) if i == j)
                    || matches!((value_as_str(x), value_as_str(y)), (Some(i), Some(j)) if i == j)
            }
            _ => false,
        };
        if !equal {
            return mismatch(key, format!("{a:?}"), format!("{b:?}"));
        }
    }
    Ok(())
}
