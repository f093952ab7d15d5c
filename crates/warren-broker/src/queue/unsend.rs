//! Putting back messages that were dispatched but never reached their consumer.

use super::{Fallout, Queue};
use crate::message::QueuedMessage;
use std::sync::Arc;

/// Return messages that were dispatched but never reached their consumer
/// (it went away meanwhile) to the heads of their queues, in their original
/// order and with their redelivered flag unchanged.
pub(crate) fn unsend_all(list: Vec<(Arc<Queue>, QueuedMessage)>) -> Vec<(Arc<Queue>, Fallout)> {
    let mut groups: Vec<(Arc<Queue>, Vec<QueuedMessage>)> = Vec::new();
    for (q, m) in list {
        match groups.iter_mut().find(|(g, _)| Arc::ptr_eq(g, &q)) {
            Some((_, v)) => v.push(m),
            None => groups.push((q, vec![m])),
        }
    }
    groups
        .into_iter()
        .map(|(q, msgs)| {
            let fallout = q.put_back(msgs, false);
            (q, fallout)
        })
        .collect()
}
