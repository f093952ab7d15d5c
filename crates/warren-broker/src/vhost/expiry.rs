//! Message TTL and queue expiry (`x-expires`) by deadline: the vhost keeps each
//! queue's next deadline in a [`Deadlines`] index, and one task sleeps until the
//! earliest, expires what is due and reschedules the queues it looked at. Nothing
//! polls the queues.

use super::{read, VHost};
use crate::deadline::Deadlines;
use crate::shutdown::Shutdown;
use std::sync::{Arc, MutexGuard};
use std::time::Instant;

impl VHost {
    fn deadlines(&self) -> MutexGuard<'_, Deadlines<String>> {
        match self.deadlines.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Look at queue `name` again at `at`.
    pub(crate) fn schedule(&self, name: &str, at: Instant) {
        if self.deadlines().schedule(name.to_owned(), at) {
            self.deadline_added.notify_one();
        }
    }

    /// Expire what is due at `now`: dead messages, and idle queues (deleted).
    fn expire_due(&self, now: Instant) {
        let due = self.deadlines().take_due(now);
        for name in due {
            let Some(q) = read(&self.queues).get(&name).cloned() else {
                continue;
            };
            let expired = q.expire(now);
            self.settle(&q, expired.fallout);
            if expired.queue_expired {
                tracing::debug!(queue = %q.name, "queue expired");
                self.remove_queue(&q);
            }
        }
    }

    /// The expiry task: sleep until the next deadline (or until an earlier one is
    /// added), expire what is due, until shutdown.
    pub(crate) async fn run_expiry(self: Arc<Self>, mut stop: Shutdown) {
        while !self.is_deleted() {
            let next = self.deadlines().next();
            let sleep = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = stop.recv() => break,
                _ = self.deadline_added.notified() => {}
                _ = sleep => self.expire_due(Instant::now()),
            }
        }
    }
}
