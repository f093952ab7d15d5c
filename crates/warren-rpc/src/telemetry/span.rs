//! A call's OpenTelemetry span (feature `otel`), built with the OpenTelemetry API on
//! the tracer of the global tracer provider: no `tracing` span, no bridge, and nothing
//! at all while no provider is installed.
//!
//! The attributes known when the call starts go to the span builder, so a sampler sees
//! them; the status and the correlation id are set when it ends, and only on a span that
//! records. Keys are `&'static str` and the queue and method are the shared strings of
//! the call's [`Site`], so a sampled span allocates its name, its attribute vector and
//! the correlation id, and an unsampled one its attribute vector only.

use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use futures_util::future::Either;
use opentelemetry::global::{BoxedSpan, BoxedTracer};
use opentelemetry::trace::{
    FutureExt as _, SamplingDecision, SamplingResult, Span as _, SpanBuilder, SpanContext, SpanId,
    SpanKind, TraceContextExt as _, TraceFlags, TraceState, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, InstrumentationScope, KeyValue};

use super::attributes;
use super::export::{Record, Shared};
use super::sites::Site;
use super::{Side, SCHEMA_URL};

/// Where a client's or server's spans go.
pub(crate) enum Tracer {
    /// The installed [`SpanExport`](crate::otel::SpanExport).
    Export(&'static Arc<Shared>),
    /// The global provider's tracer (an SDK's).
    Global(BoxedTracer),
}

/// The tracer Warren's spans come from, looked up at the first call of a client or
/// server (install a `SpanExport` or set the provider before that), then kept: the
/// installed [`SpanExport`](crate::otel::SpanExport) if there is one, else the global
/// provider's. `None` when neither is there (OpenTelemetry's no-op provider): calls then
/// build no span at all.
#[derive(Default)]
pub(crate) struct LazyTracer(OnceLock<Option<Tracer>>);

impl std::fmt::Debug for LazyTracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LazyTracer")
    }
}

impl LazyTracer {
    fn get(&self) -> Option<&Tracer> {
        self.0
            .get_or_init(|| {
                if let Some(shared) = super::export::installed() {
                    return Some(Tracer::Export(shared));
                }
                let scope = InstrumentationScope::builder("warren-rpc")
                    .with_version(env!("CARGO_PKG_VERSION"))
                    .with_schema_url(SCHEMA_URL)
                    .build();
                let tracer = opentelemetry::global::tracer_provider().tracer_with_scope(scope);
                // A root span decided "drop" before any sampler sees it: an SDK gives it
                // fresh (valid) ids and exports nothing; the no-op tracer, an invalid context.
                let probe = SpanBuilder::from_name("warren-rpc probe").with_sampling_result(
                    SamplingResult {
                        decision: SamplingDecision::Drop,
                        attributes: Vec::new(),
                        trace_state: TraceState::default(),
                    },
                );
                let real = tracer
                    .build_with_context(probe, &Context::new())
                    .span_context()
                    .is_valid();
                real.then_some(Tracer::Global(tracer))
            })
            .as_ref()
    }
}

/// A call's span: the client owns it; the server's lives in the context its handler
/// runs in, so that spans started inside the handler are its children.
#[derive(Debug)]
pub(crate) enum CallSpan {
    Client(BoxedSpan),
    Server(Context),
    /// A span of the installed `SpanExport`.
    Warren(Live),
    /// Finished (`CallScope::finish` took the span).
    Ended,
}

/// Starts a client span, a child of the current OpenTelemetry context (a handler's, or
/// what a `tracing-opentelemetry` layer activated).
pub(crate) fn client(tracer: &LazyTracer, site: &Arc<Site>) -> CallSpan {
    let tracer = match tracer.get() {
        None => return CallSpan::Ended,
        Some(Tracer::Export(shared)) => {
            let live =
                Context::map_current(|parent| Live::start(shared, site, Side::Client, parent));
            return CallSpan::Warren(live);
        }
        Some(Tracer::Global(tracer)) => tracer,
    };
    let builder = builder(site, Side::Client);
    let span = Context::map_current(|parent| tracer.build_with_context(builder, parent));
    CallSpan::Client(span)
}

/// Starts a server span, a child of the caller's context in the request `headers`
/// (`traceparent`), or else of the current context.
pub(crate) fn server(
    tracer: &LazyTracer,
    site: &Arc<Site>,
    headers: Option<&amq_protocol::types::FieldTable>,
) -> CallSpan {
    let Some(tracer) = tracer.get() else {
        return CallSpan::Ended;
    };
    let remote = super::propagation::extract(headers);
    let tracer = match tracer {
        Tracer::Export(shared) => {
            let live = Context::map_current(|current| {
                let parent = match remote {
                    Some(remote) => current.with_remote_span_context(remote),
                    None => current.clone(),
                };
                let mut live = Live::start(shared, site, Side::Server, &parent);
                live.handler = Some(parent.with_remote_span_context(live.context.clone()));
                live
            });
            return CallSpan::Warren(live);
        }
        Tracer::Global(tracer) => tracer,
    };
    let builder = builder(site, Side::Server);
    let cx = Context::map_current(|current| {
        let parent = match remote {
            Some(remote) => current.with_remote_span_context(remote),
            None => current.clone(),
        };
        let span = tracer.build_with_context(builder, &parent);
        parent.with_span(span)
    });
    CallSpan::Server(cx)
}

fn builder(site: &Site, side: Side) -> SpanBuilder {
    let kind = match side {
        Side::Client => SpanKind::Client,
        Side::Server => SpanKind::Server,
    };
    // Room for the attributes `finish` adds, so that the span never grows the vector.
    let mut attributes = Vec::with_capacity(9);
    let (start, n) = attributes::start(site, side);
    attributes.extend(start.into_iter().take(n));
    SpanBuilder::from_name(site.span_name.clone())
        .with_kind(kind)
        .with_attributes(attributes)
}

impl CallSpan {
    /// The span's W3C context, to send on.
    pub(crate) fn span_context(&self) -> Option<SpanContext> {
        match self {
            CallSpan::Client(span) => Some(span.span_context().clone()),
            CallSpan::Server(cx) => Some(cx.span().span_context().clone()),
            CallSpan::Warren(live) => Some(live.context.clone()),
            CallSpan::Ended => None,
        }
    }

    /// Runs `work` with the server span as the current OpenTelemetry context.
    pub(crate) fn in_context<F: std::future::Future>(
        &self,
        work: F,
    ) -> impl std::future::Future<Output = F::Output> {
        match self {
            CallSpan::Server(cx)
            | CallSpan::Warren(Live {
                handler: Some(cx), ..
            }) => Either::Left(work.with_context(cx.clone())),
            CallSpan::Client(_) | CallSpan::Warren(_) | CallSpan::Ended => Either::Right(work),
        }
    }

    /// Ends the span with the call's `x-status`, and its correlation id.
    /// `elapsed`: the call's duration on the monotonic clock (a Warren span's end is its
    /// start plus that: one clock read fewer, and immune to the wall clock's steps).
    pub(crate) fn finish(
        self,
        status: &str,
        failed: bool,
        correlation_id: Option<&str>,
        elapsed: std::time::Duration,
    ) {
        match self {
            CallSpan::Client(mut span) => {
                if span.is_recording() {
                    let (attributes, error) = attributes::ending(status, failed, correlation_id);
                    span.set_attributes(attributes);
                    if let Some(error) = error {
                        span.set_status(error);
                    }
                }
                span.end();
            }
            CallSpan::Server(cx) => {
                let span = cx.span();
                if span.is_recording() {
                    let (attributes, error) = attributes::ending(status, failed, correlation_id);
                    span.set_attributes(attributes);
                    if let Some(error) = error {
                        span.set_status(error);
                    }
                }
                span.end();
            }
            CallSpan::Warren(live) => {
                live.finish(failed.then_some(status), correlation_id, elapsed)
            }
            CallSpan::Ended => {}
        }
    }
}

/// A live span of the installed `SpanExport`: what its [`Record`] will hold.
#[derive(Debug)]
pub(crate) struct Live {
    /// Where it goes when it ends; `None` when the sampler did not sample it (it then
    /// only carries its context on).
    shared: Option<&'static Arc<Shared>>,
    context: SpanContext,
    parent: SpanId,
    parent_remote: bool,
    kind: SpanKind,
    site: Arc<Site>,
    start: SystemTime,
    extra: Vec<KeyValue>,
    /// A server span's: the context its handler runs in, with this span current.
    handler: Option<Context>,
}

impl Live {
    /// Starts a span whose parent is `parent`'s span (if valid), sampled by the
    /// pipeline's sampler with the start attributes.
    fn start(shared: &'static Arc<Shared>, site: &Arc<Site>, side: Side, parent: &Context) -> Live {
        let kind = match side {
            Side::Client => SpanKind::Client,
            Side::Server => SpanKind::Server,
        };
        let parent_span = parent.span();
        let parent_cx = parent_span.span_context();
        let (trace_id, parent_id, parent_remote) = if parent_cx.is_valid() {
            (
                parent_cx.trace_id(),
                parent_cx.span_id(),
                parent_cx.is_remote(),
            )
        } else {
            (shared.ids.new_trace_id(), SpanId::INVALID, false)
        };
        let sampled = {
            let (attributes, n) = attributes::start(site, side);
            shared.sampler.should_sample(
                Some(parent),
                trace_id,
                &site.span_name,
                &kind,
                &attributes[..n],
                &[],
            )
        };
        let sample = sampled.decision == SamplingDecision::RecordAndSample;
        let flags = if sample {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        let context = SpanContext::new(
            trace_id,
            shared.ids.new_span_id(),
            flags,
            false,
            sampled.trace_state,
        );
        Live {
            shared: sample.then_some(shared),
            context,
            parent: parent_id,
            parent_remote,
            kind,
            site: Arc::clone(site),
            start: SystemTime::now(),
            extra: sampled.attributes,
            handler: None,
        }
    }

    fn finish(
        self,
        failed: Option<&str>,
        correlation_id: Option<&str>,
        elapsed: std::time::Duration,
    ) {
        let Some(shared) = self.shared else {
            return;
        };
        shared.push(Record {
            context: self.context,
            parent: self.parent,
            parent_remote: self.parent_remote,
            kind: self.kind,
            site: self.site,
            start: self.start,
            end: self.start + elapsed,
            failed: failed.map(Box::from),
            correlation_id: correlation_id.map(Box::from),
            extra: self.extra,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_tracer_provider_no_span_is_built() {
        // No test in this crate's unit tests installs a global tracer provider.
        let tracer = LazyTracer::default();
        assert!(tracer.get().is_none());
    }
}
