//! The calls both trace tests make and what their spans must show, whichever way
//! Warren's spans are exported (the global tracer provider in `trace_context.rs`,
//! `warren_rpc::otel::SpanExport` in `span_export.rs`).

use opentelemetry::trace::{SpanKind, Status};
use opentelemetry_sdk::trace::SpanData;
use warren_rpc::{CallOptions, Code, Request, Response, RpcClient, RpcServer};

pub fn span<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    spans
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no span {name}; got {:?}", names(spans)))
}

fn names(spans: &[SpanData]) -> Vec<String> {
    spans.iter().map(|s| s.name.to_string()).collect()
}

/// On an embedded broker: a nested call (`trace_outer` calls `trace_inner` from its
/// handler), a failed one, and one whose handler makes a span of its own through the
/// global tracer provider (`handler work`). Returns the outer call's correlation id
/// once everything is shut down.
pub async fn nested_and_failed_calls() -> String {
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
        .route("trace_sdk_child", |_req: Request| async move {
            use opentelemetry::trace::{Span as _, Tracer as _};
            let mut work = opentelemetry::global::tracer("handler").start("handler work");
            work.end();
            Ok(Response::bytes("done"))
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
    client.call("trace_sdk_child", "").await.expect("call");
    server.shutdown().await.expect("shutdown");
    client.shutdown().await.expect("client shutdown");
    let _ = broker.shutdown().await;
    reply.correlation_id
}

/// Checks the spans of [`nested_and_failed_calls`]: one trace, parents across the
/// hops, the conventions' attributes, and the failure's status on both ends.
pub fn check_spans(spans: &[SpanData], correlation_id: &str) {
    let call_outer = span(spans, "send trace_outer");
    let serve_outer = span(spans, "process trace_outer");
    let call_inner = span(spans, "send trace_inner");
    let serve_inner = span(spans, "process trace_inner");
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
        correlation_id
    ));
    // A failed call: both spans carry its status as `error.type` and end in ERROR.
    let call_fail = span(spans, "send trace_fail");
    let serve_fail = span(spans, "process trace_fail");
    assert_eq!(serve_fail.parent_span_id, call_fail.span_context.span_id());
    for s in [call_fail, serve_fail] {
        assert!(has(s, "error.type", "not_found"), "{:?}", s.attributes);
        assert!(has(s, "rpc.response.status_code", "not_found"));
        assert!(matches!(s.status, Status::Error { .. }), "{:?}", s.status);
    }
    // A span the handler made is the child of the server's.
    let work = span(spans, "handler work");
    let serve_sdk = span(spans, "process trace_sdk_child");
    assert_eq!(work.parent_span_id, serve_sdk.span_context.span_id());
    assert_eq!(
        work.span_context.trace_id(),
        serve_sdk.span_context.trace_id()
    );
    assert!(!call_outer
        .attributes
        .iter()
        .any(|kv| kv.key.as_str() == "error.type"));
}
