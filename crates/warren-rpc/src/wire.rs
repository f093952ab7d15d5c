//! The wire contract's names in one place (the contract itself is
//! [`docs/SPEC.md`](https://github.com/warren-rpc/warren/blob/main/docs/SPEC.md)):
//! header names, the direct reply-to pseudo-queue, delivery modes.

use std::time::{SystemTime, UNIX_EPOCH};

/// How call metadata maps onto AMQP properties (crate-private: it speaks amq-protocol's types).
pub(crate) mod props;

pub(crate) use props::{deadline_of, reply_properties, reply_status};

/// RabbitMQ's direct reply-to pseudo-queue.
pub const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";
/// Reply header carrying the status code (absent or `ok` on success).
pub const HEADER_STATUS: &str = "x-status";
/// Request header carrying the absolute deadline, milliseconds since the Unix epoch.
pub const HEADER_DEADLINE: &str = "x-deadline";
/// `delivery_mode` of a transient message.
pub const TRANSIENT: u8 = 1;
/// `delivery_mode` of a persistent message.
pub const PERSISTENT: u8 = 2;

/// Milliseconds since the Unix epoch of `t` (0 before the epoch).
pub fn epoch_millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
