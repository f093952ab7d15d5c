//! Acknowledgements for one consumer channel, coalesced like a group commit.
//!
//! A request is acked once it is done (its reply published). Acks that fall due while
//! an earlier one is on its way to the broker go out together, as one
//! `basic.ack(multiple)` up to the highest done delivery tag below which every
//! request received is done. An idle server acks each request at once; a busy one
//! sends one ack frame for several requests, which is work the broker saves.
//!
//! A request that is never marked done (its reply could not be published) holds
//! back every later ack on its channel: the broker redelivers all of them when the
//! channel closes, which is what at-least-once asks for.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};

use lapin::options::BasicAckOptions;
use lapin::Channel;
use tracing::warn;

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
    /// The tag to ack (with `multiple`) now: the highest done tag below the lowest
    /// outstanding one. Takes the tags it covers out of `done`.
    fn take_due(&mut self) -> Option<u64> {
        let due = match self.outstanding.first() {
            Some(&low) => self.done.range(..low).next_back().copied(),
            None => self.done.last().copied(),
        }?;
        self.done = self.done.split_off(&(due + 1));
        Some(due)
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
    /// another task is already sending acks (then that task sends this one too).
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
        loop {
            let due = {
                let mut st = self.lock();
                let due = st.take_due();
                if due.is_none() {
                    st.flushing = false;
                }
                due
            };
            let Some(due) = due else { return };
            let multiple = BasicAckOptions { multiple: true };
            if let Err(e) = self.channel.basic_ack(due, multiple).await {
                warn!(error = %e, "could not ack requests; the broker will redeliver them");
                self.lock().flushing = false;
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
    fn everything_done_is_acked_up_to_the_highest_tag() {
        let mut st = state(&[], &[1, 2, 3]);
        assert_eq!(st.take_due(), Some(3));
        assert!(st.done.is_empty());
        assert_eq!(st.take_due(), None);
    }

    #[test]
    fn an_outstanding_request_holds_back_later_acks() {
        let mut st = state(&[2], &[1, 3, 4]);
        assert_eq!(st.take_due(), Some(1));
        assert_eq!(st.take_due(), None, "3 and 4 wait for 2");
        st.outstanding.remove(&2);
        st.done.insert(2);
        assert_eq!(st.take_due(), Some(4));
    }

    #[test]
    fn nothing_is_due_while_the_lowest_request_runs() {
        let mut st = state(&[5, 7], &[6]);
        assert_eq!(st.take_due(), None);
        assert_eq!(st.done.len(), 1);
    }
}
