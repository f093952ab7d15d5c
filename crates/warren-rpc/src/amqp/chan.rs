//! The connection task's state of one open channel ([`Chan`]): sync replies awaited,
//! confirms, the consumer. The handle callers use is in `channel.rs`.

use std::collections::VecDeque;

use amq_protocol::protocol::basic::{self};
use amq_protocol::protocol::confirm::{self};
use amq_protocol::protocol::AMQPClass;

use super::cmd::{Confirm, Ended, Sink, SyncReply};
use super::RawError;

/// Publishes not confirmed yet: sequence number and who waits for its confirm.
type Unconfirmed = VecDeque<(u64, Option<Confirm>)>;

/// The task's state of one open channel.
#[derive(Default)]
pub(crate) struct Chan {
    /// Sync methods sent, in order, waiting for their replies.
    pub(crate) syncs: VecDeque<SyncReply>,
    /// Confirm mode: the next publish's sequence number and the publishes unconfirmed.
    confirms: Option<(u64, Unconfirmed)>,
    /// The consumer's sink, once `consume-ok` came.
    pub(crate) consumer: Option<Box<dyn Sink>>,
    /// A consumer's sink waiting for its `consume-ok`.
    pub(crate) waiting_consumer: Option<Box<dyn Sink>>,
}

impl Chan {
    /// A publish went out: in confirm mode it takes the next sequence number.
    pub(crate) fn published(&mut self, confirm: Option<Confirm>) {
        match &mut self.confirms {
            Some((next, waiting)) => {
                waiting.push_back((*next, confirm));
                *next += 1;
            }
            None => {
                if let Some(c) = confirm {
                    let _ = c.send(Ok(true));
                }
            }
        }
    }

    /// `basic.ack` / `basic.nack` from the broker.
    pub(crate) fn confirmed(&mut self, tag: u64, multiple: bool, ack: bool) {
        let Some((_, waiting)) = &mut self.confirms else {
            return;
        };
        if multiple {
            while waiting.front().is_some_and(|(seq, _)| *seq <= tag) {
                if let Some((_, Some(c))) = waiting.pop_front() {
                    let _ = c.send(Ok(ack));
                }
            }
        } else if let Ok(i) = waiting.binary_search_by_key(&tag, |(seq, _)| *seq) {
            if let Some((_, Some(c))) = waiting.remove(i) {
                let _ = c.send(Ok(ack));
            }
        }
    }

    /// The reply to the oldest sync method.
    pub(crate) fn replied(&mut self, reply: AMQPClass) {
        match &reply {
            AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(_)) => {
                self.confirms.get_or_insert_with(|| (1, VecDeque::new()));
            }
            AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(_)) => {
                self.consumer = self.waiting_consumer.take();
            }
            AMQPClass::Basic(basic::AMQPMethod::CancelOk(_)) => {
                if let Some(mut sink) = self.consumer.take() {
                    sink.ended(Ended::CancelOk);
                }
            }
            _ => {}
        }
        if let Some(waiter) = self.syncs.pop_front() {
            let _ = waiter.send(Ok(reply));
        }
    }

    /// The channel is gone: everything waiting on it fails with `why`.
    pub(crate) fn fail(mut self, why: &RawError) {
        for waiter in self.syncs.drain(..) {
            let _ = waiter.send(Err(why.clone()));
        }
        if let Some((_, waiting)) = self.confirms.take() {
            for (_, c) in waiting {
                if let Some(c) = c {
                    let _ = c.send(Err(why.clone()));
                }
            }
        }
        for mut sink in [self.consumer.take(), self.waiting_consumer.take()]
            .into_iter()
            .flatten()
        {
            sink.ended(Ended::Failed(why.clone()));
        }
    }
}
