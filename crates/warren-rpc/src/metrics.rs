//! [`Metrics`]: call metrics of Warren clients and servers in a Prometheus registry
//! (feature `metrics`, on the `prometheus-client` crate).
//!
//! Hand one [`Metrics`] to [`ClientBuilder::metrics`](crate::ClientBuilder::metrics)
//! and [`RpcServer::metrics`](crate::RpcServer::metrics), register it once in your
//! [`Registry`], and serve or push that registry however you like (`warren serve
//! --metrics-listen` serves it at `/metrics`).
//!
//! The names follow OpenTelemetry's RPC metric conventions (semantic conventions
//! v1.45.0: `rpc.client.call.duration` and `rpc.server.call.duration`, in seconds) as
//! OpenTelemetry's Prometheus mapping spells them; counts and gauges that the
//! conventions do not name are `warren_*`:
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `rpc_client_call_duration_seconds` | histogram | `queue`, `method`, `status` |
//! | `rpc_server_call_duration_seconds` | histogram | `queue`, `method`, `status` |
//! | `warren_client_calls_in_flight` | gauge | |
//! | `warren_server_calls_in_flight` | gauge | `queue` |
//! | `warren_reconnects_total` | counter | `side` (`client`, `server`) |
//! | `warren_deadline_expired_total` | counter | `side`, `queue` |
//!
//! `status` is the call's `x-status` name (`ok`, `invalid_argument`, ...); a
//! histogram's `_count` is the number of calls with those labels. `method` is the
//! typed service's method, empty for a plain call.
//!
//! ```
//! # #[cfg(feature = "metrics")] {
//! let metrics = warren_rpc::metrics::Metrics::new();
//! let mut registry = prometheus_client::registry::Registry::default();
//! metrics.register(&mut registry);
//! let mut text = String::new();
//! prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
//! // Families show once they have samples; the in-flight gauge is there from the start.
//! assert!(text.contains("warren_client_calls_in_flight 0"));
//! # }
//! ```

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

pub use prometheus_client;

/// Bucket bounds of the call duration histograms, in seconds: 100 µs to 30 s.
pub const DURATION_BUCKETS: [f64; 17] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// Which end of a call a measurement is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Side {
    Client,
    Server,
}

impl Side {
    fn as_str(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Server => "server",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    queue: String,
    method: String,
    status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    queue: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SideLabels {
    side: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeadlineLabels {
    side: String,
    queue: String,
}

type Durations = Family<CallLabels, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

#[derive(Debug)]
struct Families {
    client_duration: Durations,
    server_duration: Durations,
    client_in_flight: Gauge,
    server_in_flight: Family<QueueLabels, Gauge>,
    reconnects: Family<SideLabels, Counter>,
    deadline_expired: Family<DeadlineLabels, Counter>,
}

/// Call metrics shared by any number of clients and servers. Cheap to clone; clones
/// count into the same series.
#[derive(Debug, Clone)]
pub struct Metrics {
    inner: Arc<Families>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Empty metrics, registered nowhere yet.
    pub fn new() -> Self {
        Metrics {
            inner: Arc::new(Families {
                client_duration: Family::new_with_constructor(duration_histogram),
                server_duration: Family::new_with_constructor(duration_histogram),
                client_in_flight: Gauge::default(),
                server_in_flight: Family::default(),
                reconnects: Family::default(),
                deadline_expired: Family::default(),
            }),
        }
    }

    /// Registers every metric in `registry` (once per registry).
    pub fn register(&self, registry: &mut Registry) {
        let m = &self.inner;
        registry.register_with_unit(
            "rpc_client_call_duration",
            "Duration of outgoing Warren calls, by queue, method and x-status",
            Unit::Seconds,
            m.client_duration.clone(),
        );
        registry.register_with_unit(
            "rpc_server_call_duration",
            "Duration of incoming Warren calls (handler and reply), by queue, method and x-status",
            Unit::Seconds,
            m.server_duration.clone(),
        );
        registry.register(
            "warren_client_calls_in_flight",
            "Calls a client has sent and waits for",
            m.client_in_flight.clone(),
        );
        registry.register(
            "warren_server_calls_in_flight",
            "Requests a server works on, by queue",
            m.server_in_flight.clone(),
        );
        registry.register(
            "warren_reconnects",
            "Connections re-established after a loss, by side",
            m.reconnects.clone(),
        );
        registry.register(
            "warren_deadline_expired",
            "Calls whose deadline passed: client timeouts, requests skipped or abandoned by servers",
            m.deadline_expired.clone(),
        );
    }

    /// The handles one (side, queue, method) counts into, looked up once: a call then
    /// touches its gauge and histogram with no label set built.
    pub(crate) fn site(&self, side: Side, queue: &str, method: Option<&str>) -> SiteMetrics {
        let in_flight = match side {
            Side::Client => self.inner.client_in_flight.clone(),
            Side::Server => self
                .inner
                .server_in_flight
                .get_or_create(&QueueLabels {
                    queue: queue.to_owned(),
                })
                .clone(),
        };
        let ok = self.durations(side, queue, method, "ok");
        SiteMetrics {
            metrics: self.clone(),
            side,
            in_flight,
            ok,
        }
    }

    fn durations(&self, side: Side, queue: &str, method: Option<&str>, status: &str) -> Histogram {
        let family = match side {
            Side::Client => &self.inner.client_duration,
            Side::Server => &self.inner.server_duration,
        };
        family
            .get_or_create(&CallLabels {
                queue: queue.to_owned(),
                method: method.unwrap_or_default().to_owned(),
                status: status.to_owned(),
            })
            .clone()
    }

    /// A connection was re-established.
    pub(crate) fn reconnected(&self, side: Side) {
        self.inner
            .reconnects
            .get_or_create(&SideLabels {
                side: side.as_str().to_owned(),
            })
            .inc();
    }

    /// A call's deadline passed.
    pub(crate) fn deadline_expired(&self, side: Side, queue: &str) {
        self.inner
            .deadline_expired
            .get_or_create(&DeadlineLabels {
                side: side.as_str().to_owned(),
                queue: queue.to_owned(),
            })
            .inc();
    }
}

/// The metrics of one (side, queue, method), from [`Metrics::site`].
#[derive(Debug, Clone)]
pub(crate) struct SiteMetrics {
    metrics: Metrics,
    side: Side,
    in_flight: Gauge,
    /// Durations of the calls that ended `ok`; other statuses are looked up by label.
    ok: Histogram,
}

impl SiteMetrics {
    /// A call started: one more in flight.
    pub(crate) fn started(&self) {
        self.in_flight.inc();
    }

    /// A call started with [`SiteMetrics::started`] ended (or was abandoned).
    pub(crate) fn ended(&self) {
        self.in_flight.dec();
    }

    /// A call on `queue` / `method` (this site's) finished with `status` after `elapsed`.
    pub(crate) fn finished(
        &self,
        queue: &str,
        method: Option<&str>,
        status: &str,
        elapsed: Duration,
    ) {
        let seconds = elapsed.as_secs_f64();
        if status == "ok" {
            self.ok.observe(seconds);
        } else {
            self.metrics
                .durations(self.side, queue, method, status)
                .observe(seconds);
        }
    }

    /// A call's deadline passed.
    pub(crate) fn deadline_expired(&self, queue: &str) {
        self.metrics.deadline_expired(self.side, queue);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_show_in_the_text_format_with_their_labels() {
        let metrics = Metrics::new();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let site = metrics.site(Side::Server, "rpc_queue", None);
        site.started();
        site.finished("rpc_queue", None, "ok", Duration::from_millis(3));
        site.finished("rpc_queue", None, "not_found", Duration::from_millis(1));
        site.ended();
        metrics.deadline_expired(Side::Client, "calc");
        metrics.reconnected(Side::Client);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap_or_default();
        assert!(
            text.contains(
                r#"rpc_server_call_duration_seconds_count{queue="rpc_queue",method="",status="ok"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"rpc_server_call_duration_seconds_count{queue="rpc_queue",method="",status="not_found"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"warren_server_calls_in_flight{queue="rpc_queue"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"warren_deadline_expired_total{side="client",queue="calc"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"warren_reconnects_total{side="client"} 1"#),
            "{text}"
        );
    }
}
