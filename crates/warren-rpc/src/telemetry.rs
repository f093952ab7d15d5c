//! Per-call spans, log lines and metrics: what a client or server call shows to
//! OpenTelemetry (feature `otel`), to `tracing` (log events) and to
//! [`Metrics`](crate::metrics::Metrics) (feature `metrics`).
//!
//! With `otel`, every call has an OpenTelemetry span from the global tracer provider
//! (`opentelemetry::global::set_tracer_provider`, before the first call; with none set,
//! no span is built and no trace context written), a client span
//! (`send {queue}`, or `send {queue}/{method}` for a typed method) and a server span
//! (`process {queue}`), with OpenTelemetry's attribute names (semantic conventions
//! v1.45.0, messaging and RPC): `messaging.system = "rabbitmq"`,
//! `messaging.destination.name` and `messaging.rabbitmq.destination.routing_key` (the
//! request queue), `messaging.operation.type` (`send` / `process`),
//! `messaging.message.conversation_id` (the correlation id), `rpc.method` (a typed
//! service's method), `rpc.response.status_code` and, on failure, `error.type` (the
//! `x-status` name) and the span status `ERROR`. A client span's parent is the current
//! OpenTelemetry context (a handler's server span, or the span a `tracing-opentelemetry`
//! layer made current); a server span's is the caller's, from `traceparent`
//! ([`propagation`]), and its handler runs with it as the current context.
//!
//! When a call ends, one `tracing` event goes out (target `warren_rpc::calls`): at
//! `debug` for a success, `info` for a failure, with `side`, `queue`, `method`,
//! `status`, `duration_us` and `correlation_id`. A disabled level costs the macro's
//! check of the callsite's interest.

#[cfg(feature = "otel")]
mod attributes;
#[cfg(feature = "otel")]
pub(crate) mod export;
#[cfg(feature = "otel")]
pub(crate) mod propagation;
mod sites;
#[cfg(feature = "otel")]
mod span;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use tracing::{debug, info};

use crate::status::Code;
use sites::{Site, Sites};

#[cfg(feature = "metrics")]
pub(crate) use crate::metrics::Side;

/// The semantic conventions the span attribute names follow.
#[cfg(feature = "otel")]
pub(crate) const SCHEMA_URL: &str = "https://opentelemetry.io/schemas/1.45.0";
#[cfg(feature = "otel")]
pub(crate) use span::CallSpan;

/// Which end of a call a measurement is from (without the `metrics` feature).
#[cfg(not(feature = "metrics"))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Client,
    Server,
}

/// A call's span without the `otel` feature: none.
#[cfg(not(feature = "otel"))]
#[derive(Debug)]
pub(crate) enum CallSpan {
    /// No live span.
    Ended,
}

#[cfg(not(feature = "otel"))]
impl CallSpan {
    fn finish(
        self,
        _status: &str,
        _failed: bool,
        _correlation_id: Option<&str>,
        _elapsed: std::time::Duration,
    ) {
    }
}

/// Where a client's or server's calls are reported besides `tracing`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Observer {
    #[cfg(feature = "metrics")]
    pub(crate) metrics: Option<crate::metrics::Metrics>,
    shared: Arc<Shared>,
}

/// What the clones of one [`Observer`] share.
#[derive(Debug, Default)]
struct Shared {
    client: Sites,
    server: Sites,
    #[cfg(feature = "otel")]
    tracer: span::LazyTracer,
}

impl Observer {
    fn site(&self, side: Side, queue: &str, method: Option<&str>) -> Arc<Site> {
        let sites = match side {
            Side::Client => &self.shared.client,
            Side::Server => &self.shared.server,
        };
        sites.get(
            side,
            queue,
            method,
            #[cfg(feature = "metrics")]
            self.metrics.as_ref(),
        )
    }

    /// Starts observing a client call to `queue`: its span, one more call in flight.
    pub(crate) fn call(&self, side: Side, queue: &str, method: Option<&str>) -> CallScope {
        let site = self.site(side, queue, method);
        #[cfg(feature = "otel")]
        let span = match side {
            Side::Client => span::client(&self.shared.tracer, &site),
            Side::Server => span::server(&self.shared.tracer, &site, None),
        };
        #[cfg(not(feature = "otel"))]
        let span = CallSpan::Ended;
        CallScope::start(side, site, span)
    }

    /// Starts observing a request a server took from `queue`, continuing the trace its
    /// `headers` carry.
    pub(crate) fn serve(
        &self,
        queue: &str,
        method: Option<&str>,
        headers: Option<&amq_protocol::types::FieldTable>,
    ) -> CallScope {
        let site = self.site(Side::Server, queue, method);
        #[cfg(feature = "otel")]
        let span = span::server(&self.shared.tracer, &site, headers);
        #[cfg(not(feature = "otel"))]
        let span = {
            let _ = headers;
            CallSpan::Ended
        };
        CallScope::start(Side::Server, site, span)
    }

    /// The connection was re-established.
    pub(crate) fn reconnected(&self, side: Side) {
        #[cfg(feature = "metrics")]
        if let Some(m) = &self.metrics {
            m.reconnected(side);
        }
        let _ = side;
    }

    /// A server skipped a request whose deadline had passed before it arrived.
    pub(crate) fn request_expired(&self, queue: &str, correlation_id: Option<&str>) {
        debug!(
            target: "warren_rpc::calls",
            side = "server",
            queue,
            status = "deadline_exceeded",
            correlation_id,
            "skipped a request past its deadline"
        );
        #[cfg(feature = "metrics")]
        if let Some(m) = &self.metrics {
            m.deadline_expired(Side::Server, queue);
        }
    }
}

/// One call being observed. Dropped without [`CallScope::finish`] (a caller that gave
/// up), it still leaves the in-flight count, and its span ends unfinished.
#[derive(Debug)]
pub(crate) struct CallScope {
    span: CallSpan,
    side: Side,
    site: Arc<Site>,
    started: Instant,
}

impl CallScope {
    fn start(side: Side, site: Arc<Site>, span: CallSpan) -> CallScope {
        #[cfg(feature = "metrics")]
        if let Some(m) = &site.metrics {
            m.started();
        }
        CallScope {
            span,
            side,
            site,
            started: Instant::now(),
        }
    }

    /// The call's span, whose context the request carries.
    #[cfg(feature = "otel")]
    pub(crate) fn span(&self) -> &CallSpan {
        &self.span
    }

    /// The correlation id of the (latest) request. The span gets the one the call ends
    /// with, in [`CallScope::finish`].
    pub(crate) fn correlation_id(&self, _id: &str) {}

    /// Runs the server's `handler` with the call's span as the current OpenTelemetry
    /// context, so that what the handler starts (a nested call) is its child.
    pub(crate) fn in_context<F: Future>(&self, handler: F) -> impl Future<Output = F::Output> {
        #[cfg(feature = "otel")]
        return self.span().in_context(handler);
        #[cfg(not(feature = "otel"))]
        handler
    }

    /// The call ended with `code`: record it on the span, log it, measure it.
    pub(crate) fn finish(mut self, code: &Code, correlation_id: Option<&str>) {
        let elapsed = self.started.elapsed();
        let status = code.as_str();
        let failed = *code != Code::Ok;
        std::mem::replace(&mut self.span, CallSpan::Ended).finish(
            status,
            failed,
            correlation_id,
            elapsed,
        );
        let site = &*self.site;
        let (queue, method) = (&*site.queue, site.method.as_deref());
        let side = match self.side {
            Side::Client => "client",
            Side::Server => "server",
        };
        let duration_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        if failed {
            info!(target: "warren_rpc::calls", side, queue, method, status, duration_us, correlation_id, "call failed");
        } else {
            debug!(target: "warren_rpc::calls", side, queue, method, status, duration_us, correlation_id, "call");
        }
        #[cfg(feature = "metrics")]
        if let Some(m) = &site.metrics {
            m.finished(queue, method, status, elapsed);
            if *code == Code::DeadlineExceeded {
                m.deadline_expired(queue);
            }
        }
    }
}

impl Drop for CallScope {
    fn drop(&mut self) {
        #[cfg(feature = "metrics")]
        if let Some(m) = &self.site.metrics {
            m.ended();
        }
    }
}

/// One client call's and one server call's telemetry, start to finish, with no broker in
/// between: for `benches/telemetry.rs` only (through `warren_rpc::__bench`).
#[cfg(all(feature = "otel", feature = "metrics"))]
#[doc(hidden)]
#[derive(Debug, Default)]
pub struct BenchCalls(Observer);

#[cfg(all(feature = "otel", feature = "metrics"))]
impl BenchCalls {
    /// Observed into `metrics`, if given.
    pub fn new(metrics: Option<crate::metrics::Metrics>) -> Self {
        BenchCalls(Observer {
            metrics,
            ..Observer::default()
        })
    }

    /// A call to `queue`: the client's scope and headers, the server's scope continuing
    /// them, its handler run in its context, both finished `ok`.
    pub fn call(&self, queue: &str, correlation_id: &str) {
        use futures_util::FutureExt as _;
        let client = self.0.call(Side::Client, queue, None);
        let headers = propagation::TraceHeaders::of(client.span()).map(|trace| {
            let mut table = amq_protocol::types::FieldTable::default();
            trace.write(&mut table);
            table
        });
        let server = self.0.serve(queue, None, headers.as_ref());
        let _ = server.in_context(async {}).now_or_never();
        server.finish(&Code::Ok, Some(correlation_id));
        client.finish(&Code::Ok, Some(correlation_id));
    }
}
