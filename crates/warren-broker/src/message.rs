//! The in-memory message model: routing info, basic properties (kept both
//! parsed and as the exact bytes the publisher sent) and the body.

use crate::memory::{Charge, Gauge};

mod footprint;
mod raw_props;

pub(crate) use raw_props::with_reply_to;

use amq_protocol::frame::WriteContext;
use amq_protocol::protocol::basic::{gen_properties, AMQPProperties};
use amq_protocol::types::{AMQPValue, FieldTable, ShortString};
use bytes::Bytes;
use footprint::footprint;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An immutable published message, shared between the queues it was routed to.
#[derive(Debug, Clone)]
pub(crate) struct Message {
    /// Exchange it was published to.
    pub(crate) exchange: String,
    /// Routing key it was published with.
    pub(crate) routing_key: String,
    /// Parsed basic properties.
    pub(crate) props: AMQPProperties,
    /// The encoded property flags and list, byte-exact as received.
    pub(crate) raw_props: Bytes,
    /// The message body.
    pub(crate) body: Bytes,
    /// Its bytes, charged to the broker's memory gauge while it lives.
    pub(crate) charge: Charge,
}

impl Message {
    /// Build a message, keeping `raw_props` as the wire encoding of `props`.
    pub(crate) fn new(
        exchange: String,
        routing_key: String,
        props: AMQPProperties,
        raw_props: Bytes,
        body: Bytes,
    ) -> Self {
        Self {
            exchange,
            routing_key,
            props,
            raw_props,
            body,
            charge: Charge::default(),
        }
    }

    /// Charge this message's footprint to `gauge` (replacing any earlier charge).
    pub(crate) fn charged_to(mut self, gauge: &Arc<Gauge>) -> Self {
        self.charge = gauge.charge(footprint(&self));
        self
    }

    /// A copy with new properties (re-encoded).
    pub(crate) fn with_props(&self, props: AMQPProperties) -> Self {
        let raw_props = encode_props(&props);
        Self {
            exchange: self.exchange.clone(),
            routing_key: self.routing_key.clone(),
            props,
            raw_props,
            body: self.body.clone(),
            charge: self.charge.clone(),
        }
    }

    /// Whether delivery_mode is 2 (persistent).
    pub(crate) fn is_persistent(&self) -> bool {
        *self.props.delivery_mode() == Some(2)
    }

    /// Per-message TTL from the `expiration` property, if valid.
    pub(crate) fn ttl(&self) -> Option<Duration> {
        self.props
            .expiration()
            .as_ref()
            .and_then(|e| e.as_str().trim().parse::<u64>().ok())
            .map(Duration::from_millis)
    }
}

/// Encode basic properties to their wire form (flags + property list).
pub(crate) fn encode_props(props: &AMQPProperties) -> Bytes {
    let ctx = WriteContext::from(Vec::with_capacity(64));
    match gen_properties(props)(ctx) {
        Ok(ctx) => Bytes::from(ctx.into_inner().0),
        Err(e) => {
            tracing::warn!(error = %e, "failed to encode properties");
            Bytes::from_static(&[0, 0])
        }
    }
}

/// Rebuild properties with an optional field override, dropping `expiration`
/// if `drop_expiration` is set.
pub(crate) fn rebuild_props(
    p: &AMQPProperties,
    headers: Option<FieldTable>,
    drop_expiration: bool,
) -> AMQPProperties {
    let mut n = AMQPProperties::default();
    if let Some(v) = p.content_type() {
        n = n.with_content_type(v.clone());
    }
    if let Some(v) = p.content_encoding() {
        n = n.with_content_encoding(v.clone());
    }
    match headers {
        Some(h) => n = n.with_headers(h),
        None => {
            if let Some(v) = p.headers() {
                n = n.with_headers(v.clone());
            }
        }
    }
    if let Some(v) = p.delivery_mode() {
        n = n.with_delivery_mode(*v);
    }
    if let Some(v) = p.priority() {
        n = n.with_priority(*v);
    }
    if let Some(v) = p.correlation_id() {
        n = n.with_correlation_id(v.clone());
    }
    if let Some(v) = p.reply_to() {
        n = n.with_reply_to(v.clone());
    }
    if !drop_expiration {
        if let Some(v) = p.expiration() {
            n = n.with_expiration(v.clone());
        }
    }
    if let Some(v) = p.message_id() {
        n = n.with_message_id(v.clone());
    }
    if let Some(v) = p.timestamp() {
        n = n.with_timestamp(*v);
    }
    if let Some(v) = p.kind() {
        n = n.with_type(v.clone());
    }
    if let Some(v) = p.user_id() {
        n = n.with_user_id(v.clone());
    }
    if let Some(v) = p.app_id() {
        n = n.with_app_id(v.clone());
    }
    if let Some(v) = p.cluster_id() {
        n = n.with_cluster_id(v.clone());
    }
    n
}

/// A message sitting in (or delivered from) a queue.
#[derive(Debug, Clone)]
pub(crate) struct QueuedMessage {
    /// The shared message.
    pub(crate) msg: std::sync::Arc<Message>,
    /// Whether it was delivered before.
    pub(crate) redelivered: bool,
    /// When it expires (queue TTL or per-message expiration).
    pub(crate) expires_at: Option<Instant>,
    /// Id in the durable store, if persisted.
    pub(crate) store_id: Option<u64>,
}

/// Truncate a string to at most 255 bytes (on a char boundary).
pub(crate) fn truncate_short(mut s: String) -> String {
    if s.len() > 255 {
        let mut end = 255;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// A short string, truncated to fit the 255-byte limit (never panics).
pub(crate) fn short(s: impl Into<String>) -> ShortString {
    let s = truncate_short(s.into());
    ShortString::try_new(s).unwrap_or_default()
}

/// Interpret an AMQP field value as an integer, if it is one.
pub(crate) fn value_as_i64(v: &AMQPValue) -> Option<i64> {
    match v {
        AMQPValue::ShortShortInt(i) => Some(i64::from(*i)),
        AMQPValue::ShortShortUInt(i) => Some(i64::from(*i)),
        AMQPValue::ShortInt(i) => Some(i64::from(*i)),
        AMQPValue::ShortUInt(i) => Some(i64::from(*i)),
        AMQPValue::LongInt(i) => Some(i64::from(*i)),
        AMQPValue::LongUInt(i) => Some(i64::from(*i)),
        AMQPValue::LongLongInt(i) => Some(*i),
        AMQPValue::Timestamp(i) => i64::try_from(*i).ok(),
        _ => None,
    }
}

/// Interpret an AMQP field value as a string, if it is one.
pub(crate) fn value_as_str(v: &AMQPValue) -> Option<String> {
    match v {
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        _ => None,
    }
}

static TOKEN_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A random URL-safe token of `len` characters (not cryptographic).
pub(crate) fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(len);
    let state = std::collections::hash_map::RandomState::new();
    let mut seed = 0u64;
    while out.len() < len {
        let mut h = state.build_hasher();
        h.write_u64(TOKEN_COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u64(seed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        h.write_u64(nanos);
        let mut r = h.finish();
        seed = r;
        for _ in 0..10 {
            if out.len() >= len {
                break;
            }
            out.push(ALPHABET[(r & 63) as usize] as char);
            r >>= 6;
        }
    }
    out
}

/// Milliseconds since the Unix epoch / seconds, for timestamps.
pub(crate) fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
