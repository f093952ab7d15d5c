//! What observing a call costs, with no broker in between: one client and one server
//! call's telemetry (site lookup, span start and end, `traceparent` written and read,
//! metrics, the log line's level check), without a tracer provider and metrics, with
//! metrics only, and with OpenTelemetry's SDK always sampling into a batch processor
//! whose exporter drops the spans (as `warren bench --observe`).
//! Run: `cargo bench -p warren-rpc --features otel,metrics --bench telemetry`.

use criterion::{criterion_group, criterion_main, Criterion};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanData, SpanExporter};
use warren_rpc::__bench::BenchCalls;
use warren_rpc::metrics::Metrics;

/// Drops every span.
#[derive(Debug)]
struct Discard;

impl SpanExporter for Discard {
    async fn export(&self, _batch: Vec<SpanData>) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }
}

fn telemetry(c: &mut Criterion) {
    let mut group = c.benchmark_group("telemetry of one call, client + server");
    // Observers take their tracer at their first call: these two before any provider.
    let off = BenchCalls::new(None);
    let metrics_only = BenchCalls::new(Some(Metrics::new()));
    off.call("bench", "id.1");
    metrics_only.call("bench", "id.1");
    group.bench_function("off (no tracer provider, no metrics)", |b| {
        b.iter(|| off.call("bench", "0123456789abcdef0123456789abcdef.1f"))
    });
    group.bench_function("metrics only", |b| {
        b.iter(|| metrics_only.call("bench", "0123456789abcdef0123456789abcdef.1f"))
    });
    let provider = SdkTracerProvider::builder()
        .with_sampler(Sampler::AlwaysOn)
        .with_batch_exporter(Discard)
        .build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    let on = BenchCalls::new(Some(Metrics::new()));
    group.bench_function("traces (always_on, batch, dropped) + metrics", |b| {
        b.iter(|| on.call("bench", "0123456789abcdef0123456789abcdef.1f"))
    });
    let _ = provider.shutdown();
    let export = warren_rpc::otel::SpanExport::builder(Discard)
        .with_sampler(Sampler::AlwaysOn)
        .build()
        .expect("export thread");
    export.install().expect("first install");
    let warren = BenchCalls::new(Some(Metrics::new()));
    group.bench_function("traces (SpanExport, always_on, dropped) + metrics", |b| {
        b.iter(|| warren.call("bench", "0123456789abcdef0123456789abcdef.1f"))
    });
    group.finish();
    let _ = export.shutdown();
}

criterion_group!(benches, telemetry);
criterion_main!(benches);
