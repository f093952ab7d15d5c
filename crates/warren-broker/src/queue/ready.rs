//! The ready messages of a queue: FIFO, or one FIFO lane per priority level
//! for priority queues (`x-max-priority`), highest priority first.

use crate::message::QueuedMessage;
use std::collections::VecDeque;

/// Lanes at most this large keep their storage when they empty.
const KEEP_SLOTS: usize = 1024;

/// Gives back a lane's storage once it is three-quarters empty (halving it, so a
/// queue that drains gives its memory back and one that oscillates does not
/// reallocate on every message).
fn shrink(lane: &mut VecDeque<QueuedMessage>) {
    let cap = lane.capacity();
    if cap > KEEP_SLOTS && lane.len() < cap / 4 {
        lane.shrink_to((lane.len() * 2).max(KEEP_SLOTS));
    }
}

/// Ready (not yet delivered) messages.
#[derive(Debug)]
pub(crate) struct Ready {
    lanes: Vec<VecDeque<QueuedMessage>>,
    len: usize,
    bytes: usize,
}

impl Ready {
    /// An empty store; `max_priority` enables priority lanes 0..=max.
    pub(crate) fn new(max_priority: Option<u8>) -> Self {
        let n = max_priority.map_or(1, |m| usize::from(m) + 1);
        Self {
            lanes: (0..n).map(|_| VecDeque::new()).collect(),
            len: 0,
            bytes: 0,
        }
    }

    fn lane(&self, m: &QueuedMessage) -> usize {
        let top = self.lanes.len() - 1;
        if top == 0 {
            return 0;
        }
        usize::from(m.msg.props.priority().unwrap_or(0)).min(top)
    }

    fn added(&mut self, m: &QueuedMessage) {
        self.len += 1;
        self.bytes += m.msg.body.len();
    }

    /// Append at the tail of the message's lane.
    pub(crate) fn push_back(&mut self, m: QueuedMessage) {
        let lane = self.lane(&m);
        self.added(&m);
        self.lanes[lane].push_back(m);
    }

    /// Put back at the head of the message's lane.
    pub(crate) fn push_front(&mut self, m: QueuedMessage) {
        let lane = self.lane(&m);
        self.added(&m);
        self.lanes[lane].push_front(m);
    }

    /// The next message to deliver.
    pub(crate) fn front(&self) -> Option<&QueuedMessage> {
        self.lanes.iter().rev().find_map(|l| l.front())
    }

    /// Take the next message to deliver.
    pub(crate) fn pop_front(&mut self) -> Option<QueuedMessage> {
        let lane = self.lanes.iter_mut().rev().find(|l| !l.is_empty())?;
        let m = lane.pop_front()?;
        shrink(lane);
        self.len -= 1;
        self.bytes = self.bytes.saturating_sub(m.msg.body.len());
        Some(m)
    }

    /// Take everything.
    pub(crate) fn take_all(&mut self) -> Vec<QueuedMessage> {
        self.len = 0;
        self.bytes = 0;
        // Taken whole, so the emptied lanes hold no storage.
        self.lanes
            .iter_mut()
            .rev()
            .flat_map(std::mem::take)
            .collect()
    }

    /// Number of messages.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Total body bytes.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}
