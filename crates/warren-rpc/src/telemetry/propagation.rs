//! W3C trace context in AMQP headers (feature `otel`): the client writes its call
//! span's context as `traceparent` / `tracestate` with OpenTelemetry's global text-map
//! propagator; the server reads them and makes its span a child of the caller's.
//!
//! Nothing is written unless the span has a valid OpenTelemetry context (a
//! `tracing-opentelemetry` layer is installed and the span is recorded), so headers a
//! caller set by hand in [`CallOptions::headers`](crate::CallOptions::headers) travel
//! unchanged otherwise.

use amq_protocol::types::{AMQPValue, FieldTable, LongString};
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TraceContextExt;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

struct Inject<'a>(&'a mut FieldTable);

impl Injector for Inject<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let Ok(name) = amq_protocol::types::ShortString::try_new(key) {
            self.0
                .insert(name, AMQPValue::LongString(LongString::from(value)));
        }
    }
}

struct Extract<'a> {
    headers: &'a FieldTable,
    /// `traceparent` with only the flags OpenTelemetry's Rust SDK reads.
    traceparent: Option<String>,
}

fn header_str<'a>(headers: &'a FieldTable, key: &str) -> Option<&'a str> {
    match headers.inner().get(key)? {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
        AMQPValue::ShortString(s) => Some(s.as_str()),
        _ => None,
    }
}

/// `traceparent` with its trace flags cut to the `sampled` bit. W3C Trace Context
/// level 2 adds a `random` flag (`03`), which OpenTelemetry's Python SDK sends and the
/// Rust SDK's propagator (0.31) refuses for version `00`; the flag only describes how
/// the trace id was made, so dropping it loses nothing this hop needs.
fn sampled_flag_only(traceparent: &str) -> Option<String> {
    let (head, flags) = traceparent.rsplit_once('-')?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    (flags > 1).then(|| format!("{head}-{:02x}", flags & 1))
}

impl Extractor for Extract<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match (&self.traceparent, key) {
            (Some(fixed), "traceparent") => Some(fixed),
            _ => header_str(self.headers, key),
        }
    }

    fn keys(&self) -> Vec<&str> {
        self.headers.inner().keys().map(|k| k.as_str()).collect()
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
    let Some(traceparent) = header_str(headers, "traceparent") else {
        return;
    };
    let extract = Extract {
        headers,
        traceparent: sampled_flag_only(traceparent),
    };
    let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(&extract));
    if !cx.span().span_context().is_valid() {
        tracing::debug!("the request's traceparent is not a valid W3C trace context");
        return;
    }
    // Fails only when no OpenTelemetry layer records this span: nothing to continue.
    if let Err(e) = span.set_parent(cx) {
        tracing::debug!(error = %e, "cannot continue the caller's trace");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_2_flags_are_cut_to_sampled() {
        let id = "00-1c2618349872b7f499c9df83e869035f-e2e8a09b0901a12a";
        assert_eq!(
            sampled_flag_only(&format!("{id}-03")),
            Some(format!("{id}-01"))
        );
        assert_eq!(
            sampled_flag_only(&format!("{id}-02")),
            Some(format!("{id}-00"))
        );
        assert_eq!(sampled_flag_only(&format!("{id}-01")), None);
        assert_eq!(sampled_flag_only("garbage"), None);
    }
}
