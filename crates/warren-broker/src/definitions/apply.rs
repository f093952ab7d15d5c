//! Definitions meet a running broker: [`declare`] declares a file's exchanges,
//! queues and bindings in their vhosts (as RabbitMQ's import, in that order; the
//! predefined `amq.*` and default exchanges are skipped), and [`topology`] reads
//! them back for an export (exclusive queues and the predefined exchanges left out,
//! as `rabbitmqctl export_definitions` does). Arguments are JSON in the file and
//! AMQP field tables in the broker; integers become signed 64-bit, as in
//! RabbitMQ's importer.

use super::{BindingDef, Definitions, DefinitionsError, ExchangeDef, QueueDef};
use crate::error::AmqpError;
use crate::stats::{ArgValue, Stats};
use crate::vhost::{ExchangeDecl, QueueDecl, VHost};
use crate::vhosts::VHosts;
use amq_protocol::types::{AMQPValue, FieldArray, FieldTable, LongString};
use serde_json::{Map, Value};
use std::sync::Arc;

/// The connection id declarations from definitions act as (real connections are
/// numbered from 1).
const DEFINITIONS_CONN: u64 = 0;

/// Declare the exchanges, then the queues, then the bindings of `defs`; every vhost
/// they name must exist (the file's own vhosts are added before).
pub(crate) fn declare(vhosts: &VHosts, defs: &Definitions) -> Result<(), DefinitionsError> {
    let vhost = |name: &str, what: &dyn Fn() -> String| {
        vhosts.get(name).ok_or_else(|| DefinitionsError::Declare {
            what: what(),
            vhost: name.to_owned(),
            reason: "no such vhost".into(),
        })
    };
    let refused = |what: String, v: &VHost| {
        let vhost = v.name.clone();
        move |e: AmqpError| DefinitionsError::Declare {
            what,
            vhost,
            reason: e.reply_text(),
        }
    };
    for x in &defs.exchanges {
        if x.name.is_empty() || x.name.starts_with("amq.") {
            continue;
        }
        let what = || format!("exchange '{}'", x.name);
        let v = vhost(&x.vhost, &what)?;
        v.declare_exchange(exchange_decl(x))
            .map_err(refused(what(), &v))?;
    }
    for q in &defs.queues {
        let what = || format!("queue '{}'", q.name);
        let v = vhost(&q.vhost, &what)?;
        v.declare_queue(DEFINITIONS_CONN, queue_decl(q))
            .map_err(refused(what(), &v))?;
    }
    for b in &defs.bindings {
        let what = || {
            format!(
                "binding of {} '{}' to exchange '{}'",
                b.destination_type, b.destination, b.source
            )
        };
        let v: Arc<VHost> = vhost(&b.vhost, &what)?;
        let args = table(&b.arguments);
        let r = if b.destination_type == "exchange" {
            v.bind_exchange(&b.destination, &b.source, &b.routing_key, args, true)
        } else {
            v.bind(
                DEFINITIONS_CONN,
                &b.destination,
                &b.source,
                &b.routing_key,
                args,
            )
        };
        r.map_err(refused(what(), &v))?;
    }
    Ok(())
}

fn exchange_decl(x: &ExchangeDef) -> ExchangeDecl {
    ExchangeDecl {
        name: x.name.clone(),
        kind: x.kind.clone(),
        passive: false,
        durable: x.durable,
        auto_delete: x.auto_delete,
        internal: x.internal,
        arguments: table(&x.arguments),
    }
}

fn queue_decl(q: &QueueDef) -> QueueDecl {
    let mut arguments = q.arguments.clone();
    // Warren has classic queues only; RabbitMQ's explicit default is accepted.
    if arguments.get("x-queue-type").and_then(Value::as_str) == Some("classic") {
        arguments.remove("x-queue-type");
    }
    QueueDecl {
        name: q.name.clone(),
        passive: false,
        durable: q.durable,
        exclusive: false,
        auto_delete: q.auto_delete,
        arguments: table(&arguments),
    }
}

/// Fill `defs` with the broker's queues, exchanges and bindings.
pub(crate) fn topology(stats: &Stats, defs: &mut Definitions) {
    defs.queues = stats
        .queues()
        .into_iter()
        .filter(|q| q.exclusive_owner.is_none())
        .map(|q| QueueDef {
            name: q.name,
            vhost: q.vhost,
            durable: q.durable,
            auto_delete: q.auto_delete,
            arguments: json_args(&q.arguments),
        })
        .collect();
    defs.exchanges = stats
        .exchanges()
        .into_iter()
        .filter(|x| !x.name.is_empty() && !x.name.starts_with("amq."))
        .map(|x| ExchangeDef {
            name: x.name,
            vhost: x.vhost,
            kind: x.kind,
            durable: x.durable,
            auto_delete: x.auto_delete,
            internal: x.internal,
            arguments: json_args(&x.arguments),
        })
        .collect();
    defs.bindings = stats
        .bindings()
        .into_iter()
        .filter(|b| !b.source.is_empty())
        .map(|b| BindingDef {
            source: b.source,
            vhost: b.vhost,
            destination: b.destination,
            destination_type: if b.to_exchange { "exchange" } else { "queue" }.into(),
            routing_key: b.routing_key,
            arguments: json_args(&b.arguments),
        })
        .collect();
}

/// A JSON value as an AMQP field value (integers as signed 64-bit, as RabbitMQ's
/// importer and management API).
fn amqp(v: &Value) -> AMQPValue {
    match v {
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => AMQPValue::LongLongInt(i),
            None => AMQPValue::Double(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => AMQPValue::LongString(LongString::from(s.as_bytes().to_vec())),
        Value::Array(a) => {
            let mut arr = FieldArray::default();
            for x in a {
                arr.push(amqp(x));
            }
            AMQPValue::FieldArray(arr)
        }
        Value::Object(m) => AMQPValue::FieldTable(table(m)),
        Value::Null => AMQPValue::Void,
    }
}

/// A JSON object as a field table.
pub(crate) fn table(m: &Map<String, Value>) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, x) in m {
        t.insert(k.as_str().into(), amqp(x));
    }
    t
}

/// An argument value as JSON.
fn json_arg(v: &ArgValue) -> Value {
    match v {
        ArgValue::Bool(b) => Value::from(*b),
        ArgValue::Int(i) => Value::from(*i),
        ArgValue::Float(f) => Value::from(*f),
        ArgValue::Str(s) => Value::from(s.as_str()),
        ArgValue::List(l) => Value::Array(l.iter().map(json_arg).collect()),
        ArgValue::Table(t) => Value::Object(json_args(t)),
        _ => Value::Null,
    }
}

/// An argument table as a JSON object.
fn json_args(t: &[(String, ArgValue)]) -> Map<String, Value> {
    t.iter().map(|(k, v)| (k.clone(), json_arg(v))).collect()
}
