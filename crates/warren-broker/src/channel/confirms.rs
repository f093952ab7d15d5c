//! Publisher confirms, coalesced as RabbitMQ does: acks that become ready in one
//! batch (of frames read, or of events) are written at the batch's end, and those
//! below every publish still waiting on the store go out as one basic.ack with
//! `multiple = true`. Nacks are written at once, after the acks ready before them.

use crate::frame::Out;
use amq_protocol::protocol::{basic, AMQPClass};
use std::collections::BTreeSet;

/// One channel's confirms in flight.
#[derive(Debug, Default)]
pub(super) struct Confirms {
    /// Publishes whose confirm waits on the store's fsync.
    waiting: BTreeSet<u64>,
    /// Publishes to ack at the end of this batch.
    ready: Vec<u64>,
}

impl Confirms {
    /// Publishes whose confirm is not yet written.
    pub(super) fn len(&self) -> usize {
        self.waiting.len() + self.ready.len()
    }

    /// The confirm of `seq` comes from the store.
    pub(super) fn wait_for_store(&mut self, seq: u64) {
        self.waiting.insert(seq);
    }

    /// The store answered for `seq`.
    pub(super) fn store_answered(&mut self, seq: u64) {
        self.waiting.remove(&seq);
    }

    /// Ack `seq` at the end of the batch.
    pub(super) fn ack(&mut self, seq: u64) {
        self.ready.push(seq);
    }

    /// Acks are waiting to be written.
    pub(super) fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Write the ready acks on `channel`, coalesced.
    pub(super) fn write(&mut self, channel: u16, out: &mut Out) {
        let floor = self.waiting.first().copied();
        for (delivery_tag, multiple) in coalesce(&mut self.ready, floor) {
            out.method(
                channel,
                AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
                    delivery_tag,
                    multiple,
                })),
            );
        }
    }

    /// Drop what is not yet written (the channel is closing).
    pub(super) fn clear(&mut self) {
        self.ready.clear();
        self.waiting.clear();
    }
}

/// The basic.ack frames (delivery tag, multiple) for the acks in `ready` (emptied),
/// given the lowest publish still waiting on the store: the acks below it become
/// one `multiple` ack of the highest (every lower publish is answered), the rest go
/// one by one.
fn coalesce(ready: &mut Vec<u64>, floor: Option<u64>) -> Vec<(u64, bool)> {
    ready.sort_unstable();
    let below = ready.partition_point(|&s| floor.is_none_or(|f| s < f));
    let mut frames = Vec::with_capacity(1 + ready.len() - below);
    if below > 0 {
        frames.push((ready[below - 1], below > 1));
    }
    frames.extend(ready[below..].iter().map(|&s| (s, false)));
    ready.clear();
    frames
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_below_every_waiting_publish_become_one_multiple_ack() {
        let mut ready = vec![3, 1, 2];
        assert_eq!(coalesce(&mut ready, None), vec![(3, true)]);
        assert!(ready.is_empty());
        let mut one = vec![7];
        assert_eq!(coalesce(&mut one, None), vec![(7, false)]);
        let mut gap = vec![1, 2, 5, 6];
        assert_eq!(
            coalesce(&mut gap, Some(4)),
            vec![(2, true), (5, false), (6, false)],
            "4 still waits on the store, so 5 and 6 cannot cover it"
        );
        let mut above = vec![9];
        assert_eq!(coalesce(&mut above, Some(4)), vec![(9, false)]);
        assert!(coalesce(&mut Vec::new(), Some(1)).is_empty());
    }
}
