//! JSON shapes shared by the handlers: argument tables both ways,
//! `message_stats` with `*_details.rate`, and reading RabbitMQ's loosely typed
//! request bodies (booleans sent as `"true"`).

use crate::stats::{ArgValue, MessageRates, MessageTotals};
use amq_protocol::types::FieldTable;
use serde_json::{json, Map, Value};
use std::time::{SystemTime, UNIX_EPOCH};

/// An argument value as JSON.
pub(crate) fn arg(v: &ArgValue) -> Value {
    match v {
        ArgValue::Bool(b) => json!(b),
        ArgValue::Int(i) => json!(i),
        ArgValue::Float(f) => json!(f),
        ArgValue::Str(s) => json!(s),
        ArgValue::List(l) => Value::Array(l.iter().map(arg).collect()),
        ArgValue::Table(t) => args(t),
        _ => Value::Null,
    }
}

/// An argument table as a JSON object.
pub(crate) fn args(t: &[(String, ArgValue)]) -> Value {
    Value::Object(t.iter().map(|(k, v)| (k.clone(), arg(v))).collect())
}

/// A JSON object as a field table (anything else: empty).
pub(crate) fn table(v: &Value) -> FieldTable {
    match v {
        Value::Object(m) => crate::definitions::apply::table(m),
        _ => FieldTable::default(),
    }
}

/// A boolean field of a request body: `true`, `"true"`, or `default`.
pub(crate) fn flag(body: &Value, key: &str, default: bool) -> bool {
    match body.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => match s.as_str() {
            "true" => true,
            "false" => false,
            _ => default,
        },
        _ => default,
    }
}

/// A string field of a request body.
pub(crate) fn text<'a>(body: &'a Value, key: &str) -> Option<&'a str> {
    body.get(key).and_then(Value::as_str)
}

/// `{"rate": r}`.
pub(crate) fn details(rate: f64) -> Value {
    json!({ "rate": (rate * 10.0).round() / 10.0 })
}

/// RabbitMQ's `message_stats`: each total with its `_details.rate`. A queue has
/// the fields RabbitMQ gives a queue (no confirms, no unroutable counts).
pub(crate) fn message_stats(t: &MessageTotals, r: &MessageRates, queue: bool) -> Value {
    let mut m = Map::new();
    let mut put = |k: &str, n: u64, rate: f64| {
        m.insert(k.to_owned(), json!(n));
        m.insert(format!("{k}_details"), details(rate));
    };
    put("publish", t.publish, r.publish);
    if !queue {
        put("confirm", t.confirm, r.confirm);
        put(
            "return_unroutable",
            t.return_unroutable,
            r.return_unroutable,
        );
        put("drop_unroutable", t.drop_unroutable, r.drop_unroutable);
    }
    put("deliver", t.deliver, r.deliver);
    put("deliver_no_ack", t.deliver_no_ack, r.deliver_no_ack);
    put("get", t.get, r.get);
    put("get_no_ack", t.get_no_ack, r.get_no_ack);
    put("deliver_get", t.deliver_get(), r.deliver_get);
    put("redeliver", t.redeliver, r.redeliver);
    put("ack", t.ack, r.ack);
    Value::Object(m)
}

/// Milliseconds since the Unix epoch.
pub(crate) fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
