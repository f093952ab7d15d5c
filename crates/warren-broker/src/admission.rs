//! Connection admission: who gets a socket slot.
//!
//! Two budgets. Sockets that have not yet authenticated (accepted, `connection.start-ok`
//! with valid credentials not yet received) share a small *pending-handshake* budget;
//! connections that authenticated hold one of `max_connections` slots until they close.
//! Nobody without the credentials can take an established slot, so authenticated clients
//! always find room up to `max_connections`.
//!
//! The pending budget never refuses a new socket: when it is full, the pending handshake
//! that has gone longest without completing a handshake step (the accept, then the
//! protocol header) is evicted to make room. A real client completes its steps within a
//! round trip or two, so an attacker has to open `max_pending_handshakes` new sockets
//! within that round trip to push it out; sockets that sit idle or drip bytes slowly
//! are always the first to go, however many the attacker holds.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

/// How often at most the broker logs that it is evicting pending handshakes.
const EVICTION_LOG_EVERY: Duration = Duration::from_secs(10);

/// The two budgets, shared by the accept loop and the connection tasks.
#[derive(Debug)]
pub(crate) struct Admission {
    established: Arc<Semaphore>,
    max_connections: usize,
    max_pending: usize,
    pending: Mutex<Pending>,
}

/// The pending handshakes, ordered by when they last made progress.
#[derive(Debug)]
struct Pending {
    /// Next progress stamp (strictly increasing, so stamps are unique).
    next: u64,
    /// Progress stamp -> the eviction signal of the handshake holding it; the first
    /// entry is the one that has waited longest since its last step.
    slots: BTreeMap<u64, oneshot::Sender<()>>,
    /// Evictions since `logged_at`, for the rate-limited warning.
    evicted: u64,
    logged_at: Option<Instant>,
}

/// Why an authenticated connection got no established slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refused {
    /// All `max_connections` slots are taken.
    #[error("connection limit ({0}) is reached")]
    Full(usize),
    /// The handshake was evicted from the pending budget just before it authenticated.
    #[error("evicted from the pending-handshake budget")]
    Evicted,
}

impl Admission {
    /// Budgets of `max_connections` established connections and `max_pending`
    /// handshakes in progress (both > 0).
    pub(crate) fn new(max_connections: usize, max_pending: usize) -> Arc<Self> {
        Arc::new(Self {
            established: Arc::new(Semaphore::new(max_connections)),
            max_connections,
            max_pending,
            pending: Mutex::new(Pending {
                next: 0,
                slots: BTreeMap::new(),
                evicted: 0,
                logged_at: None,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        // Nothing panics while holding the lock; if something did, the map is still valid.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits a freshly accepted socket into the pending budget, evicting the longest
    /// stalled pending handshake if the budget is full. The receiver fires if this
    /// socket is evicted in turn.
    pub(crate) fn admit(self: &Arc<Self>) -> (Ticket, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        let mut p = self.lock();
        while p.slots.len() >= self.max_pending {
            let Some((_, victim)) = p.slots.pop_first() else {
                break;
            };
            // The victim's task may already be gone; then there is nothing to tell.
            let _ = victim.send(());
            p.evicted += 1;
        }
        let stamp = p.next;
        p.next += 1;
        p.slots.insert(stamp, tx);
        let now = Instant::now();
        if p.evicted > 0
            && p.logged_at
                .is_none_or(|t| now.duration_since(t) >= EVICTION_LOG_EVERY)
        {
            tracing::warn!(
                evicted = p.evicted,
                max_pending_handshakes = self.max_pending,
                "pending-handshake budget full: evicted the longest-stalled unauthenticated sockets"
            );
            p.evicted = 0;
            p.logged_at = Some(now);
        }
        drop(p);
        let ticket = Ticket {
            admission: self.clone(),
            stamp: Some(stamp),
        };
        (ticket, rx)
    }

    /// Handshakes pending now.
    #[cfg(test)]
    fn pending(&self) -> usize {
        self.lock().slots.len()
    }
}

/// A socket's place in the pending budget, from accept until it authenticates.
#[derive(Debug)]
pub(crate) struct Ticket {
    admission: Arc<Admission>,
    /// The slot's current progress stamp; `None` once the slot is given up.
    stamp: Option<u64>,
}

impl Ticket {
    /// The handshake completed a step: it moves to the back of the eviction order.
    pub(crate) fn progress(&mut self) {
        let Some(old) = self.stamp else {
            return;
        };
        let mut p = self.admission.lock();
        match p.slots.remove(&old) {
            Some(tx) => {
                let stamp = p.next;
                p.next += 1;
                p.slots.insert(stamp, tx);
                self.stamp = Some(stamp);
            }
            // Evicted meanwhile: the eviction signal is on its way.
            None => self.stamp = None,
        }
    }

    /// The client authenticated: leave the pending budget and take an established
    /// slot, held until the returned permit is dropped.
    pub(crate) fn authenticate(mut self) -> Result<OwnedSemaphorePermit, Refused> {
        let was_pending = match self.stamp.take() {
            Some(stamp) => self.admission.lock().slots.remove(&stamp).is_some(),
            None => false,
        };
        if !was_pending {
            return Err(Refused::Evicted);
        }
        self.admission
            .established
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refused::Full(self.admission.max_connections))
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(stamp) = self.stamp.take() {
            self.admission.lock().slots.remove(&stamp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot::error::TryRecvError;

    fn evicted(rx: &mut oneshot::Receiver<()>) -> bool {
        rx.try_recv().is_ok()
    }

    #[test]
    fn a_full_budget_evicts_the_longest_stalled_handshake() {
        let a = Admission::new(10, 3);
        let (mut t1, mut r1) = a.admit();
        let (_t2, mut r2) = a.admit();
        let (_t3, mut r3) = a.admit();
        // t1 completes a step: t2 has now waited longest.
        t1.progress();
        let (_t4, mut r4) = a.admit();
        assert!(evicted(&mut r2));
        assert!(!evicted(&mut r1) && !evicted(&mut r3) && !evicted(&mut r4));
        assert_eq!(a.pending(), 3);
        let (_t5, _r5) = a.admit();
        assert!(evicted(&mut r3));
        assert!(!evicted(&mut r1));
    }

    #[test]
    fn authenticating_moves_to_the_established_budget() {
        let a = Admission::new(1, 2);
        let (t1, mut r1) = a.admit();
        let permit = t1.authenticate().expect("a free established slot");
        assert_eq!(a.pending(), 0);
        // Leaving the pending budget closes the eviction channel without firing it.
        assert!(matches!(r1.try_recv(), Err(TryRecvError::Closed)));
        // Pending sockets cannot push an established connection out.
        let (_t2, _r2) = a.admit();
        let (_t3, _r3) = a.admit();
        let (_t4, _r4) = a.admit();
        assert_eq!(a.pending(), 2);
        // The established budget is full until the permit is dropped.
        let (t5, _r5) = a.admit();
        assert_eq!(t5.authenticate().unwrap_err(), Refused::Full(1));
        drop(permit);
        let (t6, _r6) = a.admit();
        assert!(t6.authenticate().is_ok());
    }

    #[test]
    fn an_evicted_handshake_cannot_authenticate() {
        let a = Admission::new(5, 1);
        let (mut t1, mut r1) = a.admit();
        let (_t2, _r2) = a.admit();
        assert!(evicted(&mut r1));
        t1.progress();
        assert_eq!(t1.authenticate().unwrap_err(), Refused::Evicted);
        assert_eq!(a.pending(), 1);
    }

    #[test]
    fn a_closed_handshake_frees_its_slot() {
        let a = Admission::new(5, 2);
        let (t1, _r1) = a.admit();
        let (_t2, mut r2) = a.admit();
        drop(t1);
        assert_eq!(a.pending(), 1);
        let (_t3, _r3) = a.admit();
        assert!(!evicted(&mut r2));
        assert_eq!(a.pending(), 2);
    }
}
