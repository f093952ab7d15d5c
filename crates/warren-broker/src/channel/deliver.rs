//! What reaches a channel from its queues: deliveries to its consumers, direct
//! replies, cancel notices; and requeueing what it held when it lets go.

use super::{Channel, ConnCtx, Unacked};
use crate::message::{short, Message, QueuedMessage};
use crate::queue::Queue;
use crate::vhost::VHost;
use amq_protocol::protocol::{basic, AMQPClass};
use std::sync::Arc;

impl Channel {
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
        let m = &msg.msg;
        ctx.out.deliver(
            self.id,
            &consumer_tag,
            tag,
            msg.redelivered,
            &m.exchange,
            &m.routing_key,
            &m.raw_props,
            &m.body,
        );
        ctx.vhost.stats.delivered(no_ack, msg.redelivered);
        queue.stats.messages.delivered(no_ack, msg.redelivered);
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
                    _held: queue.stats.hold(),
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
        ctx.out.deliver(
            self.id,
            &consumer_tag,
            tag,
            false,
            &msg.exchange,
            &msg.routing_key,
            &msg.raw_props,
            &msg.body,
        );
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
pub(super) fn requeue_grouped(vhost: &VHost, list: Vec<Unacked>) {
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
