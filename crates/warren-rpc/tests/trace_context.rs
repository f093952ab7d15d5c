//! Trace context across calls (feature `otel`): a client call's span is the parent of
//! the server's span, and a call made inside the handler continues the same trace, on
//! an embedded broker, with spans kept in memory by OpenTelemetry's SDK (the global
//! tracer provider, where Warren takes its tracer from).
#![cfg(feature = "otel")]

use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};

#[path = "traced/scenario.rs"]
mod scenario;

#[tokio::test]
async fn nested_calls_continue_the_callers_trace() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    opentelemetry::global::set_tracer_provider(provider.clone());

    let correlation_id = scenario::nested_and_failed_calls().await;
    provider.force_flush().expect("flush");

    let spans = exporter.get_finished_spans().expect("spans");
    scenario::check_spans(&spans, &correlation_id);
}
