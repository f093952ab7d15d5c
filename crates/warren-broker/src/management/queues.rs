//! `/api/queues`: list (all, per vhost), one, declare (PUT), delete, and purge
//! (`DELETE .../contents`).

use super::error::ApiError;
use super::json::{args, details, flag, message_stats, table};
use super::listing::Params;
use super::resource;
use super::{Api, St, API_CONN};
use crate::queue::Queue;
use crate::stats::QueueInfo;
use crate::vhost::QueueDecl;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;

/// A queue in RabbitMQ's JSON shape.
pub(crate) fn queue_json(api: &Api, q: &QueueInfo) -> Value {
    let messages = q.messages_ready + q.messages_unacknowledged;
    let r = &q.message_stats.rates;
    json!({
        "name": q.name,
        "vhost": q.vhost,
        "durable": q.durable,
        "auto_delete": q.auto_delete,
        "exclusive": q.exclusive_owner.is_some(),
        "arguments": args(&q.arguments),
        "node": api.node(),
        "type": "classic",
        "state": "running",
        "messages": messages,
        "messages_details": details(0.0),
        "messages_ready": q.messages_ready,
        "messages_ready_details": details(0.0),
        "messages_unacknowledged": q.messages_unacknowledged,
        "messages_unacknowledged_details": details(0.0),
        "message_bytes_ready": q.message_bytes_ready,
        "consumers": q.consumers,
        "message_stats": message_stats(&q.message_stats.totals, r, true),
    })
}

/// The queue `name` of vhost `vhost` (404 if either is missing).
pub(crate) fn find(
    api: &Api,
    vhost: &str,
    name: &str,
) -> Result<(Arc<crate::vhost::VHost>, Arc<Queue>), ApiError> {
    let v = api.vhost(vhost)?;
    let q = v
        .all_queues()
        .into_iter()
        .find(|x| x.name == name)
        .ok_or_else(ApiError::not_found)?;
    Ok((v, q))
}

/// Queues for the list handlers.
pub(crate) struct Queues;

impl resource::Kind for Queues {
    fn rows(api: &Api, vhost: Option<&str>) -> Vec<Value> {
        queues(api, vhost)
    }
}

fn queues(api: &Api, vhost: Option<&str>) -> Vec<Value> {
    api.stats
        .queues()
        .iter()
        .filter(|q| vhost.is_none_or(|v| q.vhost == v))
        .map(|q| queue_json(api, q))
        .collect()
}

pub(crate) async fn one(
    api: St,
    Path((vhost, name)): Path<(String, String)>,
    Query(q): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    resource::one(
        api.stats.queues(),
        |x| x.vhost == vhost && x.name == name,
        |x| queue_json(&api, x),
        &q,
    )
}

/// Declare a queue from an API body; says whether it was created.
pub(crate) fn declare_from(
    api: &Api,
    vhost: &str,
    name: &str,
    b: &Value,
) -> Result<bool, ApiError> {
    let v = api.vhost(vhost)?;
    let existed = v.all_queues().iter().any(|q| q.name == name);
    let mut arguments = b.get("arguments").cloned().unwrap_or(json!({}));
    if let (Some(t), Value::Object(m)) = (b.get("queue_type"), &mut arguments) {
        m.insert("x-queue-type".into(), t.clone());
    }
    // Warren has classic queues only; accept RabbitMQ's explicit default.
    if let Value::Object(m) = &mut arguments {
        if m.get("x-queue-type").and_then(Value::as_str) == Some("classic") {
            m.remove("x-queue-type");
        }
    }
    v.declare_queue(
        API_CONN,
        QueueDecl {
            name: name.to_owned(),
            passive: false,
            durable: flag(b, "durable", true),
            exclusive: false,
            auto_delete: flag(b, "auto_delete", false),
            arguments: table(&arguments),
        },
    )?;
    Ok(!existed)
}

pub(crate) async fn declare(
    api: St,
    Path((vhost, name)): Path<(String, String)>,
    raw: String,
) -> Result<StatusCode, ApiError> {
    if name.is_empty() {
        return Err(ApiError::bad_request("queue name must not be empty"));
    }
    resource::declare(&raw, |b| declare_from(&api, &vhost, &name, b))
}

pub(crate) async fn remove(
    api: St,
    Path((vhost, name)): Path<(String, String)>,
    Query(q): Query<Params>,
) -> Result<StatusCode, ApiError> {
    let (v, queue) = find(&api, &vhost, &name)?;
    let if_unused = q.get("if-unused").is_some_and(|x| x == "true");
    let if_empty = q.get("if-empty").is_some_and(|x| x == "true");
    let c = queue.counts();
    if if_unused && c.consumers > 0 {
        return Err(ApiError::bad_request(format!(
            "queue '{name}' in vhost '{vhost}' in use"
        )));
    }
    if if_empty && c.messages > 0 {
        return Err(ApiError::bad_request(format!(
            "queue '{name}' in vhost '{vhost}' is not empty"
        )));
    }
    v.remove_queue(&queue);
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn purge(
    api: St,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (v, queue) = find(&api, &vhost, &name)?;
    let fallout = queue.purge().fallout;
    v.settle(&queue, fallout);
    Ok(StatusCode::NO_CONTENT)
}
