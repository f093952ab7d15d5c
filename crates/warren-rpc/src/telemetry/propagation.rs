//! W3C trace context in AMQP headers (feature `otel`): the client writes its call
//! span's context as `traceparent` / `tracestate` with OpenTelemetry's global text-map
//! propagator; the server reads them and makes its span a child of the caller's.
//!
//! Nothing is written unless the span has a valid OpenTelemetry context (a
//! `tracing-opentelemetry` layer is installed and the span is recorded), so headers a
//! caller set by hand in [`CallOptions::headers`](crate::CallOptions::headers) travel
//! unchanged otherwise.

use lapin::types::{AMQPValue, FieldTable, LongString};
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TraceContextExt;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

struct Inject<'a>(&'a mut FieldTable);

impl Injector for Inject<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let Ok(name) = lapin::types::ShortString::try_new(key) {
            self.0
                .insert(name, AMQPValue::LongString(LongString::from(value)));
        }
    }
}

struct Extract<'a>(&'a FieldTable);

impl Extractor for Extract<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match self.0.inner().get(key)? {
            AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
            AMQPValue::ShortString(s) => Some(s.as_str()),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        self.0.inner().keys().map(|k| k.as_str()).collect()
    }
}

/// `headers` with `span`'s trace context added (created if there were none), or as
/// they were when the span has no OpenTelemetry context.
pub(crate) fn inject(span: &Span, headers: Option<FieldTable>) -> Option<FieldTable> {
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return headers;
    }
    let mut table = headers.unwrap_or_default();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&cx, &mut Inject(&mut table));
    });
    Some(table)
}

/// Makes `span` a child of the trace context in `headers`, if they carry one.
pub(crate) fn continue_trace(span: &Span, headers: Option<&FieldTable>) {
    let Some(headers) = headers else { return };
    if !headers.contains_key("traceparent") {
        return;
    }
    let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(&Extract(headers)));
    if cx.span().span_context().is_valid() {
        // Fails only when no OpenTelemetry layer records this span: nothing to continue.
        let _ = span.set_parent(cx);
    }
}
