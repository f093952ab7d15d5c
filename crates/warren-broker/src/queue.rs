//! Queues: ready messages, round-robin consumers with prefetch credit,
//! message TTL, queue expiry, max-length and dead-lettering hooks.

//!
//! A queue calls nothing above it: deliveries leave through each consumer's
//! [`ConsumerSink`], and what an operation drops (dead letters, store records to
//! remove) comes back to the caller as [`Fallout`].

use crate::error::AmqpError;
use crate::message::{Message, QueuedMessage};
use crate::stats::counters::QueueCounters;
use amq_protocol::types::FieldTable;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

mod args;
mod consumer;
mod credit;
mod outcome;
mod ready;
mod unsend;

pub(crate) use args::{DeathReason, QueueArgs};
pub(crate) use consumer::{Consumer, ConsumerSink, Delivery};
pub(crate) use credit::Credit;
pub(crate) use outcome::{Counts, Deleted, Expired, Fallout, Got, Purged, Taken};
use ready::Ready;
pub(crate) use unsend::unsend_all;

#[derive(Debug)]
struct QueueState {
    ready: Ready,
    consumers: Vec<Consumer>,
    rr: usize,
    deleted: bool,
    last_used: Instant,
    had_consumer: bool,
    /// The deadline last reported to the caller's deadline index (message TTL at
    /// the head, or `x-expires`): a new one is reported only if it is earlier.
    scheduled: Option<Instant>,
}

impl QueueState {
    /// Report the head message's expiry if the index does not have an earlier
    /// deadline for this queue already.
    fn report_head_expiry(&mut self, out: &mut Fallout) {
        let Some(at) = self.ready.front().and_then(|m| m.expires_at) else {
            return;
        };
        if self.scheduled.is_none_or(|s| at < s) {
            self.scheduled = Some(at);
            out.wake_at = Some(at);
        }
    }
}

/// A message queue.
#[derive(Debug)]
pub(crate) struct Queue {
    /// Queue name.
    pub(crate) name: String,
    /// Survives restarts.
    pub(crate) durable: bool,
    /// Owning connection id for exclusive queues.
    pub(crate) owner: Option<u64>,
    /// Deleted when the last consumer goes away.
    pub(crate) auto_delete: bool,
    /// Raw declaration arguments.
    pub(crate) arguments: FieldTable,
    /// Parsed arguments.
    pub(crate) args: QueueArgs,
    /// Message counters (see [`crate::stats`]).
    pub(crate) stats: QueueCounters,
    state: Mutex<QueueState>,
}

/// How a queue is declared, apart from its name and arguments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct QueueOptions {
    /// Survives restarts.
    pub(crate) durable: bool,
    /// The connection that owns an exclusive queue.
    pub(crate) owner: Option<u64>,
    /// Deleted when its last consumer goes away.
    pub(crate) auto_delete: bool,
}

impl Queue {
    /// A new empty queue.
    pub(crate) fn new(
        name: String,
        options: QueueOptions,
        arguments: FieldTable,
        args: QueueArgs,
    ) -> Self {
        let ready = Ready::new(args.max_priority);
        let QueueOptions {
            durable,
            owner,
            auto_delete,
        } = options;
        Self {
            name,
            durable,
            owner,
            auto_delete,
            arguments,
            args,
            stats: QueueCounters::default(),
            state: Mutex::new(QueueState {
                ready,
                consumers: Vec::new(),
                rr: 0,
                deleted: false,
                last_used: Instant::now(),
                had_consumer: false,
                scheduled: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Compute the expiry instant of a message entering this queue.
    pub(crate) fn expiry_for(&self, msg: &Message, now: Instant) -> Option<Instant> {
        let ttl = match (self.args.message_ttl, msg.ttl()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        ttl.and_then(|t| now.checked_add(t))
    }

    /// Whether a new message would be refused (x-overflow = reject-publish
    /// and the queue is at x-max-length).
    pub(crate) fn refuses_new(&self) -> bool {
        if !self.args.reject_publish {
            return false;
        }
        let st = self.lock();
        self.args
            .max_length
            .is_some_and(|max| st.ready.len() >= max)
            || self
                .args
                .max_length_bytes
                .is_some_and(|max| st.ready.bytes() >= max)
    }

    /// Append a message and try to deliver it.
    pub(crate) fn enqueue(self: &Arc<Self>, msg: Arc<Message>, store_id: Option<u64>) -> Fallout {
        let now = Instant::now();
        let qm = QueuedMessage {
            expires_at: self.expiry_for(&msg, now),
            msg,
            redelivered: false,
            store_id,
        };
        let mut out = Fallout::default();
        let mut st = self.lock();
        if st.deleted {
            out.forget(&qm);
            return out;
        }
        st.ready.push_back(qm);
        while self.args.max_length.is_some_and(|max| st.ready.len() > max)
            || self
                .args
                .max_length_bytes
                .is_some_and(|max| st.ready.bytes() > max)
        {
            match st.ready.pop_front() {
                Some(m) => out.dead.push((m, DeathReason::MaxLen)),
                None => break,
            }
        }
        self.dispatch_locked(&mut st, &mut out, now);
        st.report_head_expiry(&mut out);
        out
    }

    /// Put messages back at the head of the queue (marked redelivered),
    /// preserving their relative order.
    pub(crate) fn requeue(self: &Arc<Self>, msgs: Vec<QueuedMessage>) -> Fallout {
        self.put_back(msgs, true)
    }

    fn put_back(self: &Arc<Self>, msgs: Vec<QueuedMessage>, redelivered: bool) -> Fallout {
        let mut out = Fallout::default();
        if msgs.is_empty() {
            return out;
        }
        let mut st = self.lock();
        if st.deleted {
            for m in &msgs {
                out.forget(m);
            }
            return out;
        }
        for mut m in msgs.into_iter().rev() {
            m.redelivered |= redelivered;
            st.ready.push_front(m);
        }
        self.dispatch_locked(&mut st, &mut out, Instant::now());
        st.report_head_expiry(&mut out);
        out
    }

    /// Try to deliver ready messages to consumers with credit.
    pub(crate) fn dispatch(self: &Arc<Self>) -> Fallout {
        let mut out = Fallout::default();
        let mut st = self.lock();
        self.dispatch_locked(&mut st, &mut out, Instant::now());
        st.report_head_expiry(&mut out);
        out
    }

    fn dispatch_locked(self: &Arc<Self>, st: &mut QueueState, out: &mut Fallout, now: Instant) {
        loop {
            if st.consumers.is_empty() || st.ready.is_empty() {
                return;
            }
            // Strictly before `now`: a TTL of 0 still reaches a consumer that
            // is ready right now (RabbitMQ's rule).
            let expired = st
                .ready
                .front()
                .and_then(|m| m.expires_at)
                .is_some_and(|e| e < now);
            if expired {
                if let Some(m) = st.ready.pop_front() {
                    out.dead.push((m, DeathReason::Expired));
                }
                continue;
            }
            let n = st.consumers.len();
            let Some(idx) = self.pick_consumer(st) else {
                return;
            };
            st.rr = (idx + 1) % n;
            let Some(msg) = st.ready.pop_front() else {
                return;
            };
            let c = &st.consumers[idx];
            let delivery = Delivery {
                channel: c.channel,
                consumer_tag: c.tag.clone(),
                queue: self.clone(),
                msg,
            };
            if let Err(back) = c.sink.deliver(delivery) {
                st.ready.push_front(back.msg);
                st.consumers.remove(idx);
                st.rr = 0;
            }
        }
    }

    /// Choose the consumer for the next message and take its credit:
    /// the highest `x-priority` level with room, round-robin within a level;
    /// only the first consumer with `x-single-active-consumer`.
    fn pick_consumer(&self, st: &QueueState) -> Option<usize> {
        let n = st.consumers.len();
        if self.args.single_active {
            let c = st.consumers.first()?;
            return c.credit.try_acquire().then_some(0);
        }
        let mut level = st.consumers.iter().map(|c| c.priority).max()?;
        loop {
            let mut next_level: Option<i64> = None;
            for i in 0..n {
                let idx = (st.rr + i) % n;
                let c = &st.consumers[idx];
                if c.priority == level {
                    if c.credit.try_acquire() {
                        return Some(idx);
                    }
                } else if c.priority < level && next_level.is_none_or(|l| c.priority > l) {
                    next_level = Some(c.priority);
                }
            }
            level = next_level?;
        }
    }

    /// Expire messages at the head whose TTL has passed, say whether the queue
    /// itself expired (x-expires) and should be deleted, and when to look again.
    pub(crate) fn expire(self: &Arc<Self>, now: Instant) -> Expired {
        let mut fallout = Fallout::default();
        let mut st = self.lock();
        while st
            .ready
            .front()
            .and_then(|m| m.expires_at)
            .is_some_and(|e| e <= now)
        {
            if let Some(m) = st.ready.pop_front() {
                fallout.dead.push((m, DeathReason::Expired));
            }
        }
        let idle_deadline = self.args.expires.map(|e| {
            if st.consumers.is_empty() {
                st.last_used + e
            } else {
                // In use: look again one x-expires period from now.
                now + e
            }
        });
        let queue_expired = !st.deleted && idle_deadline.is_some_and(|at| at <= now);
        let head = st.ready.front().and_then(|m| m.expires_at);
        let next = match (head, idle_deadline) {
            _ if st.deleted || queue_expired => None,
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        st.scheduled = next;
        fallout.wake_at = next;
        Expired {
            fallout,
            queue_expired,
        }
    }

    /// When a new queue must first be looked at (x-expires), if ever.
    pub(crate) fn first_deadline(&self, now: Instant) -> Option<Instant> {
        let at = now.checked_add(self.args.expires?)?;
        self.lock().scheduled = Some(at);
        Some(at)
    }

    /// Register a consumer (403 on exclusivity conflicts).
    pub(crate) fn add_consumer(self: &Arc<Self>, consumer: Consumer) -> Result<Fallout, AmqpError> {
        {
            let mut st = self.lock();
            if st.deleted {
                return Err(AmqpError::not_found(format!(
                    "no queue '{}' in vhost '/'",
                    self.name
                )));
            }
            if st.consumers.iter().any(|c| c.exclusive)
                || (consumer.exclusive && !st.consumers.is_empty())
            {
                return Err(AmqpError::access_refused(format!(
                    "queue '{}' in vhost '/' in exclusive use",
                    self.name
                )));
            }
            st.consumers.push(consumer);
            st.had_consumer = true;
            st.last_used = Instant::now();
        }
        Ok(self.dispatch())
    }

    /// Remove a consumer. Returns true if the queue should now be
    /// auto-deleted.
    pub(crate) fn remove_consumer(&self, conn_id: u64, channel: u16, tag: &str) -> bool {
        let mut st = self.lock();
        st.consumers
            .retain(|c| !(c.conn_id == conn_id && c.channel == channel && &*c.tag == tag));
        st.rr = 0;
        st.last_used = Instant::now();
        self.auto_delete && st.had_consumer && st.consumers.is_empty() && !st.deleted
    }

    /// basic.get: take the first live message, if any.
    pub(crate) fn get(self: &Arc<Self>) -> Taken {
        let now = Instant::now();
        let mut fallout = Fallout::default();
        let mut st = self.lock();
        st.last_used = now;
        while let Some(m) = st.ready.pop_front() {
            if m.expires_at.is_some_and(|e| e <= now) {
                fallout.dead.push((m, DeathReason::Expired));
                continue;
            }
            let remaining = st.ready.len() as u32;
            st.report_head_expiry(&mut fallout);
            let got = Some(Got { msg: m, remaining });
            return Taken { got, fallout };
        }
        Taken { got: None, fallout }
    }

    /// Refresh the x-expires idle timer (redeclare, get).
    pub(crate) fn touch(&self) {
        self.lock().last_used = Instant::now();
    }

    /// Ready messages and consumers.
    pub(crate) fn counts(&self) -> Counts {
        let st = self.lock();
        Counts {
            messages: st.ready.len() as u32,
            consumers: st.consumers.len() as u32,
        }
    }

    /// Body bytes of the ready messages.
    pub(crate) fn ready_bytes(&self) -> usize {
        self.lock().ready.bytes()
    }

    /// Drop all ready messages; says how many were dropped.
    pub(crate) fn purge(&self) -> Purged {
        let msgs = self.lock().ready.take_all();
        let mut fallout = Fallout::default();
        for m in &msgs {
            fallout.forget(m);
        }
        Purged {
            messages: msgs.len() as u32,
            fallout,
        }
    }

    /// Mark deleted: drop the ready messages and hand back the consumers to notify.
    pub(crate) fn mark_deleted(&self) -> Deleted {
        let (msgs, consumers) = {
            let mut st = self.lock();
            st.deleted = true;
            let msgs: Vec<_> = st.ready.take_all();
            (msgs, std::mem::take(&mut st.consumers))
        };
        let mut fallout = Fallout::default();
        for m in &msgs {
            fallout.forget(m);
        }
        Deleted {
            messages: msgs.len() as u32,
            consumers,
            fallout,
        }
    }

    /// A delivered message was rejected without requeue.
    pub(crate) fn reject(&self, m: QueuedMessage) -> Fallout {
        Fallout {
            dead: vec![(m, DeathReason::Rejected)],
            ..Fallout::default()
        }
    }
}
