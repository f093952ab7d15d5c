//! Consumers as a queue sees them: who they are, their credit, and the sink their
//! deliveries go to. The queue names no connection: a consumer's owner supplies a
//! [`ConsumerSink`], and the queue hands it [`Delivery`] values.

use super::credit::Credit;
use super::Queue;
use crate::message::QueuedMessage;
use std::fmt;
use std::sync::Arc;

/// A message a queue hands to one of its consumers.
#[derive(Debug)]
pub(crate) struct Delivery {
    /// The consumer's channel.
    pub(crate) channel: u16,
    /// The consumer's tag.
    pub(crate) consumer_tag: Arc<str>,
    /// The queue the message came from (acks and rejects go back to it).
    pub(crate) queue: Arc<Queue>,
    /// The message.
    pub(crate) msg: QueuedMessage,
}

/// Where a consumer's deliveries and cancel notices go: its owner (a connection)
/// implements this, so the queue does not depend on the owner.
pub(crate) trait ConsumerSink: fmt::Debug + Send + Sync {
    /// Hand over a delivery; gives it back if the consumer's owner is gone.
    fn deliver(&self, delivery: Delivery) -> Result<(), Delivery>;
    /// Tell the consumer that its queue was deleted (basic.cancel from the broker).
    fn cancelled(&self, channel: u16, consumer_tag: Arc<str>);
}

/// A consumer registered on a queue.
#[derive(Debug, Clone)]
pub(crate) struct Consumer {
    /// Consumer tag.
    pub(crate) tag: Arc<str>,
    /// Owning connection id.
    pub(crate) conn_id: u64,
    /// Channel on that connection.
    pub(crate) channel: u16,
    /// Where this consumer's deliveries go.
    pub(crate) sink: Arc<dyn ConsumerSink>,
    /// Exclusive consumer.
    pub(crate) exclusive: bool,
    /// Prefetch credit (for no-ack consumers: a window of deliveries not
    /// yet written by their connection, for backpressure).
    pub(crate) credit: Arc<Credit>,
    /// Consumer priority (`x-priority`, default 0).
    pub(crate) priority: i64,
}
