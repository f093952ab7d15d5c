//! The memory high watermark: counts the bytes of the messages the broker holds
//! and raises the alarm that blocks publishers, as RabbitMQ's memory alarm does
//! (`connection.blocked` to clients that support it, then no more reads from a
//! connection that publishes while the alarm is on).
//!
//! Every [`Message`](crate::message::Message) carries a [`Charge`]: its bytes are
//! added when it is built and taken off when its last copy is dropped (acked,
//! expired, purged, dead-lettered away), so the count cannot drift whatever path
//! a message leaves by. The alarm is raised as soon as a charge crosses the limit
//! and cleared by the broker's ticker once the count is back under it.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::sync::watch;

/// Bytes held by messages, against an optional limit.
pub(crate) struct Gauge {
    used: AtomicUsize,
    /// `None`: no limit, nothing is counted.
    limit: Option<usize>,
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
            .field("used", &self.used())
            .field("limit", &self.limit)
            .field("alarm", &self.alarmed())
            .finish()
    }
}

impl Gauge {
    /// A gauge with the given limit in bytes (`None` for no limit).
    pub(crate) fn new(limit: Option<usize>) -> Arc<Self> {
        Arc::new(Self {
            used: AtomicUsize::new(0),
            limit,
            on: AtomicBool::new(false),
            alarm: watch::Sender::new(false),
            alarms: OnceLock::new(),
        })
    }

    /// Charge `bytes` to this gauge until the returned [`Charge`] is dropped;
    /// raises the alarm if that crosses the limit.
    pub(crate) fn charge(self: &Arc<Self>, bytes: usize) -> Charge {
        let Some(limit) = self.limit else {
            return Charge::default();
        };
        let used = self.used.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if used > limit && !self.alarmed() {
            self.set_alarm(true, limit);
        }
        Charge {
            gauge: Some(self.clone()),
            bytes,
        }
    }

    /// Clears the alarm once usage is back under the limit (called periodically).
    pub(crate) fn check(&self) {
        let Some(limit) = self.limit else { return };
        if self.alarmed() && self.used() <= limit {
            self.set_alarm(false, limit);
        }
    }

    /// Turns the alarm on or off if usage (read again under the watch's lock,
    /// which serializes the transitions) still calls for it.
    fn set_alarm(&self, on: bool, limit: usize) {
        self.alarm.send_if_modified(|state| {
            let used = self.used();
            if *state == on || (used > limit) != on {
                return false;
            }
            *state = on;
            self.on.store(on, Ordering::Release);
            if let Some(alarms) = self.alarms.get() {
                alarms.set(crate::alarm::Source::Memory, on);
            }
            if on {
                tracing::warn!(
                    used,
                    limit,
                    "memory high watermark reached: blocking publishers"
                );
            } else {
                tracing::info!(
                    used,
                    limit,
                    "memory back under the high watermark: unblocking"
                );
            }
            true
        });
    }

    /// Bytes currently held.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
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
            g.used.fetch_sub(self.bytes, Ordering::Relaxed);
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
        assert_eq!(g.used(), 80);
        drop(a);
        assert_eq!(g.used(), 40);
        drop(b);
        assert_eq!(g.used(), 0);
    }

    #[test]
    fn alarm_rises_past_the_limit_and_clears_on_check_once_under_it() {
        let g = Gauge::new(Some(100));
        let mut rx = g.subscribe();
        let small = g.charge(60);
        assert!(!g.alarmed());
        let big = g.charge(60);
        assert!(g.alarmed());
        assert!(rx.has_changed().unwrap_or(false));
        assert!(*rx.borrow_and_update());
        g.check();
        assert!(g.alarmed(), "still over the limit");
        drop(big);
        assert!(g.alarmed(), "cleared only by check");
        g.check();
        assert!(!g.alarmed());
        drop(small);
        assert_eq!(g.used(), 0);
    }

    #[test]
    fn without_a_limit_nothing_is_counted() {
        let g = Gauge::new(None);
        let c = g.charge(1 << 30);
        assert_eq!(g.used(), 0);
        assert!(!g.alarmed());
        drop(c);
    }
}
