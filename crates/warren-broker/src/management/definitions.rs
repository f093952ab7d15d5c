//! `/api/definitions`: export and import RabbitMQ's definitions JSON (the format
//! of `rabbitmqctl export_definitions`), broker-wide or for one vhost. Users,
//! vhosts and permissions are exported as the broker has them; on import, the
//! topology (exchanges, queues, bindings) of the broker's vhosts is declared, and
//! what names another vhost is skipped with a warning.

use super::bindings::bind;
use super::error::ApiError;
use super::json::{args, text};
use super::overview::{permission_list, VERSION};
use super::resource::body;
use super::{exchanges, queues, Api, St};
use axum::extract::Path;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Map, Value};

/// The topology part of an export: queues, exchanges, bindings (of `vhost`, or
/// of all vhosts, with their `vhost` fields).
fn topology(api: &Api, vhost: Option<&str>) -> Map<String, Value> {
    let keep = |v: &str| vhost.is_none_or(|x| x == v);
    let tag = |mut o: Map<String, Value>, v: &str| {
        if vhost.is_none() {
            o.insert("vhost".into(), json!(v));
        }
        Value::Object(o)
    };
    let queues: Vec<Value> = api
        .stats
        .queues()
        .iter()
        .filter(|q| keep(&q.vhost) && q.exclusive_owner.is_none())
        .map(|q| {
            let o = json!({"name": q.name, "durable": q.durable,
                "auto_delete": q.auto_delete, "arguments": args(&q.arguments)});
            tag(o.as_object().cloned().unwrap_or_default(), &q.vhost)
        })
        .collect();
    let exchanges: Vec<Value> = api
        .stats
        .exchanges()
        .iter()
        .filter(|x| keep(&x.vhost) && !x.name.is_empty() && !x.name.starts_with("amq."))
        .map(|x| {
            let o = json!({"name": x.name, "type": x.kind, "durable": x.durable,
                "auto_delete": x.auto_delete, "internal": x.internal,
                "arguments": args(&x.arguments)});
            tag(o.as_object().cloned().unwrap_or_default(), &x.vhost)
        })
        .collect();
    let bindings: Vec<Value> = api
        .stats
        .bindings()
        .iter()
        .filter(|b| keep(&b.vhost) && !b.source.is_empty())
        .map(|b| {
            let o = json!({"source": b.source, "destination": b.destination,
                "destination_type": if b.to_exchange { "exchange" } else { "queue" },
                "routing_key": b.routing_key, "arguments": args(&b.arguments)});
            tag(o.as_object().cloned().unwrap_or_default(), &b.vhost)
        })
        .collect();
    let mut m = Map::new();
    m.insert("rabbit_version".into(), json!(VERSION));
    m.insert("rabbitmq_version".into(), json!(VERSION));
    m.insert("product_name".into(), json!("Warren"));
    m.insert("product_version".into(), json!(VERSION));
    m.insert("parameters".into(), json!([]));
    m.insert("policies".into(), json!([]));
    m.insert("queues".into(), json!(queues));
    m.insert("exchanges".into(), json!(exchanges));
    m.insert("bindings".into(), json!(bindings));
    m
}

pub(crate) async fn export(api: St) -> Json<Value> {
    let mut m = topology(&api, None);
    m.insert("users".into(), json!(super::overview::user_list(&api)));
    let vhosts: Vec<Value> = api
        .vhosts()
        .iter()
        .map(|v| json!({"name": v.name, "limits": [], "metadata": {"description": "", "tags": []}}))
        .collect();
    m.insert("vhosts".into(), json!(vhosts));
    m.insert("permissions".into(), json!(permission_list(&api)));
    m.insert("topic_permissions".into(), json!([]));
    m.insert("global_parameters".into(), json!([]));
    Json(Value::Object(m))
}

pub(crate) async fn export_vhost(
    api: St,
    Path(vhost): Path<String>,
) -> Result<Json<Value>, ApiError> {
    api.vhost(&vhost)?;
    Ok(Json(Value::Object(topology(&api, Some(&vhost)))))
}

/// The items of one list in a definitions document.
fn items<'a>(doc: &'a Value, key: &str) -> &'a [Value] {
    doc.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// Declare the topology in `doc`; `vhost` overrides each item's own.
fn load(api: &Api, doc: &Value, vhost: Option<&str>) -> Result<(), ApiError> {
    let ours = |item: &Value| -> Option<String> {
        let v = vhost.or_else(|| text(item, "vhost")).unwrap_or("/");
        if api.vhost(v).is_ok() {
            Some(v.to_owned())
        } else {
            tracing::warn!(
                vhost = v,
                "definitions: skipping an item of an unknown vhost"
            );
            None
        }
    };
    for x in items(doc, "exchanges") {
        let (Some(v), Some(name)) = (ours(x), text(x, "name")) else {
            continue;
        };
        if name.is_empty() || name.starts_with("amq.") {
            continue;
        }
        exchanges::declare_from(api, &v, name, x)?;
    }
    for q in items(doc, "queues") {
        let (Some(v), Some(name)) = (ours(q), text(q, "name")) else {
            continue;
        };
        queues::declare_from(api, &v, name, q)?;
    }
    for b in items(doc, "bindings") {
        let Some(v) = ours(b) else { continue };
        let source = text(b, "source").unwrap_or("");
        let dest = text(b, "destination").unwrap_or("");
        let to_x = text(b, "destination_type") == Some("exchange");
        let rk = text(b, "routing_key").unwrap_or("");
        let a = b.get("arguments").cloned().unwrap_or(json!({}));
        bind(api, &v, (source, to_x, dest), rk, &a, true)?;
    }
    Ok(())
}

pub(crate) async fn import(api: St, raw: String) -> Result<StatusCode, ApiError> {
    load(&api, &body(&raw)?, None)?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn import_vhost(
    api: St,
    Path(vhost): Path<String>,
    raw: String,
) -> Result<StatusCode, ApiError> {
    api.vhost(&vhost)?;
    load(&api, &body(&raw)?, Some(&vhost))?;
    Ok(StatusCode::NO_CONTENT)
}
