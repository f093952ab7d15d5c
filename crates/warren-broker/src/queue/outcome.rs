//! What queue operations hand back to their caller: dead letters and store
//! removals ([`Fallout`]) and named counts, instead of calling up into the vhost.

use super::{Consumer, DeathReason};
use crate::message::QueuedMessage;
use std::time::Instant;

/// What a queue operation dropped, for its caller (the vhost) to finish outside
/// the queue's lock: messages to dead-letter, and stored messages to remove from
/// the log.
#[must_use = "hand it to VHost::settle, or dead letters and store removals are lost"]
#[derive(Debug, Default)]
pub(crate) struct Fallout {
    /// Messages that died here, with why; the caller routes them to the queue's
    /// dead-letter exchange if it has one, else forgets them.
    pub(crate) dead: Vec<(QueuedMessage, DeathReason)>,
    /// Store ids of persisted messages that left the queue for good.
    pub(crate) forgotten: Vec<u64>,
    /// The queue's next deadline (message TTL, `x-expires`) when the caller's
    /// deadline index must learn it.
    pub(crate) wake_at: Option<Instant>,
}

impl Fallout {
    /// Nothing to do.
    pub(crate) fn is_empty(&self) -> bool {
        self.dead.is_empty() && self.forgotten.is_empty() && self.wake_at.is_none()
    }

    pub(super) fn forget(&mut self, m: &QueuedMessage) {
        if let Some(id) = m.store_id {
            self.forgotten.push(id);
        }
    }
}

/// The counts queue.declare-ok and queue.purge report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Ready messages.
    pub(crate) messages: u32,
    /// Consumers.
    pub(crate) consumers: u32,
}

/// A message taken by basic.get.
#[derive(Debug)]
pub(crate) struct Got {
    /// The message.
    pub(crate) msg: QueuedMessage,
    /// Messages still ready after it.
    pub(crate) remaining: u32,
}

/// What [`Queue::get`](super::Queue::get) took, and what it dropped on the way
/// (expired messages ahead of it).
#[derive(Debug)]
pub(crate) struct Taken {
    /// The message taken, if the queue had a live one.
    pub(crate) got: Option<Got>,
    /// Expired messages dropped before it.
    pub(crate) fallout: Fallout,
}

/// What [`Queue::purge`](super::Queue::purge) dropped.
#[derive(Debug)]
#[must_use = "hand the fallout to VHost::settle"]
pub(crate) struct Purged {
    /// Ready messages dropped (queue.purge-ok's count).
    pub(crate) messages: u32,
    /// Store removals for them.
    pub(crate) fallout: Fallout,
}

/// What [`Queue::expire`](super::Queue::expire) found.
#[derive(Debug)]
pub(crate) struct Expired {
    /// The messages that expired.
    pub(crate) fallout: Fallout,
    /// The queue itself expired (x-expires) and should be deleted.
    pub(crate) queue_expired: bool,
}

/// What [`Queue::mark_deleted`](super::Queue::mark_deleted) left.
#[derive(Debug)]
pub(crate) struct Deleted {
    /// Ready messages dropped.
    pub(crate) messages: u32,
    /// Consumers to tell (basic.cancel).
    pub(crate) consumers: Vec<Consumer>,
    /// Store removals for the dropped messages.
    pub(crate) fallout: Fallout,
}
