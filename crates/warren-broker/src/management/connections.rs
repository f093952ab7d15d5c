//! `/api/connections` (list, one, close with `DELETE`), `/api/channels` and
//! `/api/consumers`, from the connections' own descriptions of their channels.

use super::error::ApiError;
use super::json::{args, millis};
use super::listing::{self, Params};
use super::{Api, St};
use crate::stats::{ChannelInfo, ConnectionInfo};
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};

fn connection_json(api: &Api, c: &ConnectionInfo) -> Value {
    json!({
        "name": c.name,
        "node": api.node(),
        "user": c.user,
        "vhost": c.vhost,
        "peer_host": c.peer.ip().to_string(),
        "peer_port": c.peer.port(),
        "host": c.local.ip().to_string(),
        "port": c.local.port(),
        "channels": c.channels.len(),
        "channel_max": c.channel_max,
        "frame_max": c.frame_max,
        "timeout": c.heartbeat,
        "connected_at": millis(c.connected_at),
        "client_properties": args(&c.client_properties),
        "protocol": "AMQP 0-9-1",
        "auth_mechanism": "PLAIN",
        "ssl": false,
        "state": "running",
        "type": "network",
        "user_who_performed_action": c.user,
    })
}

fn channel_name(c: &ConnectionInfo, ch: &ChannelInfo) -> String {
    format!("{} ({})", c.name, ch.number)
}

fn channel_json(api: &Api, c: &ConnectionInfo, ch: &ChannelInfo) -> Value {
    json!({
        "name": channel_name(c, ch),
        "node": api.node(),
        "number": ch.number,
        "user": c.user,
        "vhost": c.vhost,
        "connection_details": {
            "name": c.name,
            "peer_host": c.peer.ip().to_string(),
            "peer_port": c.peer.port(),
        },
        "consumer_count": ch.consumers.len(),
        "messages_unacknowledged": ch.messages_unacknowledged,
        "messages_unconfirmed": ch.messages_unconfirmed,
        "prefetch_count": ch.prefetch_count,
        "confirm": ch.confirm,
        "transactional": ch.transactional,
        "state": "running",
    })
}

pub(crate) async fn list(api: St, Query(q): Query<Params>) -> Json<Value> {
    let conns = api.stats.connections().await;
    let l = conns.iter().map(|c| connection_json(&api, c)).collect();
    listing::list(l, &q)
}

async fn find(api: &Api, name: &str) -> Result<ConnectionInfo, ApiError> {
    api.stats
        .connections()
        .await
        .into_iter()
        .find(|c| c.name == name)
        .ok_or_else(ApiError::not_found)
}

pub(crate) async fn one(
    api: St,
    Path(name): Path<String>,
    Query(q): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    let c = find(&api, &name).await?;
    Ok(listing::one(connection_json(&api, &c), &q))
}

/// Close a connection as RabbitMQ does: 320 CONNECTION_FORCED with the
/// `X-Reason` header's text, or "Closed via management plugin".
pub(crate) async fn close(
    api: St,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let reason = headers
        .get("x-reason")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("Closed via management plugin");
    if api.stats.close_connection(&name, reason) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found())
    }
}

pub(crate) async fn of_connection(
    api: St,
    Path(name): Path<String>,
    Query(q): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    let c = find(&api, &name).await?;
    let l = c
        .channels
        .iter()
        .map(|ch| channel_json(&api, &c, ch))
        .collect();
    Ok(listing::list(l, &q))
}

async fn all_channels(api: &Api) -> Vec<Value> {
    let conns = api.stats.connections().await;
    conns
        .iter()
        .flat_map(|c| c.channels.iter().map(move |ch| channel_json(api, c, ch)))
        .collect()
}

pub(crate) async fn channels(api: St, Query(q): Query<Params>) -> Json<Value> {
    listing::list(all_channels(&api).await, &q)
}

pub(crate) async fn channel(
    api: St,
    Path(name): Path<String>,
    Query(q): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    all_channels(&api)
        .await
        .into_iter()
        .find(|c| c["name"] == name.as_str())
        .map(|c| listing::one(c, &q))
        .ok_or_else(ApiError::not_found)
}

async fn consumers_of(api: &Api, vhost: Option<&str>) -> Vec<Value> {
    let mut out = Vec::new();
    for c in api.stats.connections().await {
        if vhost.is_some_and(|v| v != c.vhost) {
            continue;
        }
        for ch in &c.channels {
            for k in &ch.consumers {
                out.push(json!({
                    "consumer_tag": k.tag,
                    "queue": {"name": k.queue, "vhost": c.vhost},
                    "ack_required": k.ack_required,
                    "exclusive": k.exclusive,
                    "prefetch_count": k.prefetch_count,
                    "active": true,
                    "activity_status": "up",
                    "arguments": {},
                    "channel_details": {
                        "name": channel_name(&c, ch),
                        "number": ch.number,
                        "connection_name": c.name,
                        "peer_host": c.peer.ip().to_string(),
                        "peer_port": c.peer.port(),
                        "user": c.user,
                        "node": api.node(),
                    },
                }));
            }
        }
    }
    out
}

pub(crate) async fn consumers(api: St, Query(q): Query<Params>) -> Json<Value> {
    listing::list(consumers_of(&api, None).await, &q)
}

pub(crate) async fn consumers_in(
    api: St,
    Path(vhost): Path<String>,
    Query(q): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    api.vhost(&vhost)?;
    Ok(listing::list(consumers_of(&api, Some(&vhost)).await, &q))
}
