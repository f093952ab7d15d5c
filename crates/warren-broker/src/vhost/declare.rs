//! Declare rules: exchange and queue declare, redeclare (the equivalence checks),
//! delete, and the recovered durable ones, with the store records they log.

use super::equivalence::{check_exchange, check_queue};
use super::{read, refuse_default_exchange, write, ExchangeDecl, QueueDecl, VHost};
use crate::error::{AmqpError, ReplyCode};
use crate::exchange::{Exchange, ExchangeKind, ExchangeOptions};
use crate::queue::{Counts, Queue, QueueArgs, QueueOptions};
use crate::store::Record;
use amq_protocol::types::FieldTable;
use std::sync::Arc;
use std::time::Instant;

/// What queue.declare found or made.
#[derive(Debug)]
pub(crate) struct Declared {
    /// The queue.
    pub(crate) queue: Arc<Queue>,
    /// Its counts, for declare-ok.
    pub(crate) counts: Counts,
}

impl VHost {
    /// exchange.declare.
    pub(crate) fn declare_exchange(&self, d: ExchangeDecl) -> Result<(), AmqpError> {
        refuse_default_exchange(&d.name)?;
        let kind = ExchangeKind::parse(&d.kind);
        if let Some(x) = self.exchange(&d.name) {
            if d.passive {
                return Ok(());
            }
            check_exchange(&x, &d, kind, &self.name)?;
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
        refuse_default_exchange(name)?;
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
                check_queue(&q, &d, &self.name)?;
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
        if let Some(at) = q.first_deadline(Instant::now()) {
            self.schedule(&name, at);
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
        write(&self.queues).insert(name.clone(), q.clone());
        if let Some(at) = q.first_deadline(Instant::now()) {
            self.schedule(&name, at);
        }
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
            Err(e) if e.code == ReplyCode::NotFound => return Ok(0),
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
}
