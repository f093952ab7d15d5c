//! Events from below (deliveries, direct replies, cancel notices, confirms), and
//! the connection's cleanup: deliveries that found no consumer go back to their
//! queues in order.

use super::Conn;
use crate::error::{AmqpError, ReplyCode};
use crate::event::ConnEvent;
use crate::queue::Delivery;

impl Conn {
    pub(super) fn handle_event(&mut self, ev: ConnEvent) {
        if let ConnEvent::Close(reason) = ev {
            tracing::info!(conn = self.id, %reason, "closing connection on request");
            self.close_connection(AmqpError::new(ReplyCode::ConnectionForced, reason));
            return;
        }
        let notify = self.cancel_notify;
        let (channels, mut ctx) = self.split();
        match ev {
            ConnEvent::Deliver(Delivery {
                channel,
                consumer_tag,
                queue,
                msg,
            }) => match channels.get_mut(&channel) {
                Some(ch) => ch.deliver(&mut ctx, consumer_tag, queue, msg),
                None => ctx.unsent.push((queue, msg)),
            },
            ConnEvent::DirectReply {
                channel,
                consumer_tag,
                msg,
            } => {
                if let Some(ch) = channels.get_mut(&channel) {
                    ch.deliver_reply(&mut ctx, consumer_tag, msg);
                }
            }
            ConnEvent::ConsumerCancelled {
                channel,
                consumer_tag,
            } => {
                if let Some(ch) = channels.get_mut(&channel) {
                    ch.consumer_cancelled(&mut ctx, consumer_tag, notify);
                }
            }
            ConnEvent::Confirm { channel, seq, ack } => {
                if let Some(ch) = channels.get_mut(&channel) {
                    ch.confirm_ready(&mut ctx, seq, ack);
                }
            }
            ConnEvent::Describe(reply) => {
                let mut list: Vec<_> = channels.values().map(|c| c.describe()).collect();
                list.sort_by_key(|c| c.number);
                let _ = reply.send(list);
            }
            // Taken above, before the split.
            ConnEvent::Close(_) => {}
        }
    }

    /// Put deliveries that never reached a consumer back on their queues.
    pub(super) fn unsend_all(&mut self) {
        let unsent = std::mem::take(&mut self.unsent);
        for (q, fallout) in crate::queue::unsend_all(unsent) {
            self.vhost.settle(&q, fallout);
        }
    }

    /// Release all resources: channels, exclusive queues, in-flight deliveries.
    pub(super) fn cleanup(&mut self) {
        self.release_channels();
        self.vhost.delete_exclusive(self.id);
        self.events_rx.close();
        while let Ok(ev) = self.events_rx.try_recv() {
            if let ConnEvent::Deliver(Delivery { queue, msg, .. }) = ev {
                self.unsent.push((queue, msg));
            }
        }
        self.unsend_all();
        self.out.take();
    }
}
