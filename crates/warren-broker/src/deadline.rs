//! A deadline index: the earliest deadline of each key, ordered by time, so that one
//! task can sleep until the next deadline of any key instead of polling them all
//! (the shape of mini-redis's expiration task in `db.rs`). The vhost keys it by
//! queue name for message TTL and `x-expires`.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::time::Instant;

/// Keys with a deadline each, ordered by deadline.
#[derive(Debug)]
pub(crate) struct Deadlines<K> {
    by_time: BTreeSet<(Instant, K)>,
    by_key: HashMap<K, Instant>,
}

impl<K> Default for Deadlines<K> {
    fn default() -> Self {
        Self {
            by_time: BTreeSet::new(),
            by_key: HashMap::new(),
        }
    }
}

impl<K: Ord + Hash + Clone> Deadlines<K> {
    /// Give `key` the deadline `at`, unless it already has an earlier one (a key that
    /// comes due early is looked at then and rescheduled by its owner). Returns true
    /// if `at` is now the earliest deadline of all, so the waiting task must wake to
    /// sleep for less.
    pub(crate) fn schedule(&mut self, key: K, at: Instant) -> bool {
        match self.by_key.get(&key) {
            Some(&cur) if cur <= at => return false,
            Some(&cur) => {
                self.by_time.remove(&(cur, key.clone()));
            }
            None => {}
        }
        let earliest = self.next().is_none_or(|next| at < next);
        self.by_key.insert(key.clone(), at);
        self.by_time.insert((at, key));
        earliest
    }

    /// The earliest deadline, if any.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.by_time.first().map(|(at, _)| *at)
    }

    /// Remove and return the keys whose deadline is at or before `now`, earliest first.
    pub(crate) fn take_due(&mut self, now: Instant) -> Vec<K> {
        let mut due = Vec::new();
        while let Some((at, _)) = self.by_time.first() {
            if *at > now {
                break;
            }
            if let Some((_, key)) = self.by_time.pop_first() {
                self.by_key.remove(&key);
                due.push(key);
            }
        }
        due
    }

    /// Keys with a deadline.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_key.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn keys_come_due_in_deadline_order_and_only_once() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut d = Deadlines::default();
        assert_eq!(d.next(), None);
        assert!(
            d.schedule("b", at(20)),
            "the first deadline is the earliest"
        );
        assert!(d.schedule("a", at(10)), "an earlier one wakes the task");
        assert!(!d.schedule("c", at(30)), "a later one does not");
        assert_eq!(d.next(), Some(at(10)));
        assert!(d.take_due(at(5)).is_empty());
        assert_eq!(d.take_due(at(20)), vec!["a", "b"]);
        assert_eq!(d.next(), Some(at(30)));
        assert!(d.take_due(at(20)).is_empty(), "taken keys are gone");
        assert_eq!(d.take_due(at(30)), vec!["c"]);
        assert_eq!(d.len(), 0);
        assert_eq!(d.next(), None);
    }

    #[test]
    fn a_key_keeps_its_earliest_deadline() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut d = Deadlines::default();
        assert!(d.schedule("q", at(50)));
        assert!(
            !d.schedule("q", at(80)),
            "a later deadline for the same key is ignored"
        );
        assert_eq!(d.next(), Some(at(50)));
        assert!(d.schedule("q", at(40)), "an earlier one replaces it");
        assert_eq!(d.len(), 1);
        assert_eq!(d.take_due(at(45)), vec!["q"]);
        assert_eq!(d.take_due(at(100)), Vec::<&str>::new());
    }
}
