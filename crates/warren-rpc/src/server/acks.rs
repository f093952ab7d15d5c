//! Acknowledgements for one consumer channel, coalesced like a group commit.
//!
//! A request is acked once it is done (its reply published). The first request done
//! yields once before acking, and every request done meanwhile (on this scheduler
//! turn) goes out with it, as one `basic.ack(multiple)` up to the highest done
//! delivery tag below which every request received is done. An idle server acks each
//! request at once; a busy one sends one ack frame for several requests, which is work
//! the broker saves.
//!
//! Requests done while an earlier one still runs are acked one by one, so a slow
//! request never holds finished ones against the prefetch window. A request that is
//! never marked done (its reply could not be published) stays unacked, and the
//! broker redelivers it when the channel closes.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};

use tracing::warn;

use crate::amqp::Channel;

/// The acks of one channel. Cloning shares them.
#[derive(Clone)]
pub(crate) struct Acks {
    channel: Channel,
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    /// Delivery tags received and not done yet.
    outstanding: BTreeSet<u64>,
    /// Delivery tags done and not acked yet.
    done: BTreeSet<u64>,
    /// A task is sending acks; others leave theirs to it.
    flushing: bool,
}

impl State {
    /// The next ack to send, as (delivery tag, multiple), taking the tags it covers
    /// out of `done`: first the highest done tag below the lowest outstanding one,
    /// with `multiple`; then, one at a time, done tags above a request still running.
    fn take_due(&mut self) -> Option<(u64, bool)> {
        let prefix = match self.outstanding.first() {
            Some(&low) => self.done.range(..low).next_back().copied(),
            None => self.done.last().copied(),
        };
        match prefix {
            Some(due) => {
                self.done = self.done.split_off(&(due + 1));
                Some((due, true))
            }
            None => self.done.pop_first().map(|tag| (tag, false)),
        }
    }
}

impl Acks {
    /// Acks for deliveries on `channel`.
    pub(crate) fn new(channel: Channel) -> Self {
        Self {
            channel,
            state: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent across a panic (every update is one step).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A delivery arrived; call in delivery order, before any later one is done.
    pub(crate) fn received(&self, tag: u64) {
        self.lock().outstanding.insert(tag);
    }

    /// The request with `tag` is done: ack it, with whatever else is due, unless
    /// another task is already about to send acks (then that task sends this one too).
    pub(crate) async fn done(&self, tag: u64) {
        {
            let mut st = self.lock();
            st.outstanding.remove(&tag);
            st.done.insert(tag);
            if st.flushing {
                return;
            }
            st.flushing = true;
        }
        // Let the other requests finishing on this turn join the ack.
        tokio::task::yield_now().await;
        // Queue the acks while holding the lock: taken and queued by one task at a
        // time, they reach the broker in the order they were taken, so a later
        // multiple ack never overtakes an earlier one (the broker would refuse the
        // earlier one's tag as unknown and close the channel).
        let mut st = self.lock();
        st.flushing = false;
        while let Some((tag, multiple)) = st.take_due() {
            if let Err(e) = self.channel.ack(tag, multiple) {
                warn!(error = %e, "could not ack requests; the broker will redeliver them");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::State;

    fn state(outstanding: &[u64], done: &[u64]) -> State {
        State {
            outstanding: outstanding.iter().copied().collect(),
            done: done.iter().copied().collect(),
            flushing: false,
        }
    }

    #[test]
    fn everything_done_is_acked_in_one_multiple_ack() {
        let mut st = state(&[], &[1, 2, 3]);
        assert_eq!(st.take_due(), Some((3, true)));
        assert!(st.done.is_empty());
        assert_eq!(st.take_due(), None);
    }

    #[test]
    fn requests_done_above_a_running_one_are_acked_singly() {
        let mut st = state(&[2], &[1, 3, 4]);
        assert_eq!(st.take_due(), Some((1, true)));
        assert_eq!(st.take_due(), Some((3, false)), "2 still runs");
        assert_eq!(st.take_due(), Some((4, false)));
        assert_eq!(st.take_due(), None);
        st.outstanding.remove(&2);
        st.done.insert(2);
        assert_eq!(
            st.take_due(),
            Some((2, true)),
            "covers only 2: 3 and 4 are acked"
        );
    }

    #[test]
    fn nothing_is_due_when_nothing_is_done() {
        let mut st = state(&[5, 7], &[]);
        assert_eq!(st.take_due(), None);
        assert_eq!(st.outstanding.len(), 2);
    }
}
