//! Per-channel state and method handling: publish assembly (method, header
//! and body frames), consumers, unacked deliveries, qos, confirms and the
//! queue/exchange management methods.

use crate::error::AmqpError;
use crate::event::Inbox;
use crate::frame::Out;
use crate::message::{random_token, short, Message, QueuedMessage};
use crate::queue::{Consumer, Credit, Got, Queue};
use crate::reply_to::REPLY_TO;
use crate::store::ConfirmSink;
use crate::vhost::VHost;
use amq_protocol::protocol::basic::AMQPProperties;
use amq_protocol::protocol::{basic, confirm, AMQPClass};
use bytes::{Bytes, BytesMut};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

mod manage;
mod publish;
mod tx;

/// Deliveries a no-ack consumer may have in flight between its queue and
/// its connection's writer.
const NO_ACK_WINDOW: u16 = 512;

/// Connection-wide context a channel needs while handling a frame.
pub(crate) struct ConnCtx<'a> {
    /// Connection id.
    pub(crate) conn_id: u64,
    /// The vhost.
    pub(crate) vhost: &'a Arc<VHost>,
    /// This connection's event sink (for consumers).
    pub(crate) tx: &'a Inbox,
    /// Where this connection's publisher confirms go (the same inbox).
    pub(crate) confirms: &'a Arc<dyn ConfirmSink>,
    /// Outgoing frame batch.
    pub(crate) out: &'a mut Out,
    /// Maximum body size we accept.
    pub(crate) max_body: u64,
    /// The authenticated user name.
    pub(crate) user: &'a str,
    /// Deliveries for consumers that are gone, to put back in order.
    pub(crate) unsent: &'a mut Vec<(Arc<Queue>, QueuedMessage)>,
}

#[derive(Debug)]
struct Unacked {
    queue: Arc<Queue>,
    msg: QueuedMessage,
    credit: Option<Arc<Credit>>,
}

#[derive(Debug)]
struct ChanConsumer {
    queue: Arc<Queue>,
    no_ack: bool,
    credit: Arc<Credit>,
}

#[derive(Debug)]
struct Pending {
    exchange: String,
    routing_key: String,
    mandatory: bool,
    header: Option<(AMQPProperties, Bytes, u64)>,
    body: BytesMut,
}

#[derive(Debug)]
struct ReplyConsumer {
    tag: Arc<str>,
    token: String,
}

/// State of one open channel.
#[derive(Debug)]
pub(crate) struct Channel {
    id: u16,
    /// We sent channel.close and await close-ok.
    pub(crate) closing: bool,
    next_tag: u64,
    unacked: BTreeMap<u64, Unacked>,
    consumers: HashMap<Arc<str>, ChanConsumer>,
    prefetch: u16,
    global_credit: Option<Arc<Credit>>,
    confirm: bool,
    next_seq: u64,
    pending: Option<Pending>,
    reply: Option<ReplyConsumer>,
    last_queue: Option<String>,
    /// Pending work of a transactional channel (tx.select).
    tx: Option<tx::Tx>,
}

impl Channel {
    /// A freshly opened channel.
    pub(crate) fn new(id: u16) -> Self {
        Self {
            id,
            closing: false,
            next_tag: 0,
            unacked: BTreeMap::new(),
            consumers: HashMap::new(),
            prefetch: 0,
            global_credit: None,
            confirm: false,
            next_seq: 0,
            pending: None,
            reply: None,
            last_queue: None,
            tx: None,
        }
    }

    fn tag(&mut self) -> u64 {
        self.next_tag += 1;
        self.next_tag
    }

    /// Release everything the channel holds: cancel consumers (auto-deleting
    /// queues as needed), requeue unacked messages, drop reply-to.
    pub(crate) fn release(&mut self, ctx: &mut ConnCtx<'_>) {
        self.pending = None;
        self.rollback_acks();
        if let Some(r) = self.reply.take() {
            ctx.vhost.reply_to.unregister(&r.token);
        }
        for (tag, c) in self.consumers.drain() {
            if c.queue.remove_consumer(ctx.conn_id, self.id, &tag) {
                ctx.vhost.remove_queue(&c.queue);
            }
        }
        let unacked = std::mem::take(&mut self.unacked);
        requeue_grouped(ctx.vhost, unacked.into_values().collect());
    }

    /// Handle a method frame addressed to this channel (not channel.*).
    pub(crate) fn handle_method(
        &mut self,
        ctx: &mut ConnCtx<'_>,
        class: AMQPClass,
    ) -> Result<(), AmqpError> {
        if self.pending.is_some() {
            return Err(AmqpError::unexpected_frame(
                "expected content header/body, got a method frame",
            ));
        }
        match class {
            AMQPClass::Basic(m) => self.basic(ctx, m),
            AMQPClass::Queue(m) => self.queue(ctx, m),
            AMQPClass::Exchange(m) => self.exchange(ctx, m),
            AMQPClass::Confirm(confirm::AMQPMethod::Select(s)) => {
                if self.tx.is_some() {
                    return Err(AmqpError::precondition(
                        "cannot switch from tx to confirm mode",
                    ));
                }
                self.confirm = true;
                if !s.nowait {
                    ctx.out.method(
                        self.id,
                        AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(confirm::SelectOk {})),
                    );
                }
                Ok(())
            }
            AMQPClass::Tx(m) => self.tx_method(ctx, m),
            _ => Err(AmqpError::command_invalid("unexpected method on channel")),
        }
    }

    fn basic(&mut self, ctx: &mut ConnCtx<'_>, m: basic::AMQPMethod) -> Result<(), AmqpError> {
        use basic::AMQPMethod as B;
        match m {
            B::Publish(p) => {
                if p.immediate {
                    return Err(AmqpError::not_implemented("immediate=true"));
                }
                self.pending = Some(Pending {
                    exchange: p.exchange.to_string(),
                    routing_key: p.routing_key.to_string(),
                    mandatory: p.mandatory,
                    header: None,
                    body: BytesMut::new(),
                });
                Ok(())
            }
            B::Qos(q) => {
                if q.global {
                    match &self.global_credit {
                        Some(c) => c.set_limit(q.prefetch_count),
                        None => self.global_credit = Some(Arc::new(Credit::new(q.prefetch_count))),
                    }
                } else {
                    self.prefetch = q.prefetch_count;
                }
                ctx.out
                    .method(self.id, AMQPClass::Basic(B::QosOk(basic::QosOk {})));
                self.kick(ctx.vhost);
                Ok(())
            }
            B::Consume(c) => self.consume(ctx, c),
            B::Cancel(c) => {
                let tag: &str = c.consumer_tag.as_str();
                if self.reply.as_ref().is_some_and(|r| &*r.tag == tag) {
                    if let Some(r) = self.reply.take() {
                        ctx.vhost.reply_to.unregister(&r.token);
                    }
                } else if let Some(cons) = self.consumers.remove(tag) {
                    if cons.queue.remove_consumer(ctx.conn_id, self.id, tag) {
                        ctx.vhost.remove_queue(&cons.queue);
                    }
                }
                if !c.nowait {
                    ctx.out.method(
                        self.id,
                        AMQPClass::Basic(B::CancelOk(basic::CancelOk {
                            consumer_tag: c.consumer_tag,
                        })),
                    );
                }
                Ok(())
            }
            B::Get(g) => {
                let name = self.queue_name(g.queue.as_str())?;
                let q = ctx.vhost.queue(&name, ctx.conn_id)?;
                let (got, fallout) = q.get();
                ctx.vhost.settle(&q, fallout);
                match got {
                    Some(Got { msg, remaining }) => {
                        let tag = self.tag();
                        let method = AMQPClass::Basic(B::GetOk(basic::GetOk {
                            delivery_tag: tag,
                            redelivered: msg.redelivered,
                            exchange: short(msg.msg.exchange.as_str()),
                            routing_key: short(msg.msg.routing_key.as_str()),
                            message_count: remaining,
                        }));
                        ctx.out
                            .content(self.id, method, &msg.msg.raw_props, &msg.msg.body);
                        if g.no_ack {
                            ctx.vhost.forget(&q, &msg);
                        } else {
                            self.unacked.insert(
                                tag,
                                Unacked {
                                    queue: q,
                                    msg,
                                    credit: None,
                                },
                            );
                        }
                    }
                    None => ctx
                        .out
                        .method(self.id, AMQPClass::Basic(B::GetEmpty(basic::GetEmpty {}))),
                }
                Ok(())
            }
            B::Ack(a) => {
                let taken = self.take_unacked(a.delivery_tag, a.multiple)?;
                self.settle(ctx.vhost, taken, tx::Settle::Ack);
                Ok(())
            }
            B::Nack(n) => {
                let taken = self.take_unacked(n.delivery_tag, n.multiple)?;
                self.settle(ctx.vhost, taken, tx::Settle::Reject { requeue: n.requeue });
                Ok(())
            }
            B::Reject(r) => {
                let taken = self.take_unacked(r.delivery_tag, false)?;
                self.settle(ctx.vhost, taken, tx::Settle::Reject { requeue: r.requeue });
                Ok(())
            }
            B::Recover(basic::Recover { requeue: false })
            | B::RecoverAsync(basic::RecoverAsync { requeue: false }) => {
                // As RabbitMQ: redelivery to the same consumer is not supported.
                Err(AmqpError::not_implemented("requeue=false"))
            }
            B::Recover(_) | B::RecoverAsync(_) => {
                let unacked = std::mem::take(&mut self.unacked);
                requeue_grouped(ctx.vhost, unacked.into_values().collect());
                if matches!(m, B::Recover(_)) {
                    ctx.out
                        .method(self.id, AMQPClass::Basic(B::RecoverOk(basic::RecoverOk {})));
                }
                Ok(())
            }
            _ => Err(AmqpError::command_invalid(
                "method not allowed from a client",
            )),
        }
    }

    /// Ask every queue this channel consumes from to deliver more.
    fn kick(&self, vhost: &VHost) {
        for c in self.consumers.values() {
            let fallout = c.queue.dispatch();
            vhost.settle(&c.queue, fallout);
        }
    }

    fn take_unacked(&mut self, tag: u64, multiple: bool) -> Result<Vec<(u64, Unacked)>, AmqpError> {
        if multiple {
            let keep = if tag == 0 {
                BTreeMap::new()
            } else {
                self.unacked.split_off(&(tag + 1))
            };
            let taken = std::mem::replace(&mut self.unacked, keep);
            if tag != 0 && taken.is_empty() {
                return Err(AmqpError::precondition(format!(
                    "unknown delivery tag {tag}"
                )));
            }
            Ok(taken.into_iter().collect())
        } else {
            match self.unacked.remove(&tag) {
                Some(u) => Ok(vec![(tag, u)]),
                None => Err(AmqpError::precondition(format!(
                    "unknown delivery tag {tag}"
                ))),
            }
        }
    }

    fn queue_name(&self, name: &str) -> Result<String, AmqpError> {
        if !name.is_empty() {
            return Ok(name.to_owned());
        }
        self.last_queue
            .clone()
            .ok_or_else(|| AmqpError::not_found("no previously declared queue"))
    }

    fn consume(&mut self, ctx: &mut ConnCtx<'_>, c: basic::Consume) -> Result<(), AmqpError> {
        let tag: Arc<str> = if c.consumer_tag.as_str().is_empty() {
            Arc::from(format!("amq.ctag-{}", random_token(22)))
        } else {
            Arc::from(c.consumer_tag.as_str())
        };
        if self.consumers.contains_key(&tag) || self.reply.as_ref().is_some_and(|r| r.tag == tag) {
            return Err(AmqpError::not_allowed(format!(
                "attempt to reuse consumer tag '{tag}'"
            )));
        }
        if c.queue.as_str() == REPLY_TO {
            if !c.no_ack {
                return Err(AmqpError::precondition("reply consumer cannot acknowledge"));
            }
            if self.reply.is_some() {
                return Err(AmqpError::precondition("reply consumer already set"));
            }
            let token = ctx
                .vhost
                .reply_to
                .register(ctx.tx.clone(), self.id, tag.clone());
            self.reply = Some(ReplyConsumer {
                tag: tag.clone(),
                token,
            });
            if !c.nowait {
                self.consume_ok(ctx, &tag);
            }
            return Ok(());
        }
        let name = self.queue_name(c.queue.as_str())?;
        let q = ctx.vhost.queue(&name, ctx.conn_id)?;
        let credit = match (&self.global_credit, c.no_ack) {
            // Prefetch does not apply to no-ack consumers; they get a window of
            // deliveries in flight to the connection instead (backpressure).
            (_, true) => Arc::new(Credit::new(NO_ACK_WINDOW)),
            (Some(g), false) => g.clone(),
            (None, false) => Arc::new(Credit::new(self.prefetch)),
        };
        let consumer = Consumer {
            tag: tag.clone(),
            conn_id: ctx.conn_id,
            channel: self.id,
            sink: Arc::new(ctx.tx.clone()),
            exclusive: c.exclusive,
            credit: credit.clone(),
            priority: c
                .arguments
                .inner()
                .get("x-priority")
                .and_then(crate::message::value_as_i64)
                .unwrap_or(0),
        };
        // Deliveries triggered here travel through the connection's event
        // queue, so they are written after this consume-ok.
        let fallout = q.add_consumer(consumer)?;
        ctx.vhost.settle(&q, fallout);
        if !c.nowait {
            self.consume_ok(ctx, &tag);
        }
        self.consumers.insert(
            tag,
            ChanConsumer {
                queue: q,
                no_ack: c.no_ack,
                credit,
            },
        );
        Ok(())
    }

    fn consume_ok(&mut self, ctx: &mut ConnCtx<'_>, tag: &str) {
        ctx.out.method(
            self.id,
            AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(basic::ConsumeOk {
                consumer_tag: short(tag),
            })),
        );
    }

    /// A queue handed us a message for one of our consumers.
    pub(crate) fn deliver(
        &mut self,
        ctx: &mut ConnCtx<'_>,
        consumer_tag: Arc<str>,
        queue: Arc<Queue>,
        msg: QueuedMessage,
    ) {
        let Some(c) = self
            .consumers
            .get(&consumer_tag)
            .filter(|c| Arc::ptr_eq(&c.queue, &queue))
        else {
            ctx.unsent.push((queue, msg));
            return;
        };
        if self.closing {
            ctx.unsent.push((queue, msg));
            return;
        }
        let no_ack = c.no_ack;
        let credit = c.credit.clone();
        let tag = self.tag();
        let method = AMQPClass::Basic(basic::AMQPMethod::Deliver(basic::Deliver {
            consumer_tag: short(&*consumer_tag),
            delivery_tag: tag,
            redelivered: msg.redelivered,
            exchange: short(msg.msg.exchange.as_str()),
            routing_key: short(msg.msg.routing_key.as_str()),
        }));
        ctx.out
            .content(self.id, method, &msg.msg.raw_props, &msg.msg.body);
        if no_ack {
            ctx.vhost.forget(&queue, &msg);
            if credit.release_one() {
                let fallout = queue.dispatch();
                ctx.vhost.settle(&queue, fallout);
            }
        } else {
            self.unacked.insert(
                tag,
                Unacked {
                    queue,
                    msg,
                    credit: Some(credit),
                },
            );
        }
    }

    /// A direct reply-to message for our reply consumer.
    pub(crate) fn deliver_reply(
        &mut self,
        ctx: &mut ConnCtx<'_>,
        consumer_tag: Arc<str>,
        msg: Arc<Message>,
    ) {
        if self.closing || self.reply.as_ref().is_none_or(|r| r.tag != consumer_tag) {
            return;
        }
        let tag = self.tag();
        let method = AMQPClass::Basic(basic::AMQPMethod::Deliver(basic::Deliver {
            consumer_tag: short(&*consumer_tag),
            delivery_tag: tag,
            redelivered: false,
            exchange: short(msg.exchange.as_str()),
            routing_key: short(msg.routing_key.as_str()),
        }));
        ctx.out.content(self.id, method, &msg.raw_props, &msg.body);
    }

    /// Our consumer's queue was deleted: drop it and notify the client.
    pub(crate) fn consumer_cancelled(
        &mut self,
        ctx: &mut ConnCtx<'_>,
        consumer_tag: Arc<str>,
        notify: bool,
    ) {
        if self.consumers.remove(&consumer_tag).is_some() && notify && !self.closing {
            ctx.out.method(
                self.id,
                AMQPClass::Basic(basic::AMQPMethod::Cancel(basic::Cancel {
                    consumer_tag: short(&*consumer_tag),
                    nowait: true,
                })),
            );
        }
    }
}

/// Requeue unacked messages to their queues, keeping delivery order.
fn requeue_grouped(vhost: &VHost, list: Vec<Unacked>) {
    let mut groups: Vec<(Arc<Queue>, Vec<QueuedMessage>)> = Vec::new();
    for u in list {
        if let Some(c) = &u.credit {
            c.release(1);
        }
        match groups.iter_mut().find(|(q, _)| Arc::ptr_eq(q, &u.queue)) {
            Some((_, v)) => v.push(u.msg),
            None => groups.push((u.queue, vec![u.msg])),
        }
    }
    for (q, msgs) in groups {
        let fallout = q.requeue(msgs);
        vhost.settle(&q, fallout);
    }
}
