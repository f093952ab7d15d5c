//! The memory high watermark, as RabbitMQ's `vm_memory_high_watermark`: once the
//! broker uses more memory than its limit (by default 0.4 of the machine's memory,
//! see [`limit`]), publishers are blocked (`connection.blocked` to clients that
//! support it, then no more reads from a connection that publishes while the alarm
//! is on) until consumers bring it back under.
//!
//! # What is counted
//!
//! Like RabbitMQ, the limit bounds the process's memory, not a tally of payloads:
//! a 16-byte message costs the broker about 40 times its payload (the message
//! struct with its parsed properties, its `Arc`, its slot in the queue, allocator
//! headers), so counting payloads let the process grow far past the limit. The
//! count is two parts:
//!
//! - **held**: every [`Message`](crate::message::Message) carries a [`Charge`] of
//!   its footprint (`message/footprint.rs`: payload, properties, names and the fixed
//!   per-message overhead, from the types' sizes), added when it is built and taken
//!   off when its last copy is dropped (acked, expired, purged, dead-lettered away),
//!   so the count cannot drift whatever path a message leaves by, and it moves at
//!   once with every publish, not only when sampled;
//! - **other**: the rest of the process, `RSS - held` from `/proc/self/statm`,
//!   sampled by the broker's memory sampler (every 50 ms, `server.rs`): connection buffers, the runtime,
//!   whatever the footprint misses, and memory the allocator has not given back.
//!
//! The alarm is raised as soon as `held + other` crosses the limit less a
//! [`headroom`] of 1/16 (at most 32 MiB), so that what is in flight when it trips
//! still fits under the limit (on a publish, or when a sample finds the process
//! over it), and cleared by the sampler once usage is one more headroom under (so
//! it does not flap when a sample corrects the footprint's estimate). A broker embedded in a larger process can count its messages only
//! ([`Counting::Messages`]), leaving the host's memory out.
//!
//! # Giving memory back
//!
//! glibc's malloc keeps freed memory in its arenas (one per thread that allocated,
//! and the tokio workers all do), returning to the system only the top of each
//! heap: after a queue of small messages is deleted the process kept its peak RSS.
//! The sampler calls `malloc_trim` ([`process::trim`]) once the held bytes have
//! fallen by [`TRIM_AFTER`] since the last trim (at most once a second), which
//! hands the free pages of every arena back. A process with another global
//! allocator gives the broker that allocator's call too
//! ([`BrokerBuilder::release_memory_with`](crate::BrokerBuilder::release_memory_with)):
//! mimalloc, for one, keeps freed pages for reuse until told to collect them.
//! Queues also shrink their storage when they empty (`queue::ready`), and message
//! properties are copied out of the connection's read buffer so a held message does
//! not pin the buffer it came in.

mod limit;
mod process;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::watch;

pub use limit::MemoryLimit;

/// Trim the allocator once the held bytes have fallen this much since the last trim.
pub(crate) const TRIM_AFTER: usize = 8 << 20;
/// At most one trim per this interval.
const TRIM_EVERY: Duration = Duration::from_secs(1);

/// What the memory high watermark counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Counting {
    /// The whole process's resident memory (RSS), as RabbitMQ counts its VM's
    /// memory: the footprint of the messages held, plus everything else the
    /// process holds, sampled every 50 ms. The default.
    #[default]
    Process,
    /// Only the footprint of the messages the broker holds (payload, properties
    /// and per-message overhead): for a broker embedded in a larger process whose
    /// other memory is not the broker's to police.
    Messages,
}

/// Memory used by the broker, against an optional limit.
pub(crate) struct Gauge {
    /// The footprint of the messages held.
    held: AtomicUsize,
    /// The rest of the process at the last sample (`RSS - held`); 0 when only
    /// messages are counted.
    other: AtomicUsize,
    /// `None`: no limit, the alarm never goes on.
    limit: Option<usize>,
    /// Where the alarm goes on: the limit less [`headroom`].
    trip: Option<usize>,
    /// Reads the process's RSS (`None`: count messages only).
    rss: Option<process::Rss>,
    /// The most held since the last trim.
    peak: AtomicUsize,
    /// When the allocator was last trimmed.
    trimmed: Mutex<Instant>,
    /// The global allocator's own call to give freed memory back, after glibc's trim.
    release: Option<fn()>,
    /// The alarm's state, cheap to read on every publish.
    on: AtomicBool,
    /// The alarm's changes, for connections to follow.
    alarm: watch::Sender<bool>,
    /// The broker's alarms, told when this one goes on or off.
    alarms: OnceLock<Arc<crate::alarm::Alarms>>,
}

impl fmt::Debug for Gauge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gauge")
            .field("held", &self.held())
            .field("other", &self.other.load(Ordering::Relaxed))
            .field("limit", &self.limit)
            .field("process", &self.rss.is_some())
            .field("alarm", &self.alarmed())
            .finish()
    }
}

impl Gauge {
    /// A gauge of held messages only, with the given limit in bytes (`None` for
    /// no limit).
    #[allow(dead_code)] // the broker uses `counting`; kept for message-only gauges
    pub(crate) fn new(limit: Option<usize>) -> Arc<Self> {
        Self::counting(limit, Counting::Messages, None)
    }

    /// A gauge counting as `counting` says; [`Counting::Process`] falls back to
    /// messages only where the process's RSS cannot be read. After big frees,
    /// glibc's trim and then `release` give freed memory back to the system.
    pub(crate) fn counting(
        limit: Option<usize>,
        counting: Counting,
        release: Option<fn()>,
    ) -> Arc<Self> {
        let rss = match counting {
            Counting::Process => {
                let rss = process::Rss::open();
                if rss.is_none() {
                    tracing::warn!(
                        "cannot read /proc/self/statm: the memory limit counts held messages only"
                    );
                }
                rss
            }
            Counting::Messages => None,
        };
        process::tune();
        let gauge = Arc::new(Self {
            held: AtomicUsize::new(0),
            other: AtomicUsize::new(0),
            limit,
            trip: limit.map(|l| l - headroom(l)),
            rss,
            peak: AtomicUsize::new(0),
            trimmed: Mutex::new(Instant::now()),
            release,
            on: AtomicBool::new(false),
            alarm: watch::Sender::new(false),
            alarms: OnceLock::new(),
        });
        gauge.sample();
        if let Some(limit) = limit {
            let used = gauge.used();
            if used > limit {
                tracing::warn!(
                    used,
                    limit,
                    "the process already uses more memory than the broker's memory limit: \
                     publishers will be blocked until it is back under"
                );
            }
        }
        gauge
    }

    /// Charge `bytes` to this gauge until the returned [`Charge`] is dropped;
    /// raises the alarm if that crosses the limit.
    pub(crate) fn charge(self: &Arc<Self>, bytes: usize) -> Charge {
        let held = self.held.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.peak.fetch_max(held, Ordering::Relaxed);
        if let Some(trip) = self.trip {
            if held + self.other.load(Ordering::Relaxed) > trip && !self.alarmed() {
                self.set_alarm(true, trip);
            }
        }
        Charge {
            gauge: Some(self.clone()),
            bytes,
        }
    }

    /// Samples the process, gives freed memory back to the system after big frees,
    /// and raises or clears the alarm as usage calls for (called periodically).
    pub(crate) fn check(&self) {
        self.maybe_trim();
        self.sample();
        let Some(trip) = self.trip else { return };
        let used = self.used();
        if !self.alarmed() && used > trip {
            self.set_alarm(true, trip);
        } else if self.alarmed() && used <= self.clear_at() {
            self.set_alarm(false, self.clear_at());
        }
    }

    /// Reads the process's RSS into `other`.
    fn sample(&self) {
        let Some(rss) = self.rss.as_ref().and_then(process::Rss::read) else {
            return;
        };
        let other = rss.saturating_sub(self.held());
        self.other.store(other, Ordering::Relaxed);
    }

    /// Trims the allocator once the held bytes fell by [`TRIM_AFTER`] since the
    /// last trim (at most once per [`TRIM_EVERY`]).
    fn maybe_trim(&self) {
        let held = self.held();
        let freed = self.peak.load(Ordering::Relaxed).saturating_sub(held);
        if freed < TRIM_AFTER {
            return;
        }
        let mut last = self.trimmed.lock().unwrap_or_else(|p| p.into_inner());
        if last.elapsed() < TRIM_EVERY {
            return;
        }
        *last = Instant::now();
        self.peak.store(held, Ordering::Relaxed);
        let release = self.release;
        let trim = move || {
            let started = Instant::now();
            process::trim();
            if let Some(release) = release {
                release();
            }
            tracing::debug!(
                freed,
                took_us = started.elapsed().as_micros() as u64,
                "gave freed memory back to the system"
            );
        };
        // It takes milliseconds after a big free: not on a runtime worker.
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(trim)),
            Err(_) => trim(),
        }
    }

    /// Where the alarm clears: one more [`headroom`] under where it goes on, so a
    /// sample that finds the footprint a little over-estimated does not clear it
    /// and a publish raise it again at once.
    fn clear_at(&self) -> usize {
        match (self.limit, self.trip) {
            (Some(limit), Some(trip)) => trip - headroom(limit),
            _ => usize::MAX,
        }
    }

    /// Turns the alarm on (usage over `level`) or off (usage at or under it) if
    /// usage, read again under the watch's lock (which serializes the transitions),
    /// still calls for it.
    fn set_alarm(&self, on: bool, level: usize) {
        self.alarm.send_if_modified(|state| {
            let used = self.used();
            if *state == on || (used > level) != on {
                return false;
            }
            *state = on;
            self.on.store(on, Ordering::Release);
            if let Some(alarms) = self.alarms.get() {
                alarms.set(crate::alarm::Source::Memory, on);
            }
            let held = self.held();
            let limit = self.limit.unwrap_or(level);
            if on {
                tracing::warn!(
                    used,
                    held,
                    limit,
                    "memory high watermark reached: blocking publishers"
                );
            } else {
                tracing::info!(
                    used,
                    held,
                    limit,
                    "memory back under the high watermark: unblocking"
                );
            }
            true
        });
    }

    /// Bytes counted against the limit: the messages held plus, when counting
    /// the process, the rest of it at the last sample.
    pub(crate) fn used(&self) -> usize {
        self.held()
            .saturating_add(self.other.load(Ordering::Relaxed))
    }

    /// The footprint of the messages held.
    pub(crate) fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// The limit in bytes (`None`: no limit).
    pub(crate) fn limit(&self) -> Option<usize> {
        self.limit
    }

    /// Whether the alarm is on.
    pub(crate) fn alarmed(&self) -> bool {
        self.on.load(Ordering::Acquire)
    }

    /// Report this alarm's changes to the broker's `alarms` (memory source) from now on.
    pub(crate) fn report_to(&self, alarms: Arc<crate::alarm::Alarms>) {
        alarms.set(crate::alarm::Source::Memory, self.alarmed());
        let _ = self.alarms.set(alarms);
    }

    /// Follow the alarm (true while on).
    #[cfg_attr(not(test), allow(dead_code))] // connections follow `alarm::Alarms`
    pub(crate) fn subscribe(&self) -> watch::Receiver<bool> {
        self.alarm.subscribe()
    }
}

/// How far under the limit the alarm goes on: 1/16 of it, at most 32 MiB. What is
/// already in flight when the alarm trips still lands (the rest of a connection's
/// read buffer, the message being received, what the process allocated since the
/// last sample), and it must fit under the limit.
pub(crate) const fn headroom(limit: usize) -> usize {
    let h = limit / 16;
    if h < 32 << 20 {
        h
    } else {
        32 << 20
    }
}

/// Bytes charged to a [`Gauge`], released on drop; a clone charges again.
#[derive(Default)]
pub(crate) struct Charge {
    gauge: Option<Arc<Gauge>>,
    bytes: usize,
}

impl fmt::Debug for Charge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Charge({})", self.bytes)
    }
}

impl Clone for Charge {
    fn clone(&self) -> Self {
        match &self.gauge {
            Some(g) => g.charge(self.bytes),
            None => Charge::default(),
        }
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if let Some(g) = &self.gauge {
            g.held.fetch_sub(self.bytes, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_are_released_on_drop_and_counted_again_on_clone() {
        let g = Gauge::new(Some(100));
        let a = g.charge(40);
        let b = a.clone();
        assert_eq!(g.held(), 80);
        drop(a);
        assert_eq!(g.held(), 40);
        drop(b);
        assert_eq!(g.held(), 0);
    }

    #[test]
    fn alarm_rises_past_the_limit_and_clears_on_check_once_under_it() {
        // The alarm goes on past 100 - 100/16 = 94.
        // It clears at or under 94 - 6 = 88.
        let g = Gauge::new(Some(100));
        let mut rx = g.subscribe();
        let small = g.charge(60);
        let under = g.charge(34);
        assert!(!g.alarmed());
        let big = g.charge(1);
        assert!(g.alarmed());
        assert!(rx.has_changed().unwrap_or(false));
        assert!(*rx.borrow_and_update());
        g.check();
        assert!(g.alarmed(), "still over the limit");
        drop(big);
        g.check();
        assert!(g.alarmed(), "94 is not under the clearing level");
        drop(under);
        assert!(g.alarmed(), "cleared only by check");
        g.check();
        assert!(!g.alarmed());
        drop(small);
        assert_eq!(g.held(), 0);
    }

    #[test]
    fn without_a_limit_messages_are_counted_but_never_alarm() {
        let g = Gauge::new(None);
        let c = g.charge(1 << 30);
        assert_eq!(g.held(), 1 << 30);
        g.check();
        assert!(!g.alarmed());
        drop(c);
        assert_eq!(g.held(), 0);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn counting_the_process_adds_its_resident_memory() {
        // This test process is well over 1 MiB resident: a 1 MiB limit is passed
        // at the first sample, with no message held.
        let g = Gauge::counting(Some(1 << 20), Counting::Process, None);
        assert!(g.used() > 1 << 20, "used {}", g.used());
        g.check();
        assert!(g.alarmed());
        // Messages add to the sampled rest of the process at once.
        let before = g.used();
        let c = g.charge(4096);
        assert_eq!(g.used(), before + 4096);
        drop(c);
        assert_eq!(headroom(64 << 20), 4 << 20);
        assert_eq!(headroom(16 << 30), 32 << 20);
        let roomy = Gauge::counting(Some(usize::MAX / 2), Counting::Process, None);
        roomy.check();
        assert!(!roomy.alarmed());
    }
}
