//! Warren's own paths, beside RabbitMQ's: `/api/warren/rpc`, the RPC calls the
//! broker timed per request queue (see [`crate::stats::rpc`]), read by the page.

use super::St;
use axum::Json;
use serde_json::{json, Value};
use std::time::Duration;

/// Milliseconds, to the microsecond.
fn ms(d: Option<Duration>) -> Value {
    match d {
        Some(d) => json!((d.as_secs_f64() * 1e6).round() / 1e3),
        None => Value::Null,
    }
}

pub(crate) async fn rpc(api: St) -> Json<Value> {
    let rows: Vec<Value> = api
        .stats
        .rpc()
        .into_iter()
        .map(|(vhost, r)| {
            json!({
                "vhost": vhost,
                "queue": r.queue,
                "calls": r.calls,
                "pending": r.pending,
                "calls_per_sec": (r.calls_per_sec * 10.0).round() / 10.0,
                "window_calls": r.window_calls,
                "window_secs": crate::stats::rpc::WINDOW.as_secs(),
                "p50_ms": ms(r.p50),
                "p90_ms": ms(r.p90),
                "p99_ms": ms(r.p99),
                "max_ms": ms(r.max),
            })
        })
        .collect();
    Json(Value::Array(rows))
}
