//! Resource alarms, as RabbitMQ has them: each named source (the memory high
//! watermark, the free-disk limit) raises or clears its own alarm, and publishers are
//! blocked while any of them is on. Connections follow the set of active sources
//! through a watch channel and read the current state cheaply on every publish.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use tokio::sync::watch;

/// What raised an alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// The messages held passed the memory limit.
    Memory,
    /// Free space on the data directory's disk fell below the limit.
    Disk,
}

impl Source {
    fn bit(self) -> u8 {
        match self {
            Source::Memory => 1,
            Source::Disk => 2,
        }
    }
}

/// The set of alarm sources currently on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Active(u8);

impl Active {
    /// No alarm is on.
    pub(crate) fn is_clear(self) -> bool {
        self.0 == 0
    }

    /// `source`'s alarm is on.
    pub(crate) fn has(self, source: Source) -> bool {
        self.0 & source.bit() != 0
    }

    /// The reason given in `connection.blocked`, as RabbitMQ words it.
    pub(crate) fn reason(self) -> &'static str {
        match (self.has(Source::Memory), self.has(Source::Disk)) {
            (true, true) => "low on memory & disk",
            (false, true) => "low on disk",
            _ => "low on memory",
        }
    }
}

/// The broker's alarms: one flag per [`Source`].
pub(crate) struct Alarms {
    /// Bit set of the active sources, cheap to read on every publish.
    on: AtomicU8,
    /// The same set, for connections to follow its changes.
    changes: watch::Sender<Active>,
}

impl fmt::Debug for Alarms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Alarms").field(&self.active()).finish()
    }
}

impl Alarms {
    /// All alarms off.
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            on: AtomicU8::new(0),
            changes: watch::Sender::new(Active::default()),
        })
    }

    /// Raise (`on`) or clear `source`'s alarm; connections are told if that changes
    /// the set of active sources.
    pub(crate) fn set(&self, source: Source, on: bool) {
        self.changes.send_if_modified(|active| {
            let next = if on {
                active.0 | source.bit()
            } else {
                active.0 & !source.bit()
            };
            if next == active.0 {
                return false;
            }
            active.0 = next;
            self.on.store(next, Ordering::Release);
            true
        });
    }

    /// The sources whose alarm is on.
    pub(crate) fn active(&self) -> Active {
        Active(self.on.load(Ordering::Acquire))
    }

    /// Whether any alarm is on (publishers are blocked).
    pub(crate) fn any(&self) -> bool {
        !self.active().is_clear()
    }

    /// Follow the set of active sources.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Active> {
        self.changes.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishers_stay_blocked_while_any_source_is_on() {
        let alarms = Alarms::new();
        let mut rx = alarms.subscribe();
        assert!(!alarms.any());
        alarms.set(Source::Disk, true);
        assert!(alarms.any());
        assert_eq!(alarms.active().reason(), "low on disk");
        assert!(rx.has_changed().unwrap_or(false));
        rx.borrow_and_update();
        alarms.set(Source::Memory, true);
        assert_eq!(alarms.active().reason(), "low on memory & disk");
        alarms.set(Source::Disk, false);
        assert!(alarms.any(), "memory is still on");
        assert_eq!(alarms.active().reason(), "low on memory");
        alarms.set(Source::Memory, false);
        assert!(!alarms.any());
        assert!(rx.has_changed().unwrap_or(false));
        assert!(rx.borrow_and_update().is_clear());
    }

    #[test]
    fn setting_a_source_to_its_state_again_is_not_a_change() {
        let alarms = Alarms::new();
        let mut rx = alarms.subscribe();
        alarms.set(Source::Memory, false);
        assert!(!rx.has_changed().unwrap_or(true));
        alarms.set(Source::Memory, true);
        rx.borrow_and_update();
        alarms.set(Source::Memory, true);
        assert!(!rx.has_changed().unwrap_or(true));
    }
}
