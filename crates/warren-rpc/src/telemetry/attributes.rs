//! A call span's attributes (feature `otel`), with the names of the semantic
//! conventions in `telemetry`'s module doc: those it starts with (which a sampler
//! sees) and those it ends with. Keys are `&'static str`; the queue and method are the
//! shared strings of the call's [`Site`].

use opentelemetry::trace::Status;
use opentelemetry::KeyValue;

use super::sites::Site;
use super::Side;

/// The attributes a span starts with: the first `n` of the array (`rpc.method`, the
/// last, only for a typed method). An array: no vector for a sampler's look.
pub(crate) fn start(site: &Site, side: Side) -> ([KeyValue; 5], usize) {
    let operation = match side {
        Side::Client => "send",
        Side::Server => "process",
    };
    let attributes = [
        KeyValue::new("messaging.system", "rabbitmq"),
        KeyValue::new("messaging.operation.type", operation),
        KeyValue::new("messaging.destination.name", site.queue.clone()),
        KeyValue::new(
            "messaging.rabbitmq.destination.routing_key",
            site.queue.clone(),
        ),
        match &site.method {
            Some(method) => KeyValue::new("rpc.method", method.clone()),
            None => KeyValue::new("rpc.method", ""),
        },
    ];
    (attributes, if site.method.is_some() { 5 } else { 4 })
}

/// The attributes and status a span ends with (in an array: no vector per call).
pub(crate) fn ending(
    status: &str,
    failed: bool,
    correlation_id: Option<&str>,
) -> (impl Iterator<Item = KeyValue>, Option<Status>) {
    let id =
        correlation_id.map(|id| KeyValue::new("messaging.message.conversation_id", id.to_owned()));
    let (code, error, status) = if failed {
        (
            KeyValue::new("rpc.response.status_code", status.to_owned()),
            Some(KeyValue::new("error.type", status.to_owned())),
            Some(Status::error(status.to_owned())),
        )
    } else {
        (KeyValue::new("rpc.response.status_code", "ok"), None, None)
    };
    ([id, Some(code), error].into_iter().flatten(), status)
}
