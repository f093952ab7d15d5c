//! The properties tables of the handshake: the broker's `server-properties` (with
//! RabbitMQ's capabilities) and the capabilities a client announces.

use crate::message::short;
use amq_protocol::types::{AMQPValue, FieldTable, LongString};

/// The server-properties table, with RabbitMQ's capabilities.
pub(super) fn server_properties() -> FieldTable {
    let mut caps = FieldTable::default();
    for c in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "authentication_failure_close",
        "per_consumer_qos",
        "direct_reply_to",
        "consumer_priorities",
    ] {
        caps.insert(short(c), AMQPValue::Boolean(true));
    }
    let mut t = FieldTable::default();
    t.insert(short("capabilities"), AMQPValue::FieldTable(caps));
    let s = |v: &str| AMQPValue::LongString(LongString::from(v));
    t.insert(short("product"), s("Warren broker"));
    t.insert(short("version"), s(env!("CARGO_PKG_VERSION")));
    t.insert(short("platform"), s("Rust"));
    t.insert(short("cluster_name"), s("warren"));
    t.insert(short("copyright"), s("Warren contributors"));
    t.insert(short("information"), s("Embedded AMQP 0-9-1 broker"));
    t
}

/// Whether a client-properties table announces a capability.
pub(super) fn capability(props: &FieldTable, name: &str) -> bool {
    match props.inner().get("capabilities") {
        Some(AMQPValue::FieldTable(caps)) => {
            matches!(caps.inner().get(name), Some(AMQPValue::Boolean(true)))
        }
        _ => false,
    }
}
