//! Trace context across calls (feature `otel`): a client call's span is the parent of
//! the server's span, and a call made inside the handler continues the same trace, on
//! an embedded broker, with spans kept in memory by OpenTelemetry's SDK (the global
//! tracer provider, where Warren takes its tracer from).
#![cfg(feature = "otel")]

use opentelemetry::trace::{SpanKind, Status};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use warren_rpc::{CallOptions, Code, Request, Response, RpcClient, RpcServer};

fn span<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    spans
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no span {name}; got {:?}", names(spans)))
}

fn names(spans: &[SpanData]) -> Vec<String> {
    spans.iter().map(|s| s.name.to_string()).collect()
}

#[tokio::test]
async fn nested_calls_continue_the_callers_trace() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    opentelemetry::global::set_tracer_provider(provider.clone());

    let broker = warren_broker::Broker::builder()
        .listen(([127, 0, 0, 1], 0).into())
        .start()
        .await
        .expect("embedded broker");
    let url = broker.amqp_url();
    let client = RpcClient::connect(&url).await.expect("client");
    let inner_client = client.clone();
    let server = RpcServer::new()
        .route("trace_outer", move |req: Request| {
            let client = inner_client.clone();
            async move {
                let options = CallOptions::from_context(&req.context);
                let reply = client.call_with("trace_inner", req.body, options).await?;
                Ok(Response::bytes(reply.body))
            }
        })
        .route("trace_inner", |req: Request| async move {
            Ok(Response::bytes(req.body))
        })
        .route("trace_fail", |_req: Request| async move {
            Err(warren_rpc::Status::new(Code::NotFound, "gone"))
        })
        .start(&url)
        .await
        .expect("server");

    let reply = client.call("trace_outer", "hi").await.expect("call");
    assert_eq!(reply.body, b"hi");
    let failed = client.call("trace_fail", "x").await;
    assert!(
        matches!(failed, Err(warren_rpc::Error::Remote(_))),
        "{failed:?}"
    );
    server.shutdown().await.expect("shutdown");
    client.shutdown().await.expect("client shutdown");
    let _ = broker.shutdown().await;
    provider.force_flush().expect("flush");

    let spans = exporter.get_finished_spans().expect("spans");
    let call_outer = span(&spans, "send trace_outer");
    let serve_outer = span(&spans, "process trace_outer");
    let call_inner = span(&spans, "send trace_inner");
    let serve_inner = span(&spans, "process trace_inner");
    let trace = call_outer.span_context.trace_id();
    for s in [serve_outer, call_inner, serve_inner] {
        assert_eq!(
            s.span_context.trace_id(),
            trace,
            "{} left the trace",
            s.name
        );
    }
    assert_eq!(call_outer.span_kind, SpanKind::Client);
    assert_eq!(serve_outer.span_kind, SpanKind::Server);
    assert_eq!(
        serve_outer.parent_span_id,
        call_outer.span_context.span_id()
    );
    assert_eq!(
        call_inner.parent_span_id,
        serve_outer.span_context.span_id()
    );
    assert_eq!(
        serve_inner.parent_span_id,
        call_inner.span_context.span_id()
    );
    let has = |s: &SpanData, key: &str, value: &str| {
        s.attributes
            .iter()
            .any(|kv| kv.key.as_str() == key && kv.value.as_str() == value)
    };
    assert!(has(call_outer, "messaging.system", "rabbitmq"));
    assert!(has(
        call_outer,
        "messaging.rabbitmq.destination.routing_key",
        "trace_outer"
    ));
    assert!(has(serve_inner, "rpc.response.status_code", "ok"));
    assert!(has(
        call_outer,
        "messaging.message.conversation_id",
        &reply.correlation_id
    ));
    // A failed call: both spans carry its status as `error.type` and end in ERROR.
    let call_fail = span(&spans, "send trace_fail");
    let serve_fail = span(&spans, "process trace_fail");
    assert_eq!(serve_fail.parent_span_id, call_fail.span_context.span_id());
    for s in [call_fail, serve_fail] {
        assert!(has(s, "error.type", "not_found"), "{:?}", s.attributes);
        assert!(has(s, "rpc.response.status_code", "not_found"));
        assert!(matches!(s.status, Status::Error { .. }), "{:?}", s.status);
    }
    assert!(!call_outer
        .attributes
        .iter()
        .any(|kv| kv.key.as_str() == "error.type"));
}
