//! Message properties in RabbitMQ's API JSON (`"properties": {"delivery_mode": 2,
//! "headers": {..}, ...}`), both ways.

use super::json;
use crate::message::short;
use crate::stats::args::table;
use amq_protocol::protocol::basic::AMQPProperties;
use serde_json::{json, Map, Value};

/// Properties as JSON; only the fields that are set (`[]` when none is).
pub(crate) fn to_json(p: &AMQPProperties) -> Value {
    let mut m = Map::new();
    let mut s = |k: &str, v: &Option<amq_protocol::types::ShortString>| {
        if let Some(v) = v {
            m.insert(k.to_owned(), json!(v.as_str()));
        }
    };
    s("content_type", p.content_type());
    s("content_encoding", p.content_encoding());
    s("correlation_id", p.correlation_id());
    s("reply_to", p.reply_to());
    s("expiration", p.expiration());
    s("message_id", p.message_id());
    s("type", p.kind());
    s("user_id", p.user_id());
    s("app_id", p.app_id());
    s("cluster_id", p.cluster_id());
    if let Some(d) = p.delivery_mode() {
        m.insert("delivery_mode".into(), json!(d));
    }
    if let Some(d) = p.priority() {
        m.insert("priority".into(), json!(d));
    }
    if let Some(t) = p.timestamp() {
        m.insert("timestamp".into(), json!(t));
    }
    if let Some(h) = p.headers() {
        m.insert("headers".into(), json::args(&table(h)));
    }
    if m.is_empty() {
        // RabbitMQ writes no properties as an empty list.
        return Value::Array(Vec::new());
    }
    Value::Object(m)
}

fn u8_of(v: &Value) -> Option<u8> {
    match v {
        Value::Number(n) => n.as_u64().and_then(|n| u8::try_from(n).ok()),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Properties from JSON; unknown fields are ignored, as RabbitMQ does.
pub(crate) fn from_json(v: &Value) -> AMQPProperties {
    let mut p = AMQPProperties::default();
    let Value::Object(m) = v else {
        return p;
    };
    for (k, x) in m {
        let st = || {
            short(
                x.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| x.to_string()),
            )
        };
        p = match k.as_str() {
            "content_type" => p.with_content_type(st()),
            "content_encoding" => p.with_content_encoding(st()),
            "correlation_id" => p.with_correlation_id(st()),
            "reply_to" => p.with_reply_to(st()),
            "expiration" => p.with_expiration(st()),
            "message_id" => p.with_message_id(st()),
            "type" => p.with_type(st()),
            "user_id" => p.with_user_id(st()),
            "app_id" => p.with_app_id(st()),
            "cluster_id" => p.with_cluster_id(st()),
            "delivery_mode" => match u8_of(x) {
                Some(d) => p.with_delivery_mode(d),
                None => p,
            },
            "priority" => match u8_of(x) {
                Some(d) => p.with_priority(d),
                None => p,
            },
            "timestamp" => match x.as_u64() {
                Some(t) => p.with_timestamp(t),
                None => p,
            },
            "headers" => p.with_headers(json::table(x)),
            _ => p,
        };
    }
    p
}
