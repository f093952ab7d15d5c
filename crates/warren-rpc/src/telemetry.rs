//! Per-call spans, log lines and metrics: what a client or server call shows to
//! `tracing`, to OpenTelemetry (feature `otel`) and to [`Metrics`](crate::metrics::Metrics)
//! (feature `metrics`).
//!
//! Every call gets a `tracing` span (target `warren_rpc::span::client` for clients,
//! `warren_rpc::span::server` for servers) at `info` level, whose fields carry OpenTelemetry's attribute names
//! (semantic conventions v1.45.0, messaging and RPC): `messaging.system = "rabbitmq"`,
//! `messaging.destination.name` and `messaging.rabbitmq.destination.routing_key` (the
//! request queue), `messaging.operation.type` (`send` / `process`),
//! `messaging.message.conversation_id` (the correlation id), `rpc.method` (a typed
//! service's method), `rpc.response.status_code` and, on failure, `error.type` (the
//! `x-status` name). `otel.kind` and `otel.status_code` are read by
//! `tracing-opentelemetry`. With no subscriber interested, a span costs a branch.
//!
//! When a call ends, one event goes out (target `warren_rpc::calls`): at `debug` for a
//! success, `info` for a failure, with `side`, `queue`, `method`, `status`,
//! `duration_us` and `correlation_id`.

#[cfg(feature = "otel")]
pub(crate) mod propagation;

use std::sync::Arc;
use std::time::Instant;

use tracing::field::Empty;
use tracing::{debug, info, Span};

use crate::status::Code;

#[cfg(feature = "metrics")]
pub(crate) use crate::metrics::Side;

/// Which end of a call a measurement is from (without the `metrics` feature).
#[cfg(not(feature = "metrics"))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Client,
    Server,
}

/// Where a client's or server's calls are reported besides `tracing`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Observer {
    #[cfg(feature = "metrics")]
    pub(crate) metrics: Option<crate::metrics::Metrics>,
}

impl Observer {
    /// Starts observing a call on `queue`: its span, one more call in flight.
    pub(crate) fn call(&self, side: Side, queue: Arc<str>, method: Option<&str>) -> CallScope {
        let span = match side {
            Side::Client => client_span(&queue, method),
            Side::Server => server_span(&queue, method),
        };
        #[cfg(feature = "metrics")]
        if let Some(m) = &self.metrics {
            m.started(side, &queue);
        }
        CallScope {
            span,
            side,
            queue,
            method: method.map(str::to_owned),
            started: Instant::now(),
            #[cfg(feature = "metrics")]
            observer: self.clone(),
        }
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

fn client_span(queue: &str, method: Option<&str>) -> Span {
    tracing::info_span!(
        target: "warren_rpc::span::client",
        "call",
        otel.name = %SpanName("send", queue, method),
        otel.kind = "client",
        otel.status_code = Empty,
        messaging.system = "rabbitmq",
        messaging.operation.type = "send",
        messaging.destination.name = queue,
        messaging.rabbitmq.destination.routing_key = queue,
        messaging.message.conversation_id = Empty,
        rpc.method = method,
        rpc.response.status_code = Empty,
        "error.type" = Empty,
    )
}

fn server_span(queue: &str, method: Option<&str>) -> Span {
    tracing::info_span!(
        target: "warren_rpc::span::server",
        "serve",
        otel.name = %SpanName("process", queue, method),
        otel.kind = "server",
        otel.status_code = Empty,
        messaging.system = "rabbitmq",
        messaging.operation.type = "process",
        messaging.destination.name = queue,
        messaging.rabbitmq.destination.routing_key = queue,
        messaging.message.conversation_id = Empty,
        rpc.method = method,
        rpc.response.status_code = Empty,
        "error.type" = Empty,
    )
}

/// A span's OpenTelemetry name: `{operation} {queue}` or `{operation} {queue}/{method}`.
struct SpanName<'a>(&'static str, &'a str, Option<&'a str>);

impl std::fmt::Display for SpanName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.2 {
            Some(method) => write!(f, "{} {}/{method}", self.0, self.1),
            None => write!(f, "{} {}", self.0, self.1),
        }
    }
}

/// One call being observed. Dropped without [`CallScope::finish`] (a caller that gave
/// up), it still leaves the in-flight count.
#[derive(Debug)]
pub(crate) struct CallScope {
    span: Span,
    side: Side,
    queue: Arc<str>,
    method: Option<String>,
    started: Instant,
    #[cfg(feature = "metrics")]
    observer: Observer,
}

impl CallScope {
    /// The call's span: run the call inside it.
    pub(crate) fn span(&self) -> &Span {
        &self.span
    }

    /// Records the correlation id of the (latest) request.
    pub(crate) fn correlation_id(&self, id: &str) {
        self.span.record("messaging.message.conversation_id", id);
    }

    /// The call ended with `code`: record it on the span, log it, measure it.
    pub(crate) fn finish(self, code: &Code, correlation_id: Option<&str>) {
        let elapsed = self.started.elapsed();
        let status = code.as_str();
        let queue = &*self.queue;
        let method = self.method.as_deref();
        let duration_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let side = match self.side {
            Side::Client => "client",
            Side::Server => "server",
        };
        self.span.record("rpc.response.status_code", status);
        if *code == Code::Ok {
            debug!(target: "warren_rpc::calls", side, queue, method, status, duration_us, correlation_id, "call");
        } else {
            self.span.record("error.type", status);
            self.span.record("otel.status_code", "ERROR");
            info!(target: "warren_rpc::calls", side, queue, method, status, duration_us, correlation_id, "call failed");
        }
        #[cfg(feature = "metrics")]
        if let Some(m) = &self.observer.metrics {
            m.finished(self.side, queue, method, status, elapsed);
            if *code == Code::DeadlineExceeded {
                m.deadline_expired(self.side, queue);
            }
        }
    }
}

impl Drop for CallScope {
    fn drop(&mut self) {
        #[cfg(feature = "metrics")]
        if let Some(m) = &self.observer.metrics {
            m.ended(self.side, &self.queue);
        }
    }
}
