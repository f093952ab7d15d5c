//! Moving messages through the API: publish to an exchange
//! (`POST /api/exchanges/{vhost}/{name}/publish`), get from a queue
//! (`POST /api/queues/{vhost}/{name}/get`), and the aliveness test that does both.

use super::error::ApiError;
use super::json::{flag, text};
use super::resource::vhost_and_body;
use super::{exchange_name, props, Api, St, API_CONN};
use crate::message::{encode_props, Message, QueuedMessage};
use crate::queue::Taken;
use crate::vhost::{QueueDecl, VHost};
use amq_protocol::types::FieldTable;
use axum::extract::Path;
use axum::Json;
use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Value};
use std::sync::Arc;

/// Route and enqueue one message; says whether any queue took it.
fn publish_one(
    v: &VHost,
    exchange: &str,
    routing_key: &str,
    properties: &Value,
    body: Bytes,
) -> Result<bool, ApiError> {
    let p = props::from_json(properties);
    let raw = encode_props(&p);
    let msg = Message::new(exchange.to_owned(), routing_key.to_owned(), p, raw, body)
        .charged_to(&v.memory);
    let queues = v.route(exchange, routing_key, msg.props.headers().as_ref())?;
    v.stats.published(queues.len(), false);
    if queues.is_empty() {
        return Ok(false);
    }
    let _ = v.enqueue(&queues, Arc::new(msg), None);
    Ok(true)
}

pub(crate) async fn publish(
    api: St,
    Path((vhost, name)): Path<(String, String)>,
    raw: String,
) -> Result<Json<Value>, ApiError> {
    let (v, b) = vhost_and_body(&api, &vhost, &raw)?;
    let routing_key =
        text(&b, "routing_key").ok_or_else(|| ApiError::bad_request("routing_key missing"))?;
    let payload = text(&b, "payload").unwrap_or("");
    let bytes = match text(&b, "payload_encoding").unwrap_or("string") {
        "string" => Bytes::from(payload.as_bytes().to_vec()),
        "base64" => base64::engine::general_purpose::STANDARD
            .decode(payload)
            .map(Bytes::from)
            .map_err(|_| ApiError::bad_request("payload is not valid base64"))?,
        other => {
            return Err(ApiError::bad_request(format!(
                "payload_encoding must be string or base64, not {other}"
            )))
        }
    };
    let properties = b.get("properties").cloned().unwrap_or(json!({}));
    let routed = publish_one(&v, exchange_name(&name), routing_key, &properties, bytes)?;
    Ok(Json(json!({ "routed": routed })))
}

/// A got message as JSON (`encoding` auto: a UTF-8 body as a string, else base64).
fn message_json(
    m: &QueuedMessage,
    remaining: u32,
    encoding: &str,
    truncate: Option<usize>,
) -> Value {
    let body = &m.msg.body[..];
    let shown = &body[..truncate.map_or(body.len(), |t| t.min(body.len()))];
    let (payload, enc) = match std::str::from_utf8(shown) {
        Ok(s) if encoding != "base64" => (s.to_owned(), "string"),
        _ => (
            base64::engine::general_purpose::STANDARD.encode(shown),
            "base64",
        ),
    };
    json!({
        "payload_bytes": body.len(),
        "redelivered": m.redelivered,
        "exchange": m.msg.exchange,
        "routing_key": m.msg.routing_key,
        "message_count": remaining,
        "properties": props::to_json(&m.msg.props),
        "payload": payload,
        "payload_encoding": enc,
    })
}

/// Take up to `count` messages and settle them as `ackmode` says.
fn get_messages(v: &VHost, name: &str, b: &Value) -> Result<Vec<Value>, ApiError> {
    let q = v
        .all_queues()
        .into_iter()
        .find(|x| x.name == name)
        .ok_or_else(ApiError::not_found)?;
    let count = match b.get("count") {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(1),
        Some(Value::String(s)) => s
            .parse()
            .map_err(|_| ApiError::bad_request("count must be a number"))?,
        _ => 1,
    };
    let ackmode = text(b, "ackmode").unwrap_or("ack_requeue_true");
    let requeue = match ackmode {
        "ack_requeue_true" | "reject_requeue_true" => true,
        "ack_requeue_false" | "reject_requeue_false" => false,
        other => return Err(ApiError::bad_request(format!("unknown ackmode {other}"))),
    };
    let encoding = text(b, "encoding").unwrap_or("auto");
    let truncate = b
        .get("truncate")
        .and_then(Value::as_u64)
        .map(|t| t as usize);
    let mut taken = Vec::new();
    let mut out = Vec::new();
    for _ in 0..count.min(10_000) {
        let Taken { got, fallout } = q.get();
        v.settle(&q, fallout);
        let Some(got) = got else { break };
        v.stats.got(false, got.msg.redelivered);
        q.stats.messages.got(false, got.msg.redelivered);
        out.push(message_json(&got.msg, got.remaining, encoding, truncate));
        taken.push(got.msg);
    }
    if requeue {
        let fallout = q.requeue(taken);
        v.settle(&q, fallout);
    } else if ackmode == "ack_requeue_false" {
        v.stats.acked(taken.len());
        q.stats.messages.acked(taken.len());
        for m in &taken {
            v.forget(&q, m);
        }
    } else {
        for m in taken {
            let fallout = q.reject(m);
            v.settle(&q, fallout);
        }
    }
    Ok(out)
}

pub(crate) async fn get(
    api: St,
    Path((vhost, name)): Path<(String, String)>,
    raw: String,
) -> Result<Json<Value>, ApiError> {
    let (v, b) = vhost_and_body(&api, &vhost, &raw)?;
    Ok(Json(Value::Array(get_messages(&v, &name, &b)?)))
}

/// RabbitMQ's aliveness test: declare `aliveness-test`, publish to it, get it.
pub(crate) async fn aliveness(api: St, Path(vhost): Path<String>) -> Result<Json<Value>, ApiError> {
    let ok = alive(&api, &vhost)?;
    Ok(Json(if ok {
        json!({"status": "ok"})
    } else {
        json!({"status": "failed", "reason": "message did not come back"})
    }))
}

fn alive(api: &Api, vhost: &str) -> Result<bool, ApiError> {
    let v = api.vhost(vhost)?;
    let name = "aliveness-test";
    v.declare_queue(
        API_CONN,
        QueueDecl {
            name: name.into(),
            passive: false,
            durable: false,
            exclusive: false,
            auto_delete: false,
            arguments: FieldTable::default(),
        },
    )?;
    publish_one(
        &v,
        "",
        name,
        &json!({}),
        Bytes::from_static(b"test_message"),
    )?;
    let got = get_messages(
        &v,
        name,
        &json!({"count": 1, "ackmode": "ack_requeue_false"}),
    )?;
    Ok(got
        .first()
        .is_some_and(|m| flag(m, "redelivered", false) || m["payload"] == "test_message"))
}
