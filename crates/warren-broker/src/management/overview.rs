//! Broker-wide answers: `/api/overview`, `/api/nodes`, `/api/whoami`,
//! `/api/healthchecks/node`, and the access objects from the user store
//! (`/api/vhosts`, with PUT and DELETE of one for administrators, `/api/users`,
//! `/api/permissions`).

use super::auth::User;
use super::error::ApiError;
use super::json::{details, message_stats, millis};
use super::listing::{self, Params};
use super::St;
use crate::stats::MessageTotals;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde_json::{json, Value};

/// The version the API reports (Warren's, with RabbitMQ's API shape).
pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");

pub(crate) async fn overview(api: St, Query(q): Query<Params>) -> Json<Value> {
    let o = api.stats.overview();
    let channels: usize = api
        .stats
        .connections()
        .await
        .iter()
        .map(|c| c.channels.len())
        .sum();
    let node = api.node();
    let mgmt_port = api.addr.port();
    let samples: Vec<Value> = o
        .samples
        .iter()
        .map(|s| {
            json!({
                "timestamp": millis(s.at),
                "publish": s.totals.publish,
                "deliver_get": s.totals.deliver_get(),
                "ack": s.totals.ack,
                "confirm": s.totals.confirm,
            })
        })
        .collect();
    let messages = o.messages_ready + o.messages_unacknowledged;
    let v = json!({
        "management_version": VERSION,
        "rates_mode": "basic",
        "product_version": VERSION,
        "product_name": "Warren",
        "rabbitmq_version": VERSION,
        "cluster_name": node,
        "node": node,
        "message_stats": message_stats(&o.message_stats.totals, &o.message_stats.rates, false),
        "queue_totals": {
            "messages": messages,
            "messages_details": details(0.0),
            "messages_ready": o.messages_ready,
            "messages_ready_details": details(0.0),
            "messages_unacknowledged": o.messages_unacknowledged,
            "messages_unacknowledged_details": details(0.0),
        },
        "object_totals": {
            "connections": o.connections,
            "channels": channels,
            "exchanges": o.exchanges,
            "queues": o.queues,
            "consumers": o.consumers,
        },
        "listeners": [{
            "node": node,
            "protocol": "amqp",
            "ip_address": o.listener.ip().to_string(),
            "port": o.listener.port(),
        }],
        "contexts": [{"node": node, "path": "/", "port": mgmt_port}],
        "statistics_db_event_queue": 0,
        "warren_samples": samples,
    });
    listing::one(v, &q)
}

fn node_json(api: &super::Api) -> Value {
    let o = api.stats.overview();
    let uptime = o
        .started
        .elapsed()
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    json!({
        "name": api.node(),
        "type": "disc",
        "running": true,
        "mem_used": o.memory_used,
        "mem_limit": o.memory_limit,
        "mem_alarm": o.alarm,
        "disk_free_alarm": false,
        "uptime": uptime,
        "processors": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "rates_mode": "basic",
    })
}

pub(crate) async fn nodes(api: St, Query(q): Query<Params>) -> Json<Value> {
    listing::list(vec![node_json(&api)], &q)
}

pub(crate) async fn node(
    api: St,
    Path(name): Path<String>,
    Query(q): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    if name != api.node() {
        return Err(ApiError::not_found());
    }
    Ok(listing::one(node_json(&api), &q))
}

pub(crate) async fn whoami(Extension(user): Extension<User>) -> Json<Value> {
    Json(json!({"name": user.name, "tags": user.tags}))
}

pub(crate) async fn healthcheck() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

fn vhost_json(api: &super::Api, name: &str) -> Value {
    let queues: Vec<_> = api
        .stats
        .queues()
        .into_iter()
        .filter(|q| q.vhost == name)
        .collect();
    let ready: u64 = queues.iter().map(|q| q.messages_ready).sum();
    let unacked: u64 = queues.iter().map(|q| q.messages_unacknowledged).sum();
    let v = api.vhosts().into_iter().find(|v| v.name == name);
    let totals = v
        .map(|v| v.stats.read())
        .unwrap_or(MessageTotals::default());
    let o = api.stats.overview();
    json!({
        "name": name,
        "description": "",
        "tags": [],
        "default_queue_type": "classic",
        "tracing": false,
        "messages": ready + unacked,
        "messages_ready": ready,
        "messages_unacknowledged": unacked,
        "message_stats": message_stats(&totals, &o.message_stats.rates, false),
    })
}

pub(crate) async fn vhosts(api: St, Query(q): Query<Params>) -> Json<Value> {
    let list = api
        .vhosts()
        .iter()
        .map(|v| vhost_json(&api, &v.name))
        .collect();
    listing::list(list, &q)
}

pub(crate) async fn vhost(
    api: St,
    Path(name): Path<String>,
    Query(q): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    api.vhost(&name)?;
    Ok(listing::one(vhost_json(&api, &name), &q))
}

/// PUT /api/vhosts/{name} (administrators): 201 created, 204 if it existed.
pub(crate) async fn put_vhost(
    api: St,
    Extension(user): Extension<User>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    change_vhosts(&api, &user, |a| {
        let existed = a.has_vhost(&name);
        a.add_vhost(&name);
        if existed {
            StatusCode::NO_CONTENT
        } else {
            StatusCode::CREATED
        }
    })
    .await
}

/// DELETE /api/vhosts/{name} (administrators): the vhost, its queues and
/// messages, and its connections (closed with 320) go; 404 if there is none.
pub(crate) async fn delete_vhost(
    api: St,
    Extension(user): Extension<User>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let found = change_vhosts(&api, &user, |a| a.delete_vhost(&name)).await?;
    if found {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found())
    }
}

/// Change the user store's vhosts as an administrator, then open or delete them.
async fn change_vhosts<R>(
    api: &super::Api,
    user: &User,
    f: impl FnOnce(&mut crate::AccessControl) -> R,
) -> Result<R, ApiError> {
    if !user.tags.iter().any(|t| t == "administrator") {
        return Err(ApiError::unauthorized());
    }
    let r = api.shared.with_access(f);
    // Opening a durable vhost reads its log; deleting one waits for its writer.
    let shared = api.shared.clone();
    tokio::task::spawn_blocking(move || shared.sync_vhosts())
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))?
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(r)
}

/// The user store in RabbitMQ's definitions shapes (users with their hashes and
/// tags, permissions), as RabbitMQ's API lists them.
fn access_defs(api: &super::Api) -> crate::Definitions {
    let store = match api.shared.access.read() {
        Ok(a) => a.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    crate::Definitions::from_access_control(&store)
}

/// Every user, as `/api/users` lists them.
pub(crate) fn user_list(api: &super::Api) -> Vec<Value> {
    access_defs(api)
        .users
        .iter()
        .filter_map(|u| {
            let mut v = serde_json::to_value(u).ok()?;
            if let Some(o) = v.as_object_mut() {
                o.insert("limits".into(), json!({}));
            }
            Some(v)
        })
        .collect()
}

pub(crate) async fn users(api: St, Query(q): Query<Params>) -> Json<Value> {
    listing::list(user_list(&api), &q)
}

pub(crate) async fn user(
    api: St,
    Path(name): Path<String>,
    Query(q): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    let found = user_list(&api)
        .into_iter()
        .find(|u| u["name"] == name.as_str())
        .ok_or_else(ApiError::not_found)?;
    Ok(listing::one(found, &q))
}

/// Every user's permissions on every vhost, from the user store.
pub(crate) fn permission_list(api: &super::Api) -> Vec<Value> {
    access_defs(api)
        .permissions
        .iter()
        .filter_map(|p| serde_json::to_value(p).ok())
        .collect()
}

pub(crate) async fn permissions(api: St, Query(q): Query<Params>) -> Json<Value> {
    listing::list(permission_list(&api), &q)
}
