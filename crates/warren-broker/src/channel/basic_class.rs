//! The basic class apart from publishing: consume / cancel, get, ack / nack /
//! reject, recover, qos.

use super::tx;
use super::{
    requeue_grouped, ChanConsumer, Channel, ConnCtx, Pending, ReplyConsumer, Unacked, NO_ACK_WINDOW,
};
use crate::access::grant::Kind;
use crate::error::AmqpError;
use crate::message::{random_token, short};
use crate::queue::{Consumer, Credit, Got, Taken};
use crate::reply_to::REPLY_TO;
use crate::vhost::VHost;
use amq_protocol::protocol::{basic, AMQPClass};
use bytes::BytesMut;
use std::collections::BTreeMap;
use std::sync::Arc;

impl Channel {
    pub(super) fn basic(
        &mut self,
        ctx: &mut ConnCtx<'_>,
        m: basic::AMQPMethod,
    ) -> Result<(), AmqpError> {
        use basic::AMQPMethod as B;
        match m {
            B::Publish(p) => {
                if p.immediate {
                    return Err(AmqpError::not_implemented("immediate=true"));
                }
                ctx.grant.write(Kind::Exchange, p.exchange.as_str())?;
                self.pending = Some(Pending {
                    exchange: p.exchange.to_string(),
                    routing_key: p.routing_key.to_string(),
                    mandatory: p.mandatory,
                    header: None,
                    body: BytesMut::new(),
                    whole: None,
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
                ctx.grant.read(Kind::Queue, &name)?;
                let q = ctx.vhost.queue(&name, ctx.conn_id)?;
                let Taken { got, fallout } = q.get();
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
                        ctx.vhost.stats.got(g.no_ack, msg.redelivered);
                        q.stats.messages.got(g.no_ack, msg.redelivered);
                        if g.no_ack {
                            ctx.vhost.forget(&q, &msg);
                        } else {
                            self.unacked.insert(
                                tag,
                                Unacked {
                                    _held: q.stats.hold(),
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
                ctx.vhost.stats.acked(taken.len());
                for (_, u) in &taken {
                    u.queue.stats.messages.acked(1);
                }
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
    pub(super) fn kick(&self, vhost: &VHost) {
        for c in self.consumers.values() {
            let fallout = c.queue.dispatch();
            vhost.settle(&c.queue, fallout);
        }
    }

    pub(super) fn take_unacked(
        &mut self,
        tag: u64,
        multiple: bool,
    ) -> Result<Vec<(u64, Unacked)>, AmqpError> {
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
        ctx.grant.read(Kind::Queue, &name)?;
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
}
