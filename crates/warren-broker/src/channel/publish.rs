//! Publishing: assembling basic.publish + content header + body frames,
//! direct reply-to rewriting, routing, mandatory returns and publisher
//! confirms.

use super::{Channel, ConnCtx};
use crate::error::{AmqpError, ReplyCode};
use crate::frame::Out;
use crate::message::{encode_props, short, with_reply_to, Message};
use crate::queue::Queue;
use crate::reply_to::{REPLY_TO, REPLY_TO_PREFIX};
use crate::store::ConfirmTo;
use crate::vhost::Confirm;
use amq_protocol::protocol::basic::AMQPProperties;
use amq_protocol::protocol::{basic, AMQPClass};
use bytes::{Bytes, BytesMut};
use std::sync::Arc;

/// A body that arrives in one frame of at least this size is kept as the slice of
/// the read buffer it came in, not copied. Smaller ones are copied: a slice keeps
/// its whole buffer (16 KiB or more) allocated for as long as the message is held.
const SLICE_MIN: usize = 32 * 1024;

impl Channel {
    /// Handle a content header frame.
    pub(crate) fn handle_header(
        &mut self,
        ctx: &mut ConnCtx<'_>,
        class_id: u16,
        body_size: u64,
        props: AMQPProperties,
        raw_props: Bytes,
    ) -> Result<(), AmqpError> {
        let Some(p) = self.pending.as_mut() else {
            return Err(AmqpError::unexpected_frame(
                "content header without basic.publish",
            ));
        };
        if p.header.is_some() {
            return Err(AmqpError::unexpected_frame("duplicate content header"));
        }
        if class_id != 60 {
            return Err(AmqpError::unexpected_frame(format!(
                "expected content header for class 60, got one for class {class_id} instead"
            ))
            .with_method(60, 40));
        }
        if body_size > ctx.max_body {
            // RabbitMQ: a channel error; the rest of the content is discarded
            // with the closing channel.
            return Err(AmqpError::precondition(format!(
                "message size {body_size} is larger than configured max size {}",
                ctx.max_body
            ))
            .with_method(60, 40));
        }
        p.header = Some((props, raw_props, body_size));
        if body_size == 0 {
            return self.finish_publish(ctx);
        }
        Ok(())
    }

    /// Handle a content body frame.
    pub(crate) fn handle_body(
        &mut self,
        ctx: &mut ConnCtx<'_>,
        data: Bytes,
    ) -> Result<(), AmqpError> {
        let Some(p) = self.pending.as_mut() else {
            return Err(AmqpError::unexpected_frame(
                "content body without basic.publish",
            ));
        };
        let Some((_, _, size)) = &p.header else {
            return Err(AmqpError::unexpected_frame(
                "content body before content header",
            ));
        };
        let size = *size;
        if p.body.len() as u64 + data.len() as u64 > size {
            return Err(AmqpError::frame_error(
                "content body exceeds announced size",
            ));
        }
        if p.body.is_empty() {
            if data.len() as u64 == size {
                // The whole body in one frame: a large one stays the slice of the read
                // buffer it arrived in (which it fills most of), a small one is copied
                // so that it does not keep a whole read buffer alive while queued.
                p.whole = Some(if data.len() >= SLICE_MIN {
                    data
                } else {
                    Bytes::copy_from_slice(&data)
                });
                return self.finish_publish(ctx);
            }
            // All of it at once (`max_body` bounds it): growing by doubling would copy
            // a large body several times and leave the process up to twice its size
            // (pages are only committed as the body arrives).
            p.body.reserve(size as usize);
        }
        if p.body.capacity() - p.body.len() < data.len() {
            // Grow by doubling, but never past the announced size: BytesMut's own
            // growth would leave up to half of a large body's buffer unused for as
            // long as the message is held.
            let len = p.body.len();
            let room = (size as usize - len).min(len.max(1 << 20));
            let mut grown = BytesMut::with_capacity(len + room.max(data.len()));
            grown.extend_from_slice(&p.body);
            p.body = grown;
        }
        p.body.extend_from_slice(&data);
        if p.body.len() as u64 == size {
            return self.finish_publish(ctx);
        }
        Ok(())
    }

    fn finish_publish(&mut self, ctx: &mut ConnCtx<'_>) -> Result<(), AmqpError> {
        let Some(p) = self.pending.take() else {
            return Ok(());
        };
        let Some((props, raw_props, _)) = p.header else {
            return Ok(());
        };
        let pub_ids = (60, 40);
        if let Some(exp) = props.expiration() {
            if exp.as_str().parse::<u64>().is_err() {
                return Err(AmqpError::precondition(format!(
                    "invalid expiration '{}' for message",
                    exp.as_str()
                ))
                .with_method(pub_ids.0, pub_ids.1));
            }
        }
        if let Some(uid) = props.user_id() {
            if uid.as_str() != ctx.grant.user() {
                return Err(AmqpError::precondition(format!(
                    "user_id property set to '{}' but authenticated user was '{}'",
                    uid.as_str(),
                    ctx.grant.user()
                ))
                .with_method(pub_ids.0, pub_ids.1));
            }
        }
        let body = p.whole.unwrap_or_else(|| p.body.freeze());
        let (props, raw_props) = if props.reply_to().as_ref().map(|r| r.as_str()) == Some(REPLY_TO)
        {
            let Some(r) = &self.reply else {
                return Err(
                    AmqpError::precondition("fast reply consumer does not exist")
                        .with_method(pub_ids.0, pub_ids.1),
                );
            };
            let reply_to = short(format!("{REPLY_TO_PREFIX}{}", r.token));
            // The publisher's bytes with only the address changed: no copy of the
            // headers table, no encoding of the rest.
            let raw = with_reply_to(&raw_props, reply_to.as_str());
            let props = props.with_reply_to(reply_to);
            let raw = raw.unwrap_or_else(|| encode_props(&props));
            (props, raw)
        } else {
            (props, raw_props)
        };
        let msg = Message::new(p.exchange, p.routing_key, props, raw_props, body)
            .charged_to(&ctx.vhost.memory);
        let seq = if self.confirm {
            self.next_seq += 1;
            Some(self.next_seq)
        } else {
            None
        };
        let msg = Arc::new(msg);
        if msg.exchange.is_empty() && msg.routing_key.starts_with(REPLY_TO_PREFIX) {
            track_rpc(ctx, &msg, None);
            let delivered = ctx.vhost.reply_to.deliver(&msg.routing_key, msg.clone());
            if !delivered && p.mandatory {
                self.basic_return(ctx, &msg);
            }
            if let Some(seq) = seq {
                self.ack_publish(ctx, seq);
            }
            return Ok(());
        }
        let queues = ctx
            .vhost
            .route(
                &msg.exchange,
                &msg.routing_key,
                msg.props.headers().as_ref(),
            )
            .map_err(|e| e.with_method(pub_ids.0, pub_ids.1))?;
        track_rpc(ctx, &msg, queues.first().map(|q| q.name.as_str()));
        if let Some(tx) = self.tx.as_mut() {
            tx.publishes.push((msg, queues, p.mandatory));
            return Ok(());
        }
        self.deliver_routed(ctx, msg, queues, p.mandatory, seq);
        Ok(())
    }

    /// Enqueue a routed message (or return it), then confirm it.
    pub(super) fn deliver_routed(
        &mut self,
        ctx: &mut ConnCtx<'_>,
        msg: Arc<Message>,
        queues: Vec<Arc<Queue>>,
        mandatory: bool,
        seq: Option<u64>,
    ) {
        ctx.vhost
            .stats
            .published(queues.len(), mandatory && queues.is_empty());
        if queues.is_empty() {
            if mandatory {
                self.basic_return(ctx, &msg);
            }
            if let Some(seq) = seq {
                self.ack_publish(ctx, seq);
            }
            return;
        }
        let confirm = seq.map(|seq| ConfirmTo {
            sink: ctx.confirms.clone(),
            channel: self.id,
            seq,
        });
        match (ctx.vhost.enqueue(&queues, msg, confirm), seq) {
            (Confirm::Ack, Some(seq)) => self.ack_publish(ctx, seq),
            (Confirm::Nack, Some(seq)) => self.nack_publish(ctx, seq),
            (Confirm::Store, Some(seq)) => self.confirms.wait_for_store(seq),
            _ => {}
        }
    }

    fn nack_publish(&mut self, ctx: &mut ConnCtx<'_>, seq: u64) {
        // The acks ready before this nack go first.
        self.write_confirms(ctx.out);
        ctx.out.method(
            self.id,
            AMQPClass::Basic(basic::AMQPMethod::Nack(basic::Nack {
                delivery_tag: seq,
                multiple: false,
                requeue: false,
            })),
        );
    }

    /// Ack a publish at the end of this batch (coalesced with the others ready).
    fn ack_publish(&mut self, ctx: &mut ConnCtx<'_>, seq: u64) {
        ctx.vhost.stats.confirmed();
        self.confirms.ack(seq);
        *ctx.confirms_due = true;
    }

    /// Write the acks that are ready (at a batch's end, or before a nack or a close).
    pub(crate) fn write_confirms(&mut self, out: &mut Out) {
        if self.confirms.has_ready() {
            self.confirms.write(self.id, out);
        }
    }

    fn basic_return(&self, ctx: &mut ConnCtx<'_>, msg: &Message) {
        let method = AMQPClass::Basic(basic::AMQPMethod::Return(basic::Return {
            reply_code: ReplyCode::NoRoute.code(),
            reply_text: short("NO_ROUTE"),
            exchange: short(msg.exchange.as_str()),
            routing_key: short(msg.routing_key.as_str()),
        }));
        ctx.out.content(self.id, method, &msg.raw_props, &msg.body);
    }

    /// A publisher confirm became ready: after fsync (`ack`), or after the store
    /// failed to write the message (basic.nack).
    pub(crate) fn confirm_ready(&mut self, ctx: &mut ConnCtx<'_>, seq: u64, ack: bool) {
        if self.closing {
            self.confirms.store_answered(seq);
            return;
        }
        if ack {
            self.confirms.store_answered(seq);
            self.ack_publish(ctx, seq);
        } else {
            // Still waiting while the acks ready before it are written, so that no
            // `multiple` ack among them covers the publish being nacked.
            self.nack_publish(ctx, seq);
            self.confirms.store_answered(seq);
        }
    }
}

/// Show a publish that carries a `correlation_id` to the vhost's RPC timer (a
/// request when it has a `reply_to` and routed to `queue`, or a reply).
fn track_rpc(ctx: &ConnCtx<'_>, msg: &Message, queue: Option<&str>) {
    if let Some(cid) = msg.props.correlation_id() {
        ctx.vhost.rpc.publish(
            &msg.exchange,
            &msg.routing_key,
            cid.as_str(),
            msg.props.reply_to().as_ref().map(|r| r.as_str()),
            queue,
        );
    }
}
