//! HTTP Basic auth with the broker's users: every `/api` request must carry the
//! credentials of a user with a management tag (the broker's one configured user
//! is an administrator, as RabbitMQ's default user is).

use super::error::ApiError;
use super::Api;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use std::sync::Arc;

/// The user a request authenticated as.
#[derive(Debug, Clone)]
pub(crate) struct User {
    /// User name.
    pub(crate) name: String,
    /// RabbitMQ tags (`administrator`, `management`, ...).
    pub(crate) tags: Vec<String>,
}

/// Decode `Authorization: Basic ...` into (user, password).
fn basic(req: &Request) -> Option<(String, String)> {
    let h = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let b64 = h
        .strip_prefix("Basic ")
        .or_else(|| h.strip_prefix("basic "))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (u, p) = s.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

/// The user behind these credentials, if they are right and the user has a tag
/// that lets it use the management API (as RabbitMQ: management, policymaker,
/// monitoring or administrator).
pub(crate) fn check(api: &Api, user: &str, pass: &str) -> Option<User> {
    let access = api.shared.access.read().ok()?;
    let found = access.authenticate(user, pass)?;
    const MANAGEMENT: [&str; 4] = ["management", "policymaker", "monitoring", "administrator"];
    found
        .tags
        .iter()
        .any(|t| MANAGEMENT.contains(&t.as_str()))
        .then(|| User {
            name: user.to_owned(),
            tags: found.tags.clone(),
        })
}

/// Middleware: 401 unless the request authenticates.
pub(crate) async fn require(State(api): State<Arc<Api>>, mut req: Request, next: Next) -> Response {
    let Some((u, p)) = basic(&req) else {
        return ApiError::unauthorized().into_response();
    };
    match check(&api, &u, &p) {
        Some(user) => {
            req.extensions_mut().insert(user);
            next.run(req).await
        }
        None => ApiError::unauthorized().into_response(),
    }
}
