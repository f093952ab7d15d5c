//! Message counters that the hot path bumps: one relaxed atomic add per event,
//! no lock. A vhost holds a [`MessageCounters`] (publish, deliver, ack, ...), each
//! queue a [`QueueCounters`]; [`Held`] counts a queue's unacknowledged messages by
//! living as long as the channel holds the delivery. This module names nothing
//! else in the crate, so every layer may use it.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// Monotonic totals of one vhost's message events, as RabbitMQ's
/// `message_stats` counts them.
#[derive(Debug, Default)]
pub(crate) struct MessageCounters {
    pub(crate) publish: AtomicU64,
    pub(crate) confirm: AtomicU64,
    pub(crate) return_unroutable: AtomicU64,
    pub(crate) drop_unroutable: AtomicU64,
    pub(crate) deliver: AtomicU64,
    pub(crate) deliver_no_ack: AtomicU64,
    pub(crate) get: AtomicU64,
    pub(crate) get_no_ack: AtomicU64,
    pub(crate) redeliver: AtomicU64,
    pub(crate) ack: AtomicU64,
}

/// One reading of [`MessageCounters`] (or of a queue's counters, where the
/// fields a queue does not count stay 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MessageTotals {
    /// Messages published (routed or not).
    pub publish: u64,
    /// Publisher confirms sent.
    pub confirm: u64,
    /// Mandatory messages returned as unroutable.
    pub return_unroutable: u64,
    /// Messages dropped as unroutable.
    pub drop_unroutable: u64,
    /// Deliveries to consumers that acknowledge.
    pub deliver: u64,
    /// Deliveries to no-ack consumers.
    pub deliver_no_ack: u64,
    /// basic.get answered with a message, to be acknowledged.
    pub get: u64,
    /// basic.get answered with a message, no-ack.
    pub get_no_ack: u64,
    /// Deliveries (and gets) of messages that were delivered before.
    pub redeliver: u64,
    /// Messages acknowledged by consumers.
    pub ack: u64,
}

impl MessageTotals {
    /// All deliveries and gets (RabbitMQ's `deliver_get`).
    pub fn deliver_get(&self) -> u64 {
        self.deliver + self.deliver_no_ack + self.get + self.get_no_ack
    }

    /// Field-wise sum (for totals over vhosts).
    pub fn add(&mut self, o: &MessageTotals) {
        self.publish += o.publish;
        self.confirm += o.confirm;
        self.return_unroutable += o.return_unroutable;
        self.drop_unroutable += o.drop_unroutable;
        self.deliver += o.deliver;
        self.deliver_no_ack += o.deliver_no_ack;
        self.get += o.get;
        self.get_no_ack += o.get_no_ack;
        self.redeliver += o.redeliver;
        self.ack += o.ack;
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

impl MessageCounters {
    /// A publish was routed (to `routed` queues, 0 = unroutable); `returned`
    /// when it went back to a mandatory publisher.
    pub(crate) fn published(&self, routed: usize, returned: bool) {
        bump(&self.publish);
        if routed == 0 {
            bump(if returned {
                &self.return_unroutable
            } else {
                &self.drop_unroutable
            });
        }
    }

    /// A message went to a consumer.
    pub(crate) fn delivered(&self, no_ack: bool, redelivered: bool) {
        bump(if no_ack {
            &self.deliver_no_ack
        } else {
            &self.deliver
        });
        if redelivered {
            bump(&self.redeliver);
        }
    }

    /// basic.get handed out a message.
    pub(crate) fn got(&self, no_ack: bool, redelivered: bool) {
        bump(if no_ack { &self.get_no_ack } else { &self.get });
        if redelivered {
            bump(&self.redeliver);
        }
    }

    /// `n` messages were acknowledged.
    pub(crate) fn acked(&self, n: usize) {
        self.ack.fetch_add(n as u64, Relaxed);
    }

    /// A publisher confirm went out.
    pub(crate) fn confirmed(&self) {
        bump(&self.confirm);
    }

    /// The current totals.
    pub(crate) fn read(&self) -> MessageTotals {
        MessageTotals {
            publish: self.publish.load(Relaxed),
            confirm: self.confirm.load(Relaxed),
            return_unroutable: self.return_unroutable.load(Relaxed),
            drop_unroutable: self.drop_unroutable.load(Relaxed),
            deliver: self.deliver.load(Relaxed),
            deliver_no_ack: self.deliver_no_ack.load(Relaxed),
            get: self.get.load(Relaxed),
            get_no_ack: self.get_no_ack.load(Relaxed),
            redeliver: self.redeliver.load(Relaxed),
            ack: self.ack.load(Relaxed),
        }
    }
}

/// A queue's own counters: the vhost's kinds of event that concern one queue
/// (publish = enqueued, deliver and get with and without ack, redeliver, ack),
/// plus its unacknowledged messages.
#[derive(Debug, Default)]
pub(crate) struct QueueCounters {
    /// Events counted as the vhost counts them; confirms and unroutable stay 0.
    pub(crate) messages: MessageCounters,
    /// Delivered and not yet acknowledged, rejected or requeued (see [`Held`]).
    unacked: Arc<AtomicI64>,
}

impl QueueCounters {
    /// A message was enqueued.
    pub(crate) fn enqueued(&self) {
        bump(&self.messages.publish);
    }

    /// Counts one unacknowledged message until the returned guard drops.
    pub(crate) fn hold(&self) -> Held {
        self.unacked.fetch_add(1, Relaxed);
        Held(self.unacked.clone())
    }

    /// Unacknowledged messages now.
    pub(crate) fn unacked(&self) -> u64 {
        self.unacked.load(Relaxed).max(0) as u64
    }

    /// The current totals.
    pub(crate) fn read(&self) -> MessageTotals {
        self.messages.read()
    }
}

/// One unacknowledged message of a queue, counted while this lives.
#[derive(Debug)]
pub(crate) struct Held(Arc<AtomicI64>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use crate::stats::counters::{MessageCounters, QueueCounters};

    #[test]
    fn held_counts_until_dropped() {
        let q = QueueCounters::default();
        let a = q.hold();
        let b = q.hold();
        assert_eq!(q.unacked(), 2);
        drop(a);
        assert_eq!(q.unacked(), 1);
        drop(b);
        assert_eq!(q.unacked(), 0);
    }

    #[test]
    fn unroutable_publishes_are_split_by_mandatory() {
        let c = MessageCounters::default();
        c.published(2, false);
        c.published(0, true);
        c.published(0, false);
        let t = c.read();
        assert_eq!(
            (t.publish, t.return_unroutable, t.drop_unroutable),
            (3, 1, 1)
        );
    }
}
