//! Warren's spans through `warren_rpc::otel::SpanExport` (feature `otel`): the same
//! calls and checks as `trace_context.rs`, with the spans exported by the pipeline into
//! OpenTelemetry's in-memory exporter, and a span a handler makes through the global
//! SDK provider still the child of Warren's server span.
#![cfg(feature = "otel")]

use opentelemetry_sdk::trace::{InMemorySpanExporter, Sampler, SdkTracerProvider};
use warren_rpc::otel::SpanExport;

#[path = "traced/scenario.rs"]
mod scenario;

#[tokio::test]
async fn exported_spans_continue_the_callers_trace() {
    let warren_spans = InMemorySpanExporter::default();
    let export = SpanExport::builder(warren_spans.clone())
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
        .build()
        .expect("export thread");
    export.install().expect("the first install");
    assert!(export.install().is_err(), "a second install is refused");
    // What the handler makes goes through the global provider.
    let handler_spans = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(handler_spans.clone())
        .build();
    opentelemetry::global::set_tracer_provider(provider.clone());

    let correlation_id = scenario::nested_and_failed_calls().await;
    export.force_flush().expect("flush");
    provider.force_flush().expect("flush");

    let mut spans = warren_spans.get_finished_spans().expect("spans");
    let from_handler = handler_spans.get_finished_spans().expect("spans");
    assert_eq!(
        from_handler.len(),
        1,
        "only the handler's own span: {from_handler:?}"
    );
    for s in &spans {
        assert_eq!(s.instrumentation_scope.name(), "warren-rpc");
    }
    spans.extend(from_handler);
    scenario::check_spans(&spans, &correlation_id);

    export.shutdown().expect("shutdown");
    assert_eq!(export.dropped_spans(), 0);
}
