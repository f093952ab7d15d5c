//! RPC calls as the broker sees them, with no help from clients: a *request* is a
//! publish that carries `reply_to` and `correlation_id` and routes to a queue; its
//! *reply* is a later publish to the default exchange with that `reply_to` as
//! routing key and the same `correlation_id`. The pair is timed per request queue.
//!
//! Pending requests live in a bounded map ([`MAX_PENDING`]); an entry is dropped
//! when its reply comes or, unanswered, after [`PENDING_TTL`]. Each request queue
//! keeps its last [`KEPT`] latencies, from which the percentiles and calls/s are
//! read. One mutex, taken only by publishes that carry a `correlation_id`. This
//! module names nothing else in the crate, so every layer may use it.

use std::collections::hash_map::{Entry, RandomState};
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Requests awaiting a reply, at most (beyond this, new requests are not timed).
pub const MAX_PENDING: usize = 10_000;
/// An unanswered request is forgotten after this long.
pub const PENDING_TTL: Duration = Duration::from_secs(60);
/// Latencies kept per request queue.
pub const KEPT: usize = 2048;
/// Calls/s and percentiles are read over the calls completed in this window.
pub const WINDOW: Duration = Duration::from_secs(10);
/// Request queues tracked, at most (beyond this, calls to new queues are not timed).
const MAX_QUEUES: usize = 1_000;

/// One request queue's figures, as of one reading.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RpcQueueInfo {
    /// The request queue.
    pub queue: String,
    /// Calls completed (a reply seen) since the broker started.
    pub calls: u64,
    /// Requests awaiting a reply now.
    pub pending: usize,
    /// Calls completed per second over the last [`WINDOW`].
    pub calls_per_sec: f64,
    /// Calls the percentiles are taken over (those completed in the last [`WINDOW`]).
    pub window_calls: usize,
    /// Latency percentiles of those calls (None when there were none).
    pub p50: Option<Duration>,
    /// 90th percentile.
    pub p90: Option<Duration>,
    /// 99th percentile.
    pub p99: Option<Duration>,
    /// Slowest.
    pub max: Option<Duration>,
}

#[derive(Debug, Default)]
struct PerQueue {
    calls: u64,
    /// (completed at, latency), oldest first.
    recent: VecDeque<(Instant, Duration)>,
}

/// A request awaiting its reply.
#[derive(Debug)]
struct Pending {
    reply_to: Box<str>,
    correlation_id: Box<str>,
    queue: Arc<str>,
    sent: Instant,
}

#[derive(Debug, Default)]
struct State {
    /// By the hash of (reply_to, correlation_id) (see [`RpcCalls::key`]); the entry
    /// keeps both, and a reply completes it only if they match.
    pending: HashMap<u64, Pending, BuildHasherDefault<Prehashed>>,
    queues: HashMap<Arc<str>, PerQueue>,
}

/// The tracker one vhost holds.
#[derive(Debug, Default)]
pub(crate) struct RpcCalls {
    state: Mutex<State>,
    /// Keys the hash of pending entries (random per tracker).
    keys: RandomState,
}

/// Hashes the `u64` keys of [`State::pending`] as they are: they are hashes already.
#[derive(Debug, Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; fold anything else in rather than drop it.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl RpcCalls {
    fn lock(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// A publish carrying `correlation_id`: if `exchange` is the default one and
    /// `routing_key` is the `reply_to` of a pending request with that id, that call
    /// completes now. Then, if the publish has a `reply_to` and was routed to
    /// `queue`, it is a request.
    pub(crate) fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        correlation_id: &str,
        reply_to: Option<&str>,
        queue: Option<&str>,
    ) {
        self.publish_at(
            Instant::now(),
            exchange,
            routing_key,
            correlation_id,
            reply_to,
            queue,
        );
    }

    fn publish_at(
        &self,
        now: Instant,
        exchange: &str,
        routing_key: &str,
        correlation_id: &str,
        reply_to: Option<&str>,
        queue: Option<&str>,
    ) {
        let mut st = self.lock();
        if exchange.is_empty() && !st.pending.is_empty() {
            let answered = match st.pending.entry(self.key(routing_key, correlation_id)) {
                Entry::Occupied(e)
                    if &*e.get().reply_to == routing_key
                        && &*e.get().correlation_id == correlation_id =>
                {
                    Some(e.remove())
                }
                _ => None,
            };
            if let Some(p) = answered {
                if let Some(per) = st.queues.get_mut(&p.queue) {
                    per.calls += 1;
                    per.recent
                        .push_back((now, now.saturating_duration_since(p.sent)));
                    while per.recent.len() > KEPT {
                        per.recent.pop_front();
                    }
                }
            }
        }
        let (Some(reply_to), Some(queue)) = (reply_to, queue) else {
            return;
        };
        if st.pending.len() >= MAX_PENDING {
            st.pending
                .retain(|_, p| now.saturating_duration_since(p.sent) < PENDING_TTL);
            if st.pending.len() >= MAX_PENDING {
                return;
            }
        }
        let queue = match st.queues.get_key_value(queue) {
            Some((name, _)) => name.clone(),
            None if st.queues.len() >= MAX_QUEUES => return,
            None => {
                let name: Arc<str> = queue.into();
                st.queues.insert(name.clone(), PerQueue::default());
                name
            }
        };
        let key = self.key(reply_to, correlation_id);
        st.pending.insert(
            key,
            Pending {
                reply_to: reply_to.into(),
                correlation_id: correlation_id.into(),
                queue,
                sent: now,
            },
        );
    }

    /// The key of a pending request: a keyed hash of its reply address and id. Two
    /// requests with one key (as rare as any 64-bit collision, and not something a
    /// client can aim for without the key) mean the later one replaces the earlier.
    fn key(&self, reply_to: &str, correlation_id: &str) -> u64 {
        self.keys.hash_one((reply_to, correlation_id))
    }

    /// Every request queue seen, by name.
    pub(crate) fn read(&self) -> Vec<RpcQueueInfo> {
        self.read_at(Instant::now())
    }

    fn read_at(&self, now: Instant) -> Vec<RpcQueueInfo> {
        let mut st = self.lock();
        st.pending
            .retain(|_, p| now.saturating_duration_since(p.sent) < PENDING_TTL);
        let mut waiting: HashMap<&str, usize> = HashMap::new();
        for p in st.pending.values() {
            *waiting.entry(&*p.queue).or_default() += 1;
        }
        let mut out: Vec<RpcQueueInfo> = st
            .queues
            .iter()
            .map(|(name, per)| {
                let mut lat: Vec<Duration> = per
                    .recent
                    .iter()
                    .filter(|(at, _)| now.saturating_duration_since(*at) <= WINDOW)
                    .map(|(_, d)| *d)
                    .collect();
                lat.sort_unstable();
                // With KEPT calls all inside the window, the window is really the
                // span they cover.
                let span = match per.recent.front() {
                    Some((oldest, _)) if lat.len() == per.recent.len() && lat.len() == KEPT => now
                        .saturating_duration_since(*oldest)
                        .max(Duration::from_millis(1)),
                    _ => WINDOW,
                };
                let pick = |p: f64| -> Option<Duration> {
                    let i = ((lat.len() as f64 * p).ceil() as usize).max(1) - 1;
                    lat.get(i.min(lat.len().saturating_sub(1))).copied()
                };
                RpcQueueInfo {
                    queue: name.to_string(),
                    calls: per.calls,
                    pending: waiting.get(&**name).copied().unwrap_or(0),
                    calls_per_sec: lat.len() as f64 / span.as_secs_f64(),
                    window_calls: lat.len(),
                    p50: pick(0.50),
                    p90: pick(0.90),
                    p99: pick(0.99),
                    max: lat.last().copied(),
                }
            })
            .collect();
        out.sort_by(|a, b| a.queue.cmp(&b.queue));
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::stats::rpc::{RpcCalls, MAX_PENDING, PENDING_TTL, WINDOW};
    use std::time::{Duration, Instant};

    #[test]
    fn a_reply_times_its_request_per_queue() {
        let r = RpcCalls::default();
        let t0 = Instant::now();
        for i in 0..10u64 {
            let id = i.to_string();
            let sent = t0 + Duration::from_millis(i * 10);
            r.publish_at(
                sent,
                "",
                "fib",
                &id,
                Some("amq.rabbitmq.reply-to.x"),
                Some("fib"),
            );
            let back = sent + Duration::from_millis(i + 1);
            r.publish_at(back, "", "amq.rabbitmq.reply-to.x", &id, None, None);
        }
        // A reply with an unknown id, or to another address, times nothing.
        r.publish_at(t0, "", "amq.rabbitmq.reply-to.x", "99", None, None);
        let info = r.read_at(t0 + Duration::from_secs(1));
        assert_eq!(info.len(), 1);
        let fib = &info[0];
        assert_eq!((fib.queue.as_str(), fib.calls, fib.pending), ("fib", 10, 0));
        assert_eq!(fib.p50, Some(Duration::from_millis(5)));
        assert_eq!(fib.p99, Some(Duration::from_millis(10)));
        assert_eq!(fib.max, Some(Duration::from_millis(10)));
        assert!((fib.calls_per_sec - 10.0 / WINDOW.as_secs_f64()).abs() < 1e-9);
        // Out of the window: the totals stay, the percentiles go.
        let later = r.read_at(t0 + WINDOW + Duration::from_secs(2));
        assert_eq!((later[0].calls, later[0].p50), (10, None));
    }

    #[test]
    fn only_a_reply_to_the_requests_address_with_its_id_completes_it() {
        let r = RpcCalls::default();
        let t0 = Instant::now();
        r.publish_at(t0, "", "fib", "7", Some("reply-a"), Some("fib"));
        r.publish_at(t0, "", "reply-b", "7", None, None);
        r.publish_at(t0, "", "reply-a", "8", None, None);
        r.publish_at(t0, "amq.direct", "reply-a", "7", None, None);
        assert_eq!((r.read_at(t0)[0].calls, r.read_at(t0)[0].pending), (0, 1));
        r.publish_at(t0, "", "reply-a", "7", None, None);
        assert_eq!((r.read_at(t0)[0].calls, r.read_at(t0)[0].pending), (1, 0));
    }

    #[test]
    fn unanswered_requests_are_bounded_and_expire() {
        let r = RpcCalls::default();
        let t0 = Instant::now();
        for i in 0..MAX_PENDING + 5 {
            r.publish_at(t0, "", "q", &i.to_string(), Some("reply"), Some("q"));
        }
        assert_eq!(r.read_at(t0)[0].pending, MAX_PENDING);
        let gone = r.read_at(t0 + PENDING_TTL + Duration::from_secs(1));
        assert_eq!(gone[0].pending, 0);
    }
}
