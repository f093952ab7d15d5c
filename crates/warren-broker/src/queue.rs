//! Queues: ready messages, round-robin consumers with prefetch credit,
//! message TTL, queue expiry, max-length and dead-lettering hooks.

use crate::connection::ConnEvent;
use crate::error::AmqpError;
use crate::message::{value_as_i64, value_as_str, Message, QueuedMessage};
use crate::vhost::VHost;
use amq_protocol::types::FieldTable;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

mod ready;

use ready::Ready;

/// Prefetch credit shared by one consumer (or by a whole channel when
/// basic.qos was issued with `global = true`).
#[derive(Debug, Default)]
pub(crate) struct Credit {
    limit: AtomicU32,
    in_flight: AtomicU32,
}

impl Credit {
    /// A credit with the given prefetch limit (0 = unlimited).
    pub(crate) fn new(limit: u16) -> Self {
        Self {
            limit: AtomicU32::new(u32::from(limit)),
            in_flight: AtomicU32::new(0),
        }
    }

    /// Change the limit.
    pub(crate) fn set_limit(&self, limit: u16) {
        self.limit.store(u32::from(limit), Ordering::SeqCst);
    }

    /// Take one unit of credit if allowed.
    pub(crate) fn try_acquire(&self) -> bool {
        let limit = self.limit.load(Ordering::SeqCst);
        self.in_flight
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |f| {
                if limit == 0 || f < limit {
                    Some(f.saturating_add(1))
                } else {
                    None
                }
            })
            .is_ok()
    }

    /// Give back one unit; returns true if the credit was exhausted before
    /// (so a queue may have stopped dispatching to its holder).
    pub(crate) fn release_one(&self) -> bool {
        let limit = self.limit.load(Ordering::SeqCst);
        let before = self
            .in_flight
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |f| {
                Some(f.saturating_sub(1))
            })
            .unwrap_or(0);
        limit != 0 && before >= limit
    }

    /// Give back `n` units of credit.
    pub(crate) fn release(&self, n: u32) {
        let _ = self
            .in_flight
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |f| {
                Some(f.saturating_sub(n))
            });
    }
}

/// A consumer registered on a queue.
#[derive(Debug, Clone)]
pub(crate) struct Consumer {
    /// Consumer tag.
    pub(crate) tag: Arc<str>,
    /// Owning connection id.
    pub(crate) conn_id: u64,
    /// Channel on that connection.
    pub(crate) channel: u16,
    /// Event sink of the owning connection.
    pub(crate) tx: UnboundedSender<ConnEvent>,
    /// Exclusive consumer.
    pub(crate) exclusive: bool,
    /// Prefetch credit (for no-ack consumers: a window of deliveries not
    /// yet written by their connection, for backpressure).
    pub(crate) credit: Arc<Credit>,
    /// Consumer priority (`x-priority`, default 0).
    pub(crate) priority: i64,
}

/// Queue arguments that change behaviour.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct QueueArgs {
    /// x-message-ttl.
    pub(crate) message_ttl: Option<Duration>,
    /// x-expires.
    pub(crate) expires: Option<Duration>,
    /// x-max-length.
    pub(crate) max_length: Option<usize>,
    /// x-max-length-bytes.
    pub(crate) max_length_bytes: Option<usize>,
    /// x-dead-letter-exchange.
    pub(crate) dlx: Option<String>,
    /// x-dead-letter-routing-key.
    pub(crate) dlrk: Option<String>,
    /// x-overflow = reject-publish (refuse new messages when full).
    pub(crate) reject_publish: bool,
    /// x-max-priority (priority queue).
    pub(crate) max_priority: Option<u8>,
    /// x-single-active-consumer.
    pub(crate) single_active: bool,
}

impl QueueArgs {
    /// Parse and validate declaration arguments (406 on bad values).
    pub(crate) fn parse(args: &FieldTable) -> Result<Self, AmqpError> {
        let mut out = QueueArgs::default();
        let int = |key: &str| -> Result<Option<i64>, AmqpError> {
            match args.inner().get(key) {
                None => Ok(None),
                Some(v) => match value_as_i64(v) {
                    Some(i) if i >= 0 => Ok(Some(i)),
                    _ => Err(AmqpError::precondition(format!(
                        "invalid arg '{key}' for queue: {v:?}"
                    ))),
                },
            }
        };
        out.message_ttl = int("x-message-ttl")?.map(|ms| Duration::from_millis(ms as u64));
        out.expires = match int("x-expires")? {
            Some(0) => {
                return Err(AmqpError::precondition(
                    "invalid arg 'x-expires' for queue: must be positive",
                ))
            }
            other => other.map(|ms| Duration::from_millis(ms as u64)),
        };
        out.max_length = int("x-max-length")?.map(|n| n as usize);
        out.max_length_bytes = int("x-max-length-bytes")?.map(|n| n as usize);
        let string = |key: &str| -> Result<Option<String>, AmqpError> {
            match args.inner().get(key) {
                None => Ok(None),
                Some(v) => value_as_str(v).map(Some).ok_or_else(|| {
                    AmqpError::precondition(format!("invalid arg '{key}' for queue: {v:?}"))
                }),
            }
        };
        out.dlx = string("x-dead-letter-exchange")?;
        out.dlrk = string("x-dead-letter-routing-key")?;
        if out.dlrk.is_some() && out.dlx.is_none() {
            return Err(AmqpError::precondition(
                "invalid arg 'x-dead-letter-routing-key' for queue: x-dead-letter-exchange is not set",
            ));
        }
        out.single_active = match args.inner().get("x-single-active-consumer") {
            None => false,
            Some(amq_protocol::types::AMQPValue::Boolean(b)) => *b,
            Some(v) => {
                return Err(AmqpError::precondition(format!(
                    "invalid arg 'x-single-active-consumer' for queue: {v:?}"
                )))
            }
        };
        match string("x-queue-type")?.as_deref() {
            // Quorum queues are served as classic queues.
            None | Some("classic") | Some("quorum") => {}
            Some(other) => {
                return Err(AmqpError::precondition(format!(
                    "invalid arg 'x-queue-type' for queue: unsupported queue type '{other}'"
                )))
            }
        }
        out.max_priority = match int("x-max-priority")? {
            None => None,
            Some(p) if (1..=255).contains(&p) => Some(p as u8),
            Some(p) => {
                return Err(AmqpError::precondition(format!(
                    "invalid arg 'x-max-priority' for queue: {p}"
                )))
            }
        };
        match args.inner().get("x-overflow").map(value_as_str) {
            None => {}
            Some(Some(s)) if s == "drop-head" => {}
            Some(Some(s)) if s == "reject-publish" || s == "reject-publish-dlx" => {
                out.reject_publish = true;
            }
            Some(other) => {
                return Err(AmqpError::precondition(format!(
                    "invalid arg 'x-overflow' for queue: {other:?}"
                )))
            }
        }
        Ok(out)
    }
}

/// Why a message is being dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeathReason {
    /// basic.reject / basic.nack with requeue=false.
    Rejected,
    /// TTL expiry.
    Expired,
    /// x-max-length overflow.
    MaxLen,
}

impl DeathReason {
    /// RabbitMQ's name for the reason.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Rejected => "rejected",
            Self::Expired => "expired",
            Self::MaxLen => "maxlen",
        }
    }
}

#[derive(Debug)]
struct QueueState {
    ready: Ready,
    consumers: Vec<Consumer>,
    rr: usize,
    deleted: bool,
    last_used: Instant,
    had_consumer: bool,
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
    vhost: Weak<VHost>,
    state: Mutex<QueueState>,
}

/// Dead-lettered or dropped messages collected under the lock and handled
/// after it is released.
type Dead = Vec<(QueuedMessage, DeathReason)>;

impl Queue {
    /// A new empty queue.
    pub(crate) fn new(
        name: String,
        durable: bool,
        owner: Option<u64>,
        auto_delete: bool,
        arguments: FieldTable,
        args: QueueArgs,
        vhost: Weak<VHost>,
    ) -> Self {
        let ready = Ready::new(args.max_priority);
        Self {
            name,
            durable,
            owner,
            auto_delete,
            arguments,
            args,
            vhost,
            state: Mutex::new(QueueState {
                ready,
                consumers: Vec::new(),
                rr: 0,
                deleted: false,
                last_used: Instant::now(),
                had_consumer: false,
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
    pub(crate) fn enqueue(self: &Arc<Self>, msg: Arc<Message>, store_id: Option<u64>) {
        let now = Instant::now();
        let qm = QueuedMessage {
            expires_at: self.expiry_for(&msg, now),
            msg,
            redelivered: false,
            store_id,
        };
        let mut dead = Vec::new();
        {
            let mut st = self.lock();
            if st.deleted {
                drop(st);
                self.forget(&qm);
                return;
            }
            st.ready.push_back(qm);
            while self.args.max_length.is_some_and(|max| st.ready.len() > max)
                || self
                    .args
                    .max_length_bytes
                    .is_some_and(|max| st.ready.bytes() > max)
            {
                match st.ready.pop_front() {
                    Some(m) => dead.push((m, DeathReason::MaxLen)),
                    None => break,
                }
            }
            self.dispatch_locked(&mut st, &mut dead, now);
        }
        self.handle_dead(dead);
    }

    /// Put messages back at the head of the queue (marked redelivered),
    /// preserving their relative order.
    pub(crate) fn requeue(self: &Arc<Self>, msgs: Vec<QueuedMessage>) {
        self.put_back(msgs, true);
    }

    fn put_back(self: &Arc<Self>, msgs: Vec<QueuedMessage>, redelivered: bool) {
        if msgs.is_empty() {
            return;
        }
        let mut dead = Vec::new();
        {
            let mut st = self.lock();
            if st.deleted {
                drop(st);
                for m in &msgs {
                    self.forget(m);
                }
                return;
            }
            for mut m in msgs.into_iter().rev() {
                m.redelivered |= redelivered;
                st.ready.push_front(m);
            }
            self.dispatch_locked(&mut st, &mut dead, Instant::now());
        }
        self.handle_dead(dead);
    }

    /// Try to deliver ready messages to consumers with credit.
    pub(crate) fn dispatch(self: &Arc<Self>) {
        let mut dead = Vec::new();
        {
            let mut st = self.lock();
            self.dispatch_locked(&mut st, &mut dead, Instant::now());
        }
        self.handle_dead(dead);
    }

    fn dispatch_locked(self: &Arc<Self>, st: &mut QueueState, dead: &mut Dead, now: Instant) {
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
                    dead.push((m, DeathReason::Expired));
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
            let ev = ConnEvent::Deliver {
                channel: c.channel,
                consumer_tag: c.tag.clone(),
                queue: self.clone(),
                msg,
            };
            if let Err(e) = c.tx.send(ev) {
                if let ConnEvent::Deliver { msg, .. } = e.0 {
                    st.ready.push_front(msg);
                }
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

    /// Expire messages at the head whose TTL has passed. Returns true if the
    /// queue itself expired (x-expires) and should be deleted.
    pub(crate) fn tick(self: &Arc<Self>, now: Instant) -> bool {
        let mut dead = Vec::new();
        let expired_queue;
        {
            let mut st = self.lock();
            while st
                .ready
                .front()
                .and_then(|m| m.expires_at)
                .is_some_and(|e| e <= now)
            {
                if let Some(m) = st.ready.pop_front() {
                    dead.push((m, DeathReason::Expired));
                }
            }
            expired_queue = !st.deleted
                && st.consumers.is_empty()
                && self
                    .args
                    .expires
                    .is_some_and(|e| now.duration_since(st.last_used) >= e);
        }
        self.handle_dead(dead);
        expired_queue
    }

    /// Whether this queue needs periodic ticking (TTLs or expiry).
    pub(crate) fn needs_tick(&self) -> bool {
        self.args.message_ttl.is_some() || self.args.expires.is_some() || {
            let st = self.lock();
            st.ready.has_expiring()
        }
    }

    /// Register a consumer (403 on exclusivity conflicts).
    pub(crate) fn add_consumer(self: &Arc<Self>, consumer: Consumer) -> Result<(), AmqpError> {
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
        self.dispatch();
        Ok(())
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

    /// basic.get: take the first live message. Returns it and the number of
    /// messages remaining.
    pub(crate) fn get(self: &Arc<Self>) -> Option<(QueuedMessage, u32)> {
        let now = Instant::now();
        let mut dead = Vec::new();
        let out = {
            let mut st = self.lock();
            st.last_used = now;
            let mut out = None;
            while let Some(m) = st.ready.pop_front() {
                if m.expires_at.is_some_and(|e| e <= now) {
                    dead.push((m, DeathReason::Expired));
                    continue;
                }
                out = Some((m, st.ready.len() as u32));
                break;
            }
            out
        };
        self.handle_dead(dead);
        out
    }

    /// Refresh the x-expires idle timer (redeclare, get).
    pub(crate) fn touch(&self) {
        self.lock().last_used = Instant::now();
    }

    /// (ready messages, consumers).
    pub(crate) fn counts(&self) -> (u32, u32) {
        let st = self.lock();
        (st.ready.len() as u32, st.consumers.len() as u32)
    }

    /// Drop all ready messages. Returns how many were dropped.
    pub(crate) fn purge(&self) -> u32 {
        let msgs: Vec<_> = {
            let mut st = self.lock();
            st.ready.take_all()
        };
        for m in &msgs {
            self.forget(m);
        }
        msgs.len() as u32
    }

    /// Mark deleted; returns the message count and the consumers to notify.
    pub(crate) fn mark_deleted(&self) -> (u32, Vec<Consumer>) {
        let (msgs, consumers) = {
            let mut st = self.lock();
            st.deleted = true;
            let msgs: Vec<_> = st.ready.take_all();
            (msgs, std::mem::take(&mut st.consumers))
        };
        for m in &msgs {
            self.forget(m);
        }
        (msgs.len() as u32, consumers)
    }

    /// The message was acked (or dropped): remove it from the store.
    pub(crate) fn forget(&self, m: &QueuedMessage) {
        if let (Some(id), Some(vhost)) = (m.store_id, self.vhost.upgrade()) {
            vhost.store_remove(&self.name, id);
        }
    }

    /// A delivered message was rejected without requeue.
    pub(crate) fn reject(self: &Arc<Self>, m: QueuedMessage) {
        self.handle_dead(vec![(m, DeathReason::Rejected)]);
    }

    fn handle_dead(self: &Arc<Self>, dead: Dead) {
        if dead.is_empty() {
            return;
        }
        let vhost = self.vhost.upgrade();
        for (m, reason) in dead {
            match (&self.args.dlx, &vhost) {
                (Some(dlx), Some(vh)) => vh.dead_letter(self, dlx, m, reason),
                _ => self.forget(&m),
            }
        }
    }
}

/// Return messages that were dispatched but never reached their consumer
/// (it went away meanwhile) to the heads of their queues, in their original
/// order and with their redelivered flag unchanged.
pub(crate) fn unsend_all(list: Vec<(Arc<Queue>, QueuedMessage)>) {
    let mut groups: Vec<(Arc<Queue>, Vec<QueuedMessage>)> = Vec::new();
    for (q, m) in list {
        match groups.iter_mut().find(|(g, _)| Arc::ptr_eq(g, &q)) {
            Some((_, v)) => v.push(m),
            None => groups.push((q, vec![m])),
        }
    }
    for (q, msgs) in groups {
        q.put_back(msgs, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::types::{AMQPValue, LongString};

    fn args(pairs: Vec<(&str, AMQPValue)>) -> FieldTable {
        let mut t = FieldTable::default();
        for (k, v) in pairs {
            t.insert(k.into(), v);
        }
        t
    }

    #[test]
    fn queue_arguments() {
        let a = QueueArgs::parse(&args(vec![
            ("x-message-ttl", AMQPValue::ShortUInt(100)),
            ("x-max-length", AMQPValue::LongLongInt(5)),
            (
                "x-dead-letter-exchange",
                AMQPValue::LongString(LongString::from("dlx")),
            ),
            (
                "x-overflow",
                AMQPValue::LongString(LongString::from("reject-publish")),
            ),
            ("x-max-priority", AMQPValue::ShortShortUInt(3)),
        ]))
        .unwrap();
        assert_eq!(a.message_ttl, Some(Duration::from_millis(100)));
        assert_eq!(a.max_length, Some(5));
        assert_eq!(a.dlx.as_deref(), Some("dlx"));
        assert!(a.reject_publish);
        assert_eq!(a.max_priority, Some(3));
        for bad in [
            args(vec![("x-message-ttl", AMQPValue::LongInt(-1))]),
            args(vec![("x-message-ttl", AMQPValue::Boolean(true))]),
            args(vec![("x-expires", AMQPValue::LongInt(0))]),
            args(vec![(
                "x-overflow",
                AMQPValue::LongString(LongString::from("bogus")),
            )]),
            args(vec![(
                "x-dead-letter-routing-key",
                AMQPValue::LongString(LongString::from("k")),
            )]),
            args(vec![("x-max-priority", AMQPValue::LongInt(256))]),
        ] {
            assert_eq!(
                QueueArgs::parse(&bad).map(|_| ()).unwrap_err().code,
                crate::error::ReplyCode::PreconditionFailed
            );
        }
    }

    #[test]
    fn credit_window() {
        let c = Credit::new(2);
        assert!(c.try_acquire());
        assert!(c.try_acquire());
        assert!(!c.try_acquire());
        assert!(c.release_one());
        assert!(!c.release_one());
        let unlimited = Credit::new(0);
        for _ in 0..100 {
            assert!(unlimited.try_acquire());
        }
        assert!(!unlimited.release_one());
    }
}
