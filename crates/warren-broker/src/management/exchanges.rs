//! `/api/exchanges`: list (all, per vhost), one, declare (PUT) and delete.

use super::error::ApiError;
use super::json::{args, flag, table, text};
use super::listing::Params;
use super::resource;
use super::{exchange_name, Api, St};
use crate::stats::ExchangeInfo;
use crate::vhost::ExchangeDecl;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

/// An exchange in RabbitMQ's JSON shape.
pub(crate) fn exchange_json(x: &ExchangeInfo) -> Value {
    json!({
        "name": x.name,
        "vhost": x.vhost,
        "type": x.kind,
        "durable": x.durable,
        "auto_delete": x.auto_delete,
        "internal": x.internal,
        "arguments": args(&x.arguments),
        "user_who_performed_action": "rmq-internal",
    })
}

/// Exchanges for the list handlers.
pub(crate) struct Exchanges;

impl resource::Kind for Exchanges {
    fn rows(api: &Api, vhost: Option<&str>) -> Vec<Value> {
        exchanges(api, vhost)
    }
}

fn exchanges(api: &Api, vhost: Option<&str>) -> Vec<Value> {
    api.stats
        .exchanges()
        .iter()
        .filter(|x| vhost.is_none_or(|v| x.vhost == v))
        .map(exchange_json)
        .collect()
}

pub(crate) async fn one(
    api: St,
    Path((vhost, name)): Path<(String, String)>,
    Query(q): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    let name = exchange_name(&name);
    resource::one(
        api.stats.exchanges(),
        |x| x.vhost == vhost && x.name == name,
        exchange_json,
        &q,
    )
}

/// Declare an exchange from an API body; says whether it was created.
pub(crate) fn declare_from(
    api: &Api,
    vhost: &str,
    name: &str,
    b: &Value,
) -> Result<bool, ApiError> {
    let v = api.vhost(vhost)?;
    let kind = text(b, "type").ok_or_else(|| ApiError::bad_request("type missing"))?;
    let existed = v.exchange(name).is_some();
    v.declare_exchange(ExchangeDecl {
        name: name.to_owned(),
        kind: kind.to_owned(),
        passive: false,
        durable: flag(b, "durable", true),
        auto_delete: flag(b, "auto_delete", false),
        internal: flag(b, "internal", false),
        arguments: table(b.get("arguments").unwrap_or(&json!({}))),
    })?;
    Ok(!existed)
}

pub(crate) async fn declare(
    api: St,
    Path((vhost, name)): Path<(String, String)>,
    raw: String,
) -> Result<StatusCode, ApiError> {
    resource::declare(&raw, |b| {
        declare_from(&api, &vhost, exchange_name(&name), b)
    })
}

pub(crate) async fn remove(
    api: St,
    Path((vhost, name)): Path<(String, String)>,
    Query(q): Query<Params>,
) -> Result<StatusCode, ApiError> {
    let v = api.vhost(&vhost)?;
    let name = exchange_name(&name);
    if v.exchange(name).is_none() {
        return Err(ApiError::not_found());
    }
    let if_unused = q.get("if-unused").is_some_and(|x| x == "true");
    v.delete_exchange(name, if_unused)?;
    Ok(StatusCode::NO_CONTENT)
}
