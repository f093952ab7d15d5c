//! The events a connection task receives from below it (queues, the reply-to
//! registry, the store). This module names no connection: it is the inbox type,
//! and the sinks the lower layers are given are implemented here on its sender.

use crate::message::Message;
use crate::queue::{ConsumerSink, Delivery};
use crate::stats::info::ChannelInfo;
use crate::store::ConfirmSink;
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedSender;

/// An event for one connection task.
#[derive(Debug)]
pub(crate) enum ConnEvent {
    /// Deliver a queued message to a consumer.
    Deliver(Delivery),
    /// Deliver a direct reply-to message.
    DirectReply {
        /// Channel id.
        channel: u16,
        /// Reply consumer tag.
        consumer_tag: Arc<str>,
        /// The message.
        msg: Arc<Message>,
    },
    /// The consumer's queue was deleted.
    ConsumerCancelled {
        /// Channel id.
        channel: u16,
        /// Consumer tag.
        consumer_tag: Arc<str>,
    },
    /// A publisher confirm is ready: its message is fsynced (`ack`), or the store
    /// could not write it (basic.nack).
    Confirm {
        /// Channel id.
        channel: u16,
        /// Publish sequence number.
        seq: u64,
        /// Confirm with basic.ack (else basic.nack).
        ack: bool,
    },
    /// The management API asks for the connection's channels.
    Describe(tokio::sync::oneshot::Sender<Vec<ChannelInfo>>),
    /// The management API closes the connection (320 CONNECTION_FORCED).
    Close(String),
}

/// A connection's inbox, as the queues and the store see it.
pub(crate) type Inbox = UnboundedSender<ConnEvent>;

impl ConsumerSink for Inbox {
    fn deliver(&self, delivery: Delivery) -> Result<(), Delivery> {
        match self.send(ConnEvent::Deliver(delivery)) {
            Ok(()) => Ok(()),
            Err(e) => match e.0 {
                ConnEvent::Deliver(back) => Err(back),
                // Only a Deliver was sent, so only a Deliver comes back.
                _ => Ok(()),
            },
        }
    }

    fn cancelled(&self, channel: u16, consumer_tag: Arc<str>) {
        let _ = self.send(ConnEvent::ConsumerCancelled {
            channel,
            consumer_tag,
        });
    }
}

impl ConfirmSink for Inbox {
    fn confirmed(&self, channel: u16, seq: u64, ack: bool) {
        let _ = self.send(ConnEvent::Confirm { channel, seq, ack });
    }
}
