//! Dead-lettering: republishing rejected, expired or overflowed messages to
//! a queue's dead-letter exchange with RabbitMQ's `x-death` bookkeeping.

use super::VHost;
use crate::message::{rebuild_props, short, unix_seconds, value_as_str, Message, QueuedMessage};
use crate::queue::{DeathReason, Queue};
use amq_protocol::types::{AMQPValue, FieldArray, FieldTable, LongString};
use std::sync::Arc;

impl VHost {
    /// Dead-letter a message from `from` to exchange `dlx` (adding `x-death`).
    pub(crate) fn dead_letter(
        &self,
        from: &Arc<Queue>,
        dlx: &str,
        m: QueuedMessage,
        reason: DeathReason,
    ) {
        self.forget(from, &m);
        let msg = &m.msg;
        let routing_key = from
            .args
            .dlrk
            .clone()
            .unwrap_or_else(|| msg.routing_key.clone());
        // Cycle protection (as RabbitMQ): an expired/maxlen message coming back
        // to a queue it already died in is dropped.
        let headers = add_x_death(msg, &from.name, reason);
        let props = rebuild_props(&msg.props, Some(headers), true);
        let mut dead = msg.with_props(props);
        dead.exchange = dlx.to_owned();
        dead.routing_key = routing_key.clone();
        let dead = Arc::new(dead);
        let Ok(queues) = self.route(dlx, &routing_key, dead.props.headers().as_ref()) else {
            return;
        };
        let queues: Vec<_> = queues
            .into_iter()
            .filter(|q| !is_cycle(dead.props.headers().as_ref(), &q.name))
            .collect();
        let _ = self.enqueue(&queues, dead, None);
    }
}

/// Build the headers of a dead-lettered message with an `x-death` entry,
/// following RabbitMQ's format.
fn add_x_death(msg: &Message, queue: &str, reason: DeathReason) -> FieldTable {
    let mut headers = msg.props.headers().clone().unwrap_or_default();
    let mut deaths: Vec<AMQPValue> = match headers.inner().get("x-death") {
        Some(AMQPValue::FieldArray(a)) => a.as_slice().to_vec(),
        _ => Vec::new(),
    };
    let same = |t: &FieldTable| {
        t.inner().get("queue").and_then(value_as_str).as_deref() == Some(queue)
            && t.inner().get("reason").and_then(value_as_str).as_deref() == Some(reason.as_str())
    };
    let pos = deaths
        .iter()
        .position(|d| matches!(d, AMQPValue::FieldTable(t) if same(t)));
    let mut entry = FieldTable::default();
    let mut count = 1i64;
    if let Some(i) = pos {
        if let AMQPValue::FieldTable(t) = deaths.remove(i) {
            count = t
                .inner()
                .get("count")
                .and_then(crate::message::value_as_i64)
                .unwrap_or(0)
                + 1;
        }
    }
    entry.insert(short("count"), AMQPValue::LongLongInt(count));
    entry.insert(
        short("reason"),
        AMQPValue::LongString(LongString::from(reason.as_str())),
    );
    entry.insert(
        short("queue"),
        AMQPValue::LongString(LongString::from(queue)),
    );
    entry.insert(short("time"), AMQPValue::Timestamp(unix_seconds()));
    entry.insert(
        short("exchange"),
        AMQPValue::LongString(LongString::from(msg.exchange.as_str())),
    );
    entry.insert(
        short("routing-keys"),
        AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::LongString(
            LongString::from(msg.routing_key.as_str()),
        )])),
    );
    if let Some(exp) = msg.props.expiration() {
        entry.insert(
            short("original-expiration"),
            AMQPValue::LongString(LongString::from(exp.as_str())),
        );
    }
    deaths.insert(0, AMQPValue::FieldTable(entry));
    headers.insert(
        short("x-death"),
        AMQPValue::FieldArray(FieldArray::from(deaths)),
    );
    if !headers.contains_key("x-first-death-exchange") {
        headers.insert(
            short("x-first-death-exchange"),
            AMQPValue::LongString(LongString::from(msg.exchange.as_str())),
        );
        headers.insert(
            short("x-first-death-queue"),
            AMQPValue::LongString(LongString::from(queue)),
        );
        headers.insert(
            short("x-first-death-reason"),
            AMQPValue::LongString(LongString::from(reason.as_str())),
        );
    }
    headers
}

/// RabbitMQ's cycle rule: a dead-lettered message is dropped for a target
/// queue it already died in, unless a rejection happened since (walking the
/// `x-death` entries from the most recent back to that queue).
fn is_cycle(headers: Option<&FieldTable>, target: &str) -> bool {
    let Some(AMQPValue::FieldArray(deaths)) = headers.and_then(|h| h.inner().get("x-death")) else {
        return false;
    };
    for d in deaths.as_slice() {
        let AMQPValue::FieldTable(t) = d else {
            continue;
        };
        let field = |k: &str| t.inner().get(k).and_then(value_as_str);
        if field("reason").as_deref() == Some(DeathReason::Rejected.as_str()) {
            return false;
        }
        if field("queue").as_deref() == Some(target) {
            return true;
        }
    }
    false
}
