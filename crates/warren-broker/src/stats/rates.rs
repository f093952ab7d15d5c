//! Rates from periodic readings of the counters: the sampler (in
//! [`crate::stats`]) records the broker-wide and per-queue totals every
//! [`SAMPLE_INTERVAL`]; a rate is the change over the last interval, per second,
//! as RabbitMQ's `*_details.rate`. The last [`HISTORY`] broker-wide readings are
//! kept for charts.

use super::counters::MessageTotals;
use super::info::{MessageRates, Sample};
use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

/// How often the counters are read (RabbitMQ's `collect_statistics_interval`
/// defaults to 5 s).
pub const SAMPLE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Broker-wide readings kept: ten minutes at the default interval.
pub const HISTORY: usize = 120;

/// A queue's key: (vhost, name).
pub(crate) type QueueKey = (String, String);

#[derive(Debug, Default)]
struct State {
    last: Option<Instant>,
    history: VecDeque<Sample>,
    overall: MessageRates,
    queues: HashMap<QueueKey, (MessageTotals, MessageRates)>,
}

/// The sampled rates.
#[derive(Debug, Default)]
pub(crate) struct Rates {
    state: Mutex<State>,
}

impl Rates {
    fn lock(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Record one reading: the broker-wide totals and each queue's. Queues not in
    /// `queues` are forgotten (deleted).
    pub(crate) fn record(&self, totals: MessageTotals, queues: Vec<(QueueKey, MessageTotals)>) {
        let now = Instant::now();
        let mut st = self.lock();
        let secs = st.last.map(|l| now.duration_since(l).as_secs_f64());
        st.last = Some(now);
        if let (Some(prev), Some(secs)) = (st.history.back(), secs) {
            st.overall = MessageRates::between(&prev.totals, &totals, secs);
        }
        st.history.push_back(Sample {
            at: SystemTime::now(),
            totals,
        });
        while st.history.len() > HISTORY {
            st.history.pop_front();
        }
        let mut next = HashMap::with_capacity(queues.len());
        for (key, t) in queues {
            // A queue first seen now was declared since the last reading: all its
            // counts fall in this interval (its baseline is zero).
            let rate = match (st.queues.get(&key), secs) {
                (Some((old, _)), Some(secs)) => MessageRates::between(old, &t, secs),
                (None, Some(secs)) => MessageRates::between(&MessageTotals::default(), &t, secs),
                (_, None) => MessageRates::default(),
            };
            next.insert(key, (t, rate));
        }
        st.queues = next;
    }

    /// Broker-wide rates over the last interval.
    pub(crate) fn overall(&self) -> MessageRates {
        self.lock().overall
    }

    /// A queue's rates over the last interval (zero for a queue not yet sampled).
    pub(crate) fn queue(&self, vhost: &str, name: &str) -> MessageRates {
        self.lock()
            .queues
            .get(&(vhost.to_owned(), name.to_owned()))
            .map(|(_, r)| *r)
            .unwrap_or_default()
    }

    /// The broker-wide readings kept, oldest first.
    pub(crate) fn history(&self) -> Vec<Sample> {
        self.lock().history.iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::stats::counters::MessageTotals;
    use crate::stats::rates::Rates;

    #[test]
    fn a_rate_is_the_change_over_the_interval() {
        let r = Rates::default();
        let key = ("/".to_owned(), "q".to_owned());
        r.record(
            MessageTotals::default(),
            vec![(key.clone(), MessageTotals::default())],
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
        let t = MessageTotals {
            publish: 10,
            ..MessageTotals::default()
        };
        r.record(t, vec![(key, t)]);
        let rate = r.overall().publish;
        assert!(rate > 10.0 && rate <= 100.0, "{rate}");
        assert_eq!(r.queue("/", "q").publish, rate);
        assert_eq!(r.history().len(), 2);
    }

    #[test]
    fn a_queue_declared_between_readings_counts_from_zero() {
        let r = Rates::default();
        r.record(MessageTotals::default(), vec![]);
        std::thread::sleep(std::time::Duration::from_millis(100));
        let t = MessageTotals {
            publish: 10,
            ..MessageTotals::default()
        };
        r.record(t, vec![(("/".to_owned(), "new".to_owned()), t)]);
        assert!(r.queue("/", "new").publish > 10.0);
    }
}
