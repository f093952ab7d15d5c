//! Failed logins per source address: after [`MAX_FAILURES`] failures from one IP
//! address within [`WINDOW`], logins from it are refused without a password check
//! until the window ends (each still answered after the failed-login delay, so a
//! refusal looks the same as a wrong password). Per-connection delays alone let an
//! attacker guess in parallel over many sockets; this caps the guesses per address.
//!
//! The table is bounded: past [`MAX_TRACKED`] addresses, expired entries are
//! dropped, and if that is not enough the table starts over (failing open rather
//! than growing without bound under a spoofed-source flood).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Failures from one address that close it for the rest of the window.
pub(crate) const MAX_FAILURES: u32 = 20;
/// The window failures are counted in, from the first one.
pub(crate) const WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked at most.
const MAX_TRACKED: usize = 10_000;

/// Failures by address: (first failure of the window, count).
#[derive(Debug, Default)]
pub(crate) struct LoginLimit {
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl LoginLimit {
    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, (Instant, u32)>> {
        match self.failures.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Whether logins from `ip` are refused at `now`.
    pub(crate) fn blocked(&self, ip: IpAddr, now: Instant) -> bool {
        let mut map = self.lock();
        match map.get(&ip) {
            Some((first, _)) if now.duration_since(*first) >= WINDOW => {
                map.remove(&ip);
                false
            }
            Some((_, n)) => *n >= MAX_FAILURES,
            None => false,
        }
    }

    /// Count a failed login from `ip` at `now`.
    pub(crate) fn failed(&self, ip: IpAddr, now: Instant) {
        let mut map = self.lock();
        if map.len() >= MAX_TRACKED && !map.contains_key(&ip) {
            map.retain(|_, (first, _)| now.duration_since(*first) < WINDOW);
            if map.len() >= MAX_TRACKED {
                map.clear();
            }
        }
        let entry = map.entry(ip).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_closed_after_the_limit_until_its_window_ends() {
        let l = LoginLimit::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        for i in 0..MAX_FAILURES {
            assert!(!l.blocked(a, t0), "blocked after {i} failures");
            l.failed(a, t0);
        }
        assert!(l.blocked(a, t0 + Duration::from_secs(1)));
        assert!(!l.blocked(b, t0), "another address is not affected");
        assert!(
            !l.blocked(a, t0 + WINDOW),
            "open again once the window ends"
        );
        l.failed(a, t0 + WINDOW);
        assert!(!l.blocked(a, t0 + WINDOW));
    }

    #[test]
    fn the_table_stays_bounded() {
        let l = LoginLimit::default();
        let t0 = Instant::now();
        for i in 0..(MAX_TRACKED as u32 + 5) {
            l.failed(IpAddr::from(i.to_be_bytes()), t0);
        }
        assert!(l.lock().len() <= MAX_TRACKED);
    }
}
