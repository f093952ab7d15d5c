//! Per-channel state and its method dispatch by class: the basic class
//! (`basic_class.rs`), publishing (`publish.rs`) with its confirms (`confirms.rs`),
//! what queues deliver (`deliver.rs`), the queue and exchange classes (`manage.rs`)
//! and transactions (`tx.rs`).

use crate::access::grant::Grant;
use crate::error::AmqpError;
use crate::event::Inbox;
use crate::frame::Out;
use crate::message::QueuedMessage;
use crate::queue::{Credit, Queue};
use crate::stats::counters::Held;
use crate::store::ConfirmSink;
use crate::vhost::VHost;
use amq_protocol::protocol::basic::AMQPProperties;
use amq_protocol::protocol::{confirm, AMQPClass};
use bytes::{Bytes, BytesMut};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

mod basic_class;
mod confirms;
mod deliver;
mod describe;
mod manage;
mod publish;
mod tx;

use deliver::requeue_grouped;

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
    /// The authenticated user and what it may do.
    pub(crate) grant: &'a Grant,
    /// Set when a channel has acks to write at the end of the batch.
    pub(crate) confirms_due: &'a mut bool,
    /// Deliveries for consumers that are gone, to put back in order.
    pub(crate) unsent: &'a mut Vec<(Arc<Queue>, QueuedMessage)>,
}

#[derive(Debug)]
struct Unacked {
    queue: Arc<Queue>,
    msg: QueuedMessage,
    credit: Option<Arc<Credit>>,
    /// Counts the message as its queue's unacknowledged while held.
    _held: Held,
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
    /// A body that came in frame by frame.
    body: BytesMut,
    /// A body that came in one frame.
    whole: Option<Bytes>,
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
    /// Publisher confirms in flight (confirm mode).
    confirms: confirms::Confirms,
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
            confirms: confirms::Confirms::default(),
            pending: None,
            reply: None,
            last_queue: None,
            tx: None,
        }
    }

    /// Whether a message's content is partly read: a basic.publish came, and its
    /// header or the rest of its body has not.
    pub(crate) fn receiving_content(&self) -> bool {
        self.pending.is_some()
    }

    fn tag(&mut self) -> u64 {
        self.next_tag += 1;
        self.next_tag
    }

    /// Release everything the channel holds: cancel consumers (auto-deleting
    /// queues as needed), requeue unacked messages, drop reply-to.
    pub(crate) fn release(&mut self, ctx: &mut ConnCtx<'_>) {
        if !self.closing {
            // Acks ready before the close go out before it.
            self.write_confirms(ctx.out);
        }
        self.confirms.clear();
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

    fn queue_name(&self, name: &str) -> Result<String, AmqpError> {
        if !name.is_empty() {
            return Ok(name.to_owned());
        }
        self.last_queue
            .clone()
            .ok_or_else(|| AmqpError::not_found("no previously declared queue"))
    }
}
