//! Redeclare rules: a declare of an exchange or queue that exists must match it,
//! else 406 PRECONDITION_FAILED with RabbitMQ's wording (written once here for
//! both kinds), or 405 for a change of a queue's exclusivity.

use super::{locked_queue, ExchangeDecl, QueueDecl};
use crate::error::AmqpError;
use crate::exchange::{Exchange, ExchangeKind};
use crate::message::{value_as_i64, value_as_str};
use crate::queue::Queue;
use amq_protocol::types::{AMQPValue, FieldTable};
use std::fmt::Display;

/// Queue arguments whose change a redeclare is refused for.
const QUEUE_ARGS_COMPARED: &[&str] = &[
    "x-message-ttl",
    "x-expires",
    "x-max-length",
    "x-max-length-bytes",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-priority",
    "x-single-active-consumer",
    "x-queue-type",
    "x-overflow",
];

/// What is being redeclared, for the 406 text.
struct Redeclare<'a> {
    /// "exchange" or "queue".
    what: &'static str,
    name: &'a str,
    vhost: &'a str,
}

impl Redeclare<'_> {
    /// The 406 for one setting that differs.
    fn differs(&self, arg: &str, got: impl Display, cur: impl Display) -> AmqpError {
        let Self { what, name, vhost } = self;
        AmqpError::precondition(format!(
            "inequivalent arg '{arg}' for {what} '{name}' in vhost '{vhost}': received '{got}' but current is '{cur}'"
        ))
    }

    /// Check one setting.
    fn same<T: PartialEq + Display>(&self, arg: &str, got: T, cur: T) -> Result<(), AmqpError> {
        if got == cur {
            Ok(())
        } else {
            Err(self.differs(arg, got, cur))
        }
    }
}

/// A redeclared exchange must have the existing one's type, flags and arguments.
pub(super) fn check_exchange(
    x: &Exchange,
    d: &ExchangeDecl,
    kind: Option<ExchangeKind>,
    vhost: &str,
) -> Result<(), AmqpError> {
    let r = Redeclare {
        what: "exchange",
        name: &d.name,
        vhost,
    };
    if Some(x.kind) != kind {
        return Err(r.differs("type", &d.kind, x.kind.name()));
    }
    r.same("durable", d.durable, x.durable)?;
    r.same("auto_delete", d.auto_delete, x.auto_delete)?;
    r.same("internal", d.internal, x.internal)?;
    if x.arguments != d.arguments {
        let key = first_differing_key(&d.arguments, &x.arguments);
        return Err(AmqpError::precondition(format!(
            "inequivalent arg '{key}' for exchange '{}' in vhost '{vhost}'",
            d.name
        )));
    }
    Ok(())
}

/// A redeclared queue must have the existing one's flags and the arguments in
/// [`QUEUE_ARGS_COMPARED`] (numbers and strings compared by value).
pub(super) fn check_queue(q: &Queue, d: &QueueDecl, vhost: &str) -> Result<(), AmqpError> {
    let r = Redeclare {
        what: "queue",
        name: &q.name,
        vhost,
    };
    r.same("durable", d.durable, q.durable)?;
    if q.owner.is_some() != d.exclusive {
        // RabbitMQ answers a change of exclusivity with 405, even to the owner.
        return Err(locked_queue(&q.name, vhost));
    }
    r.same("auto_delete", d.auto_delete, q.auto_delete)?;
    for key in QUEUE_ARGS_COMPARED {
        let got = d.arguments.inner().get(*key);
        let cur = q.arguments.inner().get(*key);
        if !equivalent(got, cur) {
            return Err(r.differs(key, format!("{got:?}"), format!("{cur:?}")));
        }
    }
    Ok(())
}

/// Two argument values are equivalent if equal, or equal as numbers or strings.
fn equivalent(a: Option<&AMQPValue>, b: Option<&AMQPValue>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => {
            x == y
                || matches!((value_as_i64(x), value_as_i64(y)), (Some(i), Some(j)) if i == j)
                || matches!((value_as_str(x), value_as_str(y)), (Some(i), Some(j)) if i == j)
        }
        _ => false,
    }
}

/// The first key whose value differs between two tables ("" if none).
fn first_differing_key(a: &FieldTable, b: &FieldTable) -> String {
    a.inner()
        .keys()
        .chain(b.inner().keys())
        .find(|k| a.inner().get(k.as_str()) != b.inner().get(k.as_str()))
        .map(|k| k.as_str().to_owned())
        .unwrap_or_default()
}
