//! What the queue and exchange handlers share: the list handlers of all or of one
//! vhost's objects (generic over [`Kind`]), one object by name, a declare's status (201 created, 204 existed), and a
//! request's vhost with its JSON body (publish, get). Request bodies are parsed here.

use super::error::ApiError;
use super::listing::{self, Params};
use super::{Api, St};
use crate::vhost::VHost;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;

/// A kind of object the API lists (queues, exchanges).
pub(crate) trait Kind {
    /// The objects as JSON, of every vhost (`None`) or of one.
    fn rows(api: &Api, vhost: Option<&str>) -> Vec<Value>;
}

/// `GET /api/{kind}`.
pub(crate) async fn list<K: Kind>(api: St, Query(q): Query<Params>) -> Json<Value> {
    listing::list(K::rows(&api, None), &q)
}

/// `GET /api/{kind}/{vhost}`: 404 if the vhost does not exist.
pub(crate) async fn list_in<K: Kind>(
    api: St,
    Path(vhost): Path<String>,
    Query(q): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    api.vhost(&vhost)?;
    Ok(listing::list(K::rows(&api, Some(&vhost)), &q))
}

/// `GET /api/{kind}/{vhost}/{name}`: the object `find` picks, or 404.
pub(crate) fn one<T>(
    items: Vec<T>,
    find: impl Fn(&T) -> bool,
    to_json: impl Fn(&T) -> Value,
    q: &Params,
) -> Result<Json<Value>, ApiError> {
    let item = items
        .iter()
        .find(|x| find(x))
        .ok_or_else(ApiError::not_found)?;
    Ok(listing::one(to_json(item), q))
}

/// `PUT /api/{kind}/{vhost}/{name}`: run `declare` on the parsed body (it says
/// whether it created the object): 201 if it did, 204 if the object existed.
pub(crate) fn declare(
    raw: &str,
    declare: impl FnOnce(&Value) -> Result<bool, ApiError>,
) -> Result<StatusCode, ApiError> {
    Ok(if declare(&body(raw)?)? {
        StatusCode::CREATED
    } else {
        StatusCode::NO_CONTENT
    })
}

/// A `POST`'s vhost (404 if none) and its parsed body.
pub(crate) fn vhost_and_body(
    api: &Api,
    vhost: &str,
    raw: &str,
) -> Result<(Arc<VHost>, Value), ApiError> {
    Ok((api.vhost(vhost)?, body(raw)?))
}

/// Parse a request body (an empty body is `{}`).
pub(crate) fn body(raw: &str) -> Result<Value, ApiError> {
    if raw.trim().is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_str(raw).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))
}
