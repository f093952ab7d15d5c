//! The in-flight map: every call waiting for its reply, keyed by the sequence number
//! inside its correlation id. An entry is removed when its reply arrives, when its
//! caller gives up (timeout or drop, via [`PendingGuard`]) or when the connection is
//! lost ([`Pending::fail_all`]), so nothing leaks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use tokio::sync::oneshot;

use super::Reply;
use crate::error::Error;

/// What a waiting call eventually receives.
pub(crate) type Outcome = Result<Reply, Error>;

#[derive(Default)]
struct Inner {
    waiters: HashMap<u64, oneshot::Sender<Outcome>>,
    /// Set once the reply consumer is gone: new calls fail at once with this reason.
    closed: Option<String>,
}

/// Calls waiting for replies.
#[derive(Default)]
pub(crate) struct Pending {
    next: AtomicU64,
    inner: Mutex<Inner>,
}

impl Pending {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the map inconsistent
        // (every operation is a single insert/remove), so poisoning is ignored.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a new call; returns its sequence number and the receiver of its outcome.
    pub(crate) fn register(&self) -> Result<(u64, oneshot::Receiver<Outcome>), Error> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let mut inner = self.lock();
        if let Some(reason) = &inner.closed {
            return Err(Error::Unavailable {
                reason: reason.clone(),
            });
        }
        inner.waiters.insert(id, tx);
        Ok((id, rx))
    }

    /// Hands `outcome` to call `id`. Returns `false` if no such call is waiting
    /// (it timed out, was dropped, or the id is a duplicate or unknown).
    pub(crate) fn complete(&self, id: u64, outcome: Outcome) -> bool {
        let waiter = self.lock().waiters.remove(&id);
        match waiter {
            Some(tx) => tx.send(outcome).is_ok(),
            None => false,
        }
    }

    /// Forgets call `id` (its caller gave up).
    pub(crate) fn remove(&self, id: u64) {
        self.lock().waiters.remove(&id);
    }

    /// Fails every waiting call with `unavailable` and refuses new ones. Returns
    /// `false` if the map was already closed (the first reason is kept).
    pub(crate) fn fail_all(&self, reason: &str) -> bool {
        let (was_open, waiters): (bool, Vec<_>) = {
            let mut inner = self.lock();
            let was_open = inner.closed.is_none();
            if was_open {
                inner.closed = Some(reason.to_owned());
            }
            (was_open, inner.waiters.drain().collect())
        };
        for (_, tx) in waiters {
            let _ = tx.send(Err(Error::Unavailable {
                reason: reason.to_owned(),
            }));
        }
        was_open
    }

    /// Accepts calls again after a reconnection.
    #[allow(dead_code)]
    pub(crate) fn reopen(&self) {
        self.lock().closed = None;
    }

    /// Number of calls waiting.
    pub(crate) fn len(&self) -> usize {
        self.lock().waiters.len()
    }
}

/// Removes a call's entry when the call's future ends, however it ends.
pub(crate) struct PendingGuard<'a> {
    pub(crate) pending: &'a Pending,
    pub(crate) id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.pending.remove(self.id);
    }
}

/// Correlation ids of one client: `<client prefix>.<sequence in hex>`. Cheap to make
/// (no UUID per call) and unique across clients thanks to the random prefix.
#[derive(Debug, Clone)]
pub(crate) struct CorrelationIds {
    prefix: String,
}

impl CorrelationIds {
    pub(crate) fn new() -> Self {
        CorrelationIds {
            prefix: uuid::Uuid::new_v4().simple().to_string(),
        }
    }

    pub(crate) fn format(&self, seq: u64) -> String {
        format!("{}.{seq:x}", self.prefix)
    }

    /// The sequence number inside `id`, if `id` was made by this client.
    pub(crate) fn parse(&self, id: &str) -> Option<u64> {
        let (prefix, seq) = id.rsplit_once('.')?;
        if prefix != self.prefix {
            return None;
        }
        u64::from_str_radix(seq, 16).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(body: &str) -> Reply {
        Reply {
            body: body.as_bytes().to_vec(),
            content_type: None,
            correlation_id: String::new(),
            headers: Default::default(),
        }
    }

    #[test]
    fn ids_round_trip_and_reject_foreign() {
        let ids = CorrelationIds::new();
        assert_eq!(ids.parse(&ids.format(0)), Some(0));
        assert_eq!(ids.parse(&ids.format(u64::MAX)), Some(u64::MAX));
        let other = CorrelationIds::new();
        assert_eq!(ids.parse(&other.format(3)), None);
        assert_eq!(ids.parse("garbage"), None);
        assert_eq!(ids.parse(""), None);
    }

    #[tokio::test]
    async fn reply_reaches_its_waiter_once() {
        let p = Pending::default();
        let (id, rx) = p.register().unwrap();
        assert!(p.complete(id, Ok(reply("1"))));
        assert!(
            !p.complete(id, Ok(reply("again"))),
            "duplicate reply must be dropped"
        );
        assert_eq!(rx.await.unwrap().unwrap().body, b"1");
        assert_eq!(p.len(), 0);
    }

    #[test]
    fn guard_removes_entry_on_drop() {
        let p = Pending::default();
        let (id, _rx) = p.register().unwrap();
        {
            let _g = PendingGuard { pending: &p, id };
            assert_eq!(p.len(), 1);
        }
        assert_eq!(p.len(), 0);
        assert!(!p.complete(id, Ok(reply("late"))));
    }

    #[tokio::test]
    async fn fail_all_fails_waiters_and_refuses_new_calls() {
        let p = Pending::default();
        let (_, rx1) = p.register().unwrap();
        let (_, rx2) = p.register().unwrap();
        p.fail_all("connection lost");
        assert!(matches!(rx1.await.unwrap(), Err(Error::Unavailable { .. })));
        assert!(matches!(rx2.await.unwrap(), Err(Error::Unavailable { .. })));
        assert!(matches!(p.register(), Err(Error::Unavailable { .. })));
        assert_eq!(p.len(), 0);
        p.reopen();
        assert!(p.register().is_ok());
    }
}
