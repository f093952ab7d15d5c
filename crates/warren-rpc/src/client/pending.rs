//! The in-flight map: every call waiting for its reply, keyed by the sequence number
//! inside its correlation id. An entry is removed when its reply arrives, when its
//! caller gives up (timeout or drop, via [`PendingGuard`]) or when the connection is
//! lost ([`Pending::session_lost`]), so nothing leaks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use tokio::sync::oneshot;

use super::Reply;
use crate::error::Error;

/// What a waiting call eventually receives.
pub type Outcome = Result<Reply, Error>;

#[derive(Default)]
struct Inner {
    /// Waiting calls: sequence number -> (session generation, waiter).
    waiters: HashMap<u64, (u64, oneshot::Sender<Outcome>)>,
    /// The generation of the live session; `None` while (re)connecting.
    live: Option<u64>,
    /// Set once the client is closed: every call fails at once with this reason.
    closed: Option<String>,
}

/// Calls waiting for replies, each tied to the session (connection) it was sent on.
#[derive(Default)]
pub struct Pending {
    next: AtomicU64,
    inner: Mutex<Inner>,
}

impl Pending {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the map inconsistent
        // (every operation is a single insert/remove), so poisoning is ignored.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a call about to be sent on session `generation`; returns its sequence
    /// number and the receiver of its outcome. Fails if that session is no longer live.
    pub fn register(&self, generation: u64) -> Result<(u64, oneshot::Receiver<Outcome>), Error> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let mut inner = self.lock();
        if let Some(reason) = &inner.closed {
            return Err(Error::Unavailable {
                reason: reason.clone(),
            });
        }
        if inner.live != Some(generation) {
            return Err(Error::Unavailable {
                reason: "the connection to the broker was lost".to_owned(),
            });
        }
        inner.waiters.insert(id, (generation, tx));
        Ok((id, rx))
    }

    /// Hands `outcome` to call `id`. Returns `false` if no such call is waiting
    /// (it timed out, was dropped, or the id is a duplicate or unknown).
    pub fn complete(&self, id: u64, outcome: Outcome) -> bool {
        let waiter = self.lock().waiters.remove(&id);
        match waiter {
            Some((_, tx)) => tx.send(outcome).is_ok(),
            None => false,
        }
    }

    /// Forgets call `id` (its caller gave up).
    pub fn remove(&self, id: u64) {
        self.lock().waiters.remove(&id);
    }

    /// Session `generation` is up: calls may be registered on it.
    pub fn session_up(&self, generation: u64) {
        let mut inner = self.lock();
        if inner.closed.is_none() {
            inner.live = Some(generation);
        }
    }

    /// Session `generation` is gone: its waiting calls fail with `unavailable` at once.
    /// Returns `false` if it was not the live session (already handled).
    pub fn session_lost(&self, generation: u64, reason: &str) -> bool {
        let (was_live, failed) = {
            let mut inner = self.lock();
            let was_live = inner.live == Some(generation);
            if was_live {
                inner.live = None;
            }
            let ids: Vec<u64> = inner
                .waiters
                .iter()
                .filter(|(_, (g, _))| *g == generation)
                .map(|(id, _)| *id)
                .collect();
            let failed: Vec<_> = ids
                .iter()
                .filter_map(|id| inner.waiters.remove(id))
                .collect();
            (was_live, failed)
        };
        fail(failed.into_iter().map(|(_, tx)| tx), reason);
        was_live
    }

    /// Closes for good: every waiting and future call fails with `unavailable`.
    pub fn close(&self, reason: &str) {
        let failed: Vec<_> = {
            let mut inner = self.lock();
            inner.closed.get_or_insert_with(|| reason.to_owned());
            inner.live = None;
            inner.waiters.drain().map(|(_, (_, tx))| tx).collect()
        };
        fail(failed.into_iter(), reason);
    }

    /// Number of calls waiting.
    pub fn len(&self) -> usize {
        self.lock().waiters.len()
    }

    /// Whether no call is waiting.
    pub fn is_empty(&self) -> bool {
        self.lock().waiters.is_empty()
    }
}

fn fail(waiters: impl Iterator<Item = oneshot::Sender<Outcome>>, reason: &str) {
    for tx in waiters {
        let _ = tx.send(Err(Error::Unavailable {
            reason: reason.to_owned(),
        }));
    }
}

/// Removes a call's entry when the call's future ends, however it ends.
pub struct PendingGuard<'a> {
    pub pending: &'a Pending,
    pub id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.pending.remove(self.id);
    }
}

/// Correlation ids of one client: `<client prefix>.<sequence in hex>`. Cheap to make
/// (no UUID per call) and unique across clients thanks to the random prefix.
#[derive(Debug, Clone)]
pub struct CorrelationIds {
    prefix: String,
}

impl Default for CorrelationIds {
    fn default() -> Self {
        Self::new()
    }
}

impl CorrelationIds {
    /// Ids with a fresh random client prefix.
    pub fn new() -> Self {
        CorrelationIds {
            prefix: uuid::Uuid::new_v4().simple().to_string(),
        }
    }

    /// The correlation id of call number `seq`.
    pub fn format(&self, seq: u64) -> String {
        format!("{}.{seq:x}", self.prefix)
    }

    /// The sequence number inside `id`, if `id` was made by this client.
    pub fn parse(&self, id: &str) -> Option<u64> {
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
        p.session_up(0);
        let (id, rx) = p.register(0).unwrap();
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
        p.session_up(0);
        let (id, _rx) = p.register(0).unwrap();
        {
            let _g = PendingGuard { pending: &p, id };
            assert_eq!(p.len(), 1);
        }
        assert_eq!(p.len(), 0);
        assert!(!p.complete(id, Ok(reply("late"))));
    }

    #[tokio::test]
    async fn losing_a_session_fails_only_its_calls() {
        let p = Pending::default();
        assert!(p.register(0).is_err(), "no live session yet");
        p.session_up(0);
        let (_, old) = p.register(0).unwrap();
        assert!(p.session_lost(0, "connection lost"));
        assert!(!p.session_lost(0, "again"), "handled once");
        assert!(matches!(old.await.unwrap(), Err(Error::Unavailable { .. })));
        assert!(p.register(0).is_err(), "a dead session takes no calls");
        p.session_up(1);
        let (id, new) = p.register(1).unwrap();
        assert!(!p.session_lost(0, "stale"));
        assert!(p.complete(id, Ok(reply("ok"))));
        assert!(new.await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn close_fails_everything_for_good() {
        let p = Pending::default();
        p.session_up(3);
        let (_, rx1) = p.register(3).unwrap();
        let (_, rx2) = p.register(3).unwrap();
        p.close("client closed");
        assert!(matches!(rx1.await.unwrap(), Err(Error::Unavailable { .. })));
        assert!(matches!(rx2.await.unwrap(), Err(Error::Unavailable { .. })));
        p.session_up(4);
        assert!(matches!(p.register(4), Err(Error::Unavailable { .. })));
        assert_eq!(p.len(), 0);
    }
}
