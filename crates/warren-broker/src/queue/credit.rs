//! Prefetch credit: how many unacknowledged deliveries a consumer (or a whole
//! channel, with `basic.qos global`) may hold before its queue stops dispatching.

use std::sync::atomic::{AtomicU32, Ordering};

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

#[cfg(test)]
mod tests {
    use super::*;

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
