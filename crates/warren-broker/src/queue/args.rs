//! Queue declaration arguments (`x-message-ttl`, `x-expires`, `x-max-length`,
//! dead-lettering, overflow, priority, single active consumer): parsed and checked
//! once at declare time.

use crate::error::AmqpError;
use crate::message::{value_as_i64, value_as_str};
use amq_protocol::types::FieldTable;
use std::time::Duration;

/// Queue arguments that change behaviour.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct QueueArgs {
    /// x-message-ttl.
    pub(crate) message_ttl: Option<Duration>,
    /// x-expires.
    pub(crate) expires: Option<Duration>,
    /// x-max-length.
    pub(crate) max_length: Option<usize>,
    /// x-max-length-bytes.
    pub(crate) max_length_bytes: Option<usize>,
    /// x-dead-letter-exchange.
    pub(crate) dlx: Option<String>,
    /// x-dead-letter-routing-key.
    pub(crate) dlrk: Option<String>,
    /// x-overflow = reject-publish (refuse new messages when full).
    pub(crate) reject_publish: bool,
    /// x-max-priority (priority queue).
    pub(crate) max_priority: Option<u8>,
    /// x-single-active-consumer.
    pub(crate) single_active: bool,
}

impl QueueArgs {
    /// Parse and validate declaration arguments (406 on bad values).
    pub(crate) fn parse(args: &FieldTable) -> Result<Self, AmqpError> {
        let mut out = QueueArgs::default();
        let int = |key: &str| -> Result<Option<i64>, AmqpError> {
            match args.inner().get(key) {
                None => Ok(None),
                Some(v) => match value_as_i64(v) {
                    Some(i) if i >= 0 => Ok(Some(i)),
                    _ => Err(AmqpError::precondition(format!(
                        "invalid arg '{key}' for queue: {v:?}"
                    ))),
                },
            }
        };
        out.message_ttl = int("x-message-ttl")?.map(|ms| Duration::from_millis(ms as u64));
        out.expires = match int("x-expires")? {
            Some(0) => {
                return Err(AmqpError::precondition(
                    "invalid arg 'x-expires' for queue: must be positive",
                ))
            }
            other => other.map(|ms| Duration::from_millis(ms as u64)),
        };
        out.max_length = int("x-max-length")?.map(|n| n as usize);
        out.max_length_bytes = int("x-max-length-bytes")?.map(|n| n as usize);
        let string = |key: &str| -> Result<Option<String>, AmqpError> {
            match args.inner().get(key) {
                None => Ok(None),
                Some(v) => value_as_str(v).map(Some).ok_or_else(|| {
                    AmqpError::precondition(format!("invalid arg '{key}' for queue: {v:?}"))
                }),
            }
        };
        out.dlx = string("x-dead-letter-exchange")?;
        out.dlrk = string("x-dead-letter-routing-key")?;
        if out.dlrk.is_some() && out.dlx.is_none() {
            return Err(AmqpError::precondition(
                "invalid arg 'x-dead-letter-routing-key' for queue: x-dead-letter-exchange is not set",
            ));
        }
        out.single_active = match args.inner().get("x-single-active-consumer") {
            None => false,
            Some(amq_protocol::types::AMQPValue::Boolean(b)) => *b,
            Some(v) => {
                return Err(AmqpError::precondition(format!(
                    "invalid arg 'x-single-active-consumer' for queue: {v:?}"
                )))
            }
        };
        match string("x-queue-type")?.as_deref() {
            // Quorum queues are served as classic queues.
            None | Some("classic") | Some("quorum") => {}
            Some(other) => {
                return Err(AmqpError::precondition(format!(
                    "invalid arg 'x-queue-type' for queue: unsupported queue type '{other}'"
                )))
            }
        }
        out.max_priority = match int("x-max-priority")? {
            None => None,
            Some(p) if (1..=255).contains(&p) => Some(p as u8),
            Some(p) => {
                return Err(AmqpError::precondition(format!(
                    "invalid arg 'x-max-priority' for queue: {p}"
                )))
            }
        };
        match args.inner().get("x-overflow").map(value_as_str) {
            None => {}
            Some(Some(s)) if s == "drop-head" => {}
            Some(Some(s)) if s == "reject-publish" || s == "reject-publish-dlx" => {
                out.reject_publish = true;
            }
            Some(other) => {
                return Err(AmqpError::precondition(format!(
                    "invalid arg 'x-overflow' for queue: {other:?}"
                )))
            }
        }
        Ok(out)
    }
}

/// Why a message is being dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeathReason {
    /// basic.reject / basic.nack with requeue=false.
    Rejected,
    /// TTL expiry.
    Expired,
    /// x-max-length overflow.
    MaxLen,
}

impl DeathReason {
    /// RabbitMQ's name for the reason.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Rejected => "rejected",
            Self::Expired => "expired",
            Self::MaxLen => "maxlen",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::types::{AMQPValue, LongString};

    fn args(pairs: Vec<(&str, AMQPValue)>) -> FieldTable {
        let mut t = FieldTable::default();
        for (k, v) in pairs {
            t.insert(k.into(), v);
        }
        t
    }

    #[test]
    fn queue_arguments() {
        let a = QueueArgs::parse(&args(vec![
            ("x-message-ttl", AMQPValue::ShortUInt(100)),
            ("x-max-length", AMQPValue::LongLongInt(5)),
            (
                "x-dead-letter-exchange",
                AMQPValue::LongString(LongString::from("dlx")),
            ),
            (
                "x-overflow",
                AMQPValue::LongString(LongString::from("reject-publish")),
            ),
            ("x-max-priority", AMQPValue::ShortShortUInt(3)),
        ]))
        .unwrap();
        assert_eq!(a.message_ttl, Some(Duration::from_millis(100)));
        assert_eq!(a.max_length, Some(5));
        assert_eq!(a.dlx.as_deref(), Some("dlx"));
        assert!(a.reject_publish);
        assert_eq!(a.max_priority, Some(3));
        for bad in [
            args(vec![("x-message-ttl", AMQPValue::LongInt(-1))]),
            args(vec![("x-message-ttl", AMQPValue::Boolean(true))]),
            args(vec![("x-expires", AMQPValue::LongInt(0))]),
            args(vec![(
                "x-overflow",
                AMQPValue::LongString(LongString::from("bogus")),
            )]),
            args(vec![(
                "x-dead-letter-routing-key",
                AMQPValue::LongString(LongString::from("k")),
            )]),
            args(vec![("x-max-priority", AMQPValue::LongInt(256))]),
        ] {
            assert_eq!(
                QueueArgs::parse(&bad).map(|_| ()).unwrap_err().code,
                crate::error::ReplyCode::PreconditionFailed
            );
        }
    }
}
