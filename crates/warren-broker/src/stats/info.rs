//! The plain values a stats snapshot is made of: one struct per kind of object
//! (overview, queue, exchange, binding, connection, channel, consumer). They name
//! nothing else in the crate; [`crate::stats::Stats`] fills them.

use super::counters::MessageTotals;
use std::net::SocketAddr;
use std::time::SystemTime;

/// Totals and their per-second rates, as RabbitMQ's `message_stats` has them
/// (`publish` and `publish_details.rate`, ...).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct MessageStats {
    /// Totals since the broker started (or the queue was declared).
    pub totals: MessageTotals,
    /// Per-second rates over the last sampling interval, field by field.
    pub rates: MessageRates,
}

/// Per-second rates of [`MessageTotals`]' fields.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct MessageRates {
    /// Publishes per second.
    pub publish: f64,
    /// Confirms per second.
    pub confirm: f64,
    /// Unroutable returns per second.
    pub return_unroutable: f64,
    /// Unroutable drops per second.
    pub drop_unroutable: f64,
    /// Deliveries (acknowledged mode) per second.
    pub deliver: f64,
    /// No-ack deliveries per second.
    pub deliver_no_ack: f64,
    /// Gets per second.
    pub get: f64,
    /// No-ack gets per second.
    pub get_no_ack: f64,
    /// Redeliveries per second.
    pub redeliver: f64,
    /// Acks per second.
    pub ack: f64,
    /// All deliveries and gets per second.
    pub deliver_get: f64,
}

impl MessageRates {
    /// Rates from two readings `secs` apart.
    pub fn between(old: &MessageTotals, new: &MessageTotals, secs: f64) -> Self {
        if secs <= 0.0 {
            return Self::default();
        }
        let r = |a: u64, b: u64| b.saturating_sub(a) as f64 / secs;
        MessageRates {
            publish: r(old.publish, new.publish),
            confirm: r(old.confirm, new.confirm),
            return_unroutable: r(old.return_unroutable, new.return_unroutable),
            drop_unroutable: r(old.drop_unroutable, new.drop_unroutable),
            deliver: r(old.deliver, new.deliver),
            deliver_no_ack: r(old.deliver_no_ack, new.deliver_no_ack),
            get: r(old.get, new.get),
            get_no_ack: r(old.get_no_ack, new.get_no_ack),
            redeliver: r(old.redeliver, new.redeliver),
            ack: r(old.ack, new.ack),
            deliver_get: r(old.deliver_get(), new.deliver_get()),
        }
    }
}

/// One past reading of the broker-wide totals (for charts).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Sample {
    /// When it was taken.
    pub at: SystemTime,
    /// The totals then.
    pub totals: MessageTotals,
}

/// Broker-wide figures (RabbitMQ's `/api/overview`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Overview {
    /// Message totals and rates over all vhosts.
    pub message_stats: MessageStats,
    /// Ready messages over all queues.
    pub messages_ready: u64,
    /// Unacknowledged messages over all queues.
    pub messages_unacknowledged: u64,
    /// Queues.
    pub queues: usize,
    /// Exchanges.
    pub exchanges: usize,
    /// Consumers.
    pub consumers: usize,
    /// Open connections.
    pub connections: usize,
    /// Bytes the memory gauge counts now, and its limit.
    pub memory_used: u64,
    /// The memory high watermark in bytes (None: none).
    pub memory_limit: Option<u64>,
    /// A resource alarm (memory or disk) blocks publishers now.
    pub alarm: bool,
    /// When the broker started.
    pub started: SystemTime,
    /// The AMQP listener.
    pub listener: SocketAddr,
    /// Virtual host names.
    pub vhosts: Vec<String>,
    /// Past readings of the totals, oldest first, one per sampling interval.
    pub samples: Vec<Sample>,
}

/// One queue.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct QueueInfo {
    /// Its vhost.
    pub vhost: String,
    /// Its name.
    pub name: String,
    /// Survives restarts.
    pub durable: bool,
    /// Deleted with its last consumer.
    pub auto_delete: bool,
    /// The owning connection's id, for an exclusive queue.
    pub exclusive_owner: Option<u64>,
    /// Declaration arguments, as JSON-friendly values.
    pub arguments: Vec<(String, ArgValue)>,
    /// Messages ready for delivery.
    pub messages_ready: u64,
    /// Messages delivered and not yet acknowledged.
    pub messages_unacknowledged: u64,
    /// Body bytes of the ready messages.
    pub message_bytes_ready: u64,
    /// Consumers.
    pub consumers: usize,
    /// Publish, deliver and get (with and without ack), redeliver and ack totals and rates.
    pub message_stats: MessageStats,
}

/// An argument value (queue, exchange and binding arguments), reduced to what
/// JSON can say.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ArgValue {
    /// A boolean.
    Bool(bool),
    /// Any integer type.
    Int(i64),
    /// Any float type.
    Float(f64),
    /// A string (long, short, or bytes read as UTF-8).
    Str(String),
    /// An array.
    List(Vec<ArgValue>),
    /// A nested table.
    Table(Vec<(String, ArgValue)>),
    /// Void and anything else.
    Null,
}

/// One exchange.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ExchangeInfo {
    /// Its vhost.
    pub vhost: String,
    /// Name ("" for the default exchange).
    pub name: String,
    /// `direct`, `fanout`, `topic` or `headers`.
    pub kind: String,
    /// Survives restarts.
    pub durable: bool,
    /// Deleted with its last binding.
    pub auto_delete: bool,
    /// Takes no client publishes.
    pub internal: bool,
    /// Declaration arguments.
    pub arguments: Vec<(String, ArgValue)>,
}

/// One binding.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BindingInfo {
    /// Its vhost.
    pub vhost: String,
    /// Source exchange ("" for the default exchange's implicit bindings).
    pub source: String,
    /// Destination queue or exchange.
    pub destination: String,
    /// The destination is an exchange (else a queue).
    pub to_exchange: bool,
    /// Binding key.
    pub routing_key: String,
    /// Binding arguments.
    pub arguments: Vec<(String, ArgValue)>,
}

/// One client connection.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectionInfo {
    /// Broker-local id.
    pub id: u64,
    /// RabbitMQ's name for it: `"peer -> local"`.
    pub name: String,
    /// The client's address.
    pub peer: SocketAddr,
    /// The broker's address.
    pub local: SocketAddr,
    /// Authenticated user.
    pub user: String,
    /// Virtual host.
    pub vhost: String,
    /// When it opened.
    pub connected_at: SystemTime,
    /// Negotiated frame_max, channel_max and heartbeat.
    pub frame_max: u32,
    /// Negotiated channel_max.
    pub channel_max: u16,
    /// Negotiated heartbeat (seconds).
    pub heartbeat: u16,
    /// The client's properties (product, version, platform, connection_name, ...).
    pub client_properties: Vec<(String, ArgValue)>,
    /// Its open channels (empty if the connection did not answer in time).
    pub channels: Vec<ChannelInfo>,
}

/// One channel.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ChannelInfo {
    /// Channel number.
    pub number: u16,
    /// basic.qos prefetch (0 = none).
    pub prefetch_count: u16,
    /// Publisher confirms are on.
    pub confirm: bool,
    /// tx.select was used.
    pub transactional: bool,
    /// Messages delivered on it and not yet acknowledged.
    pub messages_unacknowledged: usize,
    /// Publishes waiting for a confirm.
    pub messages_unconfirmed: usize,
    /// Its consumers.
    pub consumers: Vec<ConsumerInfo>,
}

/// One consumer.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConsumerInfo {
    /// Consumer tag.
    pub tag: String,
    /// The queue it consumes from.
    pub queue: String,
    /// It acknowledges (not no-ack).
    pub ack_required: bool,
    /// Exclusive consumer.
    pub exclusive: bool,
    /// Prefetch that applies to it (0 = none).
    pub prefetch_count: u16,
}
