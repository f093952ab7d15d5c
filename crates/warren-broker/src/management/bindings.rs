//! `/api/bindings`: list (all, per vhost, between two objects, of a queue or
//! exchange), create (POST, answering with the new binding's `Location`) and
//! delete by properties key. A binding's properties key is its routing key (`~`
//! when empty), with `~` and a digest of its arguments when it has any.

use super::error::ApiError;
use super::json::{args, table, text};
use super::listing::{self, Params};
use super::resource::body;
use super::{exchange_name, Api, St, API_CONN};
use crate::stats::BindingInfo;
use axum::extract::{Path, Query};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// The properties key of a binding.
pub(crate) fn props_key(routing_key: &str, arguments: &Value) -> String {
    let empty = arguments.as_object().is_none_or(|m| m.is_empty());
    let rk = if routing_key.is_empty() {
        "~"
    } else {
        routing_key
    };
    if empty {
        return rk.to_owned();
    }
    // FNV-1a over the arguments' JSON: stable, short, enough to tell bindings apart.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in arguments.to_string().bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{rk}~{h:x}")
}

/// A binding in RabbitMQ's JSON shape.
pub(crate) fn binding_json(b: &BindingInfo) -> Value {
    let arguments = args(&b.arguments);
    json!({
        "source": b.source,
        "vhost": b.vhost,
        "destination": b.destination,
        "destination_type": if b.to_exchange { "exchange" } else { "queue" },
        "routing_key": b.routing_key,
        "arguments": arguments,
        "properties_key": props_key(&b.routing_key, &arguments),
    })
}

fn select(api: &Api, keep: impl Fn(&BindingInfo) -> bool) -> Vec<Value> {
    api.stats
        .bindings()
        .iter()
        .filter(|b| keep(b))
        .map(binding_json)
        .collect()
}

pub(crate) async fn list(api: St, Query(q): Query<Params>) -> Json<Value> {
    listing::list(select(&api, |_| true), &q)
}

pub(crate) async fn list_in(
    api: St,
    Path(vhost): Path<String>,
    Query(q): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    api.vhost(&vhost)?;
    Ok(listing::list(select(&api, |b| b.vhost == vhost), &q))
}

pub(crate) async fn to_queue(
    api: St,
    Path((vhost, name)): Path<(String, String)>,
    Query(q): Query<Params>,
) -> Json<Value> {
    let l = select(&api, |b| {
        b.vhost == vhost && !b.to_exchange && b.destination == name
    });
    listing::list(l, &q)
}

pub(crate) async fn from_exchange(
    api: St,
    Path((vhost, name)): Path<(String, String)>,
    Query(q): Query<Params>,
) -> Json<Value> {
    let name = exchange_name(&name);
    listing::list(select(&api, |b| b.vhost == vhost && b.source == name), &q)
}

pub(crate) async fn to_exchange(
    api: St,
    Path((vhost, name)): Path<(String, String)>,
    Query(q): Query<Params>,
) -> Json<Value> {
    let name = exchange_name(&name);
    let l = select(&api, |b| {
        b.vhost == vhost && b.to_exchange && b.destination == name
    });
    listing::list(l, &q)
}

/// `q` or `e` in a binding path.
fn to_exchange_kind(kind: &str) -> Result<bool, ApiError> {
    match kind {
        "q" => Ok(false),
        "e" => Ok(true),
        _ => Err(ApiError::not_found()),
    }
}

pub(crate) async fn between(
    api: St,
    Path((vhost, source, kind, dest)): Path<(String, String, String, String)>,
    Query(q): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    let to_x = to_exchange_kind(&kind)?;
    let source = exchange_name(&source);
    let l = select(&api, |b| {
        b.vhost == vhost && b.source == source && b.to_exchange == to_x && b.destination == dest
    });
    Ok(listing::list(l, &q))
}

/// Bind (or unbind) `dest` to `source` in `vhost`.
pub(crate) fn bind(
    api: &Api,
    vhost: &str,
    (source, to_x, dest): (&str, bool, &str),
    routing_key: &str,
    arguments: &Value,
    on: bool,
) -> Result<(), ApiError> {
    let v = api.vhost(vhost)?;
    let t = table(arguments);
    match (to_x, on) {
        (true, _) => v.bind_exchange(dest, source, routing_key, t, on)?,
        (false, true) => v.bind(API_CONN, dest, source, routing_key, t)?,
        (false, false) => v.unbind(API_CONN, dest, source, routing_key, t)?,
    }
    Ok(())
}

pub(crate) async fn create(
    api: St,
    Path((vhost, source, kind, dest)): Path<(String, String, String, String)>,
    raw: String,
) -> Result<Response, ApiError> {
    let to_x = to_exchange_kind(&kind)?;
    let b = body(&raw)?;
    let rk = text(&b, "routing_key").unwrap_or("");
    let arguments = b.get("arguments").cloned().unwrap_or(json!({}));
    let source = exchange_name(&source);
    bind(&api, &vhost, (source, to_x, &dest), rk, &arguments, true)?;
    let location = props_key(rk, &arguments);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)]).into_response())
}

fn find(
    api: &Api,
    (vhost, source, kind, dest, props): &(String, String, String, String, String),
) -> Result<Value, ApiError> {
    let to_x = to_exchange_kind(kind)?;
    let source = exchange_name(source);
    select(api, |b| {
        &b.vhost == vhost && b.source == source && b.to_exchange == to_x && &b.destination == dest
    })
    .into_iter()
    .find(|b| b["properties_key"] == props.as_str())
    .ok_or_else(ApiError::not_found)
}

pub(crate) async fn one(
    api: St,
    Path(p): Path<(String, String, String, String, String)>,
    Query(q): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    Ok(listing::one(find(&api, &p)?, &q))
}

pub(crate) async fn remove(
    api: St,
    Path(p): Path<(String, String, String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let b = find(&api, &p)?;
    let (vhost, source, kind, dest, _) = &p;
    let rk = text(&b, "routing_key").unwrap_or("");
    let source = exchange_name(source);
    bind(
        &api,
        vhost,
        (source, kind == "e", dest),
        rk,
        &b["arguments"],
        false,
    )?;
    Ok(StatusCode::NO_CONTENT)
}
