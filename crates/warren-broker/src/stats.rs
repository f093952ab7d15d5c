//! Introspection: a snapshot of what the broker holds and does, for the
//! management API and metrics. [`Stats`] reads the counters the hot path bumps
//! (`counters.rs`, relaxed atomics), the rates the sampler derives from them
//! (`rates.rs`), the connection table (`registry.rs`) and the vhosts' tables, and
//! returns plain values (`info.rs`).

pub(crate) mod args;
pub(crate) mod counters;
pub mod info;
pub(crate) mod rates;
pub(crate) mod registry;
pub mod rpc;

pub use counters::MessageTotals;
pub use info::{
    ArgValue, BindingInfo, ChannelInfo, ConnectionInfo, ConsumerInfo, ExchangeInfo, MessageRates,
    MessageStats, Overview, QueueInfo, Sample,
};
pub use rates::{HISTORY, SAMPLE_INTERVAL};
pub use rpc::RpcQueueInfo;

use crate::exchange::Dest;
use crate::shared::Shared;
use crate::shutdown::Shutdown;
use crate::vhost::VHost;
use std::sync::Arc;
use std::time::Duration;

/// How long a connection has to describe its channels before a snapshot goes on
/// without them (a connection whose writes are backlogged reads no events).
const DESCRIBE_TIMEOUT: Duration = Duration::from_millis(500);

/// Everything at once (what a metrics endpoint renders).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Snapshot {
    /// Broker-wide figures.
    pub overview: Overview,
    /// Queues.
    pub queues: Vec<QueueInfo>,
    /// Exchanges.
    pub exchanges: Vec<ExchangeInfo>,
    /// Bindings.
    pub bindings: Vec<BindingInfo>,
    /// Connections with their channels and consumers.
    pub connections: Vec<ConnectionInfo>,
}

/// A cheap, cloneable handle that reads the broker's stats
/// ([`crate::BrokerHandle::stats`]).
#[derive(Debug, Clone)]
pub struct Stats {
    shared: Arc<Shared>,
}

/// The vhosts to report on.
fn vhosts(shared: &Shared) -> Vec<Arc<VHost>> {
    shared.vhosts.all()
}

impl Stats {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Everything at once.
    pub async fn snapshot(&self) -> Snapshot {
        Snapshot {
            overview: self.overview(),
            queues: self.queues(),
            exchanges: self.exchanges(),
            bindings: self.bindings(),
            connections: self.connections().await,
        }
    }

    /// Broker-wide totals, rates and object counts.
    pub fn overview(&self) -> Overview {
        let s = &self.shared;
        let mut totals = MessageTotals::default();
        let (mut ready, mut unacked, mut queues, mut exchanges, mut consumers) = (0, 0, 0, 0, 0);
        let mut names = Vec::new();
        for v in vhosts(s) {
            totals.add(&v.stats.read());
            for q in v.all_queues() {
                let c = q.counts();
                ready += u64::from(c.messages);
                consumers += c.consumers as usize;
                unacked += q.stats.unacked();
                queues += 1;
            }
            exchanges += v.all_exchanges().len();
            names.push(v.name.clone());
        }
        let memory = &s.memory;
        Overview {
            message_stats: MessageStats {
                totals,
                rates: s.rates.overall(),
            },
            messages_ready: ready,
            messages_unacknowledged: unacked,
            queues,
            exchanges,
            consumers,
            connections: s.connections.len(),
            memory_used: memory.used() as u64,
            memory_limit: memory.limit().map(|l| l as u64),
            alarm: s.alarms.any(),
            started: s.started,
            listener: s.config.listen,
            vhosts: names,
            samples: s.rates.history(),
        }
    }

    /// Every queue, sorted by vhost and name.
    pub fn queues(&self) -> Vec<QueueInfo> {
        let mut out = Vec::new();
        for v in vhosts(&self.shared) {
            for q in v.all_queues() {
                let c = q.counts();
                out.push(QueueInfo {
                    vhost: v.name.clone(),
                    name: q.name.clone(),
                    durable: q.durable,
                    auto_delete: q.auto_delete,
                    exclusive_owner: q.owner,
                    arguments: args::table(&q.arguments),
                    messages_ready: c.messages.into(),
                    messages_unacknowledged: q.stats.unacked(),
                    message_bytes_ready: q.ready_bytes() as u64,
                    consumers: c.consumers as usize,
                    message_stats: MessageStats {
                        totals: q.stats.read(),
                        rates: self.shared.rates.queue(&v.name, &q.name),
                    },
                });
            }
        }
        out.sort_by(|a, b| (&a.vhost, &a.name).cmp(&(&b.vhost, &b.name)));
        out
    }

    /// RPC calls per request queue (see [`rpc`]), by vhost.
    pub fn rpc(&self) -> Vec<(String, RpcQueueInfo)> {
        let mut out = Vec::new();
        for v in vhosts(&self.shared) {
            out.extend(v.rpc.read().into_iter().map(|r| (v.name.clone(), r)));
        }
        out
    }

    /// Every exchange, sorted by vhost and name.
    pub fn exchanges(&self) -> Vec<ExchangeInfo> {
        let mut out = Vec::new();
        for v in vhosts(&self.shared) {
            for x in v.all_exchanges() {
                out.push(ExchangeInfo {
                    vhost: v.name.clone(),
                    name: x.name.clone(),
                    kind: x.kind.name().to_owned(),
                    durable: x.durable,
                    auto_delete: x.auto_delete,
                    internal: x.internal,
                    arguments: args::table(&x.arguments),
                });
            }
        }
        out.sort_by(|a, b| (&a.vhost, &a.name).cmp(&(&b.vhost, &b.name)));
        out
    }

    /// Every binding, with the default exchange's implicit one per queue first, as
    /// RabbitMQ lists them.
    pub fn bindings(&self) -> Vec<BindingInfo> {
        let mut out = Vec::new();
        for v in vhosts(&self.shared) {
            let mut queues: Vec<String> = v.all_queues().iter().map(|q| q.name.clone()).collect();
            queues.sort();
            for q in queues {
                out.push(BindingInfo {
                    vhost: v.name.clone(),
                    source: String::new(),
                    routing_key: q.clone(),
                    destination: q,
                    to_exchange: false,
                    arguments: Vec::new(),
                });
            }
            let mut explicit = Vec::new();
            for x in v.all_exchanges() {
                let bindings = match x.bindings.read() {
                    Ok(g) => g.clone(),
                    Err(p) => p.into_inner().clone(),
                };
                for b in bindings {
                    let (destination, to_exchange) = match &b.dest {
                        Dest::Queue(q) => (q.name.clone(), false),
                        Dest::Exchange(name) => (name.clone(), true),
                    };
                    explicit.push(BindingInfo {
                        vhost: v.name.clone(),
                        source: x.name.clone(),
                        destination,
                        to_exchange,
                        routing_key: b.routing_key.clone(),
                        arguments: args::table(&b.arguments),
                    });
                }
            }
            explicit.sort_by(|a, b| {
                (&a.source, &a.destination, &a.routing_key).cmp(&(
                    &b.source,
                    &b.destination,
                    &b.routing_key,
                ))
            });
            out.extend(explicit);
        }
        out
    }

    /// Every open connection with its channels (each connection is asked; one
    /// that does not answer within half a second is listed without them).
    pub async fn connections(&self) -> Vec<ConnectionInfo> {
        let entries = self.shared.connections.list();
        let mut waits = Vec::with_capacity(entries.len());
        for e in &entries {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let _ = e.inbox.send(crate::event::ConnEvent::Describe(tx));
            waits.push(rx);
        }
        let deadline = tokio::time::Instant::now() + DESCRIBE_TIMEOUT;
        let mut out = Vec::with_capacity(entries.len());
        for (e, rx) in entries.into_iter().zip(waits) {
            let channels = tokio::time::timeout_at(deadline, rx)
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            out.push(ConnectionInfo {
                id: e.id,
                name: e.name(),
                peer: e.peer,
                local: e.local,
                user: e.user.clone(),
                vhost: e.vhost.clone(),
                connected_at: e.connected_at,
                frame_max: e.frame_max,
                channel_max: e.channel_max,
                heartbeat: e.heartbeat,
                client_properties: e.client_properties.clone(),
                channels,
            });
        }
        out
    }

    /// Ask a connection (by RabbitMQ-style name or id) to close with `reason`;
    /// false if no such connection is open.
    pub fn close_connection(&self, name: &str, reason: &str) -> bool {
        self.shared.connections.close(name, reason)
    }
}

/// Reads the counters every [`SAMPLE_INTERVAL`] into the rates, until shutdown.
pub(crate) async fn sampler(shared: Arc<Shared>, mut stop: Shutdown) {
    let mut interval = tokio::time::interval(SAMPLE_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.recv() => break,
            _ = interval.tick() => {
                let mut totals = MessageTotals::default();
                let mut queues = Vec::new();
                for v in vhosts(&shared) {
                    totals.add(&v.stats.read());
                    for q in v.all_queues() {
                        queues.push(((v.name.clone(), q.name.clone()), q.stats.read()));
                    }
                }
                shared.rates.record(totals, queues);
            }
        }
    }
}
