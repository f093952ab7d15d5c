//! Routing: bindings (queue and exchange-to-exchange) and publishing a message to
//! the queues it routes to, with its store records and its confirm.

use super::{read, refuse_default_exchange, VHost};
use crate::error::{AmqpError, ReplyCode};
use crate::exchange::{Dest, Exchange};
use crate::message::{value_as_str, Message};
use crate::queue::Queue;
use crate::store::{ConfirmTo, Record};
use amq_protocol::types::FieldTable;
use std::sync::Arc;

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

impl VHost {
    /// queue.bind.
    pub(crate) fn bind(
        &self,
        conn_id: u64,
        queue: &str,
        exchange: &str,
        routing_key: &str,
        arguments: FieldTable,
    ) -> Result<(), AmqpError> {
        refuse_default_exchange(exchange)?;
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
        refuse_default_exchange(destination)?;
        refuse_default_exchange(source)?;
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
        refuse_default_exchange(exchange)?;
        // Like RabbitMQ 3.x, unbinding something that does not exist is a no-op.
        let q = match self.queue(queue, conn_id) {
            Ok(q) => q,
            Err(e) if e.code == ReplyCode::NotFound => return Ok(()),
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
        // Decide every queue first and log the records before any queue takes the
        // message: once queued it may be delivered (no-ack), dropped or dead-lettered at
        // once, and the `Remove` record that follows must come after its `Publish` in
        // the log, or the message would come back after a restart.
        let mut records = Vec::new();
        let mut refused = false;
        let mut takers = Vec::with_capacity(queues.len());
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
            takers.push((q, store_id));
        }
        let answer = match &self.store {
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
        };
        for (q, store_id) in takers {
            q.stats.enqueued();
            let fallout = q.enqueue(msg.clone(), store_id);
            self.settle(q, fallout);
        }
        answer
    }
}
